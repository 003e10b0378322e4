"""Teams: client tokens, allow-lists, limits, budgets, and what the operator sees of them
(tests/routes/e2e.toml `[clients.*]`, routes `team-*`; README "Teams").

Driven the way a client would: the official OpenAI Python SDK (``openai.RateLimitError`` with its
``.response`` and ``.body``; ``with_raw_response`` for the ``x-ratelimit-*`` headers of a
success), the Anthropic SDK for a limit on ``/v1/messages``, and raw HTTP for the token headers
and the operator's endpoints.

Each scenario has a client of its own (``c-rpm``, ``c-tpm``, ...), so no two tests share a
counter, and the observing tests have routes of their own, so a route's last hour counts one
test's traffic. Limits count per calendar UTC minute: a test whose steps must fall in one window
starts with ``fresh_minute()``. The counts live in the proxy (per process natively; in one Durable
Object per client on the Worker), so the suite expects a proxy started for this run, as run.sh
does.

What the emulator answers and reports (tests/emulators/openai_emulator.py): ``"echo: <text>"``,
``prompt_tokens`` = the words of each message + 3, ``completion_tokens`` = the answer's words;
so ``"hi"`` uses 4 input and 2 output tokens.
"""

from __future__ import annotations

import json
import math
import re
import time
import tomllib
import uuid

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import anthropic
import openai
import pytest

from conftest import (CLIENT_TOKEN, E2E_HOST, PROXY_URL, ROUTES_TOML, TOKEN, _validating_hook,
                      assert_error_shape, assert_no_secrets, collect, fresh_minute, proxy_log_since,
                      proxy_log_size, recorded, release, route_names, user)

WORKER = E2E_HOST == "worker"

ALLOW = CLIENT_TOKEN["E2E_CLIENT_ALLOW"]
RPM = CLIENT_TOKEN["E2E_CLIENT_RPM"]
TPM = CLIENT_TOKEN["E2E_CLIENT_TPM"]
CONC = CLIENT_TOKEN["E2E_CLIENT_CONC"]
BUDGET = CLIENT_TOKEN["E2E_CLIENT_BUDGET"]
MULTI = CLIENT_TOKEN["E2E_CLIENT_MULTI"]
MULTI_NEXT = CLIENT_TOKEN["E2E_CLIENT_MULTI_NEXT"]
MSG = CLIENT_TOKEN["E2E_CLIENT_MSG"]
OBS = CLIENT_TOKEN["E2E_CLIENT_OBS"]
METRICS = CLIENT_TOKEN["E2E_CLIENT_METRICS"]

with open(ROUTES_TOML, "rb") as _f:
    CONFIG = tomllib.load(_f)
CLIENTS = CONFIG["clients"]
PRICES = CONFIG["prices"]

# "hi" through the emulator: prompt_tokens = 1 word + 3, completion_tokens = "echo: hi" = 2 words.
HI_INPUT, HI_OUTPUT = 4, 2
# "hi there" (the streamed request of the metrics traffic, told apart by its counts): 5 and 3.
THERE_INPUT, THERE_OUTPUT = 5, 3

RATELIMIT_REQUESTS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                      "x-ratelimit-reset-requests")
RATELIMIT_TOKENS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens")


def new_id() -> str:
    return "t-" + uuid.uuid4().hex


def sdk(token: str, sizes: list | None = None, timeout: float = 30.0) -> openai.OpenAI:
    """The official OpenAI client with a client's token; every JSON answer is checked against the
    OpenAPI schema (conftest's hook); ``sizes`` collects each request body's length in bytes
    (what the proxy's input estimate is made of)."""
    hooks: dict = {"response": [_validating_hook]}
    if sizes is not None:
        hooks["request"] = [lambda req: sizes.append(len(req.content))]
    return openai.OpenAI(base_url=f"{PROXY_URL}/v1", api_key=token, max_retries=0, timeout=timeout,
                         http_client=httpx.Client(timeout=timeout, event_hooks=hooks))


def claude_sdk(token: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=token, base_url=PROXY_URL, max_retries=0, timeout=30.0,
                               http_client=httpx.Client(timeout=30.0))


def chat(client: openai.OpenAI, route: str, test_id: str, text: str = "hi", **kw):
    """A chat completion through the SDK's raw response (headers and the parsed completion)."""
    return client.chat.completions.with_raw_response.create(
        model=route, messages=user(text), extra_body={"test_id": test_id}, **kw)


def refused(client: openai.OpenAI, route: str, test_id: str, text: str = "hi",
            **kw) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client, route, test_id, text, **kw)
    return caught.value


def ratelimit_headers(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}


def reset_seconds(text: str) -> float:
    """OpenAI's reset duration (``999ms``, ``13s``, ``6m0s``, ``1h2m3s``) in seconds."""
    found = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?|(\d+)ms", text)
    assert found and text, f"not a reset duration: {text!r}"
    h, m, s, ms = found.groups()
    if ms is not None:
        return int(ms) / 1000
    return int(h or 0) * 3600 + int(m or 0) * 60 + int(s or 0)


