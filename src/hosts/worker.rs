//! The Workers host: `#[event(fetch)]` converts the platform's request, runs the core, and
//! converts the core's response back, streaming bodies through without buffering.

use std::rc::Rc;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use worker::{event, Context, Env, Fetch, Headers, Request, RequestInit, Response};

use crate::core::error::MAX_BODY_BYTES;
use crate::core::host::{
    BindingCall, BindingError, BodyError, Host, NetworkError, UpstreamBody, UpstreamRequest,
    UpstreamResponse,
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

    async fn call_binding(
        &self,
        binding: &str,
        call: BindingCall,
    ) -> Result<UpstreamResponse, BindingError> {
        call_binding(&self.env, binding, call).await
    }
}

/// `env[binding][method](...args)`, on the raw JS binding rather than through a typed wrapper
/// such as `worker::Ai`:
///
/// * The arguments are built by `JSON.parse` from the JSON text the provider wrote, so they are
///   plain JS objects all the way down. (`Ai::run` converts its input with
///   `serde_wasm_bindgen`'s default serializer, which turns every nested `serde_json` object
///   into a JS `Map`; the AI binding reads a `Map` as an empty object, so tool `parameters`
///   schemas vanish: workers-rs#1050.)
/// * The method is looked up and applied with `Reflect`, so any object with that method works
///   as the binding: the real `Ai` (whose constructor check `env.ai()` insists on), or a service
///   binding to a `WorkerEntrypoint` that implements it (how the tests stand the AI in).
/// * The result may be a `ReadableStream` (its bytes are the body, read like a fetch's) or any
///   JSON value (`JSON.stringify`d). Either way the core translates it like an HTTP body.
/// * A throw or a rejection is the binding's error, as text.
async fn call_binding(
    env: &Env,
    name: &str,
    call: BindingCall,
) -> Result<UpstreamResponse, BindingError> {
    use worker::js_sys::{Array, Function, Promise, Reflect, JSON};
    use worker::wasm_bindgen::{JsCast, JsValue};
    use worker::wasm_bindgen_futures::JsFuture;

    let thrown = |e: JsValue| BindingError::Thrown(js_error_text(&e));
    let binding = Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .filter(|b| !b.is_undefined() && !b.is_null())
        .ok_or_else(|| {
            BindingError::Unavailable(format!(
                "the Worker has no `{name}` binding; declare it in wrangler.toml"
            ))
        })?;
    let method = Reflect::get(&binding, &JsValue::from_str(call.method))
        .ok()
        .filter(|m| !m.is_undefined() && !m.is_null())
        .ok_or_else(|| {
            BindingError::Unavailable(format!(
                "the `{name}` binding has no `{}` method",
                call.method
            ))
        })?;
    let args = Array::new();
    for arg in &call.args {
        let text = std::str::from_utf8(arg)
            .map_err(|e| BindingError::Thrown(format!("an argument is not UTF-8: {e}")))?;
        args.push(&JSON::parse(text).map_err(thrown)?);
    }
    // An RPC stub's method is callable but need not be a `Function` instance; `Reflect.apply`
    // only needs it callable, so the unchecked cast is just for the signature.
    let result =
        Reflect::apply(method.unchecked_ref::<Function>(), &binding, &args).map_err(thrown)?;
    let output = JsFuture::from(Promise::resolve(&result))
        .await
        .map_err(thrown)?;
    if let Some(readable) = output.dyn_ref::<worker::web_sys::ReadableStream>() {
        let response = worker::web_sys::Response::new_with_opt_readable_stream(Some(readable))
            .map_err(thrown)?;
        let mut response = Response::from(response);
        let body: UpstreamBody = match response.stream() {
            Ok(body) => Box::pin(
                body.map(|chunk| chunk.map(Bytes::from).map_err(|e| BodyError(e.to_string()))),
            ),
            Err(_) => Box::pin(stream::empty()),
        };
        return Ok(UpstreamResponse {
            status: 200,
            content_type: Some("text/event-stream".to_owned()),
            body,
        });
    }
    let json = JSON::stringify(&output)
        .ok()
        .and_then(|s| s.as_string())
        // `undefined` stringifies to nothing: an empty body, which the core reports.
        .unwrap_or_default();
    Ok(UpstreamResponse {
        status: 200,
        content_type: Some("application/json".to_owned()),
        body: Box::pin(stream::iter([Ok(Bytes::from(json))])),
    })
}

/// A thrown JS value as text: `Name: message` for errors (`String(error)`), the value otherwise.
fn js_error_text(value: &worker::wasm_bindgen::JsValue) -> String {
    use worker::wasm_bindgen::JsCast;
    if let Some(error) = value.dyn_ref::<worker::js_sys::Error>() {
        let name = String::from(error.name());
        let message = String::from(error.message());
        if name.is_empty() || message.starts_with(&name) {
            return message;
        }
        return format!("{name}: {message}");
    }
    value.as_string().unwrap_or_else(|| {
        worker::js_sys::JSON::stringify(value)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_else(|| "unknown error".to_owned())
    })
}

#[event(fetch)]
async fn fetch(request: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let host = WorkerHost { env: Rc::new(env) };
    let incoming = incoming(request).await;
    outgoing(crate::core::handle::<crate::routes::Table, _>(&host, incoming).await)
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
