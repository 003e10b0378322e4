//! The platform's `Request` → the core's [`IncomingRequest`], and the core's
//! [`ProxyResponse`] → the platform's `Response`.

use bytes::Bytes;
use futures_util::StreamExt;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{self, ReadableStream};

use super::body::{self, JsBody};
use crate::core::error::{ProxyError, MAX_BODY_BYTES};
use crate::core::http::{
    body_ready, path_of_url, BodyReader, BodyStream, IncomingRequest, Method, ProxyResponse,
    RequestBody, RequestHeaders, ResponseBody,
};
use crate::core::stream::{ClientBody, DriverParts, Framing};
use crate::core::verdict::UpstreamError;

/// The request's own headers, read by name when the core asks.
struct Headers(web_sys::Headers);

impl RequestHeaders for Headers {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).ok().flatten()
    }
}

/// The core's view of `request`. Only a POST's body is read (no other endpoint takes one),
/// when the core awaits it, and not at all when its declared length is over the limit.
pub fn incoming(request: web_sys::Request) -> IncomingRequest {
    let method = Method::parse(&request.method());
    let headers = Headers(request.headers());
    let declared_too_large = headers
        .get("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64);
    let path = path_of_url(&request.url()).to_owned();
    let body: BodyReader = if method != Method::Post {
        body_ready(RequestBody::Complete(Bytes::new()))
    } else if declared_too_large {
        body_ready(RequestBody::TooLarge)
    } else {
        Box::pin(async move {
            match JsFuture::from(body::read_body(&request, MAX_BODY_BYTES as f64)).await {
                Ok(body) if body.is_null() => RequestBody::TooLarge,
                Ok(body) => {
                    RequestBody::Complete(Bytes::from(body.unchecked_into::<Uint8Array>().to_vec()))
                }
                // A broken body gets the usual 400 downstream.
                Err(_) => RequestBody::Complete(Bytes::new()),
            }
        })
    };
    IncomingRequest {
        method,
        path,
        headers: Box::new(headers),
        body,
    }
}

/// How a pass-through stream (OpenAI) is carried after its first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThrough {
    /// Read by the runtime's JavaScript and fed to the core's driver a chunk at a time, like a
    /// translated stream (`PROXY_RELAY=watch`): idle_timeout, a cut event completed by the
    /// error, a stream closed without `[DONE]` reported, all as natively, for 2.5-4x the CPU
    /// per event.
    Watched,
    /// Piped by the runtime after the first token, no proxy code per chunk: the default, because
    /// CPU per event is what Cloudflare meters (the Free plan allows 10 ms per request). After
    /// the first token only total_timeout is enforced, a stream closed without `[DONE]` is
    /// passed on as it ended, and the error after a cut cannot be put into the event it cut
    /// ([`body::relay`]).
    Piped,
}

/// The platform's response for `response`.
pub async fn outgoing(
    response: ProxyResponse,
    pass_through: PassThrough,
    ctx: &JsValue,
) -> Result<web_sys::Response, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in &response.headers {
        headers.set(name, value)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(response.status);
    init.set_headers(&headers);
    match response.body {
        ResponseBody::Full(bytes) if bytes.is_empty() => {
            web_sys::Response::new_with_opt_str_and_init(None, &init)
        }
        ResponseBody::Full(bytes) => web_sys::Response::new_with_opt_buffer_source_and_init(
            Some(&Uint8Array::from(&bytes[..])),
            &init,
        ),
        ResponseBody::Upstream(body) => {
            let stream = match upstream(body, pass_through, ctx) {
                Carried::Stream(stream) => stream?,
                Carried::Whole(parts) => {
                    return match body::collect(parts).await {
                        Ok(bytes) => web_sys::Response::new_with_opt_buffer_source_and_init(
                            Some(&Uint8Array::from(&bytes[..])),
                            &init,
                        ),
                        // Nothing was sent yet, so the client gets the error, not a cut body.
                        Err(message) => {
                            let error = ProxyError::Upstream {
                                status: 502,
                                error: UpstreamError::truncated(message).error,
                            };
                            Box::pin(outgoing(error.into_response(), pass_through, ctx)).await
                        }
                    };
                }
            };
            web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stream), &init)
        }
    }
}

/// How an upstream's answer goes to the client.
enum Carried {
    /// As this stream.
    Stream(Result<ReadableStream, JsValue>),
    /// Read whole first (JSON).
    Whole(DriverParts<JsBody>),
}

/// The cheapest way to carry `body` that keeps its meaning: a JSON answer read whole; a stream
/// read by the runtime and fed to the translator a chunk at a time (or, if `pass_through` says
/// so, a pass-through's handed to the runtime after its first event). A body that is not a
/// fetch's or a binding's stream goes through the core's own pump.
fn upstream(body: ClientBody, pass_through: PassThrough, ctx: &JsValue) -> Carried {
    let body =
        if pass_through == PassThrough::Piped && body.framing() == Framing::Sse && body.relays() {
            match body.take_rest::<JsBody>() {
                Ok(parts) => return Carried::Stream(body::relay(parts, ctx)),
                Err(body) => body,
            }
        } else {
            body
        };
    match body.take_driver::<JsBody>() {
        Ok(parts) if parts.driver.framing() == Framing::Json => Carried::Whole(parts),
        Ok(parts) => Carried::Stream(body::translate(parts)),
        Err(body) => Carried::Stream(readable(body.into_stream())),
    }
}

/// A `ReadableStream` pulling from `stream`; an abort errors it, so the client's connection is
/// cut rather than a body looking complete.
fn readable(stream: BodyStream) -> Result<ReadableStream, JsValue> {
    let response: web_sys::Response = worker::Response::from_stream(stream.map(|item| {
        item.map(Vec::from)
            .map_err(|e| worker::Error::RustError(e.0))
    }))
    .map_err(|e| JsValue::from_str(&e.to_string()))?
    .into();
    response
        .body()
        .ok_or_else(|| JsValue::from_str("a streamed response without a body"))
}