def seconds_left_in_minute() -> float:
    return 60.0 - time.time() % 60.0


def assert_limit_error(err: openai.RateLimitError, kind: str, code: str, client: str) -> dict:
    """The exact OpenAI error of a refused request, as the SDK hands it over."""
    assert err.status_code == 429
    body = err.response.json()
    inner = assert_error_shape(body)
    assert err.body == inner, (err.body, body)
    assert (inner["type"], inner["param"], inner["code"]) == (kind, None, code), inner
    assert (err.type, err.code) == (kind, code)
    assert f"`{client}`" in inner["message"], inner
    assert err.response.headers["content-type"].startswith("application/json")
    assert err.response.headers.get("access-control-allow-origin") == "*"
    retry = err.response.headers.get("retry-after")
    assert retry is not None and retry.isdigit() and int(retry) >= 1, dict(err.response.headers)
    assert_no_secrets(err.response.text, dict(err.response.headers))
    return inner


def no_upstream(test_id: str) -> None:
    assert recorded(test_id) == [], "a refused request reached the upstream"


def usd(model: str, input_tokens: int, output_tokens: int) -> float:
    price = PRICES[model]
    return (input_tokens * price["input"] + output_tokens * price["output"]) / 1e6


def wait_for(probe, timeout: float = 5.0, step: float = 0.1):
    """Calls ``probe()`` until it returns something truthy (returned) or ``timeout`` passes (the
    last value is returned)."""
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= end:
            return value
        time.sleep(step)


def get(path: str, headers: dict | None = None, token: str | None = TOKEN) -> httpx.Response:
    h = dict(headers or {})
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    return httpx.get(f"{PROXY_URL}{path}", headers=h, timeout=30)


def post_chat(route: str, test_id: str, headers: dict, text: str = "hi") -> httpx.Response:
    return httpx.post(f"{PROXY_URL}/v1/chat/completions",
                      json={"model": route, "messages": user(text), "test_id": test_id},
                      headers=headers, timeout=30)


def status_json() -> dict:
    r = get("/status.json")
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    assert_no_secrets(r.text, dict(r.headers))
    return r.json()


def client_status(status: dict, name: str) -> dict:
    found = [c for c in status["clients"] if c["name"] == name]
    assert len(found) == 1, [c["name"] for c in status["clients"]]
    return found[0]


def route_status(status: dict, name: str) -> dict:
    found = [r for r in status["routes"] if r["name"] == name]
    assert len(found) == 1, [r["name"] for r in status["routes"]]
    return found[0]


def allowed_routes(client: str) -> list[str]:
    entries = CLIENTS[client]["routes"]
    return [name for name in route_names()
            if any(e == name or (e.endswith("*") and name.startswith(e[:-1])) for e in entries)]


# =========================================================================== tokens and allow-lists

TOKEN_FORMS = {
    "bearer": lambda t: {"authorization": f"Bearer {t}"},
    "raw-authorization": lambda t: {"authorization": t},
    "x-api-key": lambda t: {"x-api-key": t},
    "x-goog-api-key": lambda t: {"x-goog-api-key": t},
}


@pytest.mark.parametrize("form", list(TOKEN_FORMS))
def test_client_token_in_each_header(proxy_url, form):
    headers = TOKEN_FORMS[form](ALLOW)
    test_id = new_id()
    r = post_chat("team-chat", test_id, headers)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
    assert len(recorded(test_id)) == 1
    # The client's list, not the operator's: its token was the one read.
    models = get("/v1/models", headers, token=None)
    assert models.status_code == 200, models.text[:300]
    assert [m["id"] for m in models.json()["data"]] == allowed_routes("c-allow")
    assert_no_secrets(r.text, dict(r.headers), models.text, dict(models.headers))
    # The same header with a token no one has: 401, nothing sent upstream.
    wrong = new_id()
    r = post_chat("team-chat", wrong, TOKEN_FORMS[form](ALLOW[:-1] + "x"))
    assert r.status_code == 401, r.text[:300]
    assert assert_error_shape(r.json())["code"] == "invalid_api_key"
    no_upstream(wrong)


def test_authorization_is_read_before_x_api_key(proxy_url):
    # Authorization carries the client, x-api-key the operator: the client it is.
    test_id = new_id()
    r = post_chat("team-other", test_id, {"authorization": f"Bearer {ALLOW}", "x-api-key": TOKEN})
    assert r.status_code == 404, r.text[:300]
    no_upstream(test_id)
    # And the other way round: the operator, who may use every route.
    test_id = new_id()
    r = post_chat("team-other", test_id, {"authorization": f"Bearer {TOKEN}", "x-api-key": ALLOW})
    assert r.status_code == 200, r.text[:300]
    # x-api-key before x-goog-api-key.
    test_id = new_id()
    r = post_chat("team-other", test_id, {"x-api-key": ALLOW, "x-goog-api-key": TOKEN})
    assert r.status_code == 404, r.text[:300]
    no_upstream(test_id)


