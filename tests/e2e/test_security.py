"""Security: secrets never leave the proxy, a CORS preflight never runs the request, nothing a
client sends changes where the proxy connects, and a client that leaves cancels its upstream
request. Every test runs on both hosts (``tests/e2e/run.sh native`` / ``worker``).

* **No secret value** (any value in tests/e2e/secrets.env: the provider keys, the Workers AI
  account id, the proxy token) in a response body or header, streamed or not, nor in the
  proxy's log (``E2E_PROXY_LOG_FILE``, exported by run.sh; every test here checks the lines
  logged while it ran): for every route of tests/routes/e2e.toml (so every emulator fault mode,
  in every position), for an upstream that repeats the key it received in its error (the
  emulators' ``emulator_echo_key=MODE`` marker: every status, plain text, in-band before and
  after the first token), and for bad input: broken JSON, huge headers, wrong tokens close to
  the real one, the token where the proxy does not read it (query string, other headers).
* **CORS preflight**: an ``OPTIONS`` carrying a whole chat request and a valid token gets the
  preflight answer (204, no body) and no upstream sees anything.
* **Where the proxy connects** is routes.toml's alone: body fields (``base_url``, ``api_key``,
  ``headers``...), request headers (``Host``, ``X-Forwarded-*``, ``Forwarded``,
  ``X-Original-URL``, provider key headers...), the request target and its query string change
  neither the upstream path nor its key nor its headers; a model that is not a route (``../``,
  ``?``, ``#``, ``@``, URLs, ``%2e%2e``, secret names) is a 404 ``model_not_found`` that reaches
  no upstream.
* **Client disconnects cancel the upstream request**, on a pass-through (OpenAI) and two
  translated (Anthropic, Gemini) routes, streamed and not: the client reads the first event (or
  waits until the upstream request has started) and closes; the emulator's never-ending answer
  (``emulator_endless``) must see its connection closed within a couple of seconds, long
  before the 6 s ``total_timeout`` would have ended it anyway.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import pytest

from conftest import (E2E_HOST, EMULATOR_URL, KEY, PROXY_LOG_FILE, PROXY_URL, SECRETS, TOKEN,
                      assert_error_shape, assert_no_secrets, parse_sse, proxy_log_since,
                      proxy_log_size, route_names, user)

CHAT = "/v1/chat/completions"
OK = KEY["E2E_KEY_OK"]
TOTAL_TIMEOUT_S = 6.0  # [server] total_timeout of tests/routes/e2e.toml
PROXY = urlsplit(PROXY_URL)
WORKER = E2E_HOST == "worker"


def new_id() -> str:
    return "t-" + uuid.uuid4().hex


def tagged(route: str, text: str, test_id: str, **extra) -> dict:
    """A chat request every emulator files under ``test_id``: the body's ``test_id`` (OpenAI),
    ``user`` (Anthropic's ``metadata.user_id``), ``[test_id=…]`` in the text (Gemini) and the
    bare id in the text (Workers AI)."""
    return {"model": route, "messages": user(f"{text} [test_id={test_id}]"), "test_id": test_id,
            "user": test_id, **extra}


def leaked(text: str) -> list[str]:
    """The names of the secrets whose value appears in ``text``."""
    return [name for name, value in SECRETS.items() if value and value in text]


# What the emulators' ``emulator_echo_key`` errors say: their log lines are the echo probes' own
# test's (test_key_echoed_by_the_upstream_is_never_logged), the other log checks skip them.
ECHO_TEXT = "Incorrect API key provided: "


def log_lines_with_secrets(text: str, echoes: bool = False) -> list[str]:
    return [f"{leaked(line)}: {line[:300]}" for line in text.splitlines()
            if leaked(line) and (echoes or ECHO_TEXT not in line)]


@pytest.fixture(scope="module")
def module_log_start(proxy_url) -> int:
    return proxy_log_size()


@pytest.fixture(autouse=True)
def no_secret_logged(proxy_url, module_log_start):
    """Whatever the proxy logged while a test ran holds no secret value."""
    start = proxy_log_size()
    yield
    bad = log_lines_with_secrets(proxy_log_since(start))
    assert not bad, f"secret values in {PROXY_LOG_FILE}:\n" + "\n".join(bad)


# One client for every request (a new one per request would load the CA bundle each time). It is
# thread-safe, and sized for the concurrent sweeps below.
HTTP = httpx.Client(limits=httpx.Limits(max_connections=200, max_keepalive_connections=0))


@dataclass
class Answer:
    status: int | None = None
    elapsed: float = 0.0
    headers: dict = field(default_factory=dict)
    raw: bytes = b""
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def assert_no_secrets(self, *extra: str) -> None:
        """No secret value (nor any of ``extra``) in the answer's headers or body."""
        assert self.error is None, f"request failed: {self.error!r}"
        blob = json.dumps(self.headers) + "\n" + self.text
        assert not leaked(blob), f"{leaked(blob)} leaked: {self.headers} {self.text[:800]!r}"
        for value in extra:
            assert value not in blob, f"{value!r} echoed: {self.headers} {self.text[:800]!r}"


def send(body=None, *, content: bytes | None = None, headers: dict | None = None, auth: bool = True,
         path: str = CHAT, method: str = "POST", params=None, timeout: float = 20.0) -> Answer:
    """One request, its raw answer (an SSE body read whole); a transport error is kept, not raised."""
    h = {"content-type": "application/json"}
    if auth:
        h["authorization"] = f"Bearer {TOKEN}"
    h.update(headers or {})
    if content is None and body is not None:
        content = json.dumps(body).encode()
    out, start = Answer(), time.monotonic()
    try:
        with HTTP.stream(method, f"{PROXY_URL}{path}", content=content, headers=h, params=params,
                         timeout=timeout) as r:
            out.status, out.headers = r.status_code, dict(r.headers)
            out.raw = b"".join(r.iter_bytes())
    except httpx.HTTPError as exc:
        out.error = exc
    out.elapsed = time.monotonic() - start
    return out


def recorded(test_id: str) -> list[dict]:
    """conftest's ``recorded``, through the shared client."""
    r = HTTP.get(f"{EMULATOR_URL}/_emulator/requests", params={"test_id": test_id}, timeout=10)
    r.raise_for_status()
    return r.json()


def assert_healthy() -> None:
    r = HTTP.get(f"{PROXY_URL}/health", timeout=10)
    assert r.status_code == 200, r.text


def content_of(answer: Answer, stream: bool) -> str:
    """The answer's text: the message's content, or the stream's content deltas joined."""
    if not stream:
        return json.loads(answer.raw)["choices"][0]["message"]["content"]
    return "".join(ch["delta"].get("content") or "" for p in parse_sse(answer.raw) if p != "[DONE]"
                   for ch in json.loads(p)["choices"])


def stream_error_events(raw: bytes) -> list[dict]:
    out = []
    for payload in parse_sse(raw):
        try:
            event = json.loads(payload)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and "error" in event:
            out.append(event)
    return out


# =========================================================================== 1. no secret leaks

# The cool-down routes' state outlives a request (a key cooling for 30 s), so they are left to
# their own tests (test_key_health.py); every other route runs, each fault key in each position.
SWEEP = [r for r in route_names() if not r.startswith("cool-")]


@pytest.fixture(scope="module")
def sweep(proxy_url) -> dict[tuple[str, bool], Answer]:
    """Every route, plain and streamed, at once (the slowest end at the 6 s total_timeout)."""
    cells = [(route, stream) for route in SWEEP for stream in (False, True)]

    def run(cell):
        route, stream = cell
        return send(tagged(route, "one two three", new_id(), stream=stream), timeout=30)

    start = proxy_log_size()
    with ThreadPoolExecutor(max_workers=48) as pool:
        out = dict(zip(cells, pool.map(run, cells)))
    time.sleep(0.3)
    out["log"] = proxy_log_since(start)
    return out


def test_sweep_covers_every_fault_mode():
    faults = ("stallheaders", "stallfirst", "drip", "resetheaders", "resetmid", "429", "429hint",
              "529", "badjson", "badsse", "truncated", "endless", "redirect")
    for fault in faults:
        for position in ("first", "last", "end"):
            assert f"f-{fault}-{position}" in SWEEP
    assert {"f-anthropic-stallfirst", "f-gemini-stallheaders", "network", "unset-key", "all-fail",
            "midstream", "stream-drop", "wai-failover", "f-subrequests"} <= set(SWEEP)


def test_no_secret_logged_by_any_route(sweep):
    """What the proxy logged while every route ran (failovers, interrupted streams, deadlines)."""
    assert "route=f-429-end" in sweep["log"] or WORKER, "the sweep's attempts are not in the log"
    bad = log_lines_with_secrets(sweep["log"])
    assert not bad, f"secret values in {PROXY_LOG_FILE}:\n" + "\n".join(bad)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", SWEEP)
def test_no_secret_in_any_answer(sweep, route, stream):
    answer = sweep[(route, stream)]
    answer.assert_no_secrets()
    assert answer.status is not None
    if answer.headers.get("content-type", "").startswith("application/json") and answer.status >= 400:
        assert_error_shape(json.loads(answer.raw))
    for event in stream_error_events(answer.raw) if stream and answer.status == 200 else []:
        assert_no_secrets(event)


# ---- an upstream that repeats the key it was sent

ECHO_ROUTES = {  # route: (upstream path, its key)
    "plain": "/v1/chat/completions",
    "gpt": "/v1/chat/completions",
    "claude": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:",
}
ECHO_MODES = ("400", "400text", "401", "404", "422", "429", "500", "503", "first", "mid")
# The proxy puts the key's name where an upstream wrote its value (src/core/redact.rs): in error
# objects, failure messages, log lines and every streamed byte it handles. The one exception is
# documented (README, "Limits"): on the Worker a pass-through stream is piped by the runtime after
# its first token, no proxy code per chunk, so a key the upstream writes into the rest of a
# successful stream is not seen there (PROXY_RELAY=watch closes it). Strict: a cell that starts
# passing fails until its entry is removed.
ECHO_PIPED = ("the Worker pipes a pass-through stream after its first token: what follows is not "
              "redacted (README, Limits; PROXY_RELAY=watch redacts it)")
# The e2e Worker is bound to a USAGE dataset (tests/e2e/worker.sh), so it reads every metered
# stream for its usage, redacting it as it goes: nothing is piped here. The piped case is
# tests/worker_limits.sh's.
KNOWN_ECHO_LEAKS: set = set()


@pytest.fixture(scope="module")
def echoes(proxy_url) -> dict:
    cells = [(route, mode, stream) for route in ECHO_ROUTES for mode in ECHO_MODES
             for stream in (False, True)]

    def run(cell):
        route, mode, stream = cell
        test_id = new_id()
        answer = send(tagged(route, f"probe emulator_echo_key={mode}", test_id, stream=stream))
        return answer, test_id

    start = proxy_log_size()
    with ThreadPoolExecutor(max_workers=32) as pool:
        out = dict(zip(cells, pool.map(run, cells)))
    out["log_start"] = start
    return out


def test_key_echoed_by_the_upstream_is_never_logged(echoes):
    # the Worker's lines reach wrangler's log a little later
    bad = wait_for(lambda: log_lines_with_secrets(proxy_log_since(echoes["log_start"]), echoes=True), 2)
    assert not bad, f"secret values in {PROXY_LOG_FILE}:\n" + "\n".join(bad)


@pytest.mark.parametrize("route,mode,stream", [
    pytest.param(route, mode, stream, id=f"{route}-{mode}-{'stream' if stream else 'plain'}",
                 marks=[pytest.mark.xfail(strict=True, reason=ECHO_PIPED)]
                 if (route, mode, stream) in KNOWN_ECHO_LEAKS else [])
    for route in ECHO_ROUTES for mode in ECHO_MODES for stream in (False, True)])
def test_key_echoed_by_the_upstream_never_reaches_the_client(echoes, route, mode, stream):
    """The emulator answers with an error (and an ``x-echo-key`` header) that repeats the key it
    received; neither the key nor the upstream's header reaches the client."""
    answer, test_id = echoes[(route, mode, stream)]
    records = recorded(test_id)
    assert records and all(r["key"] == OK and r["path"].startswith(ECHO_ROUTES[route]) for r in records), records
    answer.assert_no_secrets()
    assert "x-echo-key" not in {k.lower() for k in answer.headers}


# ---- bad input

def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"user:{token}".encode()).decode()


