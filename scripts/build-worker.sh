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
args=(--release --out-dir "${WORKER_OUT_DIR:-build}")
if [ -z "${WASM_OPT_BIN:-}" ]; then
  args+=(--no-opt)
fi
exec worker-build "${args[@]}"
