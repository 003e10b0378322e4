//! The host-independent HTTP model: what a host hands the core and what it gets back.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

pub use crate::core::stream::ClientBody;

/// The methods the proxy distinguishes; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// OPTIONS (CORS preflight)
    Options,
    /// Any other method.
    Other,
}

impl Method {
    /// Parses a method name.
    pub fn parse(name: &str) -> Self {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// A request body as the host read it.
#[derive(Debug)]
pub enum RequestBody {
    /// The whole body, at most [`crate::core::error::MAX_BODY_BYTES`].
    Complete(Bytes),
    /// The body was over the limit (declared, or counted while reading) and was not read further.
    TooLarge,
    /// The body did not arrive in full within the server's `body_read_timeout`.
    TimedOut,
}

/// Reads the request body when awaited, and only then: the core awaits it after the token is
/// checked, so a client without one never gets the server to read (or wait for) a byte of it.
pub type BodyReader = Pin<Box<dyn Future<Output = RequestBody>>>;

/// A body reader for a body already in hand (tests, and requests that carry none).
pub fn body_ready(body: RequestBody) -> BodyReader {
    Box::pin(std::future::ready(body))
}

/// The path of an absolute URL as a runtime serialises it (the first `/` after the host starts
/// it; `?` and `#` end it).
pub fn path_of_url(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(url, |i| &url[i + 3..]);
    match after_scheme.find('/') {
        Some(start) => {
            let path = &after_scheme[start..];
            &path[..path.find(['?', '#']).unwrap_or(path.len())]
        }
        None => "/",
    }
}

/// An incoming request's headers, read by name when the core needs one: a host hands over its
/// own header map rather than copying every header (the Worker's cost per JS call adds up).
pub trait RequestHeaders {
    /// The first value of a header, by lower-case name.
    fn get(&self, name: &str) -> Option<String>;
}

/// Headers as a list of lower-case name and value pairs.
impl RequestHeaders for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
}

/// An incoming request, in the core's terms.
pub struct IncomingRequest {
    /// The method.
    pub method: Method,
    /// The path without query string.
    pub path: String,
    /// The headers.
    pub headers: Box<dyn RequestHeaders>,
    /// The body, read when the core awaits it.
    pub body: BodyReader,
}

impl IncomingRequest {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name)
    }
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a streamed body stopped early. The host aborts the connection, so a client never takes
/// a cut-off JSON body for a complete one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAbort(pub String);

impl std::fmt::Display for StreamAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StreamAbort {}

/// A body produced piece by piece, forwarded as each piece arrives.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, StreamAbort>>>>;

/// A response body.
pub enum ResponseBody {
    /// A body known in full.
    Full(Bytes),
    /// An upstream's answer after its first bytes, to stream as the host can best
    /// ([`ClientBody`]).
    Upstream(ClientBody),
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseBody::Full(b) => f.debug_tuple("Full").field(b).finish(),
            ResponseBody::Upstream(_) => f.write_str("Upstream(..)"),
        }
    }
}

/// A response, in the core's terms.
#[derive(Debug)]
pub struct ProxyResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: ResponseBody,
}

impl ProxyResponse {
    /// A complete response with a body of the given type.
    pub fn full(status: u16, content_type: &str, body: Bytes) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            body: ResponseBody::Full(body),
        }
    }

    /// A complete JSON response.
    pub fn json(status: u16, body: Bytes) -> Self {
        Self::full(status, "application/json", body)
    }

    /// A response with no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ResponseBody::Full(Bytes::new()),
        }
    }

    /// A header's value, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_from_serialised_urls() {
        assert_eq!(
            path_of_url("https://w.example/v1/chat/completions"),
            "/v1/chat/completions"
        );
        assert_eq!(
            path_of_url("http://127.0.0.1:8787/v1/models?x=1#y"),
            "/v1/models"
        );
        assert_eq!(path_of_url("https://w.example"), "/");
        assert_eq!(path_of_url("https://w.example?q"), "/");
        let headers: Vec<(String, String)> = vec![("authorization".into(), "Bearer t".into())];
        assert_eq!(headers.get("authorization").as_deref(), Some("Bearer t"));
        assert_eq!(headers.get("x-api-key"), None);
    }
}