def _encoded(value: str) -> str:
    """Every byte percent-encoded: a server that reads the query gets the value back, but an
    access log that prints the raw URL (wrangler dev's) does not hold it."""
    return "".join(f"%{b:02X}" for b in value.encode())


# (headers, query) that carry no valid token where the proxy reads it: 401, no upstream request.
WRONG_AUTH = {
    "prefix": ({"authorization": f"Bearer {TOKEN[:-1]}"}, None),
    "half": ({"authorization": f"Bearer {TOKEN[:len(TOKEN) // 2]}"}, None),
    "one-more-char": ({"authorization": f"Bearer {TOKEN}x"}, None),
    "doubled": ({"authorization": f"Bearer {TOKEN}{TOKEN}"}, None),
    "cyclic-prefix": ({"authorization": f"Bearer {(TOKEN[:5] * 8)[:len(TOKEN)]}"}, None),
    "upper-case": ({"authorization": f"Bearer {TOKEN.upper()}"}, None),
    "two-tokens": ({"authorization": f"Bearer {TOKEN} {TOKEN}"}, None),
    "bearer-twice": ({"authorization": f"Bearer Bearer {TOKEN}"}, None),
    "basic": ({"authorization": _basic(TOKEN)}, None),
    "other-scheme": ({"authorization": f"Token {TOKEN}"}, None),
    "empty-bearer": ({"authorization": "Bearer"}, None),
    "x-api-key-wrong": ({"x-api-key": TOKEN[:-1]}, None),
    "x-api-key-under-a-wrong-authorization": ({"x-api-key": TOKEN, "authorization": f"Bearer {TOKEN[:-1]}"}, None),
    "api-key": ({"api-key": TOKEN}, None),
    "x-goog-api-key-wrong": ({"x-goog-api-key": TOKEN[:-1]}, None),
    "proxy-authorization": ({"proxy-authorization": f"Bearer {TOKEN}"}, None),
    "cookie": ({"cookie": f"token={TOKEN}; api_key={TOKEN}"}, None),
    "query-encoded": ({}, "&".join(f"{k}={_encoded(TOKEN)}" for k in
                                   ("key", "api_key", "access_token", "token", "auth", "authorization"))),
}
if not WORKER:
    # wrangler dev's access log prints request URLs as sent: only the native host gets the token
    # literally in the query string (it logs no URL).
    WRONG_AUTH["query-literal"] = ({}, f"key={TOKEN}&api_key={TOKEN}&access_token={TOKEN}")


