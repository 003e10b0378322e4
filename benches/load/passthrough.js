// The Worker's floors in benches/load/run.sh, timed under plain `workerd serve` beside the
// proxy's Worker:
//   /...       a trivial JavaScript pass-through: the request to the upstream, its response
//              returned untouched (the runtime carries the body)
//   /read/...  the same, but JavaScript reads every chunk of the body and hands it on unchanged:
//              the least any Worker that translates a stream must do per chunk
//   /check/... for a JSON request, what any gateway that fails over on a bad answer must do:
//              read the request, set its model, send it with an abort signal and a timer, read
//              the answer whole and parse it to check it, answer with it
export default {
  fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path.startsWith("/read/")) return readEveryChunk(env.UPSTREAM + path.slice(5), request);
    if (path.startsWith("/check/")) return checkJson(env.UPSTREAM + path.slice(6), request);
    return fetch(env.UPSTREAM + path, request);
  },
};

async function checkJson(url, request) {
  const token = request.headers.get("authorization");
  if (token === null) return new Response("{}", { status: 401 });
  const body = await request.json();
  body.model = "m";
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 60000);
  try {
    const upstream = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: token },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    const text = await upstream.text();
    const answer = JSON.parse(text);
    if (upstream.status !== 200 || answer.error) return new Response("{}", { status: 502 });
    return new Response(text, { headers: { "content-type": "application/json" } });
  } finally {
    clearTimeout(timer);
  }
}

async function readEveryChunk(url, request) {
  const upstream = await fetch(url, request);
  const reader = upstream.body.getReader();
  const body = new ReadableStream({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return new Response(body, upstream);
}
