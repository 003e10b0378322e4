// The Worker's floors in benches/load/run.sh, timed under plain `workerd serve` beside the
// proxy's Worker:
//   /...       a trivial JavaScript pass-through: the request to the upstream, its response
//              returned untouched (the runtime carries the body)
//   /read/...  the same, but JavaScript reads every chunk of the body and hands it on unchanged:
//              the least any Worker that translates a stream must do per chunk
export default {
  fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path.startsWith("/read/")) return readEveryChunk(env.UPSTREAM + path.slice(5), request);
    return fetch(env.UPSTREAM + path, request);
  },
};

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