def test_allow_list_filters_the_model_list(proxy_url):
    expected = allowed_routes("c-allow")
    assert "team-chat" in expected and "msg-openai" in expected and "team-other" not in expected
    with sdk(ALLOW) as client:
        assert [m.id for m in client.models.list()] == expected
    # The Anthropic shape of the list, filtered the same way.
    with claude_sdk(ALLOW) as claude:
        assert [m.id for m in claude.models.list()] == expected
    # The operator's is every concrete route.
    with sdk(TOKEN) as client:
        assert [m.id for m in client.models.list()] == route_names()


@pytest.mark.parametrize("route", ["team-other", "plain", "claude-haiku-4-5"])
def test_route_outside_the_allow_list_does_not_exist_for_the_client(proxy_url, route):
    test_id = new_id()
    with sdk(ALLOW) as client, pytest.raises(openai.NotFoundError) as caught:
        chat(client, route, test_id)
    err = caught.value
    assert err.code == "model_not_found" and err.param == "model", err.body
    no_upstream(test_id)
    # Word for word what a model no route serves gets: nothing tells the route exists.
    with sdk(ALLOW) as client, pytest.raises(openai.NotFoundError) as unknown:
        chat(client, "no-such-route-xyz", new_id())
    assert err.body == {k: (v.replace("no-such-route-xyz", route) if isinstance(v, str) else v)
                        for k, v in unknown.value.body.items()}
    assert_no_secrets(err.response.text, dict(err.response.headers))
    # On the Messages front door too, in Anthropic's shape.
    with claude_sdk(ALLOW) as claude, pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model=route, max_tokens=16, messages=user("hi"),
                               metadata={"user_id": test_id})
    assert caught.value.body["error"]["type"] == "not_found_error", caught.value.body
    no_upstream(test_id)


def test_allowed_routes_work_on_both_front_doors(proxy_url):
    test_id = new_id()
    with sdk(ALLOW) as client:
        raw = chat(client, "team-chat", test_id)
    assert raw.parse().choices[0].message.content == "echo: hi"
    # A client without limits gets no rate-limit headers.
    assert ratelimit_headers(raw.headers) == {}
    test_id = new_id()
    with claude_sdk(ALLOW) as claude:
        message = claude.messages.create(model="msg-openai", max_tokens=16, messages=user("hi"),
                                         metadata={"user_id": test_id})
    assert message.content[0].text == "echo: hi"
    assert len(recorded(test_id)) == 1


# =========================================================================== requests per minute

def test_requests_per_minute_exact(proxy_url):
    limit = CLIENTS["c-rpm"]["requests_per_minute"]
    assert limit == 3
    fresh_minute(15)
    with sdk(RPM) as client:
        for n in range(limit):
            test_id = new_id()
            raw = chat(client, "team-chat", test_id)
            assert raw.parse().choices[0].message.content == "echo: hi"
            assert len(recorded(test_id)) == 1
            headers = ratelimit_headers(raw.headers)
            assert set(headers) == set(RATELIMIT_REQUESTS), headers  # no token limit: no -tokens
            assert headers["x-ratelimit-limit-requests"] == str(limit)
            assert headers["x-ratelimit-remaining-requests"] == str(limit - 1 - n)
            left = seconds_left_in_minute()
            assert abs(reset_seconds(headers["x-ratelimit-reset-requests"]) - left) <= 1.5, (headers, left)
            assert_no_secrets(raw.http_response.text, dict(raw.headers))

        for stream in (False, True):
            test_id = new_id()
            err = refused(client, "team-chat", test_id, stream=stream)
            inner = assert_limit_error(err, "requests", "rate_limit_exceeded", "c-rpm")
            assert inner["message"].startswith(
                f"Rate limit reached for client `c-rpm` on requests per minute: limit {limit}."), inner
            headers = ratelimit_headers(err.response.headers)
            assert set(headers) == set(RATELIMIT_REQUESTS), headers
            assert headers["x-ratelimit-limit-requests"] == str(limit)
            assert headers["x-ratelimit-remaining-requests"] == "0"
            left = seconds_left_in_minute()
            retry = int(err.response.headers["retry-after"])
            assert math.ceil(left) - 1 <= retry <= math.ceil(left) + 1, (retry, left)
            assert abs(reset_seconds(headers["x-ratelimit-reset-requests"]) - left) <= 1.5
            no_upstream(test_id)


