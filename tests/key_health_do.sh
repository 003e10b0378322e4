#!/usr/bin/env bash
# Cool-downs shared between Worker isolates through the KEY_HEALTH Durable Object, under plain
# `workerd serve` (tests/key_health_do.capnp.in): proxies A and B are two isolates bound to one
# namespace, C is a third without the binding, and a probe Worker reads and writes the object.
#
#   1. the KeyHealth object itself, through the probe: record / snapshot, the later `until`
#      wins, expired entries are dropped;
#   2. a request through A tries KH_KEY_429 (429) then KH_KEY_OK; A shares the cool-down;
#   3. once the object has it, a request through B tries KH_KEY_OK only;
#   4. the control: a request through C (no binding) still tries KH_KEY_429 first.
#
# Builds the Worker with tests/routes/key_health.toml into target/key-health/build (not the shared
# build/; KH_SKIP_BUILD=1 reuses the last one). Ports 18186 (emulator) to 18190. Exits nonzero on
# the first failure, with the logs in target/key-health/.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/key-health
EMU=18186 A=18187 B=18188 C=18189 PROBE=18190
mkdir -p "$OUT"

if [ -z "${KH_SKIP_BUILD:-}" ]; then
  ROUTES_TOML=tests/routes/key_health.toml WORKER_OUT_DIR="$OUT/build" ./scripts/build-worker.sh \
    > "$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
fi

for port in $EMU $A $B $C $PROBE; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (a previous run still alive?)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

python3 tests/emulators/openai_emulator.py --port "$EMU" > "$OUT/emulator.log" 2>&1 &
pids+=($!)
sed -e "s|@PORT_A@|$A|g" -e "s|@PORT_B@|$B|g" -e "s|@PORT_C@|$C|g" -e "s|@PORT_PROBE@|$PROBE|g" \
  tests/key_health_do.capnp.in > "$OUT/workerd.capnp"
node_modules/.bin/workerd serve "$OUT/workerd.capnp" > "$OUT/workerd.log" 2>&1 &
workerd_pid=$!
pids+=($workerd_pid)

fail() {
  echo "FAIL: $*" >&2
  echo "--- $OUT/workerd.log (last lines)" >&2
  tail -n 30 "$OUT/workerd.log" >&2
  exit 1
}

ready() {
  local url=$1 _
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$workerd_pid" 2>/dev/null || fail "workerd exited"
    sleep 0.2
  done
  fail "not ready: $url"
}
ready "http://127.0.0.1:$EMU/_emulator/health"
for port in $A $B $C; do ready "http://127.0.0.1:$port/health"; done
ready "http://127.0.0.1:$PROBE/snapshot"

now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }
snapshot() { curl -fsS "http://127.0.0.1:$PROBE/snapshot"; }
record() { curl -fsS -X POST "http://127.0.0.1:$PROBE/record?key=$1&until=$2&strikes=$3"; }
# The `until` and `strikes` of one key in a snapshot (read from stdin), "-" if absent.
entry() {
  python3 -c '
import json, sys
for key, until, strikes in json.load(sys.stdin):
    if key == sys.argv[1]:
        print(int(until), int(strikes)); break
else:
    print("-")' "$1"
}

# ---- 1. the object, directly
now=$(now_ms)
[ "$(snapshot)" = "[]" ] || fail "a new object's snapshot is not empty: $(snapshot)"
record "probe%7Cm" $((now + 60000)) 1 > /dev/null
[ "$(snapshot | entry 'probe|m')" = "$((now + 60000)) 1" ] || fail "record then snapshot: $(snapshot)"
record "probe%7Cm" $((now + 30000)) 2 > /dev/null
[ "$(snapshot | entry 'probe|m')" = "$((now + 60000)) 1" ] || fail "an earlier until replaced a later one"
record "probe%7Cm" $((now + 90000)) 3 > /dev/null
[ "$(snapshot | entry 'probe|m')" = "$((now + 90000)) 3" ] || fail "a later until was not taken"
record "probe%7Cold" $((now - 1000)) 1 > /dev/null
[ "$(snapshot | entry 'probe|old')" = "-" ] || fail "an expired cool-down was recorded"
record "probe%7Cshort" $(($(now_ms) + 300)) 1 > /dev/null
[ "$(snapshot | entry 'probe|short')" != "-" ] || fail "a running cool-down is missing"
sleep 0.5
[ "$(snapshot | entry 'probe|short')" = "-" ] || fail "an expired cool-down is still listed"
echo "ok: the KeyHealth object records, keeps the later until, drops expired entries"

# ---- 2-4. two isolates and a control
ask() { # port test_id
  curl -fsS "http://127.0.0.1:$1/v1/chat/completions" -H "Authorization: Bearer kh-token" \
    -H "Content-Type: application/json" \
    -d "{\"model\":\"kh\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"test_id\":\"$2\"}" \
    > /dev/null || fail "the request through port $1 failed"
}
keys() { # test_id → the key values the emulator saw, in order
  curl -fsS "http://127.0.0.1:$EMU/_emulator/requests?test_id=$1" \
    | python3 -c 'import json, sys; print(" ".join(r["key"] for r in json.load(sys.stdin)))'
}
run=$$-$(now_ms)

ask $A "a-$run"
[ "$(keys "a-$run")" = "kh-429 kh-ok" ] || fail "through A the emulator saw [$(keys "a-$run")], not [kh-429 kh-ok]"
echo "ok: A tried KH_KEY_429 (429), then KH_KEY_OK"

# A writes in the background (ctx.waitUntil); wait until the object has it.
for _ in $(seq 1 50); do
  [ "$(snapshot | entry 'KH_KEY_429|kh-model')" != "-" ] && break
  sleep 0.1
done
[ "$(snapshot | entry 'KH_KEY_429|kh-model')" != "-" ] \
  || fail "A's cool-down never reached the object: $(snapshot)"
echo "ok: A shared the cool-down: $(snapshot)"

ask $B "b-$run"
[ "$(keys "b-$run")" = "kh-ok" ] || fail "through B the emulator saw [$(keys "b-$run")], not [kh-ok]"
echo "ok: B, another isolate, skipped KH_KEY_429 and tried KH_KEY_OK only"

ask $C "c-$run"
[ "$(keys "c-$run")" = "kh-429 kh-ok" ] || fail "through C the emulator saw [$(keys "c-$run")], not [kh-429 kh-ok]"
echo "ok: C, without the binding, still tried KH_KEY_429 first (the control)"
echo "key health shared through the Durable Object: PASS"
