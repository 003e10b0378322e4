//! Client limits on the Worker, through one `ClientLimits` Durable Object per client (the
//! `CLIENT_LIMITS` namespace binding, wrangler.toml): every isolate of the Worker counts against
//! the same object, so a limit holds for the Worker as a whole, not per isolate.
//!
//! The object (the `ClientLimits` class in shim.js) keeps the client's [`Counters`] as JSON in
//! its SQLite storage and runs the core's own arithmetic on them, in this module's exported
//! functions ([`limits_reserve`], [`limits_settle`]): there is one implementation of the rule,
//! the core's. A request makes one round trip before its upstream call (`reserve`), and one more
//! in the background once its answer has ended (`settle`, in `ctx.waitUntil`, never delaying
//! the response). A Durable Object runs one call at a time, and the object's read, arithmetic and
//! write are all synchronous (SQLite storage, the module's functions), so no other call can come
//! in between: two isolates never both take the last place.
//!
//! Without the binding a limited client is refused ([`LimitsUnavailable`]), never served
//! unlimited; a client without limits and the operator never reach this module.

use std::cell::Cell;

use serde::{Deserialize, Serialize};
use worker::js_sys::{Array, Promise};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsError, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use super::binding::js_error_text;
use crate::core::host::LimitsUnavailable;
use crate::core::limits::{Ask, Counters, Grant, Refusal, Used};
use crate::core::route::{Client, Routes};

/// The Durable Object namespace binding that holds the clients' limits.
const BINDING: &str = "CLIENT_LIMITS";

/// The longest a request waits for its client's object: past it the request is refused
/// (the object may still have counted it; its place in flight then frees at its deadline).
const WAIT_MS: u64 = 5_000;

// The object's id per client is computed once per isolate (an id is plain data; a stub belongs
// to the request that made it, so one is made per call). A failed settle is logged once per
// isolate: its request's place in flight then frees at the request's deadline.
#[wasm_bindgen(inline_js = r#"
const ids = new Map();
let warned = false;

function object(env, client) {
  const ns = env.CLIENT_LIMITS;
  let id = ids.get(client);
  if (id === undefined) {
    id = ns.idFromName(client);
    ids.set(client, id);
  }
  return ns.get(id);
}

export function reserveRemote(env, client, ask, waitMs) {
  let timer;
  const gaveUp = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${waitMs} ms`)), waitMs);
  });
  const answer = object(env, client).reserve(client, ask);
  return Promise.race([answer, gaveUp]).finally(() => clearTimeout(timer));
}

export function countersRemote(env, client, waitMs) {
  let timer;
  const gaveUp = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), waitMs);
  });
  const answer = object(env, client).counters(client);
  return Promise.race([answer, gaveUp]).finally(() => clearTimeout(timer));
}

function warn(e) {
  if (!warned) {
    warned = true;
    console.error(`CLIENT_LIMITS: settling failed: ${e && e.message ? e.message : e}; the request's place in flight frees at its deadline (logged once per isolate)`);
  }
}

export function settleRemote(env, ctx, client, grant, used) {
  try {
    // An RPC promise's `then` insists on a function for both arguments.
    ctx.waitUntil(object(env, client).settle(client, grant, used).then(() => {}, warn));
  } catch (e) {
    warn(e);
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = reserveRemote, catch)]
    fn reserve_remote(
        env: &JsValue,
        client: &str,
        ask: &str,
        wait_ms: f64,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = countersRemote, catch)]
    fn counters_remote(env: &JsValue, client: &str, wait_ms: f64) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = settleRemote)]
    fn settle_remote(env: &JsValue, ctx: &JsValue, client: &str, grant: &str, used: &str);
}

thread_local! {
    /// Whether the env has the binding (`None`: not looked at yet; it is fixed per isolate).
    static BOUND: Cell<Option<bool>> = const { Cell::new(None) };
}

fn bound(env: &JsValue) -> bool {
    super::binding::bound(&BOUND, env, BINDING)
}

/// What the object answers a reservation with, as JSON: `{"grant": ...}` or `{"refusal": ...}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Grant(Grant),
    Refusal(Refusal),
}

