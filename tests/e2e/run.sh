#!/usr/bin/env bash
# End-to-end run: emulator + proxy under test + pytest (the official openai and anthropic Python SDKs)
# + node --test (the openai and @anthropic-ai/sdk JS SDKs: every tests/e2e/node/*.test.mjs).
#
#   tests/e2e/run.sh native    build the native binary with ROUTES_TOML=tests/routes/e2e.toml and test it
#   tests/e2e/run.sh worker    start the Worker via start_worker() from tests/e2e/worker.sh (if present)
#
# Ports: emulator 127.0.0.1:18080, proxy 127.0.0.1:18787. Extra pytest args: PYTEST_ARGS="-k stream -x".
# Only some files: PYTEST_PATHS="tests/e2e/test_clients.py tests/e2e/test_status_page.py" (default
# tests/e2e); E2E_NODE=0 skips the node suites.
set -euo pipefail

MODE="${1:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

EMU_PORT=18080
PROXY_PORT=18787
export EMULATOR_URL="http://127.0.0.1:${EMU_PORT}"
export PROXY_URL="http://127.0.0.1:${PROXY_PORT}"
# Which host is under test, for the few tests that only make sense on one of them.
export E2E_HOST="$MODE"
SECRETS_FILE="tests/e2e/secrets.env"
OUT_DIR="target/e2e"
PROXY_LOG="$OUT_DIR/proxy.log"
EMU_LOG="$OUT_DIR/emulator.log"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
NODE="${NODE:-$ROOT/node_modules/.bin/node}"

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    pkill -TERM -P "$pid" 2>/dev/null || true # children of this pid only (wrangler → workerd)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

log() { echo "[e2e] $*" >&2; }

wait_http() { # url timeout_seconds name
  local url="$1" limit="$2" name="$3" i
  for ((i = 0; i < limit * 10; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$name did not become healthy at $url within ${limit}s"
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "$MODE" in native | worker) ;; *)
  echo "usage: $0 <native|worker>" >&2
  exit 2
  ;;
esac

mkdir -p "$OUT_DIR"
for p in "$EMU_PORT" "$PROXY_PORT"; do
  port_free "$p" || { log "port $p is already in use (a previous run still alive?)"; exit 1; }
done

# Every secret the proxy may need (E2E_KEY_NEVER_SET is deliberately absent from the file).
set -a
# shellcheck disable=SC1090
source "$SECRETS_FILE"
set +a
unset E2E_KEY_NEVER_SET || true

# ---- emulator
log "starting emulator on :$EMU_PORT"
python3 tests/emulators/openai_emulator.py --port "$EMU_PORT" >"$EMU_LOG" 2>&1 &
PIDS+=("$!")
wait_http "$EMULATOR_URL/_emulator/health" 15 emulator

# ---- proxy under test
case "$MODE" in
native)
  log "building the proxy (ROUTES_TOML=tests/routes/e2e.toml)"
  ROUTES_TOML=tests/routes/e2e.toml cargo build --target-dir "$OUT_DIR" --bin ai-worker-proxy
  log "starting the proxy on :$PROXY_PORT (stderr → $PROXY_LOG)"
  "$OUT_DIR/debug/ai-worker-proxy" --listen "127.0.0.1:$PROXY_PORT" >"$OUT_DIR/proxy.stdout" 2>"$PROXY_LOG" &
  PIDS+=("$!")
  wait_http "$PROXY_URL/health" 30 proxy
  ;;
worker)
  # ---- Worker mode: owned by the Worker side of the project. tests/e2e/worker.sh defines
  # start_worker, which builds and serves the Worker (wrangler dev) and exports PROXY_URL and
  # WORKER_PID; its log is target/e2e/worker.log.
  if [ -f tests/e2e/worker.sh ]; then
    # shellcheck disable=SC1091
    source tests/e2e/worker.sh
    start_worker
    if [ -n "${WORKER_PID:-}" ]; then PIDS+=("$WORKER_PID"); fi
    PROXY_LOG="$OUT_DIR/worker.log"
    wait_http "$PROXY_URL/health" 120 worker
  else
    log "tests/e2e/worker.sh (defining start_worker) does not exist"
    exit 1
  fi
  ;;
esac

# ---- suites (run both, fail if either failed)
status=0
# The tests read the proxy's log too (tests/e2e/test_security.py: no secret value in it).
export E2E_PROXY_LOG_FILE="$ROOT/$PROXY_LOG"
log "pytest against $PROXY_URL"
# shellcheck disable=SC2086
"$PYTHON" -m pytest ${PYTEST_PATHS:-tests/e2e} -q ${PYTEST_ARGS:-} || status=1
if [ "${E2E_NODE:-1}" != 0 ]; then
  log "node --test against $PROXY_URL"
  "$NODE" --test "tests/e2e/node/*.test.mjs" || status=1  # node 22 takes files/globs, not a directory
fi

# ---- the proxy logs key NAMES only: no secret value may appear in its log
leaks=0
[ -f "$PROXY_LOG" ] || { log "missing $PROXY_LOG"; status=1; touch "$PROXY_LOG"; }
while IFS='=' read -r name value; do
  [[ -z "$name" || "$name" == \#* || -z "${value:-}" ]] && continue
  if grep -qF -- "$value" "$PROXY_LOG"; then
    log "SECRET LEAK: the value of $name appears in $PROXY_LOG"
    leaks=1
  fi
done <"$SECRETS_FILE"
if [ "$leaks" -ne 0 ]; then status=1; else log "no secret values in $PROXY_LOG"; fi

if [ "$status" -eq 0 ]; then log "e2e ($MODE): PASS"; else log "e2e ($MODE): FAIL"; fi
exit "$status"
