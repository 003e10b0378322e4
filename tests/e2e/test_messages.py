"""The Anthropic Messages front door (`POST /v1/messages`, `/v1/messages/count_tokens`, the
`/anthropic/...` aliases, `GET /v1/models` with `anthropic-version`), driven by the official
Anthropic Python SDK (and raw HTTP where a client sends what the SDK does not).

One route per provider behind the door (tests/routes/e2e.toml `msg-*`): `msg-claude` (anthropic:
the client's body passed through, the answer relayed byte for byte), `msg-openai`, `msg-gemini` and
`msg-workers-ai` (translated to an OpenAI chat request, then into each provider's format, and the
answer back into Anthropic's). The emulators reject what the real APIs reject, so a 200 shows the
request was acceptable upstream, not just that it arrived.

How a test's requests are told apart (tests/emulators/*): the test id travels as `metadata.user_id`,
which Anthropic records as is and an OpenAI upstream receives as `user`; Gemini and Workers AI have
no such field, so for those routes it is also written into the user text as `[test_id=…]` (see
`ask`), which their emulators leave out of their echo. `count_tokens` takes no `metadata`: the tag
in the text tags it.

The Anthropic SDK this suite pins (anthropic 2.x) sends its key as `Authorization: Bearer` for both
`api_key=` and `auth_token=`, `anthropic-version: 2026-10-21`, and no `?beta=true` on beta calls;
Claude Code (the fixtures in tests/fixtures/claude_code) sends `x-api-key`,
`anthropic-version: 2023-06-01` and `/v1/messages?beta=true`. Both kinds are covered: `sdk(auth=…)`
and `post()`.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

try:
    import httpx2 as httpx  # the SDKs ship on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import anthropic
import pytest

from conftest import (E2E_HOST, EMULATOR_URL, KEY, PROXY_URL, ROUTES_TOML, TOKEN, assert_no_secrets,
                      make_client, only_upstream_request, recorded, recorded_keys)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulators"))
import anthropic_emulator  # noqa: E402  (the thinking signature it writes)

OK = KEY["E2E_KEY_OK"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude_code"

# route → (provider, upstream model)
ROUTES = {
    "msg-claude": ("anthropic", "claude-sonnet-4-20250514"),
    "msg-openai": ("openai", "gpt-4o-mini"),
    "msg-gemini": ("google", "gemini-2.5-flash"),
    "msg-workers-ai": ("workers-ai", "@cf/moonshotai/kimi-k2.6"),
}
ALL = list(ROUTES)
TRANSLATED = ["msg-openai", "msg-gemini", "msg-workers-ai"]
# Routes whose upstream carries no `metadata.user_id`/`user` the emulator files requests under.
TAGGED = {"msg-gemini", "msg-workers-ai"}
# Kimi (Workers AI) always reasons: its answers start with a thinking block.
REASONS = {"msg-workers-ai"}
MAX_OUTPUT = 4096  # routes.msg-openai max_output_tokens

ERROR_TYPES = {"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
               "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error",
               "billing_error"}
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                "model_context_window_exceeded"}
TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
MINTED = "aiwp1."
SIGNATURE = anthropic_emulator.SIGNATURE
ANTHROPIC_SIGNATURE = "EqQBCgIYAhIMxY0bdWTsIYpPBwMNGgxa"  # one the real API could have issued
SDK_VERSION = anthropic._constants.ANTHROPIC_API_VERSION

WEATHER = {"name": "get_weather", "description": "Get the current weather in a given location",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]}}
TIME = {"name": "get_time", "description": "Get the local time",
        "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}}}
PNG = "iVBORw0KGgo="
PDF = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK"


# --------------------------------------------------------------------------- clients

@pytest.fixture(autouse=True)
def no_anthropic_environment(monkeypatch):
    """The SDK reads a base URL and headers from the environment; they may not change what these
    tests send (every client here is given its credential explicitly)."""
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


def as_x_api_key(request) -> None:
    """Moves the SDK's ``Authorization: Bearer <key>`` into ``x-api-key``, as Claude Code and the
    older SDKs send it (an httpx request hook)."""
    auth = request.headers.pop("authorization", "")
    request.headers["x-api-key"] = auth[len("Bearer "):]


def sdk(auth: str = "api_key", token: str = TOKEN, base_url: str | None = None, capture: list | None = None,
        timeout: float = 30.0) -> anthropic.Anthropic:
    """The official client on the proxy. ``auth``: ``api_key`` / ``auth_token`` (both send
    ``Authorization: Bearer`` in this SDK) or ``x-api-key`` (the header Claude Code sends).
    ``capture`` collects the httpx requests it sends."""
    hooks: list = [as_x_api_key] if auth == "x-api-key" else []
    if capture is not None:
        hooks.append(capture.append)
    kw = dict(base_url=base_url or PROXY_URL, max_retries=0, timeout=timeout,
              http_client=httpx.Client(timeout=timeout, event_hooks={"request": hooks}))
    if auth == "auth_token":
        return anthropic.Anthropic(auth_token=token, **kw)
    assert auth in ("api_key", "x-api-key"), auth
    return anthropic.Anthropic(api_key=token, **kw)


@pytest.fixture
def claude(proxy_url) -> anthropic.Anthropic:
    c = sdk()
    yield c
    c.close()


def compact(body) -> bytes:
    """JSON as JavaScript's JSON.stringify writes it (what Claude Code and the SDKs send)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def post(path: str, body=None, *, content: bytes | None = None, headers: dict | None = None,
         auth: str = "x-api-key", token: str = TOKEN, timeout: float = 30.0) -> httpx.Response:
    """A raw request, as Claude Code sends it (``x-api-key``, ``anthropic-version: 2023-06-01``)."""
    h = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if auth == "x-api-key":
        h["x-api-key"] = token
    elif auth == "bearer":
        h["authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return httpx.post(f"{PROXY_URL}{path}", content=compact(body) if content is None else content,
                      headers=h, timeout=timeout)


# --------------------------------------------------------------------------- helpers

def ask(route: str, text: str, test_id: str) -> list[dict]:
    """One user turn; tagged with the test id where the upstream has no `user` to carry it."""
    return [{"role": "user", "content": tag(route, text, test_id)}]


def tag(route: str, text: str, test_id: str) -> str:
    return f"{text} [test_id={test_id}]" if route in TAGGED else text


def upstream(route: str, test_id: str) -> dict:
    """The one upstream request a test made on ``route`` (a Workers AI route: its binding on the
    Worker, REST natively)."""
    records = recorded(test_id)
    if ROUTES.get(route, ("",))[0] == "workers-ai":
        records = [r for r in records if r["path"].startswith("binding:") or "/ai/run/" in r["path"]]
        assert len(records) == 1, records
        assert records[0]["path"].startswith("binding:") == (E2E_HOST == "worker"), records[0]["path"]
    assert len(records) == 1, records
    return records[0]


def text_of(content) -> str:
    """The text of an OpenAI or Anthropic content value (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") in ("text", None))


def texts(message: dict) -> str:
    return "".join(b["text"] for b in message["content"] if b["type"] == "text")


def kinds(message: dict) -> list[str]:
    return [b["type"] for b in message["content"]]


def tool_uses(message: dict) -> list[tuple[str, dict]]:
    return [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]


def max_tokens_of(body: dict):
    """The output limit an OpenAI upstream was sent, whichever field carried it."""
    return body.get("max_completion_tokens", body.get("max_tokens"))


def sse(raw: bytes) -> list[dict]:
    """The events of an Anthropic stream, each checked to name its `event:` as its data's `type`."""
    events = []
    for block in raw.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].lstrip(" "))
        if data:
            assert "".join(data) != "[DONE]", "an Anthropic stream has no [DONE]"
            event = json.loads("\n".join(data))
            assert name == event.get("type"), f"`event: {name}` carries a {event.get('type')!r}"
            events.append(event)
    return events


