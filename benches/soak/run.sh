#!/usr/bin/env bash
# Load and soak: the native host (routes: tests/routes/soak.toml) in front of the Rust upstream
# (benches/load/upstream.rs) with faults injected, driven by the soak client
# (benches/soak/client.rs).
#
#   phase 1   SOAK_CLIENTS (1,000) concurrent streaming clients for PHASE1_SECONDS (60), each on
#             its own keep-alive connection: healthy 1 s streams, pass-through and translated
#   phase 2   SOAK_MIXED_CLIENTS (200) clients for SOAK_SECONDS (600) of mixed traffic: healthy
#             streams and JSON, streams abandoned mid-way (client disconnects), and routes whose
#             upstream stalls, resets mid-stream, answers 429 or storms 429s (failover, key
#             cool-downs, in-stream errors, 504/500s)
#   early     SOAK_EARLY (20) requests to an upstream that stalls, each abandoned by the client
#             after 500 ms, before any byte of the answer
#
# Every SAMPLE_SECONDS (5) it samples the proxy's RSS (/proc/PID/status VmRSS) and open file
# descriptors (/proc/PID/fd). After each phase it waits until the proxy's idle upstream
# connections have closed (the pool keeps them 60 s; at most SETTLE_SECONDS, 180).
#
# It fails (exit 1) when:
# - open fds after the soak are not back to where they started, within FD_TOLERANCE (2);
# - RSS grows during phase 2: its mean over the last sixth of the phase exceeds its mean over
#   the second sixth (after the warm-up) by more than RSS_GROWTH_PCT (10 %): a leak of even
#   100 bytes per request would add ~20 MiB over 10 minutes here;
# - RSS once idle after the soak exceeds the cold start by more than RSS_RETAINED_MIB (16):
#   the allocator (mimalloc) keeps some freed pages, and purges an idle thread's only when the
#   thread next allocates, so the idle process does not drop back to its first few MiB exactly;
# - the upstream did not see exactly one cancelled stream per stream the client abandoned, or
#   saw a stream cancelled that no client abandoned and no deadline cut (see the last table).
#
# Usage: benches/soak/run.sh        (SOAK_SECONDS=60 for a short run; output in target/soak/out)
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${SOAK_CLIENTS:-1000} phase1=${PHASE1_SECONDS:-60}
mixed_clients=${SOAK_MIXED_CLIENTS:-200} soak=${SOAK_SECONDS:-600} early=${SOAK_EARLY:-20}
sample=${SAMPLE_SECONDS:-5} settle_max=${SETTLE_SECONDS:-180}
fd_tol=${FD_TOLERANCE:-2} rss_growth=${RSS_GROWTH_PCT:-10} rss_retained=${RSS_RETAINED_MIB:-16}
out=$PWD/target/soak/out
mkdir -p "$out"
UP=18481 NATIVE=18482

echo "building (upstream, soak client, native host)" >&2
export ROUTES_TOML=tests/routes/soak.toml
cargo build --release --example upstream --example soak --target-dir target/soak 2> "$out/build.log"
cargo build --profile native --target-dir target/soak --bin ai-worker-proxy 2>> "$out/build.log"