def test_rotated_tokens_share_one_count(proxy_url):
    """c-multi lists a token and its successor: both open the proxy, and they count as one."""
    limit = CLIENTS["c-multi"]["requests_per_minute"]
    assert limit == 4 and CLIENTS["c-multi"]["tokens"] == ["E2E_CLIENT_MULTI", "E2E_CLIENT_MULTI_NEXT"]
    fresh_minute(15)
    a, b = sdk(MULTI), sdk(MULTI_NEXT)
    try:
        for n, client in enumerate([a, b, a, b]):
            raw = chat(client, "team-chat", new_id())
            assert raw.headers["x-ratelimit-remaining-requests"] == str(limit - 1 - n)
        for client in (a, b):
            test_id = new_id()
            assert_limit_error(refused(client, "team-chat", test_id), "requests",
                               "rate_limit_exceeded", "c-multi")
            no_upstream(test_id)
        # Both are the same client: the same routes.
        assert [m.id for m in a.models.list()] == [m.id for m in b.models.list()] == ["team-chat"]
    finally:
        a.close()
        b.close()


def test_operator_is_never_limited(proxy_url):
    """The operator's token counts against no client: more requests in a minute than any
    client may make, each reserving more tokens than c-tpm's minute holds, on the routes limited
    clients use, and no rate-limit headers."""
    with sdk(TOKEN) as operator:
        for route in ["team-chat"] * 5 + ["team-budget", "team-msg"]:
            test_id = new_id()
            raw = chat(operator, route, test_id, max_tokens=100_000)
            assert raw.parse().choices[0].message.content == "echo: hi"
            assert ratelimit_headers(raw.headers) == {}
            assert len(recorded(test_id)) == 1


# =========================================================================== tokens per minute

def test_tokens_per_minute_reserve_and_settle(proxy_url):
    """A request reserves ceil(body bytes / 4) + max_tokens; once answered, the reservation is
    replaced by the usage the provider reported, which frees room for the next request."""
    limit = CLIENTS["c-tpm"]["tokens_per_minute"]
    assert limit == 200
    fresh_minute(20)
    sizes: list[int] = []
    with sdk(TPM, sizes=sizes) as client:
        raw = chat(client, "team-chat", new_id(), max_tokens=100)
        completion = raw.parse()
        reserved = math.ceil(sizes[-1] / 4) + 100
        assert reserved <= limit
        headers = ratelimit_headers(raw.headers)
        assert set(headers) == set(RATELIMIT_TOKENS), headers
        assert headers["x-ratelimit-limit-tokens"] == str(limit)
        assert headers["x-ratelimit-remaining-tokens"] == str(limit - reserved), (headers, sizes)
        assert abs(reset_seconds(headers["x-ratelimit-reset-tokens"]) - seconds_left_in_minute()) <= 1.5
        used = completion.usage.prompt_tokens + completion.usage.completion_tokens
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (HI_INPUT, HI_OUTPUT)

        # Asks for more than is left whether or not the first has settled yet: refused, and the
        # refusal's headers show the standing, which turns to "settled" once the answer ended.
        big = limit - used  # + the input estimate: over the limit either way
        last: list = []

        def settled():
            test_id = new_id()
            err = refused(client, "team-chat", test_id, max_tokens=big)
            no_upstream(test_id)
            last[:] = [err]
            return err.response.headers["x-ratelimit-remaining-tokens"] == str(limit - used)

        assert wait_for(settled), ("the first request's reservation was never settled to its usage",
                                   dict(last[0].response.headers))
        err = last[0]
        inner = assert_limit_error(err, "tokens", "rate_limit_exceeded", "c-tpm")
        assert inner["message"].startswith(
            f"Rate limit reached for client `c-tpm` on tokens per minute: limit {limit}, "
            f"remaining {limit - used}"), inner
        headers = ratelimit_headers(err.response.headers)
        assert set(headers) == set(RATELIMIT_TOKENS), headers
        assert headers["x-ratelimit-limit-tokens"] == str(limit)
        left = seconds_left_in_minute()
        assert math.ceil(left) - 1 <= int(err.response.headers["retry-after"]) <= math.ceil(left) + 1

        # What settling gave back fits a request the first one's reservation would have refused.
        raw = chat(client, "team-chat", new_id(), max_tokens=60)
        reserved = math.ceil(sizes[-1] / 4) + 60
        assert reserved + 100 + math.ceil(sizes[0] / 4) > limit  # refused without the settle
        assert raw.headers["x-ratelimit-remaining-tokens"] == str(limit - used - reserved)


# =========================================================================== concurrency

