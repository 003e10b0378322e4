// A test-only Worker for tests/key_health_do.sh, bound to the same KEY_HEALTH namespace as the
// proxies: it calls the KeyHealth object's RPC methods the way src/hosts/worker/health.rs does,
// so the test can drive the object with curl and see what the proxies wrote.
//   GET  /snapshot                          the object's snapshot() (JSON text)
//   POST /record?key=K&until=MS&strikes=N   record(K, MS, N), then the snapshot
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const ns = env.KEY_HEALTH;
    const object = ns.get(ns.idFromName("global"));
    if (url.pathname === "/record" && request.method === "POST") {
      const q = url.searchParams;
      await object.record(q.get("key"), Number(q.get("until")), Number(q.get("strikes")));
    } else if (url.pathname !== "/snapshot") {
      return new Response("not found", { status: 404 });
    }
    return new Response(await object.snapshot(), { headers: { "content-type": "application/json" } });
  },
};
