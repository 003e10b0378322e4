//! The HTML page at `/`, so a person who opens the Worker's URL sees what it is.

use askama::Template;
use bytes::Bytes;

use crate::core::http::ProxyResponse;

#[derive(Template)]
#[template(path = "index.html")]
struct Index {
    version: &'static str,
    route_count: usize,
}

/// `GET /`: what this is and how to call it, for a proxy serving `route_count` routes. Lists no
/// route names (they need the token).
pub fn index(route_count: usize) -> ProxyResponse {
    let page = Index {
        version: env!("CARGO_PKG_VERSION"),
        route_count,
    };
    ProxyResponse::full(
        200,
        "text/html; charset=utf-8",
        Bytes::from(page.render().unwrap_or_default()),
    )
}
