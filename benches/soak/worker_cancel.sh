#!/usr/bin/env bash
# Client disconnects cancel the upstream request on the Worker too: the proxy's Worker (routes:
# tests/routes/soak.toml) under plain `workerd serve`, in front of the Rust upstream
# (benches/load/upstream.rs), which counts the streams whose connection closed before their end.
#
#   mid-stream   WORKER_ABANDON (60) streams, pass-through and translated, each abandoned by the
#                soak client a few events after its first content event
#   early        WORKER_EARLY (20) requests to an upstream that stalls (the route's deadlines are
#                20 s away), each abandoned after 500 ms, before any byte of the answer
#
# both against the Worker as deployed (a pass-through piped by the runtime after its first
# token) and with PROXY_RELAY=watch (read chunk by chunk). Mid-stream, the upstream must see
# one cancelled stream per abandoned one within 2 s. Before the first byte, plain workerd does
# not see the client go: its HTTP server notices a closed connection only when it writes to it,
# and the proxy writes nothing before the first token (a trivial JavaScript pass-through Worker
# does the same, even with `request.signal` under the `enable_request_signal` flag). There the
# script requires the route's own deadline (20 s) to close every one, and prints both counts.
# Exits 1 when a check fails.
#
# Builds the Worker into target/soak/worker/build (SOAK_SKIP_BUILD=1 reuses it), with its own
# cargo target dir. Ports 18481 (upstream, as the routes say), 18483 and 18484 (workerd): not
# at the same time as benches/soak/run.sh, which uses 18481 too.
set -euo pipefail
cd "$(dirname "$0")/../.."
abandon=${WORKER_ABANDON:-60} early=${WORKER_EARLY:-20}
out=$PWD/target/soak/worker
UP=18481 PIPE=18483 WATCH=18484
mkdir -p "$out"

export ROUTES_TOML=tests/routes/soak.toml
echo "building (upstream, soak client, Worker)" >&2
cargo build --release --example upstream --example soak --target-dir target/soak 2> "$out/build.log"
if [ -z "${SOAK_SKIP_BUILD:-}" ]; then
  CARGO_TARGET_DIR=$PWD/target/soak/wasm WORKER_OUT_DIR=target/soak/worker/build \
    ./scripts/build-worker.sh >> "$out/build.log" 2>&1 || { tail -n 30 "$out/build.log" >&2; exit 1; }
fi

for port in $UP $PIPE $WATCH; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (benches/soak/run.sh running?)" >&2
    exit 1
  fi
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
target/soak/release/examples/upstream serve "127.0.0.1:$UP" 2> "$out/upstream.log" & pids+=($!)
sed -e "s|@PORT@|$PIPE|g" -e "s|@PORT_WATCH@|$WATCH|g" benches/soak/workerd.capnp.in > "$out/workerd.capnp"
node_modules/.bin/workerd serve "$out/workerd.capnp" --experimental > "$out/workerd.log" 2>&1 & pids+=($!)
for port in $PIPE $WATCH; do
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.2; done
done

cancelled() { curl -fsS "http://127.0.0.1:$UP/stats" | jq -r --arg l "$1" '.[$l].cancelled // 0'; }
failures=()
echo "## Client disconnects on the Worker (workerd serve)"
echo
echo "| relay | abandoned | when | upstream streams cancelled within 2 s | within the limit |"
echo "|---|---:|---|---:|---:|"
# relay, port, client mode, requests, upstream label, when, the seconds allowed: the
# cancellations are counted 2 s after the last abandon, and once more after the deadline.
check() {
  local before at2 late n
  before=$(cancelled "$5")
  n=$(SOAK_TOKEN=soak-token target/soak/release/examples/soak "$3" "127.0.0.1:$2" --clients 10 \
    --count "$4" | tee "$out/$2-$3.md" | awk '/^abandoned / {print $2}')
  sleep 2
  at2=$(( $(cancelled "$5") - before ))
  late=$at2
  if [ "$7" -gt 2 ]; then sleep $(( $7 - 2 )); late=$(( $(cancelled "$5") - before )); fi
  echo "| $1 | $n | $6 | $at2 | $late |"
  [ "$late" = "$n" ] && [ "$n" = "$4" ] \
    || failures+=("$1, $6: $n abandoned of $4, $late cancelled upstream within $7 s")
}
for relay in "piped (default):$PIPE" "watch:$WATCH"; do
  IFS=: read -r name port <<<"$relay"
  check "$name" "$port" abandon "$abandon" abandon "mid-stream (pass-through, Anthropic, Gemini); limit 2 s" 2
  check "$name" "$port" early "$early" hang "before the first byte; limit 22 s (the route's deadline)" 22
done
echo
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "All checks passed."
