# Sourced by tests/e2e/run.sh: builds the Worker against tests/routes/e2e.toml and serves it
# with `wrangler dev` (workerd, the real Workers runtime) on 127.0.0.1:18788, together with the
# Workers AI binding stand-in (tests/e2e/ai_binding/index.js), bound to the proxy as `AI`.
# Defines start_worker, which exports PROXY_URL and WORKER_PID.

WORKER_PORT=${WORKER_PORT:-18788}

start_worker() {
  local root dir
  root=$(pwd)
  dir="$root/target/e2e/worker"
  mkdir -p "$dir"
  ROUTES_TOML=tests/routes/e2e.toml ./scripts/build-worker.sh > "$root/target/e2e/worker-build.log" 2>&1 \
    || { cat "$root/target/e2e/worker-build.log" >&2; return 1; }
  # A config of its own, without the build step (done above) and with the e2e secrets in the
  # .dev.vars beside it, where wrangler looks for local secrets.
  cat > "$dir/wrangler.toml" <<TOML
name = "ai-worker-proxy-e2e"
main = "$root/build/index.js"
compatibility_date = "2025-09-01"

# The Workers AI binding, stood in by a local Worker whose default entrypoint implements run().
[[services]]
binding = "AI"
service = "ai-binding-stand-in"

# Client limits ([clients.*] in e2e.toml; tests/e2e/test_clients.py), as in wrangler.toml.
[[durable_objects.bindings]]
name = "CLIENT_LIMITS"
class_name = "ClientLimits"

# The status page's last hour, for every isolate (tests/e2e/test_clients.py, test_status_page.py).
[[durable_objects.bindings]]
name = "LAST_HOUR"
class_name = "LastHour"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["ClientLimits", "LastHour"]

# Usage records into Analytics Engine (wrangler dev stands in for the dataset): with it bound the
# Worker reads every metered stream's usage, as the native host always does.
[[analytics_engine_datasets]]
binding = "USAGE"
dataset = "usage"
TOML
  # Durable Object storage persists beside the config: start every run with fresh counts (a
  # day's budget spent by the last run would refuse this one's first request).
  rm -rf "$dir/.wrangler"
  cat > "$dir/ai-binding.toml" <<TOML
name = "ai-binding-stand-in"
main = "$root/tests/e2e/ai_binding/index.js"
compatibility_date = "2025-09-01"

[vars]
EMULATOR_URL = "${EMULATOR_URL:-http://127.0.0.1:18080}"
TOML
  grep -v '^#' tests/e2e/secrets.env > "$dir/.dev.vars"
  PATH="$root/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false CI=true \
    node_modules/.bin/wrangler dev --config "$dir/wrangler.toml" --config "$dir/ai-binding.toml" --ip 127.0.0.1 --port "$WORKER_PORT" \
    --show-interactive-dev-session=false > "$root/target/e2e/worker.log" 2>&1 &
  WORKER_PID=$!
  export WORKER_PID
  export PROXY_URL="http://127.0.0.1:$WORKER_PORT"
  for _ in $(seq 1 120); do
    if curl -fsS "$PROXY_URL/health" > /dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$WORKER_PID" 2>/dev/null; then
      cat "$root/target/e2e/worker.log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "wrangler dev did not become ready" >&2
  cat "$root/target/e2e/worker.log" >&2
  return 1
}
