#!/usr/bin/env bash
# Client limits shared by two native proxy processes through Redis (`[server] limits_store`):
# proxies A and B are two processes (two server threads each) built with
# tests/routes/limits.toml, whose limits store is a redis-server this script starts on port
# 16379 (client `limited`: 20 requests per minute; client `solo`: one request in flight).
#
#   1. the control: the operator's token is served, without x-ratelimit-* headers;
#   2. 60 requests from `limited`, alternating between A and B, 20 at a time: exactly 20 are
#      served and 40 refused (429, OpenAI's rate_limit_exceeded, x-ratelimit-* and retry-after),
#      the 20 grants each saw a different remaining count, and the emulator saw 20 requests;
#      the operator's token is still served through both;
#   3. `solo`: while its stream is held open through A, a request through B (and A) is refused
#      (429, max_concurrent); once the stream ended, a request through B is served (A's settle
#      reached Redis);
#   4. the reserve round trip, measured: a refused request (auth, one reserve, the error) against
#      a request for an unknown model (auth, no reserve), sequential, on one connection each;
#   5. Redis stopped: a limited client gets 503 limits_unavailable naming redis at
#      127.0.0.1:16379 (never unlimited), the operator is still served; Redis started again
#      (empty): `limited` is served again through both, without restarting the proxies.
#
# Builds the native binary once (cargo's target/e2e, whose dependencies tests/e2e/run.sh built;
# the binary is copied to target/limits-native). Ports: Redis 16379, emulator 18198, proxies
# 18199 and 18200. Exits nonzero on the first failure, with the logs in target/limits-native/.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/limits-native
REDIS=16379 EMU=18198 A=18199 B=18200
mkdir -p "$OUT"

command -v redis-server >/dev/null 2>&1 \
  || { echo "redis-server is not on PATH (scripts/bootstrap.sh installs it)" >&2; exit 1; }

for port in $REDIS $EMU $A $B; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use (a previous run still alive?)" >&2
    exit 1
  fi
done

ROUTES_TOML=tests/routes/limits.toml cargo build --target-dir target/e2e --bin ai-worker-proxy \
  > "$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
cp target/e2e/debug/ai-worker-proxy "$OUT/ai-worker-proxy"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in proxy-a proxy-b redis; do
    echo "--- $OUT/$log.log (last lines)" >&2
    tail -n 15 "$OUT/$log.log" >&2 || true
  done
  exit 1
}

start_redis() {
  redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no \
    >> "$OUT/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS") 2>/dev/null && return 0
    sleep 0.05
  done
  fail "redis-server did not start"
}
: > "$OUT/redis.log"
start_redis

python3 tests/emulators/openai_emulator.py --port "$EMU" > "$OUT/emulator.log" 2>&1 &
pids+=($!)

export LN_PROXY_TOKEN=ln-operator LN_LIMITED_TOKEN=ln-limited LN_SOLO_TOKEN=ln-solo
export LN_KEY_OK=emu-ok-ln
proxy_pids=()
for port in $A $B; do
  log=proxy-a
  [ "$port" = "$B" ] && log=proxy-b
  "$OUT/ai-worker-proxy" --listen "127.0.0.1:$port" --threads 2 > "$OUT/$log.log" 2>&1 &
  pids+=($!)
  proxy_pids+=($!)
done

ready() {
  local url=$1 pid _
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    for pid in "${proxy_pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a proxy exited"; done
    sleep 0.1
  done
  fail "not ready: $url"
}
ready "http://127.0.0.1:$EMU/_emulator/health"
for port in $A $B; do ready "http://127.0.0.1:$port/health"; done
grep -q "client limits in redis://127.0.0.1:$REDIS/0" "$OUT/proxy-a.log" \
  || fail "proxy A does not say it keeps client limits in Redis"

python3 - "$EMU" "$A" "$B" <<'PY' || fail "see above"
import http.client
import json
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

EMU, A, B = (int(p) for p in sys.argv[1:4])
OPERATOR, LIMITED, SOLO = "ln-operator", "ln-limited", "ln-solo"
RUN = uuid.uuid4().hex[:12]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def body(model="ln", **extra):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], **extra})