def shape(events: list[dict]) -> list[str]:
    """The event sequence, one token per event, runs of the same delta collapsed, pings left out."""
    out: list[str] = []
    for e in events:
        kind = e["type"]
        if kind == "ping":
            continue
        if kind == "content_block_start":
            token = f"content_block_start[{e['index']}:{e['content_block']['type']}]"
        elif kind == "content_block_delta":
            token = f"content_block_delta[{e['index']}:{e['delta']['type']}]"
        elif kind == "content_block_stop":
            token = f"content_block_stop[{e['index']}]"
        else:
            token = kind
        if not out or out[-1] != token:
            out.append(token)
    return out


def block_shape(index: int, kind: str) -> list[str]:
    delta = {"text": ["text_delta"], "thinking": ["thinking_delta", "signature_delta"],
             "tool_use": ["input_json_delta"]}[kind]
    return ([f"content_block_start[{index}:{kind}]"] + [f"content_block_delta[{index}:{d}]" for d in delta]
            + [f"content_block_stop[{index}]"])


def stream_shape(*blocks: str) -> list[str]:
    out = ["message_start"]
    for i, kind in enumerate(blocks):
        out += block_shape(i, kind)
    return out + ["message_delta", "message_stop"]


BLOCK_DELTAS = {"text": {"text_delta", "citations_delta"}, "thinking": {"thinking_delta", "signature_delta"},
                "redacted_thinking": set(), "tool_use": {"input_json_delta"}}


def fold(events: list[dict]) -> dict:
    """Checks Anthropic's event order and returns the Message the events add up to: message_start
    (empty content, no stop_reason), then each block in turn (start at the next index, deltas of
    its kind, a thinking block's signature_delta last, stop) never overlapping, then one
    message_delta (stop_reason, usage) and message_stop."""
    events = [e for e in events if e["type"] != "ping"]
    names = [e["type"] for e in events]
    assert names and names[0] == "message_start", names
    assert names[-2:] == ["message_delta", "message_stop"], names
    message = copy.deepcopy(events[0]["message"])
    assert (message["type"], message["role"], message["content"], message["stop_reason"]) == (
        "message", "assistant", [], None), message
    assert message["id"] and isinstance(message["usage"]["input_tokens"], int), message
    open_index, signed, partial = None, False, ""
    for e in events[1:-2]:
        kind = e["type"]
        if kind == "content_block_start":
            assert open_index is None, f"block {e['index']} starts before block {open_index} stopped"
            assert e["index"] == len(message["content"]), (e["index"], len(message["content"]))
            block = copy.deepcopy(e["content_block"])
            assert block["type"] in BLOCK_DELTAS, block
            if block["type"] == "tool_use":
                assert TOOL_ID.fullmatch(block["id"]) and block["name"] and block["input"] == {}, block
            message["content"].append(block)
            open_index, signed, partial = e["index"], False, ""
        elif kind == "content_block_delta":
            assert e["index"] == open_index, (e, open_index)
            block, delta = message["content"][open_index], e["delta"]
            assert delta["type"] in BLOCK_DELTAS[block["type"]], (block["type"], delta)
            assert not signed, "a delta after the thinking block's signature_delta"
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"], signed = delta["signature"], True
            elif delta["type"] == "input_json_delta":
                partial += delta["partial_json"]
        elif kind == "content_block_stop":
            assert e["index"] == open_index, (e, open_index)
            block = message["content"][open_index]
            if block["type"] == "thinking":
                assert signed and block.get("signature"), "a thinking block ends with its signature_delta"
            if block["type"] == "tool_use":
                block["input"] = json.loads(partial or "{}")
                assert isinstance(block["input"], dict), block
            open_index = None
        else:
            raise AssertionError(f"{kind} between message_start and message_delta: {names}")
    assert open_index is None
    final = events[-2]
    assert final["delta"]["stop_reason"] in STOP_REASONS, final
    assert isinstance(final["usage"]["output_tokens"], int), final
    message["stop_reason"] = final["delta"]["stop_reason"]
    message["stop_sequence"] = final["delta"].get("stop_sequence")
    message["usage"].update(final["usage"])
    return message


def sdk_events(stream) -> list[dict]:
    return [event.to_dict() for event in stream]


