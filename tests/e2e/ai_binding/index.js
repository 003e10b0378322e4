// A local stand-in for the Workers AI binding, bound to the proxy Worker as `AI` (a service
// binding to this entrypoint) by tests/e2e/worker.sh, so that no test reaches Cloudflare.
//
// `run(model, inputs)` is called over RPC exactly as the proxy calls `env.AI.run`. Arguments
// cross RPC by structured clone, which keeps a JS `Map` a `Map`; JSON.stringify then writes it
// as `{}`, the way the real binding reads it — so if the proxy ever passed nested tool schemas
// as Maps (workers-rs#1050), the recorded input would show them empty and the e2e test fails.
//
// Behaviour lives in tests/emulators/workers_ai_emulator.py (one implementation for the REST
// and binding paths): the inputs are posted there, which records them for the tests
// (GET /_emulator/requests?test_id=...) and answers with what the binding would give:
//   JSON body                  → the output object, returned as is
//   text/event-stream body     → a ReadableStream of those bytes (`stream: true`)
//   `x-ai-throw: 1` + text     → throw new Error(text), e.g. "InferenceUpstreamError: 3040: ..."
import { WorkerEntrypoint } from "cloudflare:workers";

export default class AiBindingStandIn extends WorkerEntrypoint {
  async fetch() {
    return new Response("Workers AI binding stand-in for the e2e tests\n");
  }

  async run(model, inputs) {
    const response = await fetch(`${this.env.EMULATOR_URL}/_emulator/ai-binding/run`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, inputs }),
    });
    if (response.headers.get("x-ai-throw") === "1") {
      throw new Error(await response.text());
    }
    if ((response.headers.get("content-type") || "").startsWith("text/event-stream")) {
      return response.body;
    }
    return await response.json();
  }
}