def test_max_concurrent_while_a_stream_is_open(proxy_url):
    """c-conc may have one request in flight: a second is refused while a stream is open, and
    let in once the stream ended, well before the first request's deadline (total_timeout = 6 s)
    would free its place: the end of the answer settled it."""
    assert CLIENTS["c-conc"]["max_concurrent"] == 1
    hold = "hold-" + uuid.uuid4().hex
    stream_id = new_id()
    with sdk(CONC) as client:
        opened = time.monotonic()
        stream = client.chat.completions.create(
            model="team-chat", messages=user("one two"), stream=True,
            extra_body={"test_id": stream_id, "emulator_hold": hold})
        released = False
        try:
            chunks = iter(stream)
            first = next(chunks)  # the stream is open (the emulator holds after its first content)
            assert first.choices[0].delta.role == "assistant"
            for stream_kw in ({}, {"stream": True}):
                test_id = new_id()
                err = refused(client, "team-chat", test_id, **stream_kw)
                inner = assert_limit_error(err, "requests", "rate_limit_exceeded", "c-conc")
                assert "max_concurrent" in inner["message"], inner
                assert err.response.headers["retry-after"] == "1"
                assert ratelimit_headers(err.response.headers) == {}  # no per-minute limits
                no_upstream(test_id)
            release(hold)
            released = True
            rest, content = collect(chunks)
            assert "two" in (first.choices[0].delta.content or "") + content
        finally:
            if not released:
                release(hold)
            stream.close()

        def admitted():
            try:
                return chat(client, "team-chat", new_id())
            except openai.RateLimitError:
                return None

        raw = wait_for(admitted, timeout=3.0)
        after = time.monotonic() - opened
        assert raw is not None, "still refused after the stream ended: its place in flight was not freed"
        assert after < 5.0, f"let in only after {after:.1f} s: the deadline freed the place, not the settle"
        assert raw.parse().choices[0].message.content == "echo: hi"
    assert len(recorded(stream_id)) == 1


# =========================================================================== budget

@pytest.fixture(scope="module")
def budget_run(proxy_url) -> dict:
    """c-budget (0.05 USD a day, route team-budget priced at 10 / 10,000 USD per M): two requests
    of ~0.02 USD each fit, the third does not, whether or not the first two have settled."""
    left_today = 86_400 - time.time() % 86_400
    if left_today < 30:
        time.sleep(left_today + 0.5)
    out: dict = {"answers": []}
    with sdk(BUDGET) as client:
        for _ in range(2):
            test_id = new_id()
            raw = chat(client, "team-budget", test_id, max_tokens=2)
            out["answers"].append(raw)
            assert len(recorded(test_id)) == 1
        test_id = new_id()
        with pytest.raises(openai.RateLimitError) as caught:
            chat(client, "team-budget", test_id, max_tokens=2)
        out["refused"] = caught.value
        out["refused_at"] = time.time()
        out["refused_id"] = test_id
    return out


def test_budget_spent_is_insufficient_quota(budget_run):
    budget = CLIENTS["c-budget"]["budget"]
    assert budget == {"usd": 0.05, "per": "day"}
    one = usd("emu-budget", HI_INPUT, HI_OUTPUT)
    assert 2 * one <= budget["usd"] < 3 * one
    for raw in budget_run["answers"]:
        usage = raw.parse().usage
        assert (usage.prompt_tokens, usage.completion_tokens) == (HI_INPUT, HI_OUTPUT)
        assert ratelimit_headers(raw.headers) == {}  # a budget alone sets no per-minute headers
    err = budget_run["refused"]
    inner = assert_limit_error(err, "insufficient_quota", "insufficient_quota", "c-budget")
    assert inner["message"].startswith("Client `c-budget` has used its budget: "), inner
    assert "of 0.05 USD this period" in inner["message"], inner
    assert err.response.headers.get("x-should-retry") == "false", dict(err.response.headers)
    # It renews at the next UTC midnight.
    left_today = 86_400 - budget_run["refused_at"] % 86_400
    assert abs(int(err.response.headers["retry-after"]) - left_today) <= 2
    no_upstream(budget_run["refused_id"])
    # Still spent: every further request is refused too, streamed or not.
    with sdk(BUDGET) as client:
        for stream in (False, True):
            test_id = new_id()
            again = refused(client, "team-budget", test_id, max_tokens=2, stream=stream)
            assert_limit_error(again, "insufficient_quota", "insufficient_quota", "c-budget")
            no_upstream(test_id)


def test_budget_spend_is_the_reported_usage_at_the_models_price(budget_run):
    """Once settled, what the budget counts is each answer's usage at the model's price."""
    one = usd("emu-budget", HI_INPUT, HI_OUTPUT)
    last: list = []

    def settled():
        last[:] = [client_status(status_json(), "c-budget")]
        spent = (last[0].get("budget") or {}).get("spent_usd")
        return spent is not None and abs(spent - 2 * one) < 1e-9

    assert wait_for(settled), ("c-budget's spend is not the two answers' cost", 2 * one, last[0])
    assert last[0]["budget"] == {"usd": 0.05, "spent_usd": pytest.approx(2 * one, abs=1e-9), "per": "day"}


# =========================================================================== Anthropic front door

