#!/usr/bin/env bash
# `wrangler dev` from the project's own wrangler.toml, as a user runs it from a fresh clone: its
# build command compiles routes.toml into the Worker, and the Worker must come up in workerd
# and serve those routes. Needs no Cloudflare account (so wrangler.toml must not declare
# bindings that only exist remotely, such as [ai]; see README "Cloudflare Workers AI").
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=18796
TOKEN=smoke-test-token
LOG=target/wrangler-dev.log
mkdir -p target

PATH="$PWD/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false CI=true \
  node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$PORT" --var "PROXY_AUTH_TOKEN:$TOKEN" \
  --show-interactive-dev-session=false > "$LOG" 2>&1 &
pid=$!
trap 'pkill -TERM -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 600); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$LOG" >&2; echo "wrangler dev exited" >&2; exit 1; }
  sleep 0.5
done
models=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/models") \
  || { cat "$LOG" >&2; exit 1; }
# Every route name in routes.toml, in order, and nothing else.
expected=$(sed -n 's/^\[\[routes\.\([^]]*\)\]\].*/\1/p' routes.toml | awk '!seen[$0]++' | paste -sd ' ')
actual=$(python3 -c 'import json,sys; print(" ".join(m["id"] for m in json.load(sys.stdin)["data"]))' <<<"$models")
if [ "$actual" != "$expected" ]; then
  echo "wrangler dev served models [$actual], routes.toml has [$expected]" >&2
  exit 1
fi
echo "wrangler dev (project wrangler.toml) serves the routes of routes.toml: $actual"
