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
  startTasks();
}

// The Rust futures' task queue wakes tasks with the global `queueMicrotask` if it finds one when
// it is made, else with `Promise.then`. workerd's `queueMicrotask` is a runtime API call per
// wake; a promise job is V8's own (README, "Waking Rust futures": a JSON request costs about 5 %
// less). So the queue is made here, with the global out of sight for that one call.
function startTasks() {
  const queueMicrotask = globalThis.queueMicrotask;
  try {
    globalThis.queueMicrotask = undefined;
  } catch {
    return; // A global that cannot be hidden: the queue will use it.
  }
  try {
    imports.startTasks();
  } finally {
    globalThis.queueMicrotask = queueMicrotask;
  }
}
start();

// A Rust panic aborts with a trap, after which the instance's memory cannot be trusted: the
// next request starts a fresh instance. (The proxy is written not to panic.)
let trapped = false;
addEventListener("error", (event) => {
  if (event.error instanceof WebAssembly.RuntimeError) trapped = true;
});

function alive() {
  if (trapped) {
    trapped = false;
    console.error("ai-worker-proxy: the module trapped; a fresh instance takes the next request");
    start();
  }
}

export default {
  fetch(request, env, ctx) {
    alive();
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

// One client's limits (requests and tokens per minute, requests in flight, spend), when the
// Worker is bound to this class as `CLIENT_LIMITS` (wrangler.toml; src/hosts/worker/limits.rs is
// the other side). One object per client (`idFromName(client)`), so every isolate counts against
// the same counters. It holds the client's counters as JSON in its SQLite storage, and the
// arithmetic is the proxy's own, in the wasm module (`limitsReserve`, `limitsSettle`): the same
// rule as on the native server.
//
// An object runs one call at a time, and each call reads, computes and writes with no `await`
// in between (the SQL API and the module's functions are synchronous): no other call can see
// the counters half-updated, so two isolates never both take the last place. The answer leaves
// once the write is stored (the output gate).
export class ClientLimits extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS counters (client TEXT PRIMARY KEY, state TEXT NOT NULL)");
  }

  read(client) {
    for (const row of this.sql.exec("SELECT state FROM counters WHERE client = ?", client)) {
      return row.state;
    }
    return undefined;
  }

  write(client, state) {
    this.sql.exec(
      "INSERT INTO counters (client, state) VALUES (?, ?) ON CONFLICT (client) DO UPDATE SET state = excluded.state",
      client,
      state,
    );
  }

  // Reserves `ask` (the proxy's `Ask`, as JSON) for `client`: `{"grant": ...}` or
  // `{"refusal": ...}`, as JSON.
  reserve(client, ask) {
    strings(client, ask);
    const [state, answer] = wasm(() => imports.limitsReserve(this.read(client), client, ask));
    if (state !== undefined) this.write(client, state);
    return answer;
  }

  // The client's counters as stored (JSON), for the status page; `null` when none yet.
  counters(client) {
    strings(client);
    return this.read(client) ?? null;
  }

  // Puts what a request `used` in place of what its `grant` reserved (both JSON).
  settle(client, grant, used) {
    strings(client, grant, used);
    const state = wasm(() => imports.limitsSettle(this.read(client), grant, used));
    if (state !== undefined) this.write(client, state);
  }
}

// One route's last hour, per client, when the Worker is bound to this class as `LAST_HOUR`
// (wrangler.toml; src/hosts/worker/last_hour.rs is the other side). One object per route
// (`idFromName(route)`), so the status page shows every isolate's requests. Each isolate sends
// what its requests added up to over a second (per client and minute: counts and latency
// buckets) into its SQLite storage; rows older than the hour are dropped as minutes pass. It
// only adds and sums: percentiles are the proxy's own arithmetic, on what `hour` answers.
export class LastHour extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.swept = 0;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS minutes (
      client TEXT NOT NULL, minute INTEGER NOT NULL, requests INTEGER NOT NULL,
      errors INTEGER NOT NULL, tokens INTEGER NOT NULL, cost REAL NOT NULL,
      PRIMARY KEY (client, minute))`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS latency (
      client TEXT NOT NULL, minute INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
      PRIMARY KEY (client, minute, bucket))`);
  }

  // Adds an isolate's batch: `rows` as `[client, minute, requests, errors, tokens, cost]`,
  // `latency` as `[client, minute, bucket, requests]` (minutes since the epoch), in one
  // transaction.
  add(rows, latency) {
    if (!Array.isArray(rows) || !Array.isArray(latency)) {
      throw new TypeError("LastHour.add takes two arrays");
    }
    let newest = 0;
    this.ctx.storage.transactionSync(() => {
      for (const [client, minute, requests, errors, tokens, cost] of rows) {
        strings(client);
        counts(minute, requests, errors, tokens);
        if (!Number.isFinite(cost)) throw new TypeError("LastHour.add takes a finite cost");
        this.sql.exec(
          `INSERT INTO minutes VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client, minute) DO UPDATE SET
             requests = requests + excluded.requests, errors = errors + excluded.errors,
             tokens = tokens + excluded.tokens, cost = cost + excluded.cost`,
          client, minute, requests, errors, tokens, cost,
        );
        newest = Math.max(newest, minute);
      }
      for (const [client, minute, bucket, n] of latency) {
        strings(client);
        counts(minute, bucket, n);
        this.sql.exec(
          `INSERT INTO latency VALUES (?, ?, ?, ?) ON CONFLICT (client, minute, bucket) DO UPDATE SET
             n = n + excluded.n`,
          client, minute, bucket, n,
        );
      }
      if (newest > this.swept) {
        this.swept = newest;
        this.sql.exec("DELETE FROM minutes WHERE minute <= ?", newest - HOUR_MINUTES);
        this.sql.exec("DELETE FROM latency WHERE minute <= ?", newest - HOUR_MINUTES);
      }
    });
  }

  // The hour up to `minute`: `{clients: [[client, requests, errors, tokens, cost], ...],
  // latency: [[client, bucket, requests], ...]}`.
  hour(minute) {
    if (!Number.isSafeInteger(minute)) throw new TypeError("LastHour.hour takes a whole minute");
    const since = minute - HOUR_MINUTES;
    const clients = this.sql.exec(
      `SELECT client, SUM(requests), SUM(errors), SUM(tokens), SUM(cost) FROM minutes
         WHERE minute > ? GROUP BY client`, since).raw().toArray();
    const latency = this.sql.exec(
      "SELECT client, bucket, SUM(n) FROM latency WHERE minute > ? GROUP BY client, bucket",
      since).raw().toArray();
    return { clients, latency };
  }
}

// The last hour's length, as src/core/recent.rs counts it.
const HOUR_MINUTES = 60;

function counts(...values) {
  for (const value of values) {
    if (!Number.isSafeInteger(value) || value < 0) throw new TypeError("expected a whole count");
  }
}

function strings(...values) {
  for (const value of values) {
    if (typeof value !== "string") throw new TypeError("expected a string");
  }
}

// A call into the module; a trap (the caller gets the error) has the next call start afresh.
function wasm(call) {
  alive();
  try {
    return call();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) trapped = true;
    throw e;
  }
}