# 1,000 clients hold 1,000 sockets in the client, 2,000 in the proxy, 1,000 in the upstream.
[ "$(ulimit -n)" -ge 8192 ] || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 4096 ] || { echo "ulimit -n is $(ulimit -n): 1,000 clients need more" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

target/soak/release/examples/upstream serve "127.0.0.1:$UP" 2> "$out/upstream.log" & pids+=($!)
secrets=(SOAK_PROXY_TOKEN=soak-token)
for key in KEY_1 KEY_2 KEY_3 FAULTY_1 FAULTY_2 FAULTY_3 STORM_1 STORM_2 STALL_1 STALL_2 RESET_1 HANG_1; do
  secrets+=("SOAK_$key=emu-$key")
done
env "${secrets[@]}" target/soak/native/ai-worker-proxy --listen "127.0.0.1:$NATIVE" \
  2> "$out/native.log" & proxy=$!; pids+=($proxy)
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$NATIVE/health" 2>/dev/null && break; sleep 0.2; done
curl -fsS -o /dev/null "http://127.0.0.1:$UP/stats"

rss() { awk '/VmRSS/ {print $2}' "/proc/$proxy/status"; }
fds() { find "/proc/$proxy/fd" -mindepth 1 -maxdepth 1 | wc -l; }
stats() { curl -fsS "http://127.0.0.1:$UP/stats"; }
counts() { stats | jq -r --arg l "$1" --arg f "$2" '.[$l][$f] // 0'; } # label field

echo cold > "$out/phase"
t0=$(date +%s)
: > "$out/samples.tsv"
( while kill -0 "$proxy" 2>/dev/null; do
    echo "$(( $(date +%s) - t0 ))	$(cat "$out/phase")	$(rss)	$(fds)" >> "$out/samples.tsv"
    sleep "$sample"
  done ) & pids+=($!)
cold_rss=$(rss) cold_fds=$(fds)

# Waits until the proxy's idle upstream connections have closed: fds back within the tolerance.
settle() {
  local waited=0
  while [ "$(fds)" -gt $((cold_fds + fd_tol)) ] && [ "$waited" -lt "$settle_max" ]; do
    sleep 5; waited=$((waited + 5))
  done
  sleep 2 # freed memory returned (mimalloc purges after a delay)
}
run() { # phase, then the soak client's arguments
  local phase=$1; shift
  echo "$phase" > "$out/phase"
  echo "$phase: soak $*" >&2
  SOAK_TOKEN=soak-token target/soak/release/examples/soak "$@" > "$out/$phase.md"
}

run phase1 streams "127.0.0.1:$NATIVE" --clients "$clients" --seconds "$phase1" --ramp-ms 1000
echo settle > "$out/phase"; settle
warm_rss=$(rss) warm_fds=$(fds)
run phase2 mixed "127.0.0.1:$NATIVE" --clients "$mixed_clients" --seconds "$soak"
hang_before=$(counts hang cancelled)
run early early "127.0.0.1:$NATIVE" --clients 10 --count "$early"
sleep 2
hang_cancelled=$(( $(counts hang cancelled) - hang_before ))
echo settle > "$out/phase"; settle
end_rss=$(rss) end_fds=$(fds)
echo end > "$out/phase"
sleep "$sample"

abandoned=$(awk '/^abandoned / {n += $2} END {print n + 0}' "$out/phase1.md" "$out/phase2.md")
# Phase 2's mean RSS (KiB) over the second and the last sixth of its samples.
read -r early_rss late_rss < <(awk -F'\t' '$2 == "phase2" {t[n] = $1; r[n++] = $3}
  END {
    d = t[n - 1] - t[0]
    for (i = 0; i < n; i++) {
      if (t[i] >= t[0] + d / 6 && t[i] < t[0] + d / 3) { a += r[i]; na++ }
      if (t[i] >= t[n - 1] - d / 6) { b += r[i]; nb++ }
    }
    printf "%d %d\n", a / (na ? na : 1), b / (nb ? nb : 1)
  }' "$out/samples.tsv")
early_abandoned=$(awk '/^abandoned / {print $2}' "$out/early.md")
peak() { awk -F'\t' -v p="$1" -v c="$2" '$2 == p && $c > m {m = $c} END {print m + 0}' "$out/samples.tsv"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

echo "## Load and soak: native host ($(nproc) cores, shared by the upstream, the client and the proxy)"
echo
echo "### Phase 1: $clients concurrent streaming clients, ${phase1} s"
echo
sed '/^abandoned /d' "$out/phase1.md"
echo "### Phase 2: mixed traffic with faults, $mixed_clients clients, ${soak} s"
echo
sed '/^abandoned /d' "$out/phase2.md"
echo "### Proxy RSS and open file descriptors"
echo
echo "| point | RSS | open fds |"
echo "|---|---:|---:|"
echo "| cold start | $(mib "$cold_rss") | $cold_fds |"
echo "| peak, phase 1 | $(mib "$(peak phase1 3)") | $(peak phase1 4) |"
echo "| idle after phase 1 | $(mib "$warm_rss") | $warm_fds |"
echo "| peak, phase 2 | $(mib "$(peak phase2 3)") | $(peak phase2 4) |"
echo "| idle after the soak (end) | $(mib "$end_rss") | $end_fds |"
echo
echo "Phase 2's RSS, mean over its second sixth: $(mib "$early_rss"); over its last sixth: $(mib "$late_rss")."
echo
echo "Over time (every ${sample} s; every 30 s shown here, all in target/soak/out/samples.tsv):"
echo
echo "| t | phase | RSS | fds |"
echo "|---:|---|---:|---:|"
awk -F'\t' '$1 % 30 < '"$sample"' || $2 != last {printf "| %d s | %s | %.1f MiB | %d |\n", $1, $2, $3 / 1024, $4} {last = $2}' "$out/samples.tsv"
echo

# What the upstream saw per label, and the cancellations each should have: `abandon` one per
# stream the client abandoned, `hang` one per early abandon (within 2 s, while the proxy's own
# deadline is 20 s away), `stall`/`faulty` one per stall (cut by the proxy's deadlines), others
# none.
stats > "$out/upstream-stats.json"
echo "### Upstream: streams cancelled (the connection closed before the stream's end)"
echo
echo "| label | requests | faults drawn (stall / reset / 429) | streams | completed | cancelled | expected |"
echo "|---|---:|---:|---:|---:|---:|---:|"
failures=()
for label in $(jq -r 'keys[]' "$out/upstream-stats.json"); do
  read -r req stalled reset limited streams completed cancelled <<<"$(jq -r --arg l "$label" \
    '.[$l] | "\(.requests) \(.stalled) \(.reset) \(.rate_limited) \(.streams) \(.completed) \(.cancelled)"' \
    "$out/upstream-stats.json")"
  case $label in
    abandon) expected=$abandoned why="streams the client abandoned" ;;
    hang) expected=$early_abandoned why="early abandons, $hang_cancelled of them within 2 s" ;;
    stall | faulty) expected=$stalled why="stalls cut by the proxy's deadlines" ;;
    *) expected=0 why="" ;;
  esac
  echo "| $label | $req | $stalled / $reset / $limited | $streams | $completed | $cancelled | $expected ${why:+($why)} |"
  [ "$cancelled" = "$expected" ] || failures+=("upstream label $label: $cancelled cancelled streams, expected $expected ($why)")
