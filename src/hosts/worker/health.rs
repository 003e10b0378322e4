//! Cool-downs shared by every isolate of the Worker, through the `KEY_HEALTH` Durable Object
//! namespace when the Worker is bound to one (wrangler.toml); without the binding each isolate
//! keeps its own, as the native process does.
//!
//! One object (`idFromName("global")`, the `KeyHealth` class in shim.js) holds key → `{until,
//! strikes}`. An isolate reads it at most once per [`REFRESH_MS`], before a request's first
//! attempt, and waits at most [`WAIT_MS`] for the answer: a later answer is kept and merged by
//! the next request. A request whose copy is fresh makes no call at all. A new cool-down is
//! written in the background (`ctx.waitUntil`), never delaying the response.

use std::cell::Cell;

use worker::js_sys::{Promise, Reflect};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use crate::core::health::{Cooldown, KeyHealth};

/// The Durable Object namespace binding that turns sharing on.
const BINDING: &str = "KEY_HEALTH";

/// How long an isolate's copy of the shared cool-downs is used before it is read again.
const REFRESH_MS: u64 = 3_000;

/// The longest a request waits for the shared cool-downs (within a region the object answers
/// in a few milliseconds; one far away is not worth a slow request: its answer is merged late).
const WAIT_MS: u64 = 100;

// The object's id is computed once per isolate (an id is plain data; a stub belongs to the request
// that made it, so one is made per call). A failing object is logged once per isolate: the proxy
// then works as without the binding.
#[wasm_bindgen(inline_js = r#"
let id = null;
let late = null;
let warned = false;

function object(env) {
  const ns = env.KEY_HEALTH;
  if (id === null) id = ns.idFromName("global");
  return ns.get(id);
}

function warn(e) {
  if (!warned) {
    warned = true;
    console.error(`KEY_HEALTH: ${e && e.message ? e.message : e}; cool-downs stay local to this isolate while it fails`);
  }
  return null;
}

export function readShared(env, ctx, waitMs) {
  let waiting = true;
  let timer = null;
  const read = object(env).snapshot().then((snapshot) => {
    clearTimeout(timer);
    if (!waiting) late = snapshot;
    return snapshot;
  }, warn);
  ctx.waitUntil(read);
  const gaveUp = new Promise((resolve) => {
    timer = setTimeout(() => {
      waiting = false;
      resolve(undefined);
    }, waitMs);
  });
  return Promise.race([read, gaveUp]);
}

export function takeLate() {
  const snapshot = late;
  late = null;
  return snapshot;
}

export function writeShared(env, ctx, key, until, strikes) {
  // An RPC promise's `then` insists on a function for both arguments (with `undefined` it
  // throws, after the call has gone out, and nothing waits for it).
  ctx.waitUntil(object(env).record(key, until, strikes).then(() => {}, warn));
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = readShared, catch)]
    fn read_shared(env: &JsValue, ctx: &JsValue, wait_ms: f64) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = takeLate)]
    fn take_late() -> JsValue;

    #[wasm_bindgen(js_name = writeShared, catch)]
    fn write_shared(
        env: &JsValue,
        ctx: &JsValue,
        key: &str,
        until: f64,
        strikes: u32,
    ) -> Result<(), JsValue>;
}

/// This isolate's side of the sharing.
#[derive(Clone, Copy, Default)]
struct Sharing {
    /// Whether the env has the binding (`None`: not looked at yet; it is fixed per isolate).
    bound: Option<bool>,
    /// When the last read started, in ms since the epoch.
    read_at: u64,
    /// The last read answered after its request stopped waiting: merge its answer when it is in.
    late: bool,
}

thread_local! {
    static SHARING: Cell<Sharing> = Cell::new(Sharing::default());
}

/// The isolate's sharing state, if the Worker is bound to the namespace.
fn sharing(env: &JsValue) -> Option<Sharing> {
    let mut sharing = SHARING.with(Cell::get);
    let bound = *sharing.bound.get_or_insert_with(|| {
        Reflect::get(env, &JsValue::from_str(BINDING))
            .is_ok_and(|binding| !binding.is_undefined() && !binding.is_null())
    });
    SHARING.with(|cell| cell.set(sharing));
    bound.then_some(sharing)
}

/// Merges the shared cool-downs into this isolate's `health` if its copy is older than
/// [`REFRESH_MS`] at `now_ms` (see the module's documentation).
pub async fn refresh(env: &JsValue, ctx: &JsValue, health: &KeyHealth, now_ms: u64) {
    let Some(mut sharing) = sharing(env) else {
        return;
    };
    if sharing.late {
        if let Some(snapshot) = take_late().as_string() {
            merge(health, &snapshot);
            sharing.late = false;
        }
    }
    let due = now_ms.saturating_sub(sharing.read_at) >= REFRESH_MS;
    if due {
        // Set before waiting, so that the isolate's other requests meanwhile do not read too.
        sharing.read_at = now_ms;
    }
    SHARING.with(|cell| cell.set(sharing));
    if !due {
        return;
    }
    let Ok(promise) = read_shared(env, ctx, WAIT_MS as f64) else {
        return;
    };
    // A rejection cannot happen (the JavaScript turns failures into `null`); like `null`, it
    // means going on with what the isolate knows.
    let answer = JsFuture::from(promise).await.unwrap_or(JsValue::NULL);
    match answer.as_string() {
        Some(snapshot) => merge(health, &snapshot),
        // Gave up waiting: the answer is kept for a later request.
        None if answer.is_undefined() => SHARING.with(|cell| {
            let mut sharing = cell.get();
            sharing.late = true;
            cell.set(sharing);
        }),
        // The object failed (logged once).
        None => {}
    }
}

/// Writes `key`'s new `cooldown` to the shared object in the background.
pub fn share(env: &JsValue, ctx: &JsValue, key: &str, cooldown: Cooldown) {
    if sharing(env).is_some() {
        // A failure to start the call is the same as the object failing: the cool-down stays
        // local.
        let _ = write_shared(env, ctx, key, cooldown.until_ms as f64, cooldown.strikes);
    }
}

/// Takes in a snapshot, `[[key, until_ms, strikes], ...]` as the object writes it.
fn merge(health: &KeyHealth, snapshot: &str) {
    let Ok(entries) = serde_json::from_str::<Vec<(String, f64, f64)>>(snapshot) else {
        return;
    };
    for (key, until_ms, strikes) in entries {
        let cooldown = Cooldown {
            until_ms: until_ms as u64,
            strikes: strikes as u32,
        };
        health.merge(&key, cooldown);
    }
}