def test_limit_on_messages_is_anthropic_rate_limit_error(proxy_url):
    assert CLIENTS["c-msg"]["requests_per_minute"] == 1
    fresh_minute(15)
    start = proxy_log_size()
    first, second = new_id(), new_id()
    with claude_sdk(MSG) as claude:
        raw = claude.messages.with_raw_response.create(
            model="team-msg", max_tokens=16, messages=user("hi"), metadata={"user_id": first})
        assert raw.parse().content[0].text == "echo: hi"
        assert raw.headers["x-ratelimit-limit-requests"] == "1"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(anthropic.RateLimitError) as caught:
            claude.messages.create(model="team-msg", max_tokens=16, messages=user("hi"),
                                   metadata={"user_id": second})
    err = caught.value
    assert err.status_code == 429
    body = err.response.json()
    assert body == err.body
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == "rate_limit_error", body
    assert body["error"]["message"].startswith(
        "Rate limit reached for client `c-msg` on requests per minute: limit 1."), body
    headers = err.response.headers
    assert headers["retry-after"].isdigit() and 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers.get("x-should-retry") != "false"  # a rate limit passes: retrying later helps
    assert_no_secrets(err.response.text, dict(headers))
    assert len(recorded(first)) == 1
    no_upstream(second)
    # Both are in the log as the Messages API's.
    records = wait_for(lambda: records_of("c-msg", proxy_log_since(start), 2), timeout=5)
    assert [(r["route"], r["api"], int(r["status"])) for r in records] == [
        ("team-msg", "anthropic", 200), ("team-msg", "anthropic", 429)], records


# =========================================================================== status.json

@pytest.fixture(scope="module")
def obs_traffic(proxy_url) -> dict:
    """c-obs (3 requests a minute) on team-obs: three answers and one refusal, in one minute.
    The route's last hour before them too: the operator's requests count there as well (the
    sweep of test_security.py runs every route)."""
    fresh_minute(20)
    before = route_status(status_json(), "team-obs")["hour"]
    with sdk(OBS) as client:
        answers = [chat(client, "team-obs", new_id()).parse() for _ in range(3)]
        refused_id = new_id()
        err = refused(client, "team-obs", refused_id)
    no_upstream(refused_id)
    return {"answers": answers, "refused": err, "route_before": before}


def test_status_json_shows_the_clients_counts_and_the_routes_hour(obs_traffic):
    assert_limit_error(obs_traffic["refused"], "requests", "rate_limit_exceeded", "c-obs")
    tokens = 3 * (HI_INPUT + HI_OUTPUT)
    cost = 3 * usd("emu-obs", HI_INPUT, HI_OUTPUT)
    last: list = []

    def settled():
        status = status_json()
        last[:] = [status]
        c = client_status(status, "c-obs")
        # Records reach the Worker's LAST_HOUR objects in the background, as settling does.
        return c["tokens_per_minute"] == [100_000, tokens] and c["max_concurrent"] == [5, 0] \
            and c["hour"]["requests"] == 4

    wait_for(settled)
    status = last[0]
    assert set(status) == {"now_ms", "scope", "routes", "clients"}, list(status)
    assert abs(status["now_ms"] / 1000 - time.time()) < 5
    assert status["scope"] == ("worker" if WORKER else "process")
    assert [r["name"] for r in status["routes"]] == list(CONFIG["routes"])
    assert [c["name"] for c in status["clients"]] == list(CLIENTS)

    route = route_status(status, "team-obs")
    assert route["targets"] == [{"provider": "openai-compatible", "model": "emu-obs",
                                 "keys": [{"name": "E2E_KEY_OK", "state": "healthy"}]}]
    hour, before = route["hour"], obs_traffic["route_before"]
    assert {k: hour[k] - before[k] for k in ("requests", "errors", "tokens")} == {
        "requests": 4, "errors": 1, "tokens": tokens}, (before, hour)
    assert hour["cost_usd"] - before["cost_usd"] == pytest.approx(cost, abs=1e-12), (before, hour)
    assert isinstance(hour["p50_ms"], int) and isinstance(hour["p99_ms"], int), hour
    assert 0 <= hour["p50_ms"] <= hour["p99_ms"], hour

    c = client_status(status, "c-obs")
    assert c["routes"] == ["team-obs"]
    assert c["requests_per_minute"] == [3, 3], c
    assert c["tokens_per_minute"] == [100_000, tokens], c
    assert c["max_concurrent"] == [5, 0], c
    assert c["budget"] == {"usd": 100.0, "spent_usd": pytest.approx(cost, abs=1e-12), "per": "month"}, c
    assert {k: c["hour"][k] for k in ("requests", "errors", "tokens")} == {
        "requests": 4, "errors": 1, "tokens": tokens}, c
    assert c["hour"]["cost_usd"] == pytest.approx(cost, abs=1e-12), c

    # A client without limits: its allow-list, no limits, no budget.
    allow = client_status(status, "c-allow")
    assert allow["routes"] == ["team-chat", "msg-*"]
    assert (allow["requests_per_minute"], allow["tokens_per_minute"], allow["max_concurrent"],
            allow["budget"]) == (None, None, None, None), allow