done
echo
[ "$hang_cancelled" = "$early_abandoned" ] \
  || failures+=("early abandons: the upstream saw $hang_cancelled of $early_abandoned closed within 2 s")
[ "$end_fds" -le $((cold_fds + fd_tol)) ] \
  || failures+=("open fds: $end_fds after the soak, $cold_fds at the start (tolerance $fd_tol)")
[ "$end_rss" -le $((cold_rss + rss_retained * 1024)) ] \
  || failures+=("RSS: $end_rss KiB idle after the soak, $cold_rss KiB at the cold start (tolerance $rss_retained MiB)")
[ "$late_rss" -le $((early_rss + early_rss * rss_growth / 100)) ] \
  || failures+=("RSS grew during phase 2: $early_rss KiB early, $late_rss KiB late (tolerance $rss_growth %)")

echo "Client disconnects: $abandoned streams abandoned mid-way, $(counts abandon cancelled) cancelled upstream;" \
  "$early_abandoned abandoned before the first byte, $hang_cancelled cancelled upstream within 2 s."
echo "Tolerances: fds back to the cold start ±$fd_tol; idle RSS at most $rss_retained MiB over the" \
  "cold start; phase 2's RSS growing at most $rss_growth % from its second sixth to its last."
if [ ${#failures[@]} -gt 0 ]; then
  echo
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "All checks passed."
