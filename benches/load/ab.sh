#!/usr/bin/env bash
# A/B of builds: the CPU per request each costs, in interleaved rounds, as paired ratios to the
# first build. Worker builds run under one plain `workerd serve`; with --native, native host
# binaries run side by side.
#
# On this 2-core VM one wrk run's CPU per request varies by ±15 % from run to run, more than most
# single changes cost, so benches/load/run.sh cannot show them. Here every build serves the same
# rows in the same round, one after another, with the proxy on one core and the load generator and
# upstream on the other; each round gives a ratio to build A, and the median of those ratios
# moves by a few percent between repeats.
#
# Usage: benches/load/ab.sh DIR_A DIR_B [DIR_C ...]
#   each DIR a Worker built for tests/routes/bench.toml, e.g.
#     ROUTES_TOML=tests/routes/bench.toml WORKER_OUT_DIR=target/ab/a ./scripts/build-worker.sh
# or:    benches/load/ab.sh --native BIN_A BIN_B [BIN_C ...]
#   each BIN the native host built for the same routes, e.g.
#     ROUTES_TOML=tests/routes/bench.toml cargo build --profile native --target-dir target/ab/a
#   ROUNDS (default 8), SECS per row (default 3), CONNS (default 16),
#   ROWS (default "json stream claude-json claude-stream"; also json-64k, a 64 KB
#   conversation, and agent or claude-agent, 61 short messages with tool calls), MODEL and CLAUDE_MODEL (the routes
#   of the plain and claude- rows: default bench and bench-claude, 20-event streams; long and
#   long-claude for 1,000-event ones, paced and paced-claude for paced ones).
set -euo pipefail
cd "$(dirname "$0")/../.."
native=""
if [ "${1:-}" = --native ]; then native=1; shift; fi
[ $# -ge 2 ] || { sed -n '2,22p' "$0" >&2; exit 2; }
rounds=${ROUNDS:-8} secs=${SECS:-3} conns=${CONNS:-16} rows=${ROWS:-json stream claude-json claude-stream}
out=$PWD/target/ab
mkdir -p "$out"
. benches/load/lib.sh

./scripts/bootstrap.sh bench >&2
build_upstream "$out"

[ $# -le 8 ] || { echo "at most 8 builds" >&2; exit 2; }
letters=(a b c d e f g h)
names=() ports=()

# The proxy on the last core; the upstream and wrk on the others.
last=$(( $(nproc) - 1 ))
if [ "$last" -gt 0 ]; then
  pin_proxy=(taskset -c "$last") pin_load=(taskset -c "0-$((last - 1))")
else
  pin_proxy=() pin_load=()
fi
trap stop_started EXIT
"${pin_load[@]}" target/bench/release/examples/upstream serve 127.0.0.1:18081 2> "$out/upstream.log" & pids+=($!)

# The process whose CPU counts for each build.
procs=()
if [ -n "$native" ]; then
  # One process per binary, each a thread on the proxy's core (it runs a thread per core it may
  # use).
  i=0
  for bin in "$@"; do
    [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 2; }
    port=$((18401 + i))
    names+=("${letters[$i]}") ports+=("$port")
    BENCH_PROXY_TOKEN=bench-token BENCH_KEY=bench-key "${pin_proxy[@]}" "$bin" \
      --listen "127.0.0.1:$port" 2> "$out/${letters[$i]}.log" & pids+=($!) procs+=($!)
    echo "${letters[$i]} = $bin" >&2
    i=$((i + 1))
  done
else
# One workerd, one service and port per build, the builds copied beside the config (embed paths
# are relative to it).
services="" sockets="" workers=""
i=0
for dir in "$@"; do
  name=${letters[$i]}
  for f in index.js worker/shim.mjs worker/index.wasm; do
    [ -f "$dir/$f" ] || { echo "$dir/$f: not a Worker build" >&2; exit 2; }
  done
  rm -rf "${out:?}/$name" && mkdir -p "$out/$name/worker"
  cp "$dir/index.js" "$out/$name/" && cp "$dir/worker/shim.mjs" "$dir/worker/index.wasm" "$out/$name/worker/"
  port=$((18401 + i))
  names+=("$name") ports+=("$port")
  services+="    (name = \"$name\", worker = .$name),"$'\n'
  sockets+="    (name = \"$name\", address = \"127.0.0.1:$port\", http = (), service = \"$name\"),"$'\n'
  workers+="const $name :Workerd.Worker = (
  modules = [
    (name = \"index.js\", esModule = embed \"$name/index.js\"),
    (name = \"worker/shim.mjs\", esModule = embed \"$name/worker/shim.mjs\"),
    (name = \"worker/index.wasm\", wasm = embed \"$name/worker/index.wasm\"),
  ],
  compatibilityDate = \"2025-09-01\",
  compatibilityFlags = [\"nodejs_compat\"],
  bindings = [
    (name = \"BENCH_PROXY_TOKEN\", text = \"bench-token\"),
    (name = \"BENCH_KEY\", text = \"emu-ok-bench\"),
    (name = \"PROXY_LOG\", text = \"errors\"),
  ],
);
"
  echo "$name = $dir" >&2
  i=$((i + 1))
done
cat > "$out/ab.capnp" <<EOF
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
$services    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
$sockets  ],
);
$workers
EOF

"${pin_proxy[@]}" node_modules/.bin/workerd serve "$out/ab.capnp" --experimental > "$out/workerd.log" 2>&1 &
workerd=$!; pids+=($workerd)
for _ in "$@"; do procs+=("$workerd"); done
fi
for port in "${ports[@]}"; do wait_for "http://127.0.0.1:$port/health"; done

body() { # row: json, stream, claude-json, claude-stream, json-64k, agent or claude-agent
  local model=${MODEL:-bench}
  case $1 in claude-*) model=${CLAUDE_MODEL:-bench-claude} ;; esac
  case $1 in
    *stream) sse "$model" ;; json-64k) long_json "$model" ;; *agent) agent_json "$model" ;;
    *) json "$model" ;;
  esac
}
cpu_per_request() { # build-index row seconds -> µs of the build's process CPU per request
  local before after n
  before=$(ticks "${procs[$1]}")
  n=$(BODY="$(body "$2")" TOKEN=bench-token "${pin_load[@]}" wrk -t2 -c"$conns" -d"$3"s \
      -s benches/load/post.lua "http://127.0.0.1:${ports[$1]}/v1/chat/completions" 2>/dev/null | awk '/requests in/ {print $1}')
  after=$(ticks "${procs[$1]}")
  echo $(( (after - before) * 1000000 / hz / (n > 0 ? n : 1) ))
}

# Warm every build (a Worker's isolate, a native host's connections), then the rounds:
# "round row build µs" lines.
for k in "${!names[@]}"; do for row in $rows; do cpu_per_request "$k" "$row" 1 >/dev/null; done; done
for round in $(seq 1 "$rounds"); do
  for row in $rows; do
    for k in "${!names[@]}"; do
      echo "$round $row ${names[$k]} $(cpu_per_request "$k" "$row" "$secs")"
    done
  done
  echo "round $round of $rounds done" >&2
done > "$out/rounds.txt"

what=workerd; [ -z "$native" ] || what="native host"
echo "## A/B, $what CPU per request (c = $conns, $rounds rounds of $secs s per row)"
echo
python3 - "$out/rounds.txt" "${names[@]}" <<'PY'
import collections, statistics, sys
lines = [l.split() for l in open(sys.argv[1])]
names = sys.argv[2:]
cpu = collections.defaultdict(dict)  # (row, round) -> build -> µs
for rnd, row, build, us in lines:
    cpu[(row, rnd)][build] = int(us)
rows = list(dict.fromkeys(l[1] for l in lines))
print("| row | " + " | ".join(f"{n}: median µs" for n in names) + " | "
      + " | ".join(f"{n} ÷ a (median of rounds)" for n in names[1:]) + " |")
print("|---|" + "---:|" * (2 * len(names) - 1))
for row in rows:
    rounds = [v for (r, _), v in cpu.items() if r == row and len(v) == len(names)]
    medians = [statistics.median(v[n] for v in rounds) for n in names]
    ratios = [statistics.median(v[n] / v["a"] for v in rounds if v["a"] > 0) for n in names[1:]]
    print(f"| {row} | " + " | ".join(f"{m:.0f}" for m in medians) + " | "
          + " | ".join(f"{r:.2f}×" for r in ratios) + " |")
PY