/// Reserves `ask` against `client`'s limits in its object: one round trip.
pub async fn reserve(
    env: &JsValue,
    client: &'static Client,
    ask: Ask,
) -> Result<Result<Grant, Refusal>, LimitsUnavailable> {
    if !bound(env) {
        return Err(LimitsUnavailable::unconfigured(format!(
            "the Worker has no {BINDING} Durable Object binding, and routes.toml gives client `{}` limits: declare it in wrangler.toml (see README)",
            client.name
        )));
    }
    let failed =
        |why: String| LimitsUnavailable::unreachable(format!("the {BINDING} Durable Object {why}"));
    // Plain integers: serialising them cannot fail.
    let ask = serde_json::to_string(&ask).unwrap_or_default();
    let promise = reserve_remote(env, client.name, &ask, WAIT_MS as f64)
        .map_err(|e| failed(format!("could not be called: {}", js_error_text(&e))))?;
    let answer = JsFuture::from(promise)
        .await
        .map_err(|e| failed(format!("failed: {}", js_error_text(&e))))?;
    let answer = answer
        .as_string()
        .and_then(|text| serde_json::from_str::<Answer>(&text).ok())
        .ok_or_else(|| failed("answered something that is not a reservation".to_owned()))?;
    Ok(match answer {
        Answer::Grant(grant) => Ok(grant),
        Answer::Refusal(refusal) => Err(refusal),
    })
}

/// `client`'s counters as its object holds them (for the status page); `None` without the
/// binding, or when the object does not answer within the reservation's wait.
pub async fn snapshot(env: &JsValue, client: &'static Client) -> Option<Counters> {
    if !bound(env) {
        return None;
    }
    let promise = counters_remote(env, client.name, WAIT_MS as f64).ok()?;
    let state = JsFuture::from(promise).await.ok()?.as_string();
    state.map(|text| counters(Some(text)))
}

/// Settles `grant` with what the request `used`, in the background (`ctx.waitUntil`).
pub fn settle(env: &JsValue, ctx: &JsValue, client: &'static Client, grant: Grant, used: Used) {
    if !bound(env) {
        return;
    }
    // Plain integers: serialising them cannot fail.
    let grant = serde_json::to_string(&grant).unwrap_or_default();
    let used = serde_json::to_string(&used).unwrap_or_default();
    settle_remote(env, ctx, client.name, &grant, &used);
}

// ---- The object's side: called by the `ClientLimits` class in shim.js.

/// The client named `name` in the routes compiled into this Worker.
fn client(name: &str) -> Result<&'static Client, JsError> {
    <crate::routes::Table as Routes>::CLIENTS
        .iter()
        .find(|client| client.name == name)
        .ok_or_else(|| JsError::new(&format!("routes.toml has no client `{name}`")))
}

/// The stored counters; none stored yet, or unreadable (written by an incompatible version),
/// start from nothing rather than lock the client out for good.
fn counters(state: Option<String>) -> Counters {
    state
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn text<T: Serialize>(value: &T) -> Result<String, JsError> {
    serde_json::to_string(value).map_err(|e| JsError::new(&e.to_string()))
}

/// Reserves `ask` (an [`Ask`] as JSON) for the client named `client`, whose stored counters are
/// `state` (`undefined`: none yet). Gives `[state, answer]`: the counters to store
/// (`undefined` when unchanged, so a refused flood writes nothing) and the answer for the
/// caller, `{"grant": ...}` or `{"refusal": ...}`.
#[wasm_bindgen(js_name = limitsReserve)]
pub fn limits_reserve(state: Option<String>, client: &str, ask: &str) -> Result<Array, JsError> {
    let client = self::client(client)?;
    let ask: Ask = serde_json::from_str(ask).map_err(|e| JsError::new(&e.to_string()))?;
    let before = counters(state);
    let mut after = before.clone();
    let answer = match after.reserve(client, &ask) {
        Ok(grant) => Answer::Grant(grant),
        Err(refusal) => Answer::Refusal(refusal),
    };
    let state = if after == before {
        JsValue::UNDEFINED
    } else {
        JsValue::from(text(&after)?)
    };
    Ok(Array::of2(&state, &JsValue::from(text(&answer)?)))
}

/// Settles `grant` with `used` (a [`Grant`] and a [`Used`] as JSON) on the stored counters
/// `state`. Gives the counters to store, `undefined` when unchanged.
#[wasm_bindgen(js_name = limitsSettle)]
pub fn limits_settle(
    state: Option<String>,
    grant: &str,
    used: &str,
) -> Result<Option<String>, JsError> {
    let grant: Grant = serde_json::from_str(grant).map_err(|e| JsError::new(&e.to_string()))?;
    let used: Used = serde_json::from_str(used).map_err(|e| JsError::new(&e.to_string()))?;
    let before = counters(state);
    let mut after = before.clone();
    after.settle(&grant, &used);
    if after == before {
        return Ok(None);
    }
    text(&after).map(Some)
}