@pytest.mark.parametrize("case", list(WRONG_AUTH))
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_wrong_or_misplaced_token_is_401_and_never_echoed(proxy_url, case, stream):
    headers, query = WRONG_AUTH[case]
    test_id = new_id()
    body = tagged("plain", "should not arrive", test_id, stream=stream, api_key=TOKEN[:-1])
    path = CHAT + (f"?{query}" if query else "")
    answer = send(body, headers=headers, auth=False, path=path)
    assert answer.error is None, answer.error
    assert answer.status == 401, (answer.status, answer.text[:300])
    assert assert_error_shape(json.loads(answer.raw))["code"] == "invalid_api_key"
    # what was presented in place of the token (a prefix, a variant): never repeated either
    presented = [v.split(" ", 1)[-1] for v in headers.values() if v.split(" ", 1)[-1][:4] == TOKEN[:4]]
    answer.assert_no_secrets(*presented, TOKEN[:-1])
    assert recorded(test_id) == []


@pytest.mark.parametrize("header", ["x-api-key", "x-goog-api-key"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_the_token_in_the_sdks_key_headers_opens_the_openai_surface_too(proxy_url, stream, header):
    # What the Anthropic (ANTHROPIC_API_KEY) and Gemini SDKs send, accepted on every endpoint.
    test_id = new_id()
    answer = send(tagged("plain", "hello", test_id, stream=stream), headers={header: TOKEN}, auth=False)
    assert answer.status == 200, (answer.status, answer.text[:300])
    assert len(recorded(test_id)) == 1
    answer.assert_no_secrets()


def test_huge_and_many_headers_are_refused_or_served_without_leaking(proxy_url):
    test_id = new_id()
    cases = {
        "one 60 KiB header": ({"x-big": "a" * 60_000}, {200, 400, 413, 431}),
        "300 headers": ({f"x-h-{i}": "v" * 100 for i in range(300)}, {200, 400, 413, 431}),
        "a 200 KiB token": ({"authorization": "Bearer " + "a" * 200_000}, {400, 401, 413, 431}),
        "the token then 60 KiB": ({"authorization": f"Bearer {TOKEN}" + "a" * 60_000}, {400, 401, 413, 431}),
    }
    for name, (headers, allowed) in cases.items():
        answer = send(tagged("plain", name, test_id), headers=headers)
        if answer.error is not None:
            # refusing by closing the connection is fine too: nothing can leak
            assert isinstance(answer.error, (httpx.RemoteProtocolError, httpx.ReadError,
                                             httpx.WriteError)), (name, answer.error)
        else:
            assert answer.status in allowed, (name, answer.status, answer.text[:300])
            answer.assert_no_secrets()
        assert_healthy()
    # nothing got through but the requests with the right token and a big, but legal, header
    for r in recorded(test_id):
        assert (r["path"], r["key"]) == ("/v1/chat/completions", OK)
        assert "a" * 1000 not in json.dumps(r["headers"])  # no client header was forwarded


NEST = 100_000
BAD_BODIES = {  # name: (raw body, statuses it may get)
    "truncated": (b'{"model": "plain", "messages": [', {400}),
    "not-json": (b"model=plain&messages=hi", {400}),
    "empty": (b"", {400}),
    "array": (b"[]", {400}),
    "string": (b'"plain"', {400}),
    "null": (b"null", {400}),
    "invalid-utf8": (b'{"model": "plain", "messages": [{"role": "user", "content": "\xff\xfe\xfd"}]}', {400}),
    "bom": (b"\xef\xbb\xbf" + json.dumps({"model": "plain", "messages": user("bom")}).encode(), {200, 400}),
    "deep-array": (b"[" * NEST + b"]" * NEST, {400, 413}),
    "deep-field": (b'{"model":"plain","messages":[{"role":"user","content":"x"}],"x":'
                   + b"[" * NEST + b"]" * NEST + b"}", {200, 400, 413}),
    "deep-content": (b'{"model":"plain","messages":[{"role":"user","content":' + b'{"a":' * 20_000
                     + b"1" + b"}" * 20_000 + b"}]}", {400, 413}),
    "model-number": (json.dumps({"model": 123, "messages": user("x")}).encode(), {400}),
    "model-null": (json.dumps({"model": None, "messages": user("x")}).encode(), {400}),
    "model-object": (json.dumps({"model": {"base_url": "http://127.0.0.1:18080/hijack"},
                                 "messages": user("x")}).encode(), {400}),
    "messages-string": (json.dumps({"model": "plain", "messages": "hi"}).encode(), {400}),
    "messages-numbers": (json.dumps({"model": "plain", "messages": [1, 2]}).encode(), {400}),
    "stream-string": (json.dumps({"model": "plain", "messages": user("x"), "stream": "yes"}).encode(), {200, 400}),
    "nul-bytes": (json.dumps({"model": "plain\u0000", "messages": user("x\u0000")}).encode(), {400, 404}),
    "huge-model-name": (json.dumps({"model": "m" * 200_000, "messages": user("x")}).encode(), {400, 404}),
    "duplicate-model": (b'{"model": "no-such-route", "model": "plain", "messages": '
                        + json.dumps(user("dup")).encode() + b"}", {200, 400, 404}),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_body_is_an_error_without_secrets(proxy_url, name):
    before = recorded_count()
    raw, allowed = BAD_BODIES[name]
    answer = send(content=raw)
    assert answer.error is None, answer.error
    assert answer.status in allowed, (answer.status, answer.text[:300])
    answer.assert_no_secrets()
    if answer.status != 200:
        assert_error_shape(json.loads(answer.raw))
        assert recorded_count() == before, "an invalid request reached an upstream"
    assert_healthy()


def test_wrong_content_type_and_method_leak_nothing(proxy_url):
    body = json.dumps({"model": "plain", "messages": user("ctype")}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = send(content=body, headers={"content-type": ctype})
        assert answer.status in (200, 400, 415), (ctype, answer.status)
        answer.assert_no_secrets()
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        answer = send(content=body, method=method)
        assert answer.status in (404, 405), (method, answer.status)
        answer.assert_no_secrets()


def recorded_count() -> int:
    """How many upstream requests the emulator has recorded so far, whatever their tag."""
    return threads()["requests"]


# =========================================================================== 2. CORS preflight

PREFLIGHT_HEADERS = {
    "origin": "https://app.example",
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type",
}


@pytest.mark.parametrize("path", [CHAT, "/chat/completions", "/v1/chat/completions/chat/completions"])
@pytest.mark.parametrize("variant", ["preflight", "bare-options", "method-override"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_options_never_runs_the_request(proxy_url, path, variant, stream):
    """An OPTIONS carrying a whole, valid, authorised chat request is answered as a preflight:
    204, no body, and no upstream sees it. The same body POSTed does reach the emulator, so the
    tag would have been recorded."""
    test_id = new_id()
    body = tagged("gpt", "preflight must not run me", test_id, stream=stream)
    headers = {"authorization": f"Bearer {TOKEN}"}
    if variant == "preflight":
        headers.update(PREFLIGHT_HEADERS)
    elif variant == "method-override":
        headers.update({"x-http-method-override": "POST", "x-http-method": "POST",
                        "x-method-override": "POST"})
    answer = send(body, method="OPTIONS", headers=headers, path=path)
    assert answer.status == 204, (answer.status, answer.text[:300])
    assert answer.raw == b""
    assert answer.headers.get("access-control-allow-origin") == "*"
    assert "POST" in answer.headers.get("access-control-allow-methods", "")
    answer.assert_no_secrets()
    time.sleep(0.2)  # anything the request might have started in the background
    assert recorded(test_id) == []
    # control: the same request as a POST is recorded under the same tag
    control = send(body, path=path)
    assert control.status == 200, control.text[:300]
    assert [(r["path"], r["key"]) for r in recorded(test_id)] == [("/v1/chat/completions", OK)]


# =========================================================================== 3. where the proxy connects

HIJACK_URL = "http://127.0.0.1:18080/hijack/v1"
CLIENT_KEY = "client-key-ok-zz9"  # the emulators would answer it (its "ok" token)
HIJACK_FIELDS = {
    "base_url": HIJACK_URL, "api_base": HIJACK_URL, "baseURL": HIJACK_URL, "url": HIJACK_URL + "/chat/completions",
    "endpoint": HIJACK_URL, "host": "127.0.0.1:18080", "hostname": "evil.example", "port": 18080,
    "path": "/hijack/v1/chat/completions", "proxy": "http://127.0.0.1:18080", "azure_endpoint": HIJACK_URL,
    "api_key": CLIENT_KEY, "apiKey": CLIENT_KEY, "key": CLIENT_KEY, "account_id": "evil-account",
    "provider": "openai", "target": HIJACK_URL, "upstream": HIJACK_URL,
    "headers": {"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY, "host": "evil.example"},
    "extra_headers": {"authorization": f"Bearer {CLIENT_KEY}", "x-goog-api-key": CLIENT_KEY},
    "default_headers": {"x-api-key": CLIENT_KEY}, "extra_query": {"key": CLIENT_KEY},
}
HIJACK_HEADERS = {
    "host": "evil.example",
    "x-forwarded-host": "evil.example",
    "x-forwarded-proto": "https",
    "x-forwarded-port": "4443",
    "x-forwarded-prefix": "/hijack",
    "forwarded": "for=192.0.2.1;host=evil.example;proto=https",
    "x-original-url": "/hijack/v1/chat/completions",
    "x-rewrite-url": "/hijack/v1/chat/completions",
    "x-http-method-override": "GET",
    "x-api-key": CLIENT_KEY,
    "api-key": CLIENT_KEY,
    "x-goog-api-key": CLIENT_KEY,
    "anthropic-version": "1999-01-01",
    "anthropic-beta": "evil-beta",
    "openai-organization": "org-evil",
    "x-target-url": HIJACK_URL,
}
ACCOUNT = SECRETS["E2E_CF_ACCOUNT"]
ROUTED = {  # route: (expected upstream path for (plain, stream), configured keys in order)
    "plain": (("/v1/chat/completions",) * 2, [OK]),
    "gpt": (("/v1/chat/completions",) * 2, [OK]),
    "claude": (("/v1/messages",) * 2, [OK]),
    "gemini": (("/v1beta/models/gemini-2.5-flash:generateContent",
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"), [OK]),
    "wai-rest": ((f"/client/v4/accounts/{ACCOUNT}/ai/run/@cf/meta/llama-4-scout-17b-16e-instruct",) * 2,
                 [KEY["E2E_KEY_429"], OK]),
}
MARKS = (CLIENT_KEY, "evil", "hijack", "1999-01-01", "4443", "192.0.2.1")


def assert_went_where_routes_say(test_id: str, route: str, stream: bool) -> None:
    paths, keys = ROUTED[route]
    records = recorded(test_id)
    assert [(r["path"], r["key"]) for r in records] == [(paths[stream], k) for k in keys], records
    for r in records:
        headers = json.dumps(r["headers"])
        assert not [m for m in MARKS if m in headers], f"a client header reached the upstream: {headers}"
        assert TOKEN not in json.dumps(r), "the proxy token reached the upstream"
        assert r["headers"].get("host", "").split(":")[0] in ("127.0.0.1", "localhost"), r["headers"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("route", list(ROUTED))
def test_body_fields_and_headers_cannot_redirect_the_upstream(proxy_url, route, stream):
    test_id = new_id()
    body = tagged(route, "route me", test_id, stream=stream, **HIJACK_FIELDS)
    answer = send(body, headers=HIJACK_HEADERS, path=CHAT + f"?base_url={quote(HIJACK_URL)}&key={CLIENT_KEY}")
    assert answer.status == 200, (answer.status, answer.text[:500])
    assert content_of(answer, stream).startswith("echo: route me")
    answer.assert_no_secrets()
    assert_went_where_routes_say(test_id, route, stream)


def raw_http(request: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are (no client-side normalisation) and read the answer to the close."""
    with socket.create_connection((PROXY.hostname, PROXY.port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        try:
            while True:
                piece = s.recv(65536)
                if not piece:
                    break
                data += piece
        except (ConnectionResetError, socket.timeout):
            pass
    return data


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:18080/v1/chat/completions",       # absolute form naming the emulator itself
    "http://evil.example/v1/chat/completions",
    "/v1/chat/completions?base_url=http://127.0.0.1:18080/hijack/v1",
    "/v1/chat/completions/../../hijack/v1/chat/completions",
    "/v1/chat/completions/..%2f..%2fhijack/v1/chat/completions",
    "//127.0.0.1:18080/hijack/v1/chat/completions",
    "/%2e%2e/hijack/v1/chat/completions",
    "/v1/chat/completions#http://127.0.0.1:18080/hijack",
])
def test_request_target_cannot_redirect_the_upstream(proxy_url, target):
    """Whatever the request line says, the proxy either serves the route (its upstream, its key)
    or refuses; no upstream request goes anywhere else."""
    test_id = new_id()
    body = json.dumps(tagged("plain", "target", test_id)).encode()
    head = (f"POST {target} HTTP/1.1\r\nHost: {PROXY.hostname}:{PROXY.port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    data = raw_http(head + body)
    assert data.startswith(b"HTTP/1."), data[:200]
    status = int(data.split(b" ", 2)[1])
    assert status in (200, 400, 404), data[:500]
    assert not leaked(data.decode("utf-8", "replace"))
    records = recorded(test_id)
    assert [(r["path"], r["key"]) for r in records] == ([("/v1/chat/completions", OK)] if status == 200 else [])


CRAFTED_MODELS = [
    "../plain", "plain/../gpt", "./plain", "plain/", "/plain", "plain?x=1", "plain#frag", "plain@evil.example",
    "user:pass@plain", "http://127.0.0.1:18080/v1", "http://127.0.0.1:18080/hijack/v1/chat/completions",
    "//127.0.0.1:18080/hijack", "%2e%2e/plain", "%2e%2e%2fplain", "..%2fplain", "plain%00", "plain\u0000",
    "plain\r\nx-evil: 1", "gemini-2.5-flash", "emu-model", "gpt-4o-mini", "anthropic/claude-sonnet-4-20250514",
    "@cf/meta/llama-3.1-8b-instruct", "../../client/v4/accounts/x/ai/run/@cf/meta/llama",
    "E2E_KEY_OK", "${E2E_KEY_OK}", "$E2E_PROXY_TOKEN", "{{E2E_KEY_OK}}", "env:E2E_KEY_OK", "%(E2E_KEY_OK)s",
    "", " ", "plain ", " plain", "PLAIN",
]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_model_that_is_no_route_is_404_and_reaches_no_upstream(proxy_url, stream):
    """Upstream model ids, paths, URLs, encodings and secret names are not routes: 404
    model_not_found (400 for an empty name), and no emulator saw any of them."""
    ids = {}
    for model in CRAFTED_MODELS:
        test_id = ids[model] = new_id()
        answer = send(tagged(model, "crafted", test_id, stream=stream))
        answer.assert_no_secrets()
        if model.strip() == "":
            assert answer.status in (400, 404), (model, answer.status, answer.text[:300])
            continue
        if model in route_names():  # none is
            continue
        assert answer.status == 404, (model, answer.status, answer.text[:300])
        err = assert_error_shape(json.loads(answer.raw))
        assert err["code"] == "model_not_found", (model, err)
    time.sleep(0.2)
    for model, test_id in ids.items():
        assert recorded(test_id) == [], f"model {model!r} reached an upstream"


def test_secret_templates_in_the_request_are_sent_as_written(proxy_url):
    """Text that looks like a secret reference reaches the upstream literally: nothing in a
    request is ever expanded into a secret value."""
    test_id = new_id()
    text = "${E2E_KEY_OK} {{E2E_KEY_OK}} $E2E_PROXY_TOKEN %(E2E_KEY_OK)s env:E2E_KEY_OK"
    answer = send(tagged("gpt", text, test_id, api_key="${E2E_KEY_OK}", stop=["{{E2E_PROXY_TOKEN}}"]))
    assert answer.status == 200, answer.text[:300]
    answer.assert_no_secrets()
    (rec,) = recorded(test_id)
    assert rec["key"] == OK
    assert not leaked(json.dumps(rec["body"])), rec["body"]
    assert text in json.dumps(rec["body"], ensure_ascii=False).replace('\\"', '"')


# =========================================================================== 4. client disconnects

DISCONNECT_ROUTES = {"gpt": "pass-through (openai)", "claude": "translated (anthropic)",
                     "gemini": "translated (google)"}


def open_chat(body: dict) -> socket.socket:
    data = json.dumps(body).encode()
    s = socket.create_connection((PROXY.hostname, PROXY.port), timeout=10)
    s.sendall((f"POST {CHAT} HTTP/1.1\r\nHost: {PROXY.hostname}:{PROXY.port}\r\n"
               f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data)
    return s


def read_first_event(s: socket.socket) -> bytes:
    """Read until the answer's headers and its first whole SSE event have arrived."""
    buf, end = b"", time.monotonic() + 5
    while time.monotonic() < end:
        piece = s.recv(65536)
        assert piece, f"the proxy closed the stream: {buf[:500]!r}"
        buf += piece
        head, _, body = buf.partition(b"\r\n\r\n")
        if body and re.search(rb"data: \{.*\n\n", body.replace(b"\r\n", b"\n")):
            assert head.startswith(b"HTTP/1.1 200"), head
            return buf
    raise AssertionError(f"no first event within 5 s: {buf[:500]!r}")


def wait_for(predicate, timeout: float, step: float = 0.05):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= end:
            return value
        time.sleep(step)


def client_gone(test_id: str) -> float | None:
    """Seconds from the upstream request's arrival to its connection's close, as the emulator saw
    it (``client_gone_after_s``), once it has."""
    return next((r["client_gone_after_s"] for r in recorded(test_id) if "client_gone_after_s" in r), None)


def threads() -> dict:
    return HTTP.get(f"{EMULATOR_URL}/_emulator/threads", timeout=5).json()


# workerd (as wrangler dev runs it) does not notice a client that leaves before the response has
# started: the handler runs on and its upstream fetch with it, until total_timeout. Not even
# `request.signal` (compatibility flag enable_request_signal) fires then; checked with a bare
# Worker that passes it to its fetch. Once the response has started (streams) the cancel works.
WORKERD_NO_EARLY_CANCEL = pytest.mark.xfail(
    WORKER, strict=True, reason="workerd cancels nothing when the client leaves before the response starts")


@dataclass
class Leaving:
    """One client that left: when (from sending its request), and what the emulator saw."""
    test_id: str
    left_at: float = 0.0
    closed_after: float | None = None  # the emulator's client_gone_after_s
    waited: float = 0.0                # from the client leaving to the emulator seeing the close
    error: BaseException | None = None


def leave_early(route: str, stream: bool) -> Leaving:
    out = Leaving(new_id())
    s = open_chat(tagged(route, "never ending emulator_endless", out.test_id, stream=stream))
    start = time.monotonic()
    try:
        if stream:
            first = read_first_event(s)
            assert b"[DONE]" not in first
        else:
            assert wait_for(lambda: recorded(out.test_id), 3), "the upstream request never started"
            time.sleep(0.3)
            assert client_gone(out.test_id) is None, "the upstream answer ended by itself"
    except Exception as exc:  # reported by the cell's test
        out.error = exc
    finally:
        s.close()
    out.left_at = time.monotonic() - start
    out.closed_after = wait_for(lambda: client_gone(out.test_id), 2.5)
    out.waited = time.monotonic() - start - out.left_at
    return out


@pytest.fixture(scope="module")
def leavings(proxy_url) -> dict:
    """Every disconnect cell at once (each waits up to 2.5 s for the emulator to see the close)."""
    cells = [(route, stream) for route in DISCONNECT_ROUTES for stream in (False, True)]
    before = threads()["client_gone"]
    with ThreadPoolExecutor(max_workers=len(cells)) as pool:
        out = dict(zip(cells, pool.map(lambda c: leave_early(*c), cells)))
    out["client_gone"] = threads()["client_gone"] - before
    return out


@pytest.mark.parametrize("stream", [pytest.param(False, id="plain", marks=WORKERD_NO_EARLY_CANCEL),
                                    pytest.param(True, id="stream")])
@pytest.mark.parametrize("route", list(DISCONNECT_ROUTES))
def test_client_disconnect_cancels_the_upstream_request(leavings, route, stream):
    """The upstream answer never ends by itself (``emulator_endless``); only the route's 6 s
    total_timeout would end it. The client leaves after the first event (a stream) or once the
    upstream request is under way (a plain request): the emulator must see its connection closed
    within 2 s of that."""
    out = leavings[(route, stream)]
    if out.error is not None:
        raise AssertionError(f"before leaving: {out.error!r}") from out.error
    assert out.closed_after is not None, (
        f"{DISCONNECT_ROUTES[route]}: the upstream connection was still open {out.waited:.1f}s after "
        f"the client left (total_timeout {TOTAL_TIMEOUT_S:.0f}s): not cancelled by the client leaving")
    assert out.waited < 2.0, out.waited
    assert out.closed_after < out.left_at + 2.0 < TOTAL_TIMEOUT_S - 2, (out.closed_after, out.left_at)
    (rec,) = recorded(out.test_id)
    assert rec["key"] == OK
    assert leavings["client_gone"] >= 1  # the emulator counted it too (GET /_emulator/threads)


# =========================================================================== the log itself

def test_log_is_read_and_names_keys_never_values(proxy_url, module_log_start):
    """The log this module checks is the proxy's real log: failed attempts appear there by key
    name; no line of everything logged since this module started holds a secret value."""
    for route in ("f-429-end", "all-fail"):
        send({"model": route, "messages": user("log me")})
    log = wait_for(lambda: (lambda t: t if "key=E2E_KEY_429" in t else "")(proxy_log_since(module_log_start)), 5)
    assert log, f"no failed attempt in {PROXY_LOG_FILE} (is E2E_PROXY_LOG_FILE right?)"
    assert re.search(r"route=f-429-end .*key=E2E_KEY_429 status=429", log), log[-2000:]
    bad = log_lines_with_secrets(log)
    assert not bad, f"secret values in {PROXY_LOG_FILE}:\n" + "\n".join(bad)

