#!/usr/bin/env bash
# The stream translators' cost per event in wasm: benches/wasm/translate.rs built as the Worker
# is (the release profile, wasm-bindgen, `wasm-opt -O` with worker-build's features) and timed
# in Node's V8 by benches/wasm/run.cjs. `cargo bench --bench core` gives the same translators'
# figures natively. Prints Markdown.
#
# Usage: benches/wasm/run.sh      (EVENTS per round, default 200000; ROUNDS, default 7)
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/bootstrap.sh >&2
out=target/wasm-bench
cargo build --release --target wasm32-unknown-unknown --example wasm_translate \
  2> target/wasm-bench-build.log || { tail -n 30 target/wasm-bench-build.log >&2; exit 1; }
rm -rf "$out"
wasm-bindgen --target nodejs --out-dir "$out" \
  target/wasm32-unknown-unknown/release/examples/wasm_translate.wasm
features=(mutable-globals sign-ext nontrapping-float-to-int bulk-memory multivalue
          reference-types exception-handling)
node_modules/.bin/wasm-opt -O "$out/wasm_translate_bg.wasm" -o "$out/wasm_translate_bg.wasm" \
  --quiet "${features[@]/#/--enable-}"
node_modules/.bin/node benches/wasm/run.cjs "$PWD/$out/wasm_translate.js"
