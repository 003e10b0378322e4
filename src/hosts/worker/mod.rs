//! The Workers host: `#[event(fetch)]` hands the platform's request to the core and the core's
//! response back, streaming bodies without buffering. Every call across the JavaScript boundary
//! costs isolate CPU, which Cloudflare meters, so the host makes few: headers are read by name
//! when the core asks, a body only when the method has one, and a pass-through's stream is
//! handed to the runtime after its first event ([`body::relay`]).

mod binding;
mod body;
mod http;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{event, web_sys, Context, Env};

use crate::core::health::KeyHealth;
use crate::core::host::{
    BindingCall, BindingError, Host, NetworkError, Timeouts, UpstreamRequest, UpstreamResponse,
};
use body::JsBody;

/// This isolate's cool-down memory.
static HEALTH: std::sync::LazyLock<KeyHealth> = std::sync::LazyLock::new(KeyHealth::new);

thread_local! {
    /// The secrets and vars read so far in this isolate, by name (`None`: not set).
    static SECRETS: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
}

/// Outbound `fetch`, bindings and secrets from the Worker's env, `Date.now()` and
/// `console.log`.
#[derive(Clone)]
pub struct WorkerHost {
    env: Rc<Env>,
}

fn network(e: JsValue) -> NetworkError {
    NetworkError(binding::js_error_text(&e))
}

impl Host for WorkerHost {
    async fn send(
        &self,
        request: UpstreamRequest,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, NetworkError> {
        let _ = timeouts;
        let headers = web_sys::Headers::new().map_err(network)?;
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(network)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&Uint8Array::from(&request.body[..]));
        let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
        let response: web_sys::Response =
            JsFuture::from(global.fetch_with_str_and_init(&request.url, &init))
                .await
                .map_err(network)?
                .unchecked_into();
        let content_type = response.headers().get("content-type").ok().flatten();
        Ok(UpstreamResponse {
            status: response.status(),
            content_type,
            body: match response.body() {
                Some(stream) => Box::new(JsBody::new(stream)),
                // A response without a body (204, or an error with none) reads as empty.
                None => Box::new(futures_util::stream::empty::<Result<Bytes, _>>()),
            },
        })
    }

    async fn call_binding(
        &self,
        binding: &str,
        call: BindingCall,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, BindingError> {
        let _ = timeouts;
        binding::call_binding(&self.env, binding, call).await
    }

    async fn sleep(&self, ms: u64) {
        let ms = ms.min(i32::MAX as u64) as i32;
        let promise = worker::js_sys::Promise::new(&mut |resolve, _| {
            let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
            let _ = global.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        });
        let _ = JsFuture::from(promise).await;
    }

    fn health(&self) -> &KeyHealth {
        &HEALTH
    }

    /// Secrets and vars are fixed for an isolate's life (a new version is a new isolate), so
    /// each name is read from the env once per isolate.
    fn secret(&self, name: &str) -> Option<String> {
        SECRETS.with(|cache| {
            if let Some(value) = cache.borrow().get(name) {
                return value.clone();
            }
            let value = self
                .env
                .secret(name)
                .or_else(|_| self.env.var(name))
                .ok()
                .map(|value| value.to_string());
            cache.borrow_mut().insert(name.to_owned(), value.clone());
            value
        })
    }

    fn now_ms(&self) -> u64 {
        worker::js_sys::Date::now() as u64
    }

    fn log(&self, line: &str) {
        worker::console_log!("{line}");
    }
}

#[event(fetch)]
async fn fetch(
    request: web_sys::Request,
    env: Env,
    _ctx: Context,
) -> worker::Result<web_sys::Response> {
    let host = WorkerHost { env: Rc::new(env) };
    let incoming = http::incoming(request).await;
    let response = crate::core::handle::<crate::routes::Table, _>(&host, incoming).await;
    Ok(http::outgoing(response).await?)
}