def assert_error(r: httpx.Response, status: int, kind: str, retry: bool | None = None) -> str:
    """An error in Anthropic's shape; ``retry`` False: ``x-should-retry: false``; True: not false."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["type"] == "error" and set(body) <= {"type", "error", "request_id"}, body
    assert set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == kind, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if retry is False:
        assert r.headers.get("x-should-retry") == "false", dict(r.headers)
    elif retry is True:
        assert r.headers.get("x-should-retry") != "false", dict(r.headers)
    assert_no_secrets(r.text, dict(r.headers))
    return body["error"]["message"]


def concrete_routes() -> list[str]:
    with open(ROUTES_TOML, "rb") as f:
        return [name for name in tomllib.load(f)["routes"] if "*" not in name]


# =========================================================================== every provider

@pytest.mark.parametrize("route", ALL)
def test_plain(claude, test_id, route):
    msg = claude.messages.create(model=route, max_tokens=1024, system="Be terse.",
                                 messages=ask(route, "hello", test_id), metadata={"user_id": test_id}).to_dict()
    provider, model = ROUTES[route]
    assert (msg["type"], msg["role"]) == ("message", "assistant") and msg["id"]
    if provider == "anthropic":
        assert msg["model"] == model  # Anthropic's own answer
    else:
        assert msg["model"] in (route, model), msg["model"]
    assert kinds(msg) == (["thinking", "text"] if route in REASONS else ["text"]), msg
    assert texts(msg) == "echo: hello"
    assert msg["stop_reason"] == "end_turn" and msg["stop_sequence"] is None
    assert msg["usage"]["input_tokens"] > 0 and msg["usage"]["output_tokens"] > 0
    rec = upstream(route, test_id)
    body = rec["body"]
    if provider == "anthropic":
        assert rec["path"] == "/v1/messages" and rec["key"] == OK
        assert body == {"max_tokens": 1024, "messages": [{"role": "user", "content": "hello"}],
                        "model": model, "metadata": {"user_id": test_id}, "system": "Be terse."}
        assert rec["headers"]["anthropic-version"] == SDK_VERSION
        assert "authorization" not in rec["headers"]
    elif provider == "openai":
        assert rec["path"] == "/v1/chat/completions" and rec["key"] == OK
        assert body["model"] == model and body.get("stream") in (None, False)
        assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [("system", "Be terse."),
                                                                                ("user", "hello")]
        assert body["user"] == test_id and max_tokens_of(body) == 1024
    elif provider == "google":
        assert rec["path"] == f"/v1beta/models/{model}:generateContent" and rec["key"] == OK
        assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
        assert body["contents"] == [{"role": "user", "parts": [{"text": tag(route, "hello", test_id)}]}]
        assert body["generationConfig"]["maxOutputTokens"] == 1024
    else:
        messages = body["messages"]
        assert [(m["role"], text_of(m["content"])) for m in messages] == [
            ("system", "Be terse."), ("user", tag(route, "hello", test_id))]
        assert body["max_tokens"] == 1024
    assert_no_secrets(json.dumps(msg))


@pytest.mark.parametrize("route", ALL)
def test_stream_event_order(claude, test_id, route):
    events = sdk_events(claude.messages.create(model=route, max_tokens=1024, stream=True,
                                               messages=ask(route, "stream me", test_id),
                                               metadata={"user_id": test_id}))
    message = fold(events)
    assert shape(events) == (stream_shape("thinking", "text") if route in REASONS else stream_shape("text"))
    assert texts(message) == "echo: stream me"
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] > 0
    rec = upstream(route, test_id)
    assert rec["body"].get("stream") is True or rec["path"].endswith(":streamGenerateContent?alt=sse"), rec["path"]


@pytest.mark.parametrize("route", ALL)
def test_stream_raw_sse(test_id, route):
    """The bytes: `event:` lines naming each event, no `[DONE]`, text/event-stream."""
    r = post("/v1/messages", {"model": route, "max_tokens": 256, "stream": True,
                              "messages": ask(route, "raw bytes", test_id), "metadata": {"user_id": test_id}})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/event-stream")
    message = fold(sse(r.content))
    assert texts(message) == "echo: raw bytes"
    assert_no_secrets(r.content, dict(r.headers))


# Parallel calls, as each emulator answers two tools: Anthropic replays its literal stream (Paris);
# OpenAI calls both, Gemini both (Boston); Workers AI (Kimi) calls the first only, after thinking.
PARALLEL = {
    "msg-claude": ([], [("get_weather", {"location": "Paris"}), ("get_time", {"timezone": "Europe/Paris"})]),
    "msg-openai": ([], [("get_weather", {"location": "Boston, MA"}), ("get_time", {"location": "Boston, MA"})]),
    "msg-gemini": ([], [("get_weather", {"location": "Boston, MA"}), ("get_time", {"location": "Boston, MA"})]),
    "msg-workers-ai": (["thinking"], [("get_weather", {"location": "Boston, MA"})]),
}


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("route", ALL)
def test_parallel_tool_calls(claude, test_id, route, stream):
    resp = claude.messages.create(model=route, max_tokens=1024, stream=stream, tools=[WEATHER, TIME],
                                  messages=ask(route, "Weather and time in Paris?", test_id),
                                  metadata={"user_id": test_id})
    if stream:
        events = sdk_events(resp)
        message = fold(events)
        leading, calls = PARALLEL[route]
        assert shape(events) == stream_shape(*leading, *["tool_use"] * len(calls))
    else:
        message = resp.to_dict()
        leading, calls = PARALLEL[route]
    assert kinds(message) == leading + ["tool_use"] * len(calls), message
    assert tool_uses(message) == calls
    ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
    assert all(TOOL_ID.fullmatch(i) for i in ids) and len(set(ids)) == len(ids), ids
    assert message["stop_reason"] == "tool_use"
    if route == "msg-openai":
        body = upstream(route, test_id)["body"]
        assert body["tools"] == [
            {"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}} for t in (WEATHER, TIME)]
        assert body.get("tool_choice") in (None, "auto") and body.get("parallel_tool_calls") in (None, True)


@pytest.mark.parametrize("choice,expected", [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "tool", "name": "get_weather"}, {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
    ({"type": "any", "disable_parallel_tool_use": True}, {"tool_choice": "required", "parallel_tool_calls": False}),
], ids=["auto", "any", "tool", "none", "auto-serial", "any-serial"])
def test_tool_choice_becomes_openai_tool_choice(claude, test_id, choice, expected):
    claude.messages.create(model="msg-openai", max_tokens=256, tools=[WEATHER, TIME], tool_choice=choice,
                           messages=ask("msg-openai", "weather?", test_id), metadata={"user_id": test_id})
    body = upstream("msg-openai", test_id)["body"]
    assert {k: body.get(k) for k in expected} == expected, body


@pytest.mark.parametrize("route", ["msg-claude", "msg-openai", "msg-workers-ai"])  # Gemini has no such switch
def test_serial_tool_use_answers_one_call(claude, test_id, route):
    msg = claude.messages.create(model=route, max_tokens=256, tools=[WEATHER, TIME],
                                 tool_choice={"type": "auto", "disable_parallel_tool_use": True},
                                 messages=ask(route, "Weather and time?", test_id),
                                 metadata={"user_id": test_id}).to_dict()
    assert len(tool_uses(msg)) == 1, msg
    assert msg["stop_reason"] == "tool_use"


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("route", ALL)
def test_tool_result_round_trip(claude, test_id, route, stream):
    messages = ask(route, "Weather in Paris?", test_id) + [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01ParisWeather0000000001", "name": "get_weather",
             "input": {"location": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01ParisWeather0000000001", "content": "18C and sunny"}]},
    ]
    resp = claude.messages.create(model=route, max_tokens=512, tools=[WEATHER], messages=messages, stream=stream,
                                  metadata={"user_id": test_id})
    message = fold(sdk_events(resp)) if stream else resp.to_dict()
    assert texts(message).startswith("tool said: ") and "18C and sunny" in texts(message), message
    assert message["stop_reason"] == "end_turn"
    body = upstream(route, test_id)["body"]
    if route == "msg-claude":
        assert body["messages"] == messages
    elif route == "msg-openai":
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["user", "assistant", "tool"], body["messages"]
        [call] = body["messages"][1]["tool_calls"]
        assert (call["id"], call["type"], call["function"]["name"]) == (
            "toolu_01ParisWeather0000000001", "function", "get_weather")
        assert json.loads(call["function"]["arguments"]) == {"location": "Paris"}
        assert text_of(body["messages"][1].get("content")) == "Let me check."
        tool = body["messages"][2]
        assert tool["tool_call_id"] == "toolu_01ParisWeather0000000001" and text_of(tool["content"]) == "18C and sunny"


def test_tool_result_blocks_and_errors_reach_openai(claude, test_id):
    """A tool_result with a list of text blocks and `is_error`, beside a text block in the same turn."""
    messages = [{"role": "user", "content": "Weather and time?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_b", "content": "no clock", "is_error": True},
                    {"type": "text", "text": "Thanks."}]}]
    claude.messages.create(model="msg-openai", max_tokens=256, tools=[WEATHER, TIME], messages=messages,
                           metadata={"user_id": test_id})
    sent = upstream("msg-openai", test_id)["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user"], sent
    assert [(m["tool_call_id"], "18C" in text_of(m["content"]) or "no clock" in text_of(m["content"]))
            for m in sent[2:4]] == [("toolu_a", True), ("toolu_b", True)]
    assert [c["function"]["name"] for c in sent[1]["tool_calls"]] == ["get_weather", "get_time"]
    assert json.loads(sent[1]["tool_calls"][1]["function"]["arguments"]) == {}
    assert text_of(sent[4]["content"]) == "Thanks."


# --------------------------------------------------------------------------- thinking

@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_thinking_on_anthropic_is_passed_through(claude, test_id, stream):
    thinking = {"type": "enabled", "budget_tokens": 2048}
    resp = claude.messages.create(model="msg-claude", max_tokens=4096, thinking=thinking, stream=stream,
                                  messages=[{"role": "user", "content": "hello"}], metadata={"user_id": test_id})
    message = fold(sdk_events(resp)) if stream else resp.to_dict()
    assert message["content"] == [
        {"type": "thinking", "thinking": "Thinking about: hello", "signature": SIGNATURE},
        {"type": "text", "text": "echo: hello"}]
    assert upstream("msg-claude", test_id)["body"]["thinking"] == thinking


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_gemini_thoughts_are_signed_thinking_blocks(claude, test_id, stream):
    resp = claude.messages.create(model="msg-gemini", max_tokens=8000, stream=stream,
                                  thinking={"type": "enabled", "budget_tokens": 5000},
                                  messages=ask("msg-gemini", "scenario:thinking", test_id),
                                  metadata={"user_id": test_id})
    if stream:
        events = sdk_events(resp)
        message = fold(events)
        assert shape(events) == stream_shape("thinking", "text")
    else:
        message = resp.to_dict()
    assert kinds(message) == ["thinking", "text"]
    thought = message["content"][0]
    assert thought["thinking"] == "**Finding the GCD**\n\nI need the common divisors."
    assert thought["signature"].startswith(MINTED), thought
    assert texts(message) == "The GCD is 21." and message["stop_reason"] == "end_turn"
    config = upstream("msg-gemini", test_id)["body"]["generationConfig"]
    assert config["thinkingConfig"]["thinkingBudget"] == 5000, config  # the exact budget on Gemini 2.5


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_workers_ai_reasoning_is_a_signed_thinking_block(claude, test_id, stream):
    resp = claude.messages.create(model="msg-workers-ai", max_tokens=1024, stream=stream,
                                  messages=ask("msg-workers-ai", "hi", test_id), metadata={"user_id": test_id})
    message = fold(sdk_events(resp)) if stream else resp.to_dict()
    thought = message["content"][0]
    assert (thought["type"], thought["thinking"]) == ("thinking", "Thinking about it.")
    assert thought["signature"].startswith(MINTED)
    assert texts(message) == "echo: hi"


@pytest.mark.parametrize("budget,effort", [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"),
                                           (16384, "high"), (31999, "high")])
def test_thinking_budget_becomes_reasoning_effort(claude, test_id, budget, effort):
    claude.messages.create(model="msg-o4", max_tokens=32000, thinking={"type": "enabled", "budget_tokens": budget},
                           messages=ask("msg-o4", "think", test_id), metadata={"user_id": test_id})
    body = only_upstream_request(test_id)["body"]
    assert body["reasoning_effort"] == effort
    assert "thinking" not in body and "max_tokens" not in body
    assert body["max_completion_tokens"] == 32000


def test_thinking_sends_no_reasoning_effort_to_a_model_that_refuses_it(claude, test_id):
    # gpt-4o-mini answers 400 to `reasoning_effort`: thinking is dropped, the turn still runs.
    claude.messages.create(model="msg-openai", max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                           messages=ask("msg-openai", "think", test_id), metadata={"user_id": test_id})
    body = upstream("msg-openai", test_id)["body"]
    assert "reasoning_effort" not in body and "thinking" not in body


def test_thinking_off_sends_no_reasoning_effort(claude, test_id):
    claude.messages.create(model="msg-openai", max_tokens=1000, thinking={"type": "disabled"},
                           messages=ask("msg-openai", "no thinking", test_id), metadata={"user_id": test_id})
    assert "reasoning_effort" not in upstream("msg-openai", test_id)["body"]


# --------------------------------------------------------------------------- minted signatures

def minted_turn(claude, test_id: str) -> list[dict]:
    """A thinking block the proxy minted: Gemini's thought, through the front door."""
    msg = claude.messages.create(model="msg-gemini", max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 2048},
                                 messages=ask("msg-gemini", "scenario:thinking", test_id),
                                 metadata={"user_id": test_id}).to_dict()
    assert msg["content"][0]["signature"].startswith(MINTED), msg
    return msg["content"]


