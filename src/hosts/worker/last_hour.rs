//! The status page's last hour on the Worker. With the `LAST_HOUR` Durable Object namespace bound
//! (wrangler.toml) it covers every isolate: one object per route (`idFromName(route)`, the
//! `LastHour` class in shim.js) keeps that route's minutes per client in its SQLite storage, an
//! isolate adds up its records for a second and sends them in one call in the background
//! (`ctx.waitUntil`, never delaying a response), and the status page asks every route's object
//! at once. Without the binding it is this isolate's own records, and the page says so.
//!
//! What crosses to the object is plain numbers: the minute, whether it was an error, tokens,
//! cost and the latency's [`latency_bucket`]; the object only adds and sums, so the rule for a
//! percentile stays the core's ([`Tally::totals`]).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use worker::js_sys::{Array, Promise};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use super::binding::bound;
use crate::core::recent::{latency_bucket, tokens, LastHour, Recent, Tally, LATENCY_BUCKETS};
use crate::core::record::UsageRecord;
use crate::core::route::Routes;

/// The Durable Object namespace binding that makes the last hour the whole Worker's.
const BINDING: &str = "LAST_HOUR";

/// The longest the status page waits for a route's object; one that has not answered by then
/// shows as no traffic.
const WAIT_MS: u64 = 5_000;

/// How long an isolate adds up a route's records before it sends them: the page is at most this
/// late, and a busy isolate makes one call per route per period instead of one per request.
const BATCH_MS: u64 = 1_000;

/// This isolate's last hour, kept when the Worker has no `LAST_HOUR` binding.
static ISOLATE: LazyLock<Recent> = LazyLock::new(Recent::new);

thread_local! {
    /// Whether the env has the binding (`None`: not looked at yet; it is fixed per isolate).
    static BOUND: Cell<Option<bool>> = const { Cell::new(None) };
}

// The object's id per route is computed once per isolate (an id is plain data; a stub belongs to
// the request that made it, so one is made per call). An isolate adds up its records per route
// for a second and sends them in one call: the request that opens a route's batch keeps its
// invocation alive (`ctx.waitUntil`) until the batch has gone, so nothing waits in memory for a
// later request that may never come. A failed call is logged once per isolate: those requests
// are missing from the page.
#[wasm_bindgen(inline_js = r#"
const ids = new Map();
const batches = new Map();
let warned = false;

function object(env, route) {
  const ns = env.LAST_HOUR;
  let id = ids.get(route);
  if (id === undefined) {
    id = ns.idFromName(route);
    ids.set(route, id);
  }
  return ns.get(id);
}

function warn(e) {
  if (!warned) {
    warned = true;
    console.error(`LAST_HOUR: recording failed: ${e && e.message ? e.message : e}; the status page misses those requests (logged once per isolate)`);
  }
}

function send(env, route) {
  const batch = batches.get(route);
  batches.delete(route);
  // An RPC promise's `then` insists on a function for both arguments.
  return object(env, route).add([...batch.rows.values()], [...batch.latency.values()]).then(() => {}, warn);
}

export function observeRemote(env, ctx, route, client, minute, error, tokens, cost, bucket, batchMs) {
  try {
    let batch = batches.get(route);
    if (batch === undefined) {
      batch = { rows: new Map(), latency: new Map() };
      batches.set(route, batch);
      ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, batchMs)).then(() => send(env, route)).catch(warn));
    }
    const key = `${minute}|${client}`;
    const row = batch.rows.get(key);
    if (row === undefined) {
      batch.rows.set(key, [client, minute, 1, error ? 1 : 0, tokens, cost]);
    } else {
      row[2] += 1;
      row[3] += error ? 1 : 0;
      row[4] += tokens;
      row[5] += cost;
    }
    const at = `${key}|${bucket}`;
    const n = batch.latency.get(at);
    if (n === undefined) batch.latency.set(at, [client, minute, bucket, 1]);
    else n[3] += 1;
  } catch (e) {
    warn(e);
  }
}

