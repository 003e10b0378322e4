//! The Workers host: `#[event(fetch)]` converts the platform's request, runs the core, and
//! converts the core's response back, streaming bodies through without buffering.

use std::rc::Rc;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use worker::{event, Context, Env, Fetch, Headers, Request, RequestInit, Response};

use crate::core::error::MAX_BODY_BYTES;
use crate::core::host::{
    BodyError, Host, NetworkError, UpstreamBody, UpstreamRequest, UpstreamResponse,
};
use crate::core::http::{IncomingRequest, Method, ProxyResponse, RequestBody, ResponseBody};

/// Outbound `fetch`, secrets from the Worker's env, `Date.now()` and `console.log`.
#[derive(Clone)]
pub struct WorkerHost {
    env: Rc<Env>,
}

fn network(e: worker::Error) -> NetworkError {
    NetworkError(e.to_string())
}

impl Host for WorkerHost {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, NetworkError> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(network)?;
        }
        let mut init = RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_headers(headers)
            .with_body(Some(js_sys::Uint8Array::from(&request.body[..]).into()));
        let outbound = Request::new_with_init(&request.url, &init).map_err(network)?;
        let mut response = Fetch::Request(outbound).send().await.map_err(network)?;
        let status = response.status_code();
        let content_type = response.headers().get("content-type").ok().flatten();
        let body: UpstreamBody = match response.stream() {
            Ok(body) => Box::pin(
                body.map(|chunk| chunk.map(Bytes::from).map_err(|e| BodyError(e.to_string()))),
            ),
            // A response without a body (204, or an error with none) reads as empty.
            Err(_) => Box::pin(stream::empty()),
        };
        Ok(UpstreamResponse {
            status,
            content_type,
            body,
        })
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.env
            .secret(name)
            .or_else(|_| self.env.var(name))
            .ok()
            .map(|value| value.to_string())
    }

    fn now_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }

    fn log(&self, line: &str) {
        worker::console_log!("{line}");
    }
}

#[event(fetch)]
async fn fetch(request: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let host = WorkerHost { env: Rc::new(env) };
    let incoming = incoming(request).await;
    outgoing(crate::core::handle(&host, incoming).await)
}

async fn incoming(mut request: Request) -> IncomingRequest {
    let headers: Vec<(String, String)> = request.headers().entries().collect();
    let declared_too_large = request
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    let body = if declared_too_large {
        RequestBody::TooLarge
    } else {
        match request.bytes().await {
            Ok(bytes) if bytes.len() > MAX_BODY_BYTES => RequestBody::TooLarge,
            Ok(bytes) => RequestBody::Complete(Bytes::from(bytes)),
            // GET and friends have no body; a broken one gets the usual 400 downstream.
            Err(_) => RequestBody::Complete(Bytes::new()),
        }
    };
    IncomingRequest {
        method: Method::parse(request.method().as_ref()),
        path: request.path(),
        headers,
        body,
    }
}

fn outgoing(response: ProxyResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &response.headers {
        headers.set(name, value)?;
    }
    let built = match response.body {
        ResponseBody::Full(bytes) if bytes.is_empty() => Response::empty()?,
        ResponseBody::Full(bytes) => Response::from_bytes(bytes.to_vec())?,
        ResponseBody::Stream(body) => Response::from_stream(body.map(|item| {
            item.map(Vec::from)
                .map_err(|e| worker::Error::RustError(e.0))
        }))?,
    };
    Ok(built.with_status(response.status).with_headers(headers))
}