def test_minted_thinking_is_removed_before_anthropic(claude, test_id):
    """A conversation that moves from Gemini to Claude (Claude Code's /model): the thinking block
    the proxy signed for Gemini's thought would be a 400 "Invalid signature" from Anthropic, so it
    is left out; Anthropic's own thinking stays, and everything else reaches it as sent."""
    earlier = minted_turn(claude, test_id + "-gemini")
    messages = [
        {"role": "user", "content": "What is the GCD of 1071 and 462?"},
        {"role": "assistant", "content": earlier},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call the tool.", "signature": ANTHROPIC_SIGNATURE},
            {"type": "tool_use", "id": "toolu_01ParisWeather0000000001", "name": "get_weather",
             "input": {"location": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01ParisWeather0000000001",
                                      "content": "18C"}]},
    ]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    msg = claude.messages.create(model="msg-claude", max_tokens=2048, thinking=thinking, tools=[WEATHER],
                                 messages=messages, metadata={"user_id": test_id}).to_dict()
    assert texts(msg) == "tool said: 18C"
    body = upstream("msg-claude", test_id)["body"]
    expected = copy.deepcopy(messages)
    expected[1]["content"] = [b for b in earlier if b["type"] != "thinking"]
    assert body["messages"] == expected
    assert MINTED not in json.dumps(body)
    assert body["thinking"] == thinking and body["model"] == "claude-sonnet-4-20250514"