// Every route's hour at once, as one JSON array in the routes' order (`null`: no answer in time).
export function hourRemote(env, routes, minute, waitMs) {
  return Promise.all(routes.map((route) => {
    let timer;
    const gaveUp = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), waitMs);
    });
    const answer = object(env, route).hour(minute).then((hour) => hour, () => null);
    return Promise.race([answer, gaveUp]).finally(() => clearTimeout(timer));
  })).then((hours) => JSON.stringify(hours));
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = observeRemote)]
    #[allow(clippy::too_many_arguments)]
    fn observe_remote(
        env: &JsValue,
        ctx: &JsValue,
        route: &str,
        client: &str,
        minute: f64,
        error: bool,
        tokens: f64,
        cost: f64,
        bucket: u32,
        batch_ms: f64,
    );

    #[wasm_bindgen(js_name = hourRemote, catch)]
    fn hour_remote(
        env: &JsValue,
        routes: &Array,
        minute: f64,
        wait_ms: f64,
    ) -> Result<Promise, JsValue>;
}

/// Whether the Worker keeps the last hour in the Durable Objects.
pub fn shared(env: &JsValue) -> bool {
    bound(&BOUND, env, BINDING)
}

/// Adds `record` to its route's object, in the background; without the binding, to this
/// isolate's last hour.
pub fn observe(env: &JsValue, ctx: &JsValue, record: &UsageRecord) {
    if !shared(env) {
        ISOLATE.observe(record);
        return;
    }
    observe_remote(
        env,
        ctx,
        record.route,
        record.client,
        (record.at_ms / 60_000) as f64,
        record.status >= 400,
        tokens(record) as f64,
        record.cost_usd,
        latency_bucket(record.latency_ms) as u32,
        BATCH_MS as f64,
    );
}

/// The last hour at `now_ms`: from every route's object, or this isolate's own.
pub async fn read<R: Routes>(env: &JsValue, now_ms: u64) -> LastHour {
    if !shared(env) {
        return ISOLATE.last_hour("isolate", now_ms);
    }
    let names: Vec<&'static str> = R::routes().iter().map(|route| route.name).collect();
    let routes = names.iter().map(|name| JsValue::from_str(name)).collect();
    let answer = match hour_remote(env, &routes, (now_ms / 60_000) as f64, WAIT_MS as f64) {
        Ok(promise) => JsFuture::from(promise).await.ok(),
        Err(_) => None,
    };
    let hours: Vec<Option<RouteHour>> = answer
        .and_then(|text| text.as_string())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    merge(names.into_iter().zip(hours))
}

/// What a route's object answers for its last hour: per client `[client, requests, errors,
/// tokens, cost]`, and the latency histograms as `[client, bucket, requests]`.
#[derive(Debug, Default, Deserialize)]
struct RouteHour {
    clients: Vec<(String, f64, f64, f64, f64)>,
    latency: Vec<(String, f64, f64)>,
}

/// Each route's object answers for its clients; the core adds them up.
fn merge<'a>(hours: impl IntoIterator<Item = (&'a str, Option<RouteHour>)>) -> LastHour {
    let mut last = LastHour {
        scope: "worker",
        ..LastHour::default()
    };
    for (route, hour) in hours {
        let mut by_client: BTreeMap<String, Tally> = BTreeMap::new();
        let hour = hour.unwrap_or_default();
        for (client, requests, errors, tokens, cost) in hour.clients {
            let tally = by_client.entry(client).or_default();
            tally.requests += requests as u64;
            tally.errors += errors as u64;
            tally.tokens += tokens as u64;
            tally.cost_usd += cost;
        }
        for (client, bucket, n) in hour.latency {
            let bucket = (bucket as usize).min(LATENCY_BUCKETS - 1);
            by_client.entry(client).or_default().latency[bucket] += n as u64;
        }
        last.add_route(route, by_client);
    }
    last
}
