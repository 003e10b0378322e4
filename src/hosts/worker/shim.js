// The Worker's entry module, given to worker-build as CUSTOM_SHIM: the wasm module's `fetch`
// exported as a plain module handler. (worker-build's default entry wraps a WorkerEntrypoint
// class in Proxies on every request, which costs more CPU than the proxy's own routing.)
import { DurableObject } from "cloudflare:workers";
import * as imports from "./index_bg.js";
export * from "./index_bg.js";
import wasmModule from "./index.wasm";
$SNIPPET_JS_IMPORTS

function start() {
  const instance = new WebAssembly.Instance(wasmModule, {
    "./index_bg.js": imports,
    $SNIPPET_WASM_IMPORTS
  });
  imports.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start?.();
}
start();

// A Rust panic aborts with a trap, after which the instance's memory cannot be trusted: the
// next request starts a fresh instance. (The proxy is written not to panic.)
let trapped = false;
addEventListener("error", (event) => {
  if (event.error instanceof WebAssembly.RuntimeError) trapped = true;
});

export default {
  fetch(request, env, ctx) {
    if (trapped) {
      trapped = false;
      start();
    }
    return imports.fetch(request, env, ctx);
  },
};

// The cool-downs every isolate shares when the Worker is bound to this class as `KEY_HEALTH`
// (wrangler.toml; src/hosts/worker/health.rs is the other side). One object, named "global",
// holds key ("SECRET_NAME|model") -> { until (ms since the epoch), strikes }: in memory for the
// answers, in its storage to survive the object being evicted. The later `until` wins; expired
// entries are dropped when seen.
//
// JavaScript rather than a Rust `#[durable_object]`: two small methods, called over RPC, need
// no translation, so entering the wasm module per call would only add CPU; and workers-rs's
// Durable Object glue expects its own entry module, not this one.
export class KeyHealth extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.entries = new Map();
    ctx.blockConcurrencyWhile(async () => {
      const now = Date.now();
      for (const [key, entry] of await ctx.storage.list()) {
        if (entry && entry.until > now) this.entries.set(key, entry);
        else ctx.storage.delete(key);
      }
    });
  }

  // The running cool-downs, as JSON `[[key, until, strikes], ...]` (one string to cross into
  // the reading isolate's wasm module).
  snapshot() {
    const now = Date.now();
    const running = [];
    for (const [key, entry] of this.entries) {
      if (entry.until > now) {
        running.push([key, entry.until, entry.strikes]);
      } else {
        this.entries.delete(key);
        this.ctx.storage.delete(key);
      }
    }
    return JSON.stringify(running);
  }

  // Takes in an isolate's new cool-down, unless a later one is already known.
  record(key, until, strikes) {
    if (typeof key !== "string" || !Number.isFinite(until) || until <= Date.now()) return;
    const known = this.entries.get(key);
    if (known && known.until >= until) return;
    const entry = { until, strikes: Number.isFinite(strikes) ? strikes : 1 };
    this.entries.set(key, entry);
    return this.ctx.storage.put(key, entry);
  }
}
