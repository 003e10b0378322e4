#!/usr/bin/env bash
# Load benchmark: the same requests, with wrk, against (1) the upstream emulator directly,
# (2) the native host in front of it and (3) the built Worker under plain `workerd serve`
# (wrangler dev's own proxy would hide the Worker's cost). Also samples the native host's
# memory while one very long stream passes through it. Prints a Markdown table.
#
# Usage: benches/load/run.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
out=target/bench
mkdir -p "$out"

./scripts/bootstrap.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_for() { for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "not ready: $1" >&2; return 1; }

python3 tests/emulators/openai_emulator.py --port 18080 > "$out/emulator.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:18080/_emulator/health

ROUTES_TOML=tests/routes/bench.toml cargo build --profile native --target-dir target/bench --bin ai-worker-proxy 2> "$out/native-build.log"
BENCH_PROXY_TOKEN=bench-token BENCH_KEY=emu-ok-bench target/bench/native/ai-worker-proxy --listen 127.0.0.1:18790 2> "$out/native.log" & native=$!; pids+=($native)
wait_for http://127.0.0.1:18790/health

ROUTES_TOML=tests/routes/bench.toml ./scripts/build-worker.sh > "$out/worker-build.log" 2>&1
sed -e "s|@PORT@|18791|g" benches/load/workerd.capnp.in > "$out/workerd.capnp"
node_modules/.bin/workerd serve "$out/workerd.capnp" --experimental > "$out/workerd.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:18791/health

plain='{"model":"bench","messages":[{"role":"user","content":"Say hello in five words."}]}'
stream='{"model":"bench","messages":[{"role":"user","content":"Say hello in five words, one at a time please."}],"stream":true,"stream_options":{"include_usage":true}}'

run() { # name url token body
  local report
  report=$(BODY="$4" TOKEN="$3" wrk -t2 -c16 -d"${secs}s" --latency -s benches/load/post.lua "$2" 2>&1)
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$report")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$report")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$report")
  if grep -q "Non-2xx" <<<"$report"; then echo "non-2xx answers in $1:" >&2; echo "$report" >&2; exit 1; fi
  printf '| %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99"
}

echo "| target ($secs s, wrk -t2 -c16) | req/s | p50 | p99 |"
echo "|---|---|---|---|"
run "emulator directly, JSON" http://127.0.0.1:18080/v1/chat/completions emu-ok-bench "${plain/bench/emu-model}"
run "native host, JSON" http://127.0.0.1:18790/v1/chat/completions bench-token "$plain"
run "Worker (workerd serve), JSON" http://127.0.0.1:18791/v1/chat/completions bench-token "$plain"
run "emulator directly, SSE" http://127.0.0.1:18080/v1/chat/completions emu-ok-bench "${stream/bench/emu-model}"
run "native host, SSE" http://127.0.0.1:18790/v1/chat/completions bench-token "$stream"
run "Worker (workerd serve), SSE" http://127.0.0.1:18791/v1/chat/completions bench-token "$stream"
run "native host, Anthropic SSE translated" http://127.0.0.1:18790/v1/chat/completions bench-token "${stream/bench/bench-claude}"
run "Worker (workerd serve), Anthropic SSE translated" http://127.0.0.1:18791/v1/chat/completions bench-token "${stream/bench/bench-claude}"
run "native host, Gemini SSE translated" http://127.0.0.1:18790/v1/chat/completions bench-token "${stream/bench/bench-gemini}"
run "Worker (workerd serve), Gemini SSE translated" http://127.0.0.1:18791/v1/chat/completions bench-token "${stream/bench/bench-gemini}"

# Memory stays flat however long the stream: RSS of the native host before, during and after
# one stream of 200,000 events, passed through (OpenAI) and translated (Anthropic).
rss() { awk '/VmRSS/ {print $2}' "/proc/$native/status"; }
long_stream() { # label body
  local before peak after bytes r curl_pid
  before=$(rss)
  curl -sN -H "Authorization: Bearer bench-token" -H 'Content-Type: application/json' -d "$2" \
    http://127.0.0.1:18790/v1/chat/completions > "$out/long-stream.sse" & curl_pid=$!
  peak=$before
  while kill -0 "$curl_pid" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.2; done
  after=$(rss)
  bytes=$(wc -c < "$out/long-stream.sse")
  echo "native host RSS around one $((bytes / 1024 / 1024)) MiB $1 stream: before ${before} KiB, peak ${peak} KiB, after ${after} KiB"
}
echo
long_stream "pass-through" '{"model":"bench","messages":[{"role":"user","content":"long"}],"stream":true,"emulator_chunks":200000}'
long_stream "Anthropic-translated" '{"model":"bench-claude","messages":[{"role":"user","content":"long emulator_chunks=200000"}],"stream":true}'
