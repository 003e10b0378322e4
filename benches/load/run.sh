#!/usr/bin/env bash
# The performance suite: the proxy beside its floors, in one run on one machine.
#
#   upstream   the Rust bench upstream (benches/load/upstream.rs), on every core: never the
#              bottleneck, so the rows show the cost of what sits in front of it
#   nginx      `proxy_pass` to it: the native host's floor
#   native     the native host (routes: tests/routes/bench.toml)
#   JS Worker  a trivial JavaScript pass-through Worker under plain `workerd serve`: the
#              Worker's floor (wrangler dev's own proxy would hide the Worker); for CPU per
#              event also the same Worker reading every chunk in JavaScript, the floor of any
#              Worker that translates a stream, and for JSON the same Worker doing what any
#              gateway that checks the answer must (`/check/`)
#   Worker     the proxy's Worker under plain `workerd serve`
#
# The routes (tests/routes/bench.toml) log errors only; a last table measures `info` and JSON.
#
# For each connection count: requests/s, p50/p99 and CPU per request (the process's utime +
# stime from /proc over the run, divided by the requests) for a JSON answer and a 20-event
# stream (an event per write, back to back), pass-through and translated (Anthropic, Gemini),
# and natively a stream whose client did not ask for the usage (the proxy asks, and takes it out).
# Then: time to the first content event of a paced stream (200 events 2 ms apart), CPU per
# event on paced streams and on unpaced 1,000-event ones, the cost of logging, peak RSS, and
# memory around one 200,000-event stream. Prints Markdown for the README.
#
# Usage: benches/load/run.sh [seconds per wrk run, default 10]   (CONNS="1 16 64" by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
conns=${CONNS:-1 16 64}
out=$PWD/target/bench
mkdir -p "$out"
. benches/load/lib.sh

./scripts/bootstrap.sh bench >&2

echo "building (upstream, native host, Worker)" >&2
build_upstream "$out"
build_native "$out"
ROUTES_TOML=tests/routes/bench.toml ./scripts/build-worker.sh > "$out/worker-build.log" 2>&1

trap stop_started EXIT


UP=18081 NGINX=18082 NATIVE=18790 WORKER=18791 JSW=18792
target/bench/release/examples/upstream serve "127.0.0.1:$UP" 2> "$out/upstream.log" & pids+=($!)
sed -e "s|@OUT@|$out|g" -e "s|@PORT@|$NGINX|g" benches/load/nginx.conf.in > "$out/nginx.conf"
mkdir -p "$out/nginx-body" "$out/nginx-proxy"
nginx -c "$out/nginx.conf" 2> "$out/nginx.log" & nginx_pid=$!; pids+=($nginx_pid)
BENCH_PROXY_TOKEN=bench-token BENCH_KEY=bench-key target/bench/native/ai-worker-proxy \
  --listen "127.0.0.1:$NATIVE" 2> "$out/native.log" & native_pid=$!; pids+=($native_pid)
worker() { # port PROXY_LOG config-name
  sed -e "s|@PORT@|$1|g" -e "s|@LOG@|$2|g" benches/load/workerd.capnp.in > "$out/$3.capnp"
  node_modules/.bin/workerd serve "$out/$3.capnp" --experimental > "$out/$3.log" 2>&1 &
}
worker "$WORKER" errors workerd; worker_pid=$!; pids+=($worker_pid)
sed -e "s|@PORT@|$JSW|g" benches/load/passthrough.capnp.in > "$out/passthrough.capnp"
node_modules/.bin/workerd serve "$out/passthrough.capnp" > "$out/passthrough.log" 2>&1 & jsw_pid=$!; pids+=($jsw_pid)
wait_for "http://127.0.0.1:$NATIVE/health"
wait_for "http://127.0.0.1:$WORKER/health"
sleep 1

# The processes whose CPU counts for a system: itself and its children (nginx's workers).
family() { echo "$1" $(pgrep -P "$1" || true); }
hwm_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }

# One wrk run: prints "rps p50 p99 cpu_us_per_request requests".
measure() { # pid url token body connections [seconds]
  local pid=$1 url=$2 token=$3 body=$4 c=$5 s=${6:-$secs} procs before after report rps reqs p50 p99
  procs=$(family "$pid")
  before=$(ticks $procs)
  report=$(BODY="$body" TOKEN="$token" wrk -t"$(( c < 2 ? c : 2 ))" -c"$c" -d"${s}s" --latency -s benches/load/post.lua "$url" 2>&1)
  after=$(ticks $procs)
  if grep -q "Non-2xx" <<<"$report"; then echo "non-2xx answers from $url:" >&2; echo "$report" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$report")
  reqs=$(awk '/requests in/ {print $1}' <<<"$report")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$report")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$report")
  echo "$rps $p50 $p99 $(( (after - before) * 1000000 / hz / (reqs > 0 ? reqs : 1) )) $reqs"
}

# A stream whose client did not ask for the usage (the SDKs' default): the native host asks the
# upstream for it anyway, to meter the request, and takes it out of what the client gets.
sse_plain() { echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in five words.\"}],\"stream\":true}"; }

up() { echo "http://127.0.0.1:$UP$1"; }
OPENAI=/v1/chat/completions CLAUDE=/v1/messages GEMINI_JSON=/v1beta/models/gemini-2.5-flash:generateContent
GEMINI_SSE=/v1beta/models/gemini-2.5-flash:streamGenerateContent
proxy() { echo "http://127.0.0.1:$1/v1/chat/completions"; }

# system | pid | JSON url, token, body | stream url, token, body (an empty url: no such cells)
systems=(
  "nginx proxy_pass|$nginx_pid|http://127.0.0.1:$NGINX$OPENAI|k|$(json m)|http://127.0.0.1:$NGINX$OPENAI|k|$(sse m)"
  "native host (pass-through)|$native_pid|$(proxy $NATIVE)|bench-token|$(json bench)|$(proxy $NATIVE)|bench-token|$(sse bench)"
  "native host (pass-through, usage taken out)|$native_pid||||$(proxy $NATIVE)|bench-token|$(sse_plain bench)"
  "native host (Anthropic)|$native_pid|$(proxy $NATIVE)|bench-token|$(json bench-claude)|$(proxy $NATIVE)|bench-token|$(sse bench-claude)"
  "native host (Gemini)|$native_pid|$(proxy $NATIVE)|bench-token|$(json bench-gemini)|$(proxy $NATIVE)|bench-token|$(sse bench-gemini)"
  "JS pass-through Worker|$jsw_pid|http://127.0.0.1:$JSW$OPENAI|k|$(json m)|http://127.0.0.1:$JSW$OPENAI|k|$(sse m)"
  "JS Worker checking the answer|$jsw_pid|http://127.0.0.1:$JSW/check$OPENAI|k|$(json m)||||"
  "Worker (pass-through)|$worker_pid|$(proxy $WORKER)|bench-token|$(json bench)|$(proxy $WORKER)|bench-token|$(sse bench)"
  "Worker (Anthropic)|$worker_pid|$(proxy $WORKER)|bench-token|$(json bench-claude)|$(proxy $WORKER)|bench-token|$(sse bench-claude)"
  "Worker (Gemini)|$worker_pid|$(proxy $WORKER)|bench-token|$(json bench-gemini)|$(proxy $WORKER)|bench-token|$(sse bench-gemini)"
)