def test_status_json_and_metrics_are_the_operators(proxy_url):
    for path in ("/status.json", "/metrics"):
        for token in (OBS, ALLOW):
            r = get(path, token=token)
            assert r.status_code == 403, (path, r.status_code, r.text[:300])
            inner = assert_error_shape(r.json())
            assert inner["code"] == "operator_only", inner
            assert_no_secrets(r.text, dict(r.headers))
        assert get(path, token=None).status_code == 401
        assert get(path, token=TOKEN[:-1] + "x").status_code == 401
        # The client's token in x-api-key is the client's too.
        r = get(path, headers={"x-api-key": ALLOW}, token=None)
        assert r.status_code == 403, r.text[:300]
    r = get("/status.json")
    assert r.status_code == 200
    assert r.headers.get("cache-control") == "no-store"
    assert "set-cookie" not in r.headers


# =========================================================================== metrics and the usage record

@pytest.fixture(scope="module")
def metrics_traffic(proxy_url) -> dict:
    """c-metrics (2 requests a minute) on team-metrics: one plain answer ("hi"), one streamed
    with the client's own ``include_usage`` ("hi there"), one refusal; the proxy's metrics before
    and after, and what it logged meanwhile."""
    fresh_minute(20)
    before = get("/metrics").text if not WORKER else ""
    start = proxy_log_size()
    with sdk(METRICS) as client:
        plain_id, stream_id, refused_id = new_id(), new_id(), new_id()
        plain = chat(client, "team-metrics", plain_id).parse()
        stream = client.chat.completions.create(
            model="team-metrics", messages=user("hi there"), stream=True,
            stream_options={"include_usage": True}, extra_body={"test_id": stream_id})
        chunks, content = collect(stream)
        err = refused(client, "team-metrics", refused_id)
    no_upstream(refused_id)
    # A record is written as its answer ends, which may be just after the client saw the end.
    log = wait_for(lambda: proxy_log_since(start) if records_of(
        "c-metrics", proxy_log_since(start), 3) else "", timeout=5) or proxy_log_since(start)
    after = ""
    if not WORKER:
        def counted():
            text = get("/metrics").text
            samples = parse_metrics(text)
            done = (sample(samples, "aiwp_requests_total", client="c-metrics", route="team-metrics",
                           status="200") == 2
                    and sample(samples, "aiwp_requests_total", client="c-metrics",
                               route="team-metrics", status="429") == 1)
            return text if done else ""
        after = wait_for(counted, timeout=5) or get("/metrics").text
    return {"before": before, "after": after, "log": log, "plain": plain, "chunks": chunks,
            "content": content, "refused": err}


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        found = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert found, f"not a Prometheus sample line: {line!r}"
        name, labels, value = found.groups()
        pairs = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or ""))
        out[(name, pairs)] = float(value)
    return out


