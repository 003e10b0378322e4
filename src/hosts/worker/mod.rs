//! The Workers host: `#[event(fetch)]` hands the platform's request to the core and the core's
//! response back, streaming bodies without buffering. Every call across the JavaScript boundary
//! costs isolate CPU, which Cloudflare meters, so the host makes few: headers are read by name
//! when the core asks, a body only when the method has one, an upstream request is built in one
//! call ([`fetch`]), a translated stream is read by the runtime's JavaScript, not by Rust
//! futures, and a pass-through's rest is piped by the runtime itself ([`body`];
//! `PROXY_RELAY=watch` has it read chunk by chunk instead).
//! Cool-downs are shared between isolates through a Durable Object when the Worker is bound to
//! one ([`health`]); clients' limits are kept in one Durable Object per client ([`limits`]),
//! and the status page's last hour in one per route when bound ([`last_hour`]).

mod analytics;
mod binding;
mod body;
mod fetch;
mod health;
mod http;
mod last_hour;
mod limits;

use std::rc::Rc;

use worker::wasm_bindgen::JsValue;
use worker::{event, web_sys, Context, Env};

use crate::core::health::{Cooldown, KeyHealth};
use crate::core::host::{
    BindingCall, BindingError, Host, LimitsUnavailable, NetworkError, Timeouts, UpstreamRequest,
    UpstreamResponse,
};
use crate::core::limits::{Ask, Counters, Grant, Refusal, Used};
use crate::core::recent::LastHour;
use crate::core::record::UsageRecord;
use crate::core::route::Client;
use crate::core::secrets::SecretCache;

/// This isolate's cool-down memory.
static HEALTH: std::sync::LazyLock<KeyHealth> = std::sync::LazyLock::new(KeyHealth::new);

thread_local! {
    /// The secrets and vars read so far in this isolate, by name (`None`: not set).
    static SECRETS: SecretCache = const { SecretCache::new() };
}

/// Outbound `fetch`, bindings and secrets from the Worker's env, timers, `Date.now()`,
/// `console.log`, and the request's context for work that outlives the response.
#[derive(Clone)]
pub struct WorkerHost {
    env: Rc<Env>,
    /// The request's `ExecutionContext` (`ctx.waitUntil`).
    ctx: JsValue,
}

impl Host for WorkerHost {
    async fn send(
        &self,
        request: UpstreamRequest,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, NetworkError> {
        fetch::send(request, timeouts).await
    }

    async fn call_binding(
        &self,
        binding: &str,
        call: BindingCall,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, BindingError> {
        binding::call_binding(&self.env, binding, call, timeouts).await
    }

    async fn sleep(&self, ms: u64) {
        fetch::Sleep::new(ms).await;
    }

    fn health(&self) -> &KeyHealth {
        &HEALTH
    }

    async fn refresh_health(&self) {
        health::refresh(&self.env, &self.ctx, &HEALTH, self.now_ms()).await;
    }

    fn share_cooldown(&self, key: &str, cooldown: Cooldown) {
        health::share(&self.env, &self.ctx, key, cooldown);
    }

    /// In the client's `CLIENT_LIMITS` object, shared by every isolate: one round trip. (No
    /// [`Host::local_limits`]: a count per isolate would let a client through once per isolate.)
    async fn reserve(
        &self,
        client: &'static Client,
        ask: Ask,
    ) -> Result<Result<Grant, Refusal>, LimitsUnavailable> {
        limits::reserve(&self.env, client, ask).await
    }

    /// In the background (`ctx.waitUntil`): the response is not delayed.
    fn settle(&self, client: &'static Client, grant: Grant, used: Used) {
        limits::settle(&self.env, &self.ctx, client, grant, used);
    }

    async fn client_counters(&self, client: &'static Client) -> Option<Counters> {
        limits::snapshot(&self.env, client).await
    }

    async fn last_hour(&self) -> LastHour {
        last_hour::read::<crate::routes::Table>(&self.env, self.now_ms()).await
    }

    /// Only with the `USAGE` dataset or the `LAST_HOUR` objects bound: reading an OpenAI
    /// stream's usage means reading every chunk, where the runtime otherwise pipes it unread.
    fn wants_usage(&self) -> bool {
        analytics::bound(&self.env) || last_hour::shared(&self.env)
    }

    fn record(&self, record: &UsageRecord) {
        analytics::record(&self.env, record);
        last_hour::observe(&self.env, &self.ctx, record);
    }

    /// Secrets and vars are fixed for an isolate's life (a new version is a new isolate), so
    /// each name is read from the env once per isolate.
    fn secret(&self, name: &str) -> Option<Rc<str>> {
        SECRETS.with(|cache| {
            cache.get_or_read(name, || {
                self.env
                    .secret(name)
                    .or_else(|_| self.env.var(name))
                    .ok()
                    .map(|value| value.to_string())
            })
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
    ctx: Context,
) -> worker::Result<web_sys::Response> {
    mix_in_entropy();
    let ctx: &worker::worker_sys::Context = ctx.as_ref();
    let host = WorkerHost {
        env: Rc::new(env),
        ctx: AsRef::<JsValue>::as_ref(ctx).clone(),
    };
    let incoming = http::incoming(request);
    let response = crate::core::handle::<crate::routes::Table, _>(&host, incoming).await;
    let pass_through = match host.secret(RELAY_VAR).as_deref() {
        Some("watch") => http::PassThrough::Watched,
        _ => http::PassThrough::Piped,
    };
    Ok(http::outgoing(response, pass_through, &host.ctx).await?)
}

/// Gives the core this instance's random bits ([`crate::core::entropy`]) on its first request:
/// workerd refuses random values at start-up, outside a request.
fn mix_in_entropy() {
    thread_local!(static MIXED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !MIXED.replace(true) {
        // 2^53: all of the mantissa `Math.random()` fills.
        let bits = (worker::js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
        crate::core::entropy::mix_in(bits);
    }
}

/// Makes wasm-bindgen's queue of Rust tasks now, for the entry module (`shim.js`), which hides
/// the global `queueMicrotask` while it does: the queue looks for that global once, when it is
/// made, and without it wakes tasks through `Promise.then`, V8's own job, rather than workerd's
/// `queueMicrotask`, a runtime API call per wake.
#[worker::wasm_bindgen::prelude::wasm_bindgen(js_name = startTasks)]
pub fn start_tasks() {
    worker::wasm_bindgen_futures::spawn_local(async {});
}

/// The var (or secret) that has pass-through streams read chunk by chunk after their first token
/// (`PROXY_RELAY=watch`, [`http::PassThrough::Watched`]) rather than piped by the runtime.
const RELAY_VAR: &str = "PROXY_RELAY";