echo "## Throughput ($secs s per row, wrk -t2, 20-event streams)"
echo
echo "| system | c | JSON req/s | p50 | p99 | CPU/req | stream req/s | p50 | p99 | CPU/req |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $conns; do
  for row in "${systems[@]}"; do
    IFS='|' read -r name pid jurl jtok jbody surl stok sbody <<<"$row"
    if [ -n "$jurl" ]; then
      read -r jrps jp50 jp99 jcpu _ <<<"$(measure "$pid" "$jurl" "$jtok" "$jbody" "$c")"
      json_cells="$jrps | $jp50 | $jp99 | ${jcpu} µs"
    else
      json_cells="| | |"
    fi
    if [ -n "$surl" ]; then
      read -r srps sp50 sp99 scpu _ <<<"$(measure "$pid" "$surl" "$stok" "$sbody" "$c")"
      stream_cells="$srps | $sp50 | $sp99 | ${scpu} µs"
    else
      stream_cells="| | |"
    fi
    echo "| $name | $c | $json_cells | $stream_cells |"
  done
done

echo
echo "## First content event of a paced stream (median of 20, new connection each)"
echo
echo "| system | pass-through | Anthropic | Gemini |"
echo "|---|---:|---:|---:|"
probe() { target/bench/release/examples/upstream probe "$@"; }
echo "| upstream directly | $(probe "$(up /e200/p2$OPENAI)" "$(sse m)") ms | $(probe "$(up /e200/p2$CLAUDE)" "$(sse m)") ms | $(probe "$(up /e200/p2$GEMINI_SSE)" "$(sse m)") ms |"
echo "| nginx proxy_pass | $(probe "http://127.0.0.1:$NGINX/e200/p2$OPENAI" "$(sse m)") ms | | |"
echo "| native host | $(probe "$(proxy $NATIVE)" "$(sse paced)") ms | $(probe "$(proxy $NATIVE)" "$(sse paced-claude)") ms | $(probe "$(proxy $NATIVE)" "$(sse paced-gemini)") ms |"
echo "| JS pass-through Worker | $(probe "http://127.0.0.1:$JSW/e200/p2$OPENAI" "$(sse m)") ms | | |"
echo "| Worker | $(probe "$(proxy $WORKER)" "$(sse paced)") ms | $(probe "$(proxy $WORKER)" "$(sse paced-claude)") ms | $(probe "$(proxy $WORKER)" "$(sse paced-gemini)") ms |"

# CPU per event: wrk with 4 connections over streams of `events` events; the JS floor passes
# each upstream format through untouched, the proxy translates Anthropic and Gemini.
per_event() { # pid url token body events
  local r
  read -r _ _ _ cpu _ <<<"$(measure "$1" "$2" "$3" "$4" 4 "$secs")"
  echo "$cpu $5" | awk '{printf "%.2f µs (%.2f ms per stream)", $1 / $2, $1 / 1000}'
}
for kind in "paced:e200/p2:200" "long:e1000:1000"; do
  IFS=: read -r prefix path events <<<"$kind"
  echo
  if [ "$prefix" = paced ]; then
    echo "## CPU per event, paced streams ($events events 2 ms apart, 4 at a time)"
  else
    echo "## CPU per event, unpaced streams ($events events back to back, 4 at a time)"
  fi
  echo
  echo "| system | pass-through | Anthropic | Gemini |"
  echo "|---|---:|---:|---:|"
  route() { [ "$1" = paced ] && echo "paced$2" || echo "long$2"; }
  echo "| nginx proxy_pass | $(per_event "$nginx_pid" "http://127.0.0.1:$NGINX/$path$OPENAI" k "$(sse m)" "$events") | | |"
  echo "| native host | $(per_event "$native_pid" "$(proxy $NATIVE)" bench-token "$(sse "$(route "$prefix" "")")" "$events") | $(per_event "$native_pid" "$(proxy $NATIVE)" bench-token "$(sse "$(route "$prefix" -claude)")" "$events") | $(per_event "$native_pid" "$(proxy $NATIVE)" bench-token "$(sse "$(route "$prefix" -gemini)")" "$events") |"
  echo "| JS pass-through Worker | $(per_event "$jsw_pid" "http://127.0.0.1:$JSW/$path$OPENAI" k "$(sse m)" "$events") | $(per_event "$jsw_pid" "http://127.0.0.1:$JSW/$path$CLAUDE" k "$(sse m)" "$events") | $(per_event "$jsw_pid" "http://127.0.0.1:$JSW/$path$GEMINI_SSE" k "$(sse m)" "$events") |"
  echo "| JS Worker reading every chunk | $(per_event "$jsw_pid" "http://127.0.0.1:$JSW/read/$path$OPENAI" k "$(sse m)" "$events") | $(per_event "$jsw_pid" "http://127.0.0.1:$JSW/read/$path$CLAUDE" k "$(sse m)" "$events") | $(per_event "$jsw_pid" "http://127.0.0.1:$JSW/read/$path$GEMINI_SSE" k "$(sse m)" "$events") |"
  echo "| Worker | $(per_event "$worker_pid" "$(proxy $WORKER)" bench-token "$(sse "$(route "$prefix" "")")" "$events") | $(per_event "$worker_pid" "$(proxy $WORKER)" bench-token "$(sse "$(route "$prefix" -claude)")" "$events") | $(per_event "$worker_pid" "$(proxy $WORKER)" bench-token "$(sse "$(route "$prefix" -gemini)")" "$events") |"
