// A test-only upstream for tests/worker_limits.sh, run by workerd beside the proxy: each path
// prefix (a route's base_url in tests/routes/worker_limits.toml) is one misbehaviour. (Whether the
// proxy aborted is seen by the test on the TCP connection: a workerd stream that sends nothing is
// not told that its client went away.)
//   POST /<case>/...        the misbehaving answer
//   GET  /_status?case=X    {"requests": N}: the requests that case has seen
const HOLD_MS = 10000; // the longest any answer stays open
const cases = new Map();

function sse(event, data) {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

const ANTHROPIC_START = [
  sse("message_start", {
    type: "message_start",
    message: {
      id: "msg_limits", type: "message", role: "assistant", content: [], model: "m",
      stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 },
    },
  }),
  sse("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
].join("");

function anthropicDelta(text) {
  return sse("content_block_delta", {
    type: "content_block_delta", index: 0, delta: { type: "text_delta", text },
  });
}

function openaiChunk(content) {
  const delta = content === null ? { role: "assistant", content: "" } : { content };
  return `data: ${JSON.stringify({
    id: "chatcmpl-limits", object: "chat.completion.chunk", created: 1700000000, model: "m",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: null }],
  })}\n\n`;
}

// A streamed answer: `first` at once, then `next()` every `everyMs` (never, if 0), open until the
// proxy goes away or HOLD_MS pass.
function stream(first, next, everyMs, type) {
  const encoder = new TextEncoder();
  let timer = null;
  let hold = null;
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(encoder.encode(first));
      if (everyMs > 0) timer = setInterval(() => controller.enqueue(encoder.encode(next())), everyMs);
      hold = setTimeout(() => {
        clearInterval(timer);
        controller.close();
      }, HOLD_MS);
    },
    cancel() {
      clearInterval(timer);
      clearTimeout(hold);
    },
  });
  return new Response(body, { headers: { "content-type": type } });
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/_status") {
      const record = cases.get(url.searchParams.get("case")) || { requests: 0 };
      return Response.json({ requests: record.requests });
    }
    const name = url.pathname.split("/")[1];
    const seen = cases.get(name)?.requests ?? 0;
    cases.set(name, { requests: seen + 1 });
    await request.arrayBuffer();
    switch (name) {
      // Anthropic, translated: a first token, then silence.
      case "translated-idle":
        return stream(ANTHROPIC_START + anthropicDelta("Hi"), null, 0, "text/event-stream");
      // Anthropic, translated: a token every 100 ms, without end.
      case "translated-deadline":
        return stream(ANTHROPIC_START + anthropicDelta("Hi"), () => anthropicDelta(" x"), 100,
          "text/event-stream");
      // OpenAI, passed through: a content chunk every 100 ms, without end.
      case "passthrough-deadline":
        return stream(openaiChunk(null) + openaiChunk("Hi"), () => openaiChunk(" x"), 100,
          "text/event-stream");
      // OpenAI, passed through: a first token, then silence.
      case "passthrough-idle":
        return stream(openaiChunk(null) + openaiChunk("Hi"), null, 0, "text/event-stream");
      // A JSON answer cut in the middle, then silence.
      case "json-idle":
        return stream('{"id":"chatcmpl-limits","object":"chat.completion",', null, 0,
          "application/json");
      // No headers until the proxy gives up.
      case "headers-stall":
        await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
        return new Response("late", { status: 500 });
      // A redirect, which the proxy must not follow (the target counts its requests).
      case "redirect":
        return new Response(null, {
          status: 307, headers: { location: `${url.origin}/redirect-target/v1/chat/completions` },
        });
      case "redirect-target":
        return Response.json({ error: { message: "followed a redirect" } }, { status: 500 });
      default:
        return new Response("no such case", { status: 404 });
    }
  },
};
