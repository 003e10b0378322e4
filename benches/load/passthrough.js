// The Worker's floor in benches/load/run.sh: a trivial JavaScript pass-through Worker that
// hands the request to the upstream and returns its response untouched, timed under plain
// `workerd serve` beside the proxy's Worker.
export default {
  fetch(request, env) {
    return fetch(env.UPSTREAM + new URL(request.url).pathname, request);
  },
};
