#!/usr/bin/env bash
# Instructions per request: the user-space instructions the native host and nginx execute per
# request, counted by valgrind's callgrind. Unlike CPU time on this shared 2-core VM, which moves
# by ±15 % from run to run, the count repeats to within a percent, so it shows what a change to
# the proxy's own code saves. Kernel time (the sockets) is not counted: benches/load/run.sh
# measures the whole.
#
# Each process runs under callgrind with instrumentation off; each row warms up, then counts
# the instructions of one connection's requests for SECS seconds (default 5) and divides by the
# requests wrk completed. The same bench upstream and routes as run.sh; besides the one-message
# JSON request and the stream, an agent's 61-message conversation (agent_json). Prints Markdown.
#
# Usage: benches/load/instructions.sh     (SECS=5; ANNOTATE=1 also writes callgrind_annotate's
#                                          top functions per row to target/bench/instructions/)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${SECS:-5}
out=$PWD/target/bench
dir=$out/instructions
mkdir -p "$dir"
. benches/load/lib.sh

./scripts/bootstrap.sh bench >&2

echo "building (upstream, native host)" >&2
build_upstream "$out"
build_native "$out"

trap stop_started EXIT

UP=18081 NGINX=18082 NATIVE=18790
rm -f "$dir"/callgrind.*
target/bench/release/examples/upstream serve "127.0.0.1:$UP" 2> "$out/upstream.log" & pids+=($!)
# One nginx process (no master, one worker), so that callgrind sees all of its work.
sed -e "s|@OUT@|$out|g" -e "s|@PORT@|$NGINX|g" -e 's|^worker_processes auto;|worker_processes 1;\nmaster_process off;|' \
  benches/load/nginx.conf.in > "$dir/nginx.conf"
mkdir -p "$out/nginx-body" "$out/nginx-proxy"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/callgrind.nginx" \
  nginx -c "$dir/nginx.conf" 2> "$dir/nginx-valgrind.log" & nginx_pid=$!; pids+=($nginx_pid)
BENCH_PROXY_TOKEN=bench-token BENCH_KEY=bench-key valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$dir/callgrind.native" target/bench/native/ai-worker-proxy \
  --listen "127.0.0.1:$NATIVE" 2> "$dir/native-valgrind.log" & native_pid=$!; pids+=($native_pid)
wait_for "http://127.0.0.1:$NATIVE/health"
# The upstream answers a GET with 404, which wait_for would not take: any answer will do.
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$NGINX/" && break; sleep 0.2; done
curl -s -o /dev/null "http://127.0.0.1:$NGINX/" || { echo "nginx under callgrind is not answering" >&2; exit 1; }

requests() { # url token body seconds -> requests completed
  BODY="$3" TOKEN="$2" wrk -t1 -c1 -d"$4"s -s benches/load/post.lua "$1" 2>/dev/null \
    | awk '/requests in/ {print $1}'
}
# Instructions per request for one row: warm up uninstrumented, then count one run.
count() { # pid file-prefix row-name url token body
  local pid=$1 file=$2 name=$3 n dump total
  requests "$4" "$5" "$6" 1 > /dev/null
  callgrind_control -i on "$pid" > /dev/null
  n=$(requests "$4" "$5" "$6" "$secs")
  callgrind_control -i off "$pid" > /dev/null
  callgrind_control -d "$name" "$pid" > /dev/null
  # The newest dump is this row's; callgrind resets the counters after each dump.
  dump=$(ls -t "$file".* | head -1)
  total=$(awk '/^totals:/ {print $2}' "$dump")
  if [ -n "${ANNOTATE:-}" ]; then
    callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | head -60 > "$dir/$name.txt"
  fi
  echo $(( total / (n > 0 ? n : 1) ))
}

OPENAI=/v1/chat/completions
proxy="http://127.0.0.1:$NATIVE$OPENAI"
nginx_url="http://127.0.0.1:$NGINX$OPENAI"
echo "## Instructions per request, user space (callgrind; one connection, $secs s per row)"
echo
echo "| system | JSON | 20-event stream | agent conversation (61 messages, JSON) |"
echo "|---|---:|---:|---:|"
echo "| nginx proxy_pass | $(count "$nginx_pid" "$dir/callgrind.nginx" nginx-json "$nginx_url" k "$(json m)") | $(count "$nginx_pid" "$dir/callgrind.nginx" nginx-stream "$nginx_url" k "$(sse m)") | $(count "$nginx_pid" "$dir/callgrind.nginx" nginx-agent "$nginx_url" k "$(agent_json m)") |"
for row in "pass-through:bench" "Anthropic:bench-claude" "Gemini:bench-gemini"; do
  IFS=: read -r name model <<<"$row"
  echo "| native host ($name) | $(count "$native_pid" "$dir/callgrind.native" "native-$model-json" "$proxy" bench-token "$(json "$model")") | $(count "$native_pid" "$dir/callgrind.native" "native-$model-stream" "$proxy" bench-token "$(sse "$model")") | $(count "$native_pid" "$dir/callgrind.native" "native-$model-agent" "$proxy" bench-token "$(agent_json "$model")") |"
done