def sample(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


GENAI = dict(gen_ai_operation_name="chat", gen_ai_provider_name="openai-compatible",
             gen_ai_request_model="team-metrics", gen_ai_response_model="emu-metrics")


def test_metrics_carry_the_genai_series(metrics_traffic):
    if WORKER:
        pytest.skip("the Worker serves no /metrics (README: GET /metrics is the native host's; "
                    "the Worker answers 404)")
    text = metrics_traffic["after"]
    assert_no_secrets(text)
    for name, kind in (("gen_ai_client_token_usage", "histogram"),
                       ("gen_ai_client_operation_duration_seconds", "histogram"),
                       ("aiwp_requests_total", "counter"), ("aiwp_cost_usd_total", "counter")):
        assert f"# TYPE {name} {kind}" in text, name
    before, after = parse_metrics(metrics_traffic["before"]), parse_metrics(text)
    assert not [k for k in before if ("client", "c-metrics") in k[1]], "c-metrics had traffic before"

    assert sample(after, "aiwp_requests_total", client="c-metrics", route="team-metrics", status="200") == 2
    assert sample(after, "aiwp_requests_total", client="c-metrics", route="team-metrics", status="429") == 1
    # Token usage: both answers reported theirs (the stream in its usage chunk).
    for kind, plain, streamed in (("input", HI_INPUT, THERE_INPUT), ("output", HI_OUTPUT, THERE_OUTPUT)):
        labels = dict(GENAI, gen_ai_token_type=kind)
        assert sample(after, "gen_ai_client_token_usage_count", **labels) == 2, (kind, labels)
        assert sample(after, "gen_ai_client_token_usage_sum", **labels) == plain + streamed, kind
        assert sample(after, "gen_ai_client_token_usage_bucket", **labels, le="+Inf") == 2
        assert sample(after, "gen_ai_client_token_usage_bucket", **labels, le="1") == 0
        assert sample(after, "gen_ai_client_token_usage_bucket", **labels, le="16") == 2
    assert sample(after, "gen_ai_client_operation_duration_seconds_count", **GENAI) == 2
    assert sample(after, "gen_ai_client_operation_duration_seconds_bucket", **GENAI, le="+Inf") == 2
    # The refusal: no provider answered; its error type is its status.
    failed = dict(GENAI, gen_ai_provider_name="-", gen_ai_response_model="", error_type="429")
    assert sample(after, "gen_ai_client_operation_duration_seconds_count", **failed) == 1, [
        k for k in after if k[0] == "gen_ai_client_operation_duration_seconds_count"
        and ("gen_ai_request_model", "team-metrics") in k[1]]
    cost = sample(after, "aiwp_cost_usd_total", client="c-metrics", route="team-metrics",
                  gen_ai_response_model="emu-metrics")
    expected = usd("emu-metrics", HI_INPUT, HI_OUTPUT) + usd("emu-metrics", THERE_INPUT, THERE_OUTPUT)
    assert cost == pytest.approx(expected, rel=1e-9), cost


def test_metrics_content_type(proxy_url):
    r = get("/metrics")
    if WORKER:
        assert r.status_code == 404, r.text[:300]
        assert assert_error_shape(r.json())["code"] == "not_found"
        return
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


USAGE_TEXT = re.compile(r"\busage (client=\S+(?: [a-z_]+=\S*)*)")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def records_of(client: str, log: str, at_least: int = 1) -> list[dict]:
    """The usage records of ``client`` in ``log`` once there are ``at_least`` of them, else []."""
    records = [r for r in usage_records(log) if r.get("client") == client]
    return records if len(records) >= at_least else []


def usage_records(log: str) -> list[dict]:
    """The usage records in a stretch of the proxy's log, either format: a JSON object with
    ``"event":"usage"`` or a text line ``usage client=... route=... status=...``."""
    out = []
    for line in log.splitlines():
        line = ANSI.sub("", line)
        start = line.find('{"event":"usage"')
        if start >= 0:
            try:
                record, _ = json.JSONDecoder().raw_decode(line[start:])
            except json.JSONDecodeError:
                continue
            out.append(record)
            continue
        found = USAGE_TEXT.search(line)
        if found:
            record = dict(pair.split("=", 1) for pair in found.group(1).split(" "))
            # The text line's short names, as the JSON record has them.
            for short, name in (("input", "input_tokens"), ("output", "output_tokens"),
                                ("cached", "cached_tokens"), ("ms", "latency_ms")):
                if short in record:
                    record[name] = record.pop(short)
            out.append(record)
    return out


def metrics_records(metrics_traffic) -> tuple[dict, dict | None, dict]:
    """c-metrics' three records: the plain answer's (told by its counts), the other answer's
    (the stream's), the refusal's."""
    records = [r for r in usage_records(metrics_traffic["log"]) if r["client"] == "c-metrics"]
    assert len(records) == 3, metrics_traffic["log"][-3000:]
    answered = [r for r in records if int(r["status"]) == 200]
    refusals = [r for r in records if int(r["status"]) == 429]
    assert len(answered) == 2 and len(refusals) == 1, records
    plain = [r for r in answered if (int(r["input_tokens"]), int(r["output_tokens"])) == (HI_INPUT, HI_OUTPUT)]
    assert len(plain) == 1, ("no record of the plain answer with its usage", answered)
    streamed = next(r for r in answered if r is not plain[0])
    return plain[0], streamed, refusals[0]


def assert_answer_record(r: dict, input_tokens: int, output_tokens: int) -> None:
    assert (r["route"], r["api"], int(r["status"])) == ("team-metrics", "openai", 200), r
    assert (int(r["target"]), r["provider"], r["model"], r["key"]) == (
        1, "openai-compatible", "emu-metrics", "E2E_KEY_OK"), r
    assert int(r["attempts"]) == 1, r
    assert (int(r["input_tokens"]), int(r["output_tokens"])) == (input_tokens, output_tokens), r
    assert float(r["cost_usd"]) == pytest.approx(usd("emu-metrics", input_tokens, output_tokens), abs=1e-6), r
    if "usage_reported" in r:  # the JSON record
        assert r["usage_reported"] is True, r


def test_usage_record_per_request_in_the_log(metrics_traffic):
    assert_no_secrets(metrics_traffic["log"])
    plain, _, refusal = metrics_records(metrics_traffic)
    assert_answer_record(plain, HI_INPUT, HI_OUTPUT)
    assert (refusal["route"], int(refusal["status"]), int(refusal["target"]), refusal["provider"]) == (
        "team-metrics", 429, 0, "-"), refusal
    assert int(refusal["output_tokens"]) == 0 and float(refusal["cost_usd"]) == 0, refusal


def test_usage_record_of_a_stream_the_client_asked_usage_for(metrics_traffic):
    """The client set ``stream_options.include_usage``, so its usage chunk is the client's (not
    taken out): the record still has the provider's counts."""
    _, streamed, _ = metrics_records(metrics_traffic)
    assert_answer_record(streamed, THERE_INPUT, THERE_OUTPUT)


def test_the_streamed_answer_reports_usage(metrics_traffic):
    chunks = metrics_traffic["chunks"]
    assert metrics_traffic["content"] == "echo: hi there"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and (usage[0].prompt_tokens, usage[0].completion_tokens) == (
        THERE_INPUT, THERE_OUTPUT)