def post(port, token, payload, conn=None):
    """(status, lower-cased headers, parsed JSON or raw bytes)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", payload,
                     {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
    finally:
        if own:
            conn.close()
    try:
        return r.status, headers, json.loads(raw)
    except ValueError:
        return r.status, headers, raw


def emulator_requests(test_id):
    conn = http.client.HTTPConnection("127.0.0.1", EMU, timeout=10)
    conn.request("GET", f"/_emulator/requests?test_id={test_id}")
    seen = json.loads(conn.getresponse().read())
    conn.close()
    return seen


def error_of(answer, status):
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), dict):
        fail(f"a {status} that is not an OpenAI error: {answer!r}")
    return answer["error"]


def operator_served(when):
    for port in (A, B):
        status, headers, answer = post(port, OPERATOR, body())
        if status != 200 or any(k.startswith("x-ratelimit-") for k in headers):
            fail(f"{when}, port {port} answered the operator's token with {status} "
                 f"{headers} {answer!r}")


# ---- 1. the control
operator_served("at the start")
print("ok: the operator's token is served through A and B, without x-ratelimit-* headers")

# ---- 2. 60 requests from `limited` through A and B, 20 per minute between them
# Every request must fall in one calendar minute (the limit's window): start early in one.
into = time.time() % 60
if into > 40:
    print(f"(waiting {60 - into:.1f} s for the next minute to start)")
    time.sleep(60 - into + 0.2)
test_id = f"ln-{RUN}"
ports = [A if i % 2 == 0 else B for i in range(60)]
payload = body(test_id=test_id)
with ThreadPoolExecutor(max_workers=20) as pool:
    results = list(pool.map(lambda port: (port, *post(port, LIMITED, payload)), ports))
served = [r for r in results if r[1] == 200]
refused = [r for r in results if r[1] == 429]
others = [(r[1], r[3]) for r in results if r[1] not in (200, 429)]
if len(served) != 20 or len(refused) != 40 or others:
    fail(f"{len(served)} served, {len(refused)} refused, others {others}: not 20 and 40")
for port, _, headers, answer in served:
    if headers.get("x-ratelimit-limit-requests") != "20" or "x-ratelimit-reset-requests" not in headers:
        fail(f"a served request's rate-limit headers: {headers}")
remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for _, _, h, _ in served)
if remaining != list(range(20)):
    fail(f"the grants' remaining counts are not 0..19 once each: {remaining}")
for port, status, headers, answer in refused:
    error = error_of(answer, status)
    if error.get("code") != "rate_limit_exceeded" or error.get("type") != "requests" \
            or "requests per minute: limit 20" not in error.get("message", ""):
        fail(f"a refusal's error: {error}")
    if headers.get("x-ratelimit-limit-requests") != "20" \
            or headers.get("x-ratelimit-remaining-requests") != "0" \
            or "x-ratelimit-reset-requests" not in headers \
            or not headers.get("retry-after", "").isdigit():
        fail(f"a refusal's headers: {headers}")
by_port = {p: sum(1 for r in served if r[0] == p) for p in (A, B)}
if 0 in by_port.values():
    fail(f"one process served nothing, so this proves little: {by_port}")
upstream = len(emulator_requests(test_id))
if upstream != 20:
    fail(f"the emulator saw {upstream} requests, not 20")
operator_served("with `limited` at its limit")
print(f"ok: 60 requests through A and B: 20 served (A {by_port[A]}, B {by_port[B]}; remaining "
      f"19..0 once each), 40 refused with 429 rate_limit_exceeded; the emulator saw 20; the "
      f"operator's token is still served")


# ---- 3. `solo`: one request in flight, across processes; settle frees it
def held_stream(hold, held):
    conn = http.client.HTTPConnection("127.0.0.1", A, timeout=30)
    conn.request("POST", "/v1/chat/completions",
                 body(stream=True, emulator_hold=hold, test_id=hold),
                 {"Authorization": f"Bearer {SOLO}", "Content-Type": "application/json"})
    r = conn.getresponse()
    held["status"] = r.status
    held["body"] = r.read()
    conn.close()


hold = f"ln-hold-{RUN}"
held = {}
thread = threading.Thread(target=held_stream, args=(hold, held))
thread.start()
for _ in range(100):
    if emulator_requests(hold):
        break
    time.sleep(0.05)
else:
    fail("the held stream never reached the emulator")
try:
    for port in (B, A):
        status, headers, answer = post(port, SOLO, body())
        error = error_of(answer, status) if status != 200 else {}
        if status != 429 or error.get("code") != "rate_limit_exceeded" \
                or "max_concurrent" not in error.get("message", ""):
            fail(f"while solo's stream is open, port {port} answered {status} {answer!r}")
finally:
    conn = http.client.HTTPConnection("127.0.0.1", EMU, timeout=10)
    conn.request("POST", f"/_emulator/release/{hold}")
    conn.getresponse().read()
    conn.close()
thread.join(30)
if held.get("status") != 200 or not held.get("body", b"").endswith(b"data: [DONE]\n\n"):
    fail(f"the held stream did not end well: {held}")
ended = time.perf_counter()
for _ in range(60):
    status, _, answer = post(B, SOLO, body())
    if status == 200:
        break
    time.sleep(0.05)
else:
    fail(f"solo is still refused after its stream ended (settle never ran?): {status} {answer!r}")
print(f"ok: while solo's stream was open through A, its next request was refused (429, "
      f"max_concurrent) through B and A; served through B "
      f"{1000 * (time.perf_counter() - ended):.0f} ms after the stream ended")


# ---- 4. the reserve round trip
def timed(port, token, payload, expect, n=200):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(n + 10):
        start = time.perf_counter()
        status, _, answer = post(port, token, payload, conn)
        times.append(time.perf_counter() - start)
        if status != expect:
            fail(f"expected {expect} while measuring, got {status} {answer!r}")
    conn.close()
    return statistics.median(times[10:]) * 1000


if time.time() % 60 < 55:
    refused_ms = timed(A, LIMITED, body(), 429)
    unknown_ms = timed(A, LIMITED, body(model="no-such-model"), 404)
    print(f"measured: a refused request {refused_ms:.3f} ms, an unknown model {unknown_ms:.3f} ms "
          f"(medians of 200, one connection): the reserve round trip is "
          f"~{refused_ms - unknown_ms:.3f} ms")
PY

# ---- 5. Redis stopped, then started again
kill "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
python3 - "$A" "$B" "$REDIS" <<'PY' || fail "see above"
import http.client
import json
import sys

A, B, REDIS = (int(p) for p in sys.argv[1:4])


def post(port, token):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/chat/completions",
                 json.dumps({"model": "ln", "messages": [{"role": "user", "content": "hi"}]}),
                 {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse()
    answer = json.loads(r.read())
    conn.close()
    return r.status, answer


for port in (A, B):
    status, answer = post(port, "ln-solo")
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    if status != 503 or error.get("code") != "limits_unavailable" \
            or f"redis at 127.0.0.1:{REDIS}: " not in error.get("message", ""):
        print(f"FAIL: with Redis down, port {port} answered a limited client {status} {answer!r}",
              file=sys.stderr)
        sys.exit(1)
    status, answer = post(port, "ln-operator")
    if status != 200:
        print(f"FAIL: with Redis down, port {port} answered the operator {status} {answer!r}",
              file=sys.stderr)
        sys.exit(1)
print(f"ok: with Redis down, a limited client gets 503 limits_unavailable "
      f"({error['message']!r}); the operator is served")
PY
start_redis
python3 - "$A" "$B" <<'PY' || fail "see above"
import http.client
import json
import sys

for port in (int(p) for p in sys.argv[1:3]):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/chat/completions",
                 json.dumps({"model": "ln", "messages": [{"role": "user", "content": "hi"}]}),
                 {"Authorization": "Bearer ln-limited", "Content-Type": "application/json"})
    r = conn.getresponse()
    answer = r.read()
    if r.status != 200 or r.getheader("x-ratelimit-remaining-requests") is None:
        print(f"FAIL: with Redis back, port {port} answered {r.status} {answer!r}", file=sys.stderr)
        sys.exit(1)
print("ok: with Redis started again, the limited client is served through A and B")
PY

for log in proxy-a proxy-b; do
  if grep -qF -e ln-limited -e ln-solo -e ln-operator -e emu-ok-ln "$OUT/$log.log"; then
    fail "a secret value appears in $OUT/$log.log"
  fi
done
echo "client limits shared by two native processes through Redis: PASS"
