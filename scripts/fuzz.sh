#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers and translators (tests/fuzz), on the stable toolchain.
#
#   scripts/fuzz.sh smoke              every target for a few seconds (CI); fails on any finding
#   scripts/fuzz.sh long [SECONDS]     every target for SECONDS each (default 300), one at a time
#   scripts/fuzz.sh run TARGET [SECONDS] [LIBFUZZER_ARGS...]
#   scripts/fuzz.sh repro TARGET FILE  runs one input (an artifact) and prints the panic
#   scripts/fuzz.sh list               the targets
#
# The targets are libFuzzer binaries (the libfuzzer-sys crate, which builds libFuzzer from
# source with the C++ compiler) instrumented by rustc's own SanitizerCoverage pass: stable
# `-C passes=sancov-module` plus its LLVM options, which is what cargo-fuzz passes too, minus
# the sanitizer (`--sanitizer none`). So no nightly, no cargo-fuzz and no RUSTC_BOOTSTRAP.
# Each target's corpus starts from seeds written from the repository's fixtures
# (tests/fuzz/seeds.sh) and grows in tests/fuzz/corpus/TARGET; findings land in
# tests/fuzz/artifacts, logs in tests/fuzz/logs (all three ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz=tests/fuzz
triple=$(rustc -vV | sed -n 's/^host: //p')
# An explicit --target keeps these flags off build scripts and proc macros (as cargo-fuzz does).
bin_dir=$fuzz/target/$triple/fuzz
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cforce-frame-pointers"

targets() {
  sed -n 's/^name = "\(.*\)"$/\1/p' "$fuzz/Cargo.toml" | grep -v '^ai-worker-proxy-fuzz$'
}

build() {
  cargo build --manifest-path "$fuzz/Cargo.toml" --target-dir "$fuzz/target" \
    --profile fuzz --target "$triple" --bins
}

# run_one TARGET SECONDS [ARGS...]: fuzzes TARGET, prints a summary line, returns its status.
run_one() {
  local target=$1 seconds=$2 status=0
  shift 2
  mkdir -p "$fuzz/corpus/$target" "$fuzz/artifacts" "$fuzz/logs"
  local log=$fuzz/logs/$target.log
  # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: one that takes 2 GB, a leak.
  "$bin_dir/$target" "$fuzz/corpus/$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$fuzz/artifacts/$target-" \
    "$@" >"$log" 2>&1 || status=$?
  local last execs rate
  last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  printf '%-20s %s execs=%-9s exec/s=%-7s %s\n' "$target" \
    "$([ "$status" = 0 ] && echo ok || echo "FAILED($status)")" "${execs:-?}" "${rate:-?}" \
    "$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9A-Za-z]+' <<<"$last" || true)"
  if [ "$status" != 0 ]; then
    grep -E -m1 -A3 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /' || true
    ls -t "$fuzz/artifacts/$target-"* 2>/dev/null | head -1 | sed 's/^/    input: /' || true
  fi
  return "$status"
}

run_all() {
  local seconds=$1 failed=0 target
  build
  "$fuzz/seeds.sh" "$fuzz/corpus"
  for target in $(targets); do
    run_one "$target" "$seconds" || failed=$((failed + 1))
  done
  if [ "$failed" != 0 ]; then
    echo "fuzz: $failed target(s) found a crash, hang or leak; logs in $fuzz/logs" >&2
    exit 1
  fi
}

case ${1:-smoke} in
  smoke) run_all "${FUZZ_SMOKE_SECONDS:-5}" ;;
  long) run_all "${2:-300}" ;;
  run)
    build
    "$fuzz/seeds.sh" "$fuzz/corpus"
    run_one "$2" "${3:-300}" "${@:4}"
    ;;
  repro)
    build
    "$bin_dir/$2" "$3"
    ;;
  list) targets ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
