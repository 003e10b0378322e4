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
