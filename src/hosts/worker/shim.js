// The Worker's entry module, given to worker-build as CUSTOM_SHIM: the wasm module's `fetch`
// exported as a plain module handler. (worker-build's default entry wraps a WorkerEntrypoint
// class in Proxies on every request, which costs more CPU than the proxy's own routing.)
import * as imports from "./index_bg.js";
export * from "./index_bg.js";
import wasmModule from "./index.wasm";
$SNIPPET_JS_IMPORTS

function start() {
  const instance = new WebAssembly.Instance(wasmModule, {
    "./index_bg.js": imports,
    $SNIPPET_WASM_IMPORTS
  });
  imports.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start?.();
}
start();

// A Rust panic aborts with a trap, after which the instance's memory cannot be trusted: the
// next request starts a fresh instance. (The proxy is written not to panic.)
let trapped = false;
addEventListener("error", (event) => {
  if (event.error instanceof WebAssembly.RuntimeError) trapped = true;
});

export default {
  fetch(request, env, ctx) {
    if (trapped) {
      trapped = false;
      start();
    }
    return imports.fetch(request, env, ctx);
  },
};
