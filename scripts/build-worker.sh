#!/usr/bin/env bash
# Builds the Worker (build/index.js + wasm) with worker-build, using the wasm-bindgen CLI and
# wasm-opt installed by bootstrap.sh: worker-build's own downloads from GitHub cannot work on
# machines without general internet access. wrangler.toml runs this as its build command.
# ROUTES_TOML selects the routes file, as for cargo build. WORKER_OUT_DIR (default build/, relative
# to the project root) is where the Worker is written, for a test that must not share build/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh rust
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
if [ -z "${WASM_OPT_BIN:-}" ] && [ -x node_modules/.bin/wasm-opt ]; then
  export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
fi
# A lean entry module (see the file); worker-build then uses its bundler-target pipeline.
export CUSTOM_SHIM="$PWD/src/hosts/worker/shim.js"
out="${WORKER_OUT_DIR:-build}"
args=(--release --out-dir "$out")
if [ -z "${WASM_OPT_BIN:-}" ]; then
  args+=(--no-opt)
fi
worker-build "${args[@]}"
# worker-build has wasm-opt keep the name section (`--debuginfo`): 165 KB, 43 KB gzipped, about
# 15% of the Worker, that only puts function names into a panic's stack trace, and the request
# paths do not panic. A second wasm-opt run without passes writes the module without it; the
# features are worker-build's own list, so nothing newer than workerd reads is emitted.
if [ -n "${WASM_OPT_BIN:-}" ]; then
  features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue
            reference-types exception-handling)
  "$WASM_OPT_BIN" "$out/worker/index.wasm" -o "$out/worker/index.wasm" --quiet \
    "${features[@]/#/--enable-}"
fi
