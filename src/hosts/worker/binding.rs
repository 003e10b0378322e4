//! Calls into the Worker's bindings (`env.AI.run(...)`), for the core's
//! [`Host::call_binding`](crate::core::host::Host::call_binding).

use std::pin::pin;

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::stream;
use worker::Env;

use super::body::{JsBody, Watch};
use super::fetch::Sleep;
use crate::core::host::{BindingCall, BindingError, Timeouts, UpstreamResponse};

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
/// * A stream is timed like a fetch's body (`timeouts`); the call itself has no signal to
///   abort, so past `timeouts.headers_ms` it is left to run, unread.
pub async fn call_binding(
    env: &Env,
    name: &str,
    call: BindingCall,
    timeouts: Timeouts,
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
    let answer = pin!(JsFuture::from(Promise::resolve(&result)));
    let output = match select(answer, pin!(Sleep::new(timeouts.headers_ms))).await {
        Either::Left((output, _)) => output.map_err(thrown)?,
        Either::Right(_) => return Err(BindingError::NoAnswer),
    };
    if let Some(readable) = output.dyn_ref::<worker::web_sys::ReadableStream>() {
        // Nothing to abort but the stream itself, which the watch cancels.
        let watch = Watch::start(timeouts).map_err(thrown)?;
        let body = JsBody::new(watch, readable, timeouts.idle_ms);
        return Ok(UpstreamResponse {
            status: 200,
            content_type: Some("text/event-stream".to_owned()),
            retry_after: None,
            body: Box::new(body),
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
        retry_after: None,
        body: Box::new(stream::iter([Ok(Bytes::from(json))])),
    })
}

/// A thrown JS value as text: `Name: message` for errors (`String(error)`), the value otherwise.
pub fn js_error_text(value: &worker::wasm_bindgen::JsValue) -> String {
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

/// Whether the env has the binding `name`, looked at once per isolate (bindings are fixed for an
/// isolate's life) and kept in `seen`.
pub fn bound(
    seen: &'static std::thread::LocalKey<std::cell::Cell<Option<bool>>>,
    env: &worker::wasm_bindgen::JsValue,
    name: &str,
) -> bool {
    use worker::wasm_bindgen::JsValue;
    seen.with(|cell| {
        let bound = cell.get().unwrap_or_else(|| {
            worker::js_sys::Reflect::get(env, &JsValue::from_str(name))
                .is_ok_and(|binding| !binding.is_undefined() && !binding.is_null())
        });
        cell.set(Some(bound));
        bound
    })
}