def test_minted_thinking_of_the_last_tool_turn(claude, test_id):
    """The tool loop the last turn continues was another provider's: its only thinking block is
    minted. Left out, the turn would break Anthropic's rule that it starts with its thinking (the
    emulator checks it); whatever the proxy does about that, Anthropic must accept the request."""
    minted = {"type": "thinking", "thinking": "The user wants the weather.",
              "signature": MINTED + "0123456789abcdef"}
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [minted, {"type": "tool_use", "id": "call_emu_0", "name": "get_weather",
                                                   "input": {"location": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_emu_0", "content": "18C"}]},
    ]
    msg = claude.messages.create(model="msg-claude", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                 tools=[WEATHER], messages=messages, metadata={"user_id": test_id}).to_dict()
    assert texts(msg) == "tool said: 18C"
    body = upstream("msg-claude", test_id)["body"]
    assert MINTED not in json.dumps(body)
    assert body["messages"][1]["content"] == [messages[1]["content"][1]]


# --------------------------------------------------------------------------- images and documents

IMAGE_TURN = [{"type": "text", "text": "compare"},
              {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
              {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]


@pytest.mark.parametrize("route", ["msg-claude", "msg-openai", "msg-gemini"])
def test_images(claude, test_id, route):
    content = copy.deepcopy(IMAGE_TURN)
    content[0]["text"] = tag(route, "compare", test_id)
    msg = claude.messages.create(model=route, max_tokens=256, messages=[{"role": "user", "content": content}],
                                 metadata={"user_id": test_id}).to_dict()
    assert texts(msg) == "echo: compare"
    body = upstream(route, test_id)["body"]
    if route == "msg-claude":
        assert body["messages"][0]["content"] == content
    elif route == "msg-openai":
        parts = body["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["text", "image_url", "image_url"], parts
        assert [p["image_url"]["url"] for p in parts[1:]] == [f"data:image/png;base64,{PNG}",
                                                              "https://example.com/cat.jpg"]
    else:
        assert body["contents"][0]["parts"] == [
            {"text": content[0]["text"]},
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}]


@pytest.mark.parametrize("route", ["msg-claude", "msg-openai", "msg-gemini"])
def test_pdf_document(claude, test_id, route):
    content = [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
               {"type": "text", "text": tag(route, "summarise", test_id)}]
    msg = claude.messages.create(model=route, max_tokens=256, messages=[{"role": "user", "content": content}],
                                 metadata={"user_id": test_id}).to_dict()
    assert texts(msg) == "echo: summarise"
    body = upstream(route, test_id)["body"]
    if route == "msg-claude":
        assert body["messages"][0]["content"] == content
    elif route == "msg-openai":
        assert PDF in json.dumps(body["messages"][0]["content"])
    else:
        assert {"inlineData": {"mimeType": "application/pdf", "data": PDF}} in body["contents"][0]["parts"]


# --------------------------------------------------------------------------- request fields

def test_openai_request_fields(claude, test_id):
    """stop_sequences → stop; metadata.user_id → user; cache_control dropped; max_tokens kept
    under the target's max_output_tokens."""
    system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    claude.messages.create(model="msg-openai", max_tokens=1000, system=system, stop_sequences=["END", "\n\nHuman:"],
                           messages=[{"role": "user", "content": [
                               {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
                           metadata={"user_id": test_id})
    body = upstream("msg-openai", test_id)["body"]
    assert body["stop"] == ["END", "\n\nHuman:"]
    assert body["user"] == test_id and max_tokens_of(body) == 1000
    assert [(m["role"], text_of(m["content"])) for m in body["messages"]] == [("system", "You are terse."), ("user", "hi")]
    assert "cache_control" not in json.dumps(body) and "metadata" not in body


@pytest.mark.parametrize("requested,sent", [(32000, MAX_OUTPUT), (MAX_OUTPUT + 1, MAX_OUTPUT), (1000, 1000)])
def test_max_tokens_clamped_to_max_output_tokens(claude, test_id, requested, sent):
    claude.messages.create(model="msg-openai", max_tokens=requested, messages=ask("msg-openai", "x", test_id),
                           metadata={"user_id": test_id})
    assert max_tokens_of(upstream("msg-openai", test_id)["body"]) == sent


# --------------------------------------------------------------------------- pass-through bytes

def test_passthrough_request_bytes(test_id):
    """What the SDK sent is what Anthropic got, byte for byte, but for `model`."""
    capture: list = []
    with sdk(capture=capture) as c:
        c.messages.create(model="msg-claude", max_tokens=1000, metadata={"user_id": test_id}, tools=[WEATHER],
                          system=[{"type": "text", "text": "Réponds en français 🇫🇷", "cache_control": {"type": "ephemeral"}}],
                          messages=[{"role": "user", "content": "Quel temps fait-il à Paris ? «Ünïcødé» \u2028 \\ \""}],
                          stop_sequences=["\n\nHuman:"], tool_choice={"type": "none"})
    [request] = capture
    sent = request.content
    rec = upstream("msg-claude", test_id)
    assert rec["raw"].encode() == sent.replace(b'"model":"msg-claude"', b'"model":"claude-sonnet-4-20250514"')


def test_passthrough_request_bytes_claude_code(test_id):
    """A Claude Code request (compact JSON, field order of its own, numbers as written) arrives
    unchanged but for `model`."""
    fixture = json.loads((FIXTURES / "thinking_turn.json").read_text())
    body = dict(fixture["body"], model="msg-claude", metadata={"user_id": test_id})
    sent = compact(body)
    r = post(fixture["path"], content=sent, headers=dict(fixture["headers"]))
    assert r.status_code == 200, r.text[:500]
    fold(sse(r.content))
    rec = upstream("msg-claude", test_id)
    assert rec["raw"].encode() == sent.replace(b'"model":"msg-claude"', b'"model":"claude-sonnet-4-20250514"')


def test_passthrough_request_bytes_as_formatted(test_id):
    """Indented JSON, a number's spelling and escapes arrive as written, but for `model`'s
    value; a `model` nested deeper is the client's own."""
    sent = ('{\n  "model" : "msg-claude",\n  "max_tokens": 64,\n  "temperature": 1.0e0,\n'
            '  "metadata": {"user_id": "%s", "model": "not this one"},\n'
            '  "messages": [{"role": "user", "content": "caf\\u00e9 \\"model\\": \\"x\\""}]\n}\n'
            % test_id).encode()
    r = post("/v1/messages", content=sent)
    assert r.status_code == 200, r.text[:500]
    rec = upstream("msg-claude", test_id)
    assert rec["raw"].encode() == sent.replace(b'"model" : "msg-claude"',
                                               b'"model" : "claude-sonnet-4-20250514"')


def normalise_ids(raw: bytes) -> bytes:
    return re.sub(rb"msg_emu[0-9a-f]{20}", b"msg_emu<id>", raw)


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_passthrough_answer_bytes(test_id, stream):
    """The answer is Anthropic's own, byte for byte (its `caller`, `service_tier`, `ping`...): the
    proxy's bytes equal what the emulator sends for the same upstream request."""
    r = post("/v1/messages", {"model": "msg-claude", "max_tokens": 1000, "stream": stream,
                              "messages": [{"role": "user", "content": "scenario:tool_use"}],
                              "metadata": {"user_id": test_id}})
    assert r.status_code == 200, r.text[:500]
    rec = upstream("msg-claude", test_id)
    direct = httpx.post(f"{EMULATOR_URL}/v1/messages", content=rec["raw"].encode(), timeout=10,
                        headers={"x-api-key": OK, "anthropic-version": rec["headers"]["anthropic-version"],
                                 "content-type": "application/json"})
    assert direct.status_code == 200
    assert normalise_ids(r.content) == normalise_ids(direct.content)
    if stream:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert b"event: ping" in r.content
        fold(sse(r.content))
    else:
        assert r.headers["content-type"].startswith("application/json")
        answer = r.json()
        assert answer["content"][1]["caller"] == {"type": "direct"} and answer["usage"]["service_tier"] == "standard"


# --------------------------------------------------------------------------- headers and auth

@pytest.mark.parametrize("auth", ["x-api-key", "api_key", "auth_token"])
def test_auth_forms(test_id, auth):
    with sdk(auth=auth) as c:
        msg = c.messages.create(model="msg-claude", max_tokens=100, messages=[{"role": "user", "content": "auth"}],
                                metadata={"user_id": test_id})
        assert texts(msg.to_dict()) == "echo: auth"
        count = c.messages.count_tokens(model="msg-openai", messages=[{"role": "user", "content": "count"}])
        assert count.input_tokens > 0
    rec = upstream("msg-claude", test_id)
    assert rec["key"] == OK and rec["headers"]["x-api-key"] == OK
    assert TOKEN not in json.dumps(rec["headers"]), "the proxy token went upstream"


@pytest.mark.parametrize("auth", ["x-api-key", "api_key", "auth_token"])
def test_wrong_token_is_authentication_error(test_id, auth):
    with sdk(auth=auth, token="not-the-token") as c:
        with pytest.raises(anthropic.AuthenticationError) as exc:
            c.messages.create(model="msg-claude", max_tokens=100, messages=[{"role": "user", "content": "x"}],
                              metadata={"user_id": test_id})
        assert exc.value.status_code == 401 and exc.value.body["error"]["type"] == "authentication_error"
        with pytest.raises(anthropic.AuthenticationError):
            c.messages.count_tokens(model="msg-claude", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.AuthenticationError):
            c.models.list()
    assert recorded(test_id) == []


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/anthropic/v1/messages",
                                  "/anthropic/messages"])
@pytest.mark.parametrize("auth", ["x-api-key", "bearer", "none", "wrong"])
def test_auth_on_every_endpoint(test_id, path, auth):
    body = {"model": "msg-openai", "messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": test_id}}
    if not path.endswith("count_tokens"):
        body["max_tokens"] = 10
    else:
        body.pop("metadata")
    r = post(path, body, auth="x-api-key" if auth == "wrong" else auth,
             token="wrong-token" if auth == "wrong" else TOKEN)
    if auth in ("none", "wrong"):
        assert_error(r, 401, "authentication_error", retry=False)
        assert recorded(test_id) == []
    else:
        assert r.status_code == 200, r.text[:500]


def test_anthropic_version_is_forwarded_or_defaulted(test_id):
    with sdk() as c:
        c.messages.create(model="msg-claude", max_tokens=10, messages=[{"role": "user", "content": "v"}],
                          metadata={"user_id": test_id})
    r = post("/v1/messages", {"model": "msg-claude", "max_tokens": 10, "messages": [{"role": "user", "content": "v"}],
                              "metadata": {"user_id": test_id}}, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text[:500]
    r = httpx.post(f"{PROXY_URL}/v1/messages", timeout=30, headers={"x-api-key": TOKEN, "content-type": "application/json"},
                   content=compact({"model": "msg-claude", "max_tokens": 10, "metadata": {"user_id": test_id},
                                    "messages": [{"role": "user", "content": "v"}]}))
    assert r.status_code == 200, r.text[:500]
    assert [rec["headers"]["anthropic-version"] for rec in recorded(test_id)] == [SDK_VERSION, "2023-06-01", "2023-06-01"]


BETAS = "fine-grained-tool-streaming-2025-05-14"


def betas_of(rec: dict) -> list[str]:
    return [b.strip() for b in rec["headers"].get("anthropic-beta", "").split(",") if b.strip()]


def test_anthropic_beta_allow_list(test_id):
    sent = "claude-code-20250219, interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14,made-up-beta-2099-01-01"
    body = {"model": "msg-claude", "max_tokens": 10, "messages": [{"role": "user", "content": "b"}],
            "metadata": {"user_id": test_id}}
    assert post("/v1/messages", body, headers={"anthropic-beta": sent}).status_code == 200
    # only what msg-claude's anthropic_betas allow
    assert betas_of(only_upstream_request(test_id)) == [BETAS]
    # none allowed: no header at all
    other = test_id + "-none"
    assert post("/v1/messages", dict(body, metadata={"user_id": other}),
                headers={"anthropic-beta": "made-up-beta-2099-01-01"}).status_code == 200
    assert "anthropic-beta" not in only_upstream_request(other)["headers"]
    # a route without its own list forwards the default ones only
    default = test_id + "-default"
    assert post("/v1/messages", dict(body, model="claude", metadata={"user_id": default}),
                headers={"anthropic-beta": sent}).status_code == 200
    forwarded = betas_of(only_upstream_request(default))
    assert "made-up-beta-2099-01-01" not in forwarded and set(forwarded) <= {b.strip() for b in sent.split(",")}


def test_beta_client(test_id):
    """`client.beta.messages.create` (betas in `anthropic-beta`) and `?beta=true`, which Claude Code
    and the older SDKs add to every beta call."""
    with sdk() as c:
        msg = c.beta.messages.create(model="msg-claude", max_tokens=100, betas=[BETAS, "interleaved-thinking-2025-05-14"],
                                     messages=[{"role": "user", "content": "beta"}], metadata={"user_id": test_id})
        assert texts(msg.to_dict()) == "echo: beta"
        msg = c.beta.messages.create(model="msg-openai", max_tokens=100, betas=[BETAS], extra_query={"beta": "true"},
                                     messages=[{"role": "user", "content": "beta query"}], metadata={"user_id": test_id})
        assert texts(msg.to_dict()) == "echo: beta query"
    records = recorded(test_id)
    assert [r["path"] for r in records] == ["/v1/messages", "/v1/chat/completions"]
    assert betas_of(records[0]) == [BETAS]


@pytest.mark.parametrize("path", ["/v1/messages?beta=true", "/anthropic/v1/messages?beta=true"])
@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_beta_query(test_id, path, stream):
    r = post(path, {"model": "msg-openai", "max_tokens": 100, "stream": stream, "metadata": {"user_id": test_id},
                    "messages": [{"role": "user", "content": "beta"}]},
             headers={"anthropic-beta": "claude-code-20250219,fine-grained-tool-streaming-2025-05-14"})
    assert r.status_code == 200, r.text[:500]
    message = fold(sse(r.content)) if stream else r.json()
    assert texts(message) == "echo: beta"
    if path.startswith("/v1/"):  # Claude Code counts through /v1/messages/count_tokens?beta=true
        r = post("/v1/messages/count_tokens?beta=true", {"model": "msg-openai", "messages": [{"role": "user", "content": "beta"}]})
        assert r.status_code == 200 and r.json()["input_tokens"] > 0, r.text[:500]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_anthropic_alias_paths(test_id, stream):
    """`ANTHROPIC_BASE_URL=<proxy>/anthropic` (the SDK posts /anthropic/v1/messages) and
    /anthropic/messages."""
    with sdk(base_url=f"{PROXY_URL}/anthropic") as c:
        resp = c.messages.create(model="msg-gemini", max_tokens=100, stream=stream,
                                 messages=ask("msg-gemini", "alias", test_id), metadata={"user_id": test_id})
        message = fold(sdk_events(resp)) if stream else resp.to_dict()
        assert texts(message) == "echo: alias"
    r = post("/anthropic/messages", {"model": "msg-claude", "max_tokens": 100, "stream": stream,
                                     "messages": [{"role": "user", "content": "alias"}], "metadata": {"user_id": test_id}})
    assert r.status_code == 200, r.text[:500]
    assert texts(fold(sse(r.content)) if stream else r.json()) == "echo: alias"
    assert [r["path"].split(":")[-1] for r in recorded(test_id)] == [
        "streamGenerateContent?alt=sse" if stream else "generateContent", "/v1/messages"]


# --------------------------------------------------------------------------- routes

@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_pattern_route_substitutes_the_star(claude, test_id, stream):
    resp = claude.messages.create(model="claude-haiku-4-5-20251001", max_tokens=100, stream=stream,
                                  messages=[{"role": "user", "content": "pattern"}], metadata={"user_id": test_id})
    message = fold(sdk_events(resp)) if stream else resp.to_dict()
    assert texts(message) == "echo: pattern"
    rec = only_upstream_request(test_id)
    assert rec["path"] == "/v1/chat/completions" and rec["body"]["model"] == "up-haiku-4-5-20251001"


@pytest.mark.parametrize("route", ["claude", "claude-budget"])
def test_exact_route_names_win_over_the_pattern(claude, test_id, route):
    msg = claude.messages.create(model=route, max_tokens=100, messages=[{"role": "user", "content": "exact"}],
                                 metadata={"user_id": test_id}).to_dict()
    assert texts(msg) == "echo: exact"
    rec = only_upstream_request(test_id)
    assert rec["path"] == "/v1/messages" and rec["body"]["model"] == "claude-sonnet-4-20250514"


def test_pattern_route_on_the_openai_door(proxy_url, test_id):
    client = make_client()
    try:
        resp = client.chat.completions.create(model="claude-3-7-sonnet-latest", messages=[{"role": "user", "content": "p"}],
                                              extra_body={"test_id": test_id})
    finally:
        client.close()
    assert resp.choices[0].message.content == "echo: p"
    assert only_upstream_request(test_id)["body"]["model"] == "up-3-7-sonnet-latest"


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_failover_from_anthropic_to_openai(claude, test_id, stream):
    resp = claude.messages.create(model="msg-failover", max_tokens=100, stream=stream,
                                  messages=[{"role": "user", "content": "cross"}], metadata={"user_id": test_id})
    message = fold(sdk_events(resp)) if stream else resp.to_dict()
    assert texts(message) == "echo: cross"
    assert [(r["path"], r["key"]) for r in recorded(test_id)] == [
        ("/v1/messages", KEY["E2E_KEY_529"]), ("/v1/chat/completions", OK)]


# --------------------------------------------------------------------------- models

def test_models_list_anthropic_shape(proxy_url):
    r = httpx.get(f"{PROXY_URL}/v1/models", timeout=30, headers={"x-api-key": TOKEN, "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}, body.keys()
    ids = [m["id"] for m in body["data"]]
    assert ids == concrete_routes() and "claude-*" not in ids
    assert body["has_more"] is False and (body["first_id"], body["last_id"]) == (ids[0], ids[-1])
    for m in body["data"]:
        assert set(m) >= {"type", "id", "display_name", "created_at"} and m["type"] == "model", m
        assert isinstance(m["display_name"], str) and m["display_name"]
        datetime.fromisoformat(m["created_at"].replace("Z", "+00:00"))
    # without anthropic-version: the OpenAI list
    openai_list = httpx.get(f"{PROXY_URL}/v1/models", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30).json()
    assert openai_list["object"] == "list" and "has_more" not in openai_list


def test_models_list_sdk(claude):
    assert [m.id for m in claude.models.list()] == concrete_routes()


# --------------------------------------------------------------------------- count_tokens

COUNT_BODY = {"system": "Be terse.", "tools": [WEATHER]}


def test_count_tokens_anthropic_is_the_upstreams(claude, test_id):
    messages = [{"role": "user", "content": f"How many tokens is this? [test_id={test_id}]"}]
    count = claude.messages.count_tokens(model="msg-claude", messages=messages, **COUNT_BODY)
    rec = only_upstream_request(test_id)
    assert rec["path"] == "/v1/messages/count_tokens" and rec["key"] == OK
    assert rec["body"] == dict(COUNT_BODY, model="claude-sonnet-4-20250514", messages=messages)
    direct = httpx.post(f"{EMULATOR_URL}/v1/messages/count_tokens", content=rec["raw"].encode(), timeout=10,
                        headers={"x-api-key": OK, "anthropic-version": "2023-06-01", "content-type": "application/json"})
    assert count.input_tokens == direct.json()["input_tokens"]


def test_count_tokens_google_is_count_tokens(claude, test_id):
    messages = ask("msg-gemini", "How many tokens is this?", test_id)
    count = claude.messages.count_tokens(model="msg-gemini", messages=messages, **COUNT_BODY)
    rec = only_upstream_request(test_id)
    assert rec["path"] == "/v1beta/models/gemini-2.5-flash:countTokens" and rec["key"] == OK
    direct = httpx.post(f"{EMULATOR_URL}{rec['path']}", json=rec["body"], headers={"x-goog-api-key": OK}, timeout=10)
    assert direct.status_code == 200, direct.text
    assert count.input_tokens == direct.json()["totalTokens"]
    assert count.to_dict() == {"input_tokens": count.input_tokens}


def emulator_requests() -> int:
    """How many requests the emulator has recorded so far (the suite runs one test at a time)."""
    return httpx.get(f"{EMULATOR_URL}/_emulator/threads", timeout=10).json()["requests"]


@pytest.mark.parametrize("route", ["msg-openai", "msg-workers-ai", "claude-haiku-4-5-20251001"])
def test_count_tokens_estimate(claude, test_id, route):
    """No provider but Anthropic and Gemini counts: the proxy estimates, and asks no upstream."""
    before = emulator_requests()
    short = claude.messages.count_tokens(model=route, messages=ask(route, "short", test_id))
    long = claude.messages.count_tokens(model=route, messages=ask(route, "a much longer question " * 40, test_id),
                                        **COUNT_BODY)
    assert 0 < short.input_tokens < long.input_tokens
    assert short.to_dict() == {"input_tokens": short.input_tokens}
    assert emulator_requests() == before


def test_count_tokens_unknown_model_is_404(test_id):
    r = post("/v1/messages/count_tokens", {"model": "no-such-route", "messages": [{"role": "user", "content": "x"}]})
    assert_error(r, 404, "not_found_error", retry=False)


# --------------------------------------------------------------------------- errors

def test_unknown_model_is_not_found(claude, test_id):
    with pytest.raises(anthropic.NotFoundError) as exc:
        claude.messages.create(model="no-such-route", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                               metadata={"user_id": test_id})
    assert exc.value.body["error"]["type"] == "not_found_error"
    for stream in (False, True):
        assert_error(post("/v1/messages", {"model": "no-such-route", "max_tokens": 10, "stream": stream,
                                           "messages": [{"role": "user", "content": "x"}]}), 404, "not_found_error",
                     retry=False)
    assert recorded(test_id) == []


@pytest.mark.parametrize("body", [
    {"model": "msg-openai", "messages": [{"role": "user", "content": "no max_tokens"}]},
    {"model": "msg-openai", "max_tokens": "many", "messages": [{"role": "user", "content": "x"}]},
    {"model": "msg-openai", "max_tokens": 10},
    {"model": "msg-openai", "max_tokens": 10, "messages": "not a list"},
    {"max_tokens": 10, "messages": [{"role": "user", "content": "no model"}]},
    {"model": "msg-claude", "messages": [{"role": "user", "content": "no max_tokens, pass-through route"}]},
], ids=["no-max-tokens", "max-tokens-string", "no-messages", "messages-string", "no-model", "no-max-tokens-anthropic"])
def test_bad_body_is_invalid_request(body):
    assert_error(post("/v1/messages", body), 400, "invalid_request_error", retry=False)


def test_malformed_json_is_invalid_request():
    assert_error(post("/v1/messages", content=b'{"model": "msg-openai", "max_tokens": 1,'), 400,
                 "invalid_request_error", retry=False)


def test_body_over_16_mib_is_request_too_large(test_id):
    pad = "a" * (16 * 1024 * 1024 + 1024)
    body = compact({"model": "msg-openai", "max_tokens": 10, "metadata": {"user_id": test_id},
                    "messages": [{"role": "user", "content": pad}]})
    u = urlsplit(PROXY_URL)
    head = (f"POST /v1/messages HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nx-api-key: {TOKEN}\r\n"
            f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    data = b""
    with socket.create_connection((u.hostname, u.port), timeout=60) as s:
        try:
            s.sendall(head)
            for i in range(0, len(body), 1 << 20):
                s.sendall(body[i:i + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while piece := s.recv(65536):
                data += piece
        except (ConnectionResetError, socket.timeout):
            pass
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1."), data[:200]
    assert int(head_bytes.split(b" ", 2)[1]) == 413, data[:500]
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in head_bytes.decode("latin-1").split("\r\n")[1:] if ":" in line)}
    if headers.get("content-type", "").startswith("application/json") and "chunked" not in headers.get("transfer-encoding", ""):
        error = json.loads(payload)
        assert error["type"] == "error" and error["error"]["type"] == "request_too_large", error
        assert headers.get("x-should-retry") == "false", headers
    assert recorded(test_id) == []


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_every_key_rate_limited_is_rate_limit_error(claude, test_id, stream):
    with pytest.raises(anthropic.RateLimitError) as exc:
        resp = claude.messages.create(model="all-429", max_tokens=10, stream=stream,
                                      messages=[{"role": "user", "content": "x"}], metadata={"user_id": test_id})
        if stream:
            list(resp)
    assert exc.value.status_code == 429 and exc.value.body["error"]["type"] == "rate_limit_error"
    assert exc.value.response.headers.get("x-should-retry") != "false"
    assert_no_secrets(str(exc.value), json.dumps(exc.value.body))
    assert recorded_keys(test_id) == [KEY["E2E_KEY_429"], KEY["E2E_KEY_429_B"]]


def test_cooling_keys_are_rate_limit_error_with_retry_after(test_id):
    body = {"model": "cool-msg", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}],
            "metadata": {"user_id": test_id}}
    first = post("/v1/messages", body)  # the upstream's 429 (Retry-After: 30) cools the key
    assert_error(first, 429, "rate_limit_error", retry=True)
    second = post("/v1/messages", dict(body, metadata={"user_id": test_id + "-2"}))
    assert_error(second, 429, "rate_limit_error", retry=True)
    assert second.headers.get("retry-after", "").isdigit() and 0 < int(second.headers["retry-after"]) <= 30
    assert recorded(test_id + "-2") == []


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_every_target_failed_is_api_error(test_id, stream):
    r = post("/v1/messages", {"model": "all-fail", "max_tokens": 10, "stream": stream,
                              "messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": test_id}})
    message = assert_error(r, 500, "api_error", retry=False)
    for name in ("E2E_KEY_500", "E2E_KEY_401", "E2E_KEY_429"):
        assert name in message, message
    with sdk() as c, pytest.raises(anthropic.InternalServerError):
        c.messages.create(model="all-fail", max_tokens=10, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_every_target_overloaded_is_overloaded_error(claude, test_id, stream):
    r = post("/v1/messages", {"model": "msg-overloaded", "max_tokens": 10, "stream": stream,
                              "messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": test_id}})
    assert_error(r, 529, "overloaded_error", retry=True)
    assert recorded_keys(test_id) == [KEY["E2E_KEY_529"], KEY["E2E_KEY_529"]]
    with pytest.raises(anthropic.OverloadedError):
        claude.messages.create(model="msg-overloaded", max_tokens=10, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("route", ["msg-claude", "msg-openai"])
def test_total_timeout_is_timeout_error(test_id, route):
    """An answer that never ends (the emulators' `emulator_endless`) meets the 6 s total_timeout."""
    start = time.monotonic()
    r = post("/v1/messages", {"model": route, "max_tokens": 10, "metadata": {"user_id": test_id},
                              "messages": [{"role": "user", "content": "emulator_endless"}]}, timeout=30)
    assert_error(r, 504, "timeout_error")
    assert 5 <= time.monotonic() - start < 12


def test_error_event_after_output_began_passthrough(claude, test_id):
    """Anthropic's own mid-stream error event, relayed as sent: the stream ends with it."""
    r = post("/v1/messages", {"model": "claude-midstream", "max_tokens": 100, "stream": True,
                              "messages": [{"role": "user", "content": "x"}], "metadata": {"user_id": test_id}})
    assert r.status_code == 200
    events = sse(r.content)
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "content_block_delta",
                                           "content_block_delta", "error"]
    assert events[-1] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert recorded_keys(test_id) == [KEY["E2E_KEY_MIDSTREAM"]]
    text = ""
    with pytest.raises(anthropic.APIStatusError) as exc:
        for event in claude.messages.create(model="claude-midstream", max_tokens=100, stream=True,
                                            messages=[{"role": "user", "content": "x"}]):
            if event.type == "content_block_delta":
                text += event.delta.text
    assert text == "Partial answer" and exc.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize("route,partial", [("midstream", "echo: x"), ("gemini-midstream", None)])
def test_error_event_after_output_began_translated(test_id, route, partial):
    """A translated stream that breaks after its first text: `event: error` closes it, no
    message_stop (and no failover: the client already has text)."""
    text = "x y z" if route == "midstream" else f"x y z [test_id={test_id}]"
    r = post("/v1/messages", {"model": route, "max_tokens": 100, "stream": True,
                              "messages": [{"role": "user", "content": text}], "metadata": {"user_id": test_id}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.content)
    names = [e["type"] for e in events]
    assert names[0] == "message_start" and names[-1] == "error", names
    assert "message_stop" not in names and names.count("error") == 1
    error = events[-1]
    assert set(error) == {"type", "error"} and set(error["error"]) == {"type", "message"}, error
    assert error["error"]["type"] in ERROR_TYPES and error["error"]["message"]
    streamed = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert streamed and (partial is None or streamed == partial), streamed
    assert_no_secrets(r.content)
    assert len(recorded_keys(test_id)) == 1


# =========================================================================== Claude Code replays

FIXTURE_NAMES = ["text_turn", "tool_turn", "thinking_turn", "warmup", "haiku_background"]
REPLAY_ROUTES = ["msg-claude", "msg-openai", "msg-gemini", "msg-workers-ai", "claude-*"]


def replay_body(fixture: dict, route: str, test_id: str) -> dict:
    """The fixture's body for ``route`` (``claude-*``: its own model id) tagged with ``test_id``."""
    body = copy.deepcopy(fixture["body"])
    if route != "claude-*":
        body["model"] = route
    body["metadata"] = {"user_id": test_id}
    if route in TAGGED:
        first = body["messages"][0]
        if isinstance(first["content"], str):
            first["content"] = tag(route, first["content"], test_id)
        else:
            first["content"].append({"type": "text", "text": f"[test_id={test_id}]"})
    return body


@pytest.mark.parametrize("route", REPLAY_ROUTES)
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_claude_code_replay(test_id, name, route):
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    body = replay_body(fixture, route, test_id)
    sent = compact(body)
    r = post(fixture["path"], content=sent, headers=dict(fixture["headers"]), timeout=60)
    assert r.status_code == 200, r.text[:800]
    assert r.headers["content-type"].startswith("text/event-stream")
    message = fold(sse(r.content))
    assert message["stop_reason"] in ("end_turn", "tool_use"), message
    assert message["content"], message
    if route == "claude-*":
        rec = only_upstream_request(test_id)
        assert rec["body"]["model"] == "up-" + fixture["body"]["model"][len("claude-"):]
        return
    rec = upstream(route, test_id)
    provider, model = ROUTES[route]
    if provider == "anthropic":
        assert rec["raw"].encode() == sent.replace(b'"model":"msg-claude"', f'"model":"{model}"'.encode())
        assert betas_of(rec) == [BETAS]
        assert rec["headers"]["anthropic-version"] == "2023-06-01"
    elif provider == "openai":
        assert max_tokens_of(rec["body"]) == min(fixture["body"]["max_tokens"], MAX_OUTPUT)
        assert rec["body"]["user"] == test_id and rec["body"]["stream"] is True
        if "thinking" in fixture["body"]:
            # gpt-4o-mini refuses `reasoning_effort`.
            assert "reasoning_effort" not in rec["body"]
        assert "cache_control" not in json.dumps(rec["body"])
    elif provider == "google":
        assert "$schema" not in json.dumps(rec["body"]) and "cache_control" not in json.dumps(rec["body"])
        if "thinking" in fixture["body"]:
            # Gemini 2.5 Flash thinks on at most 24,576 tokens.
            budget = min(fixture["body"]["thinking"]["budget_tokens"], 24576)
            assert rec["body"]["generationConfig"]["thinkingConfig"]["thinkingBudget"] == budget
