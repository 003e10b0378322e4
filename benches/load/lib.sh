# Shared by benches/load/run.sh, ab.sh and instructions.sh (sourced, not run).

# Waits up to 20 s for `url` to answer 2xx.
wait_for() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.2; done; echo "not ready: $1" >&2; return 1; }

# Summed utime + stime of the given pids, in clock ticks (`hz` a second).
ticks() {
  local t=0 p f
  for p in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

# Request bodies for a model: a JSON answer, and a stream whose client asks for the usage.
json() { echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in five words.\"}]}"; }
sse() { echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello in five words.\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}"; }
# A 64 KB conversation (40 messages of about 1.6 KB of text, as in `cargo bench --bench core`).
long_json() {
  local text msgs="" i role
  text=$(printf 'The \\"quick\\" brown fox jumps over the lazy dog.\\n%.0s' $(seq 32))
  for i in $(seq 0 39); do
    role=user; [ $((i % 2)) -eq 1 ] && role=assistant
    msgs+="${msgs:+,}{\"role\":\"$role\",\"content\":\"$i: $text\"}"
  done
  echo "{\"model\":\"$1\",\"messages\":[$msgs]}"
}

# 61 short messages as a tool-using agent sends them: two-part user turns, assistant tool calls
# and their results, where translation costs per message rather than per byte.
agent_json() {
  local msgs='{"role":"system","content":"You are a careful agent."}' i
  for i in $(seq 0 19); do
    msgs+=',{"role":"user","content":[{"type":"text","text":"Step '$i'."},{"type":"text","text":"Check the weather in Boston."}]}'
    msgs+=',{"role":"assistant","content":null,"tool_calls":[{"id":"call_'$i'","type":"function","function":{"name":"get_current_weather","arguments":"{\"location\":\"Boston, MA\"}"}}]}'
    msgs+=',{"role":"tool","tool_call_id":"call_'$i'","content":"Sunny, 22 degrees."}'
  done
  echo "{\"model\":\"$1\",\"messages\":[$msgs]}"
}

# The bench upstream (benches/load/upstream.rs) and the native host for the bench routes, built
# into target/bench; their build logs go to the directory $1.
build_upstream() {
  cargo build --release --example upstream --target-dir target/bench 2> "$1/upstream-build.log"
}
build_native() {
  ROUTES_TOML=tests/routes/bench.toml cargo build --profile native --target-dir target/bench \
    --bin ai-worker-proxy 2> "$1/native-build.log"
}

# The processes a script starts (`pids+=($!)`), stopped on its exit by `trap stop_started EXIT`.
pids=()
stop_started() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