done

echo
echo "## The cost of logging (pass-through, c=64; the rows above log errors only)"
echo
echo "| system | PROXY_LOG | JSON req/s | CPU/req | stream req/s | CPU/req |"
echo "|---|---|---:|---:|---:|---:|"
port=18800
for log in errors info info,json; do
  BENCH_PROXY_TOKEN=bench-token BENCH_KEY=bench-key PROXY_LOG=$log target/bench/native/ai-worker-proxy \
    --listen "127.0.0.1:$port" 2> "$out/native-$log.log" & n=$!; pids+=($n)
  worker $((port + 1)) "$log" "workerd-$log"; w=$!; pids+=($w)
  wait_for "http://127.0.0.1:$port/health"; wait_for "http://127.0.0.1:$((port + 1))/health"
  for sys in "native host:$n:$port" "Worker:$w:$((port + 1))"; do
    IFS=: read -r name pid p <<<"$sys"
    read -r jrps _ _ jcpu _ <<<"$(measure "$pid" "$(proxy "$p")" bench-token "$(json bench)" 64)"
    read -r srps _ _ scpu _ <<<"$(measure "$pid" "$(proxy "$p")" bench-token "$(sse bench)" 64)"
    echo "| $name | \`$log\` | $jrps | ${jcpu} µs | $srps | ${scpu} µs |"
  done
  kill "$n" "$w"; port=$((port + 2))
done

echo
echo "## Peak resident memory over the whole run"
echo
echo "| system | peak RSS |"
echo "|---|---:|"
echo "| nginx (master + workers) | $(( $(hwm_kib $(family "$nginx_pid")) / 1024 )) MiB |"
echo "| native host | $(( $(hwm_kib "$native_pid") / 1024 )) MiB |"
echo "| workerd, JS pass-through Worker | $(( $(hwm_kib "$jsw_pid") / 1024 )) MiB |"
echo "| workerd, Worker | $(( $(hwm_kib "$worker_pid") / 1024 )) MiB |"

# Memory stays flat however long the stream: RSS of the native host before, during and after
# one stream of 200,000 events, passed through and translated.
rss() { awk '/VmRSS/ {print $2}' "/proc/$native_pid/status"; }
long_stream() { # label route
  local before peak after bytes r curl_pid
  before=$(rss)
  curl -sN -H "Authorization: Bearer bench-token" -H 'Content-Type: application/json' -d "$(sse "$2")" \
    "$(proxy $NATIVE)" > "$out/long-stream.sse" & curl_pid=$!
  peak=$before
  while kill -0 "$curl_pid" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.1; done
  after=$(rss)
  bytes=$(wc -c < "$out/long-stream.sse")
  echo "- native host RSS around one $((bytes / 1024 / 1024)) MiB $1 stream: before ${before} KiB, peak ${peak} KiB, after ${after} KiB"
}
echo
long_stream "pass-through" huge
long_stream "Anthropic-translated" huge-claude
