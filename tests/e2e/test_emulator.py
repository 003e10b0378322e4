"""Self-check of tests/emulators/openai_emulator.py: driven directly with the openai SDK, its
outputs must match the official schema, or the proxy tests would prove nothing."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import anthropic
import openai
import pytest

import openai_schema
from conftest import EMULATOR_URL, KEY, TIME_TOOL, TOOL_ARGS, WEATHER_TOOL, collect, recorded, sse_json_events, user

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulators"))
import anthropic_emulator  # noqa: E402  (its SIGNATURE)


@pytest.fixture(scope="module")
def emu():
    try:
        httpx.get(f"{EMULATOR_URL}/_emulator/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"emulator not reachable at {EMULATOR_URL}: {exc}")
    c = openai.OpenAI(base_url=f"{EMULATOR_URL}/v1", api_key=KEY["E2E_KEY_OK"], max_retries=0, timeout=10)
    yield c
    c.close()


def test_emulator_completion(emu, test_id):
    raw = emu.chat.completions.with_raw_response.create(
        model="m1", messages=user("hi"), extra_body={"test_id": test_id})
    body = raw.http_response.json()
    openai_schema.validate_completion(body)
    assert body["model"] == "m1" and body["choices"][0]["message"]["content"] == "echo: hi"
    rec = recorded(test_id)
    assert len(rec) == 1 and rec[0]["key"] == KEY["E2E_KEY_OK"] and rec[0]["body"]["model"] == "m1"


@pytest.mark.parametrize("tools", [None, [WEATHER_TOOL], [WEATHER_TOOL, TIME_TOOL]])
@pytest.mark.parametrize("usage", [False, True])
def test_emulator_stream(emu, tools, usage):
    kw = {"tools": tools} if tools else {}
    if usage:
        kw["stream_options"] = {"include_usage": True}
    chunks, content = collect(emu.chat.completions.create(model="m", messages=user("a b"), stream=True, **kw))
    if tools:
        args = {}
        for c in chunks:
            for ch in c.choices:
                for tc in ch.delta.tool_calls or []:
                    args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
        assert list(args.values()) == [TOOL_ARGS] * len(tools)
    else:
        assert content == "echo: a b"
    assert (chunks[-1].choices == []) == usage


@pytest.mark.parametrize("name,exc", [("E2E_KEY_429", openai.RateLimitError),
                                      ("E2E_KEY_500", openai.InternalServerError),
                                      ("E2E_KEY_401", openai.AuthenticationError),
                                      ("E2E_KEY_403", openai.PermissionDeniedError),
                                      ("E2E_KEY_400", openai.BadRequestError),
                                      ("E2E_KEY_404", openai.NotFoundError),
                                      ("E2E_KEY_422", openai.UnprocessableEntityError)])
def test_emulator_errors(emu, name, exc):
    r = httpx.post(f"{EMULATOR_URL}/v1/chat/completions", json={"model": "m", "messages": user("x")},
                   headers={"authorization": f"Bearer {KEY[name]}"}, timeout=10)
    openai_schema.validate_error(r.json())
    c = emu.with_options(api_key=KEY[name])
    with pytest.raises(exc):
        c.chat.completions.create(model="m", messages=user("x"))


def test_emulator_midstream_and_drops(emu):
    c = emu.with_options(api_key=KEY["E2E_KEY_MIDSTREAM"])
    content = ""
    with pytest.raises(openai.APIConnectionError):
        for chunk in c.chat.completions.create(model="m", messages=user("x y z"), stream=True, timeout=5):
            content += chunk.choices[0].delta.content or ""
    assert content == "echo: x"
    for name in ("E2E_KEY_DROP", "E2E_KEY_STREAM_DROP"):
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{EMULATOR_URL}/v1/chat/completions", json={"model": "m", "messages": user("x"), "stream": True},
                       headers={"authorization": f"Bearer {KEY[name]}"}, timeout=5)


def test_emulator_hold_release(emu, test_id):
    import uuid
    hold = "h-" + uuid.uuid4().hex
    got: list[str] = []
    with httpx.stream("POST", f"{EMULATOR_URL}/v1/chat/completions", timeout=10,
                      json={"model": "m", "messages": user("p q r"), "stream": True, "emulator_hold": hold},
                      headers={"authorization": f"Bearer {KEY['E2E_KEY_OK']}"}) as r:
        buf = b""
        for piece in r.iter_bytes():
            buf += piece
            if b'"content":"echo:"' in buf and not got:
                assert b" p" not in buf  # held
                got.append("released")
                httpx.post(f"{EMULATOR_URL}/_emulator/release/{hold}", timeout=5)
    assert got and buf.endswith(b"data: [DONE]\n\n")
    events = sse_json_events(buf)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "echo: p q r"


# --------------------------------------------------------------------------- fault modes
# The bytes each fault key puts on the wire (tests/e2e/test_faults.py relies on them), read with a
# raw socket so that a reset, a clean close and a missing last chunk can be told apart.

def wire(path: str, headers: dict, body: dict, read_for: float = 3.0) -> dict:
    """POST ``body`` to the emulator and read what comes back for at most ``read_for`` seconds.
    Returns {"status", "headers", "body" (de-chunked: whole chunks only), "raw_body", "chunked",
    "complete" (the 0-length chunk or the whole Content-Length arrived), "end": "fin" | "rst" |
    "timeout", "elapsed"}."""
    url = urlsplit(EMULATOR_URL)
    payload = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}:{url.port}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(payload)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    start = time.monotonic()
    raw, end = b"", "fin"
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        while True:
            left = read_for - (time.monotonic() - start)
            if left <= 0:
                end = "timeout"
                break
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                end = "timeout"
                break
            except ConnectionResetError:
                end = "rst"
                break
            if not data:
                break
            raw += data
    elapsed = time.monotonic() - start
    out = {"status": None, "headers": {}, "body": b"", "raw_body": b"", "chunked": False,
           "complete": False, "end": end, "elapsed": elapsed}
    if b"\r\n\r\n" not in raw:
        out["raw_body"] = raw
        return out
    head_bytes, rest = raw.split(b"\r\n\r\n", 1)
    lines = head_bytes.decode("latin-1").split("\r\n")
    out["status"] = int(lines[0].split()[1])
    out["headers"] = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    out["raw_body"] = rest
    if "chunked" in out["headers"].get("transfer-encoding", ""):
        out["chunked"] = True
        data = b""
        while b"\r\n" in rest:
            size_line, after = rest.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                out["complete"] = True
                break
            if len(after) < size + 2:  # the read ended inside this chunk
                break
            data += after[:size]
            rest = after[size + 2:]
        out["body"] = data
    else:
        out["body"] = rest
        out["complete"] = len(rest) == int(out["headers"].get("content-length", "-1"))
    return out


def chat_wire(key_name: str, stream: bool, read_for: float = 3.0, text: str = "one two three four") -> dict:
    return wire("/v1/chat/completions", {"Authorization": f"Bearer {KEY[key_name]}"},
                {"model": "m", "messages": user(text), "stream": stream}, read_for)


def data_events(body: bytes) -> list[str]:
    return [block[len("data: "):] for block in body.decode().split("\n\n") if block.startswith("data: ")]


def contents(events: list[str]) -> str:
    return "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in events if e != "[DONE]")


ROLE_ONLY = {"role": "assistant", "content": ""}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_fault_stallheaders(emu, stream):
    r = chat_wire("E2E_KEY_STALLHEADERS", stream, read_for=0.4)
    assert (r["status"], r["raw_body"], r["end"]) == (None, b"", "timeout")


def test_fault_stallfirst(emu):
    r = chat_wire("E2E_KEY_STALLFIRST", True, read_for=0.4)
    assert r["status"] == 200 and r["headers"]["content-type"].startswith("text/event-stream")
    assert r["end"] == "timeout" and not r["complete"]
    [role] = data_events(r["body"])
    assert json.loads(role)["choices"][0]["delta"] == ROLE_ONLY
    assert r["body"].endswith(b"\n\n: keep-alive\n\n")
    r = chat_wire("E2E_KEY_STALLFIRST", False, read_for=0.4)
    assert r["status"] == 200 and r["headers"]["content-type"] == "application/json"
    assert r["end"] == "timeout" and 0 < len(r["body"]) == int(r["headers"]["content-length"]) // 2


def test_fault_drip(emu):
    r = chat_wire("E2E_KEY_DRIP", True, read_for=5.0)
    assert r["status"] == 200 and r["complete"] and r["end"] == "fin"
    assert 1.7 <= r["elapsed"] < 4, r["elapsed"]
    events = data_events(r["body"])
    assert json.loads(events[0])["choices"][0]["delta"] == ROLE_ONLY
    pieces = [json.loads(e)["choices"][0]["delta"]["content"] for e in events[1:7]]
    assert len(pieces) == 6 and all(pieces) and "".join(pieces) == "echo: one two three four"
    assert json.loads(events[7])["choices"][0]["finish_reason"] == "stop" and events[8:] == ["[DONE]"]
    r = chat_wire("E2E_KEY_DRIP", False, read_for=5.0)
    assert r["status"] == 200 and r["complete"] and 0.85 <= r["elapsed"] < 3, r["elapsed"]
    openai_schema.validate_completion(json.loads(r["body"]))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_fault_resetheaders(emu, stream):
    r = chat_wire("E2E_KEY_RESETHEADERS", stream)
    assert (r["status"], r["raw_body"], r["end"]) == (None, b"", "rst")


def test_fault_resetmid(emu):
    r = chat_wire("E2E_KEY_RESETMID", True)
    assert r["status"] == 200 and r["end"] == "rst" and not r["complete"]
    events = data_events(r["body"])
    assert contents(events[:3]) == "echo: one"
    assert json.loads(events[0])["choices"][0]["delta"] == ROLE_ONLY
    with pytest.raises(json.JSONDecodeError):  # then half an event
        json.loads(events[3])
    r = chat_wire("E2E_KEY_RESETMID", False)
    assert r["status"] == 200 and r["end"] == "rst"
    assert 0 < len(r["body"]) == int(r["headers"]["content-length"]) // 2


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_fault_429_hint_and_plain(emu, stream):
    r = chat_wire("E2E_KEY_429HINT", stream)
    assert r["status"] == 429 and r["headers"]["retry-after"] == "30"
    openai_schema.validate_error(json.loads(r["body"]))
    r = chat_wire("E2E_KEY_429", stream)
    assert r["status"] == 429 and "retry-after" not in r["headers"]


def test_fault_badjson(emu):
    r = chat_wire("E2E_KEY_BADJSON", False)
    assert r["status"] == 200 and r["headers"]["content-type"] == "application/json" and r["complete"]
    assert r["body"] == b'{"id": "chatcmpl-x", "choices": ['
    r = chat_wire("E2E_KEY_BADJSON", True)
    assert r["status"] == 200 and r["headers"]["content-type"].startswith("text/event-stream")
    assert r["complete"] and r["body"] == (b'data: {"id":"chatcmpl-x","choices":[{"delta":{"content\n\n'
                                           b"data: [DONE]\n\n")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_fault_badsse(emu, stream):
    r = chat_wire("E2E_KEY_BADSSE", stream)
    assert r["status"] == 200 and r["headers"]["content-type"] == "text/event-stream" and r["complete"]
    assert r["body"] == b"<html><body>502 Bad Gateway</body></html>"


def test_fault_truncated(emu):
    r = chat_wire("E2E_KEY_TRUNCATED", True)
    assert r["status"] == 200 and r["chunked"] and not r["complete"] and r["end"] == "fin"
    events = data_events(r["body"])
    assert len(events) == 2 and contents(events) == "echo:" and r["body"].endswith(b"\n\n")
    r = chat_wire("E2E_KEY_TRUNCATED", False)
    assert r["status"] == 200 and r["headers"]["content-type"] == "application/json"
    assert r["chunked"] and not r["complete"] and r["end"] == "fin"
    assert r["body"].startswith(b'{"id": "chatcmpl-emu') and len(r["body"]) > 50


def test_fault_endless(emu):
    r = chat_wire("E2E_KEY_ENDLESS", True, read_for=0.5)
    assert r["status"] == 200 and r["end"] == "timeout"
    events = data_events(r["body"])
    assert json.loads(events[0])["choices"][0]["delta"] == ROLE_ONLY
    assert 5 <= len(events) - 1 <= 12 and contents(events) == "x" * (len(events) - 1)
    r = chat_wire("E2E_KEY_ENDLESS", False, read_for=0.5)
    assert r["status"] == 200 and r["headers"]["content-type"] == "application/json"
    assert r["chunked"] and r["end"] == "timeout" and 5 <= len(r["body"]) <= 12
    assert set(r["body"]) == {ord(" ")}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_fault_redirect(emu, stream):
    r = chat_wire("E2E_KEY_REDIRECT", stream)
    assert r["status"] == 307 and r["headers"]["location"] == f"{EMULATOR_URL}/v1/chat/completions"


def faults_running() -> int:
    return httpx.get(f"{EMULATOR_URL}/_emulator/threads", timeout=5).json()["faults"]


def test_fault_holds_end_when_the_client_leaves(emu, test_id):
    """Held answers (stalls, endless) stop soon after the client hangs up, not after 30-60 s."""
    names = ("E2E_KEY_STALLHEADERS", "E2E_KEY_STALLFIRST", "E2E_KEY_ENDLESS")
    before = faults_running()
    url = urlsplit(EMULATOR_URL)
    socks = []
    for name in names:
        payload = json.dumps({"model": "m", "messages": user("x"), "stream": True, "test_id": test_id})
        sock = socket.create_connection((url.hostname, url.port), timeout=5)
        sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      f"{KEY[name]}\r\nContent-Length: {len(payload)}\r\n\r\n{payload}").encode())
        socks.append(sock)
    deadline = time.monotonic() + 5
    while faults_running() < before + len(names) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert faults_running() >= before + len(names)
    assert [rec["key"] for rec in recorded(test_id)] == [KEY[n] for n in names]
    for sock in socks:
        sock.close()
    deadline = time.monotonic() + 2
    while faults_running() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert faults_running() <= before


ANTHROPIC = {"model": "claude-x", "max_tokens": 10, "messages": user("one two")}
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:{}"
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "one two"}]}]}


def anthropic_wire(key_name: str, stream: bool, read_for: float = 3.0) -> dict:
    return wire("/v1/messages", {"x-api-key": KEY[key_name], "anthropic-version": "2023-06-01"},
                dict(ANTHROPIC, stream=stream), read_for)


def gemini_wire(key_name: str, stream: bool, read_for: float = 3.0) -> dict:
    path = GEMINI_PATH.format("streamGenerateContent?alt=sse" if stream else "generateContent")
    return wire(path, {"x-goog-api-key": KEY[key_name]}, GEMINI, read_for)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", [anthropic_wire, gemini_wire], ids=["anthropic", "gemini"])
def test_provider_fault_stallheaders(emu, provider, stream):
    r = provider("E2E_KEY_STALLHEADERS", stream, read_for=0.4)
    assert (r["status"], r["raw_body"], r["end"]) == (None, b"", "timeout")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", [anthropic_wire, gemini_wire], ids=["anthropic", "gemini"])
def test_provider_fault_stallfirst(emu, provider, stream):
    r = provider("E2E_KEY_STALLFIRST", stream, read_for=0.4)
    assert r["status"] == 200 and r["end"] == "timeout" and not r["complete"]
    if not stream:
        assert 0 < len(r["body"]) == int(r["headers"]["content-length"]) // 2
    elif provider is anthropic_wire:
        names = [line[len("event: "):] for line in r["body"].decode().splitlines()
                 if line.startswith("event: ")]
        assert names == ["message_start", "ping"]
    else:
        assert r["headers"]["content-type"].startswith("text/event-stream") and r["body"] == b""


def test_provider_fault_429(emu):
    hinted, plain = anthropic_wire("E2E_KEY_429HINT", False), anthropic_wire("E2E_KEY_429", False)
    assert hinted["status"] == plain["status"] == 429
    assert hinted["headers"]["retry-after"] == "30" and "retry-after" not in plain["headers"]
    assert json.loads(hinted["body"])["error"]["type"] == "rate_limit_error"
    overloaded = anthropic_wire("E2E_KEY_529", False)
    assert overloaded["status"] == 529
    assert json.loads(overloaded["body"])["error"]["type"] == "overloaded_error"
    hinted, plain = gemini_wire("E2E_KEY_429HINT", False), gemini_wire("E2E_KEY_429", False)
    assert hinted["status"] == plain["status"] == 429
    assert "retry-after" not in hinted["headers"] and "retry-after" not in plain["headers"]
    error = json.loads(hinted["body"])["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]
    assert "details" not in json.loads(plain["body"])["error"]


# --------------------------------------------------------------------------- Anthropic Messages
# What tests/e2e/test_messages.py relies on: count_tokens, the versions and betas recorded, the
# body's bytes kept, and the thinking rules (an ``aiwp1.`` signature refused as the real API
# refuses a signature it did not issue).

ANTHROPIC_HEADERS = {"x-api-key": KEY["E2E_KEY_OK"], "anthropic-version": "2023-06-01"}
REAL_SIGNATURE = "EqQBCgIYAhIMxY0bdWTsIYpPBwMNGgxa"


def anthropic_post(path: str, body, headers: dict | None = None, key: str = "E2E_KEY_OK") -> httpx.Response:
    h = dict(ANTHROPIC_HEADERS, **{"x-api-key": KEY[key]})
    h.update(headers or {})
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{EMULATOR_URL}{path}", content=content,
                      headers=dict(h, **{"content-type": "application/json"}), timeout=10)


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    return body["error"]["message"]


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def test_anthropic_sdk_reads_the_emulator(emu, test_id):
    """The official Anthropic SDK against the emulator: a Message, a stream, a token count. (This
    SDK sends its key as ``Authorization: Bearer``; a request hook moves it into ``x-api-key``,
    where Anthropic and Claude Code put it.)"""
    def as_x_api_key(request):
        request.headers["x-api-key"] = request.headers.pop("authorization")[len("Bearer "):]

    c = anthropic.Anthropic(base_url=EMULATOR_URL, api_key=KEY["E2E_KEY_OK"], max_retries=0, timeout=10,
                            http_client=httpx.Client(timeout=10, event_hooks={"request": [as_x_api_key]}))
    msg = c.messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "one two"}],
                            metadata={"user_id": test_id})
    assert (msg.model, msg.stop_reason, [b.type for b in msg.content]) == ("claude-x", "end_turn", ["text"])
    assert msg.content[0].text == "echo: one two"
    events = list(c.messages.create(model="claude-x", max_tokens=50, stream=True,
                                    messages=[{"role": "user", "content": "one two"}]))
    assert [e.type for e in events] == ["message_start", "content_block_start", "content_block_delta",
                                        "content_block_delta", "content_block_stop", "message_delta",
                                        "message_stop"]
    count = c.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "one two"}])
    assert count.input_tokens == 10  # 5 + 3 per turn + "one", "two"
    [rec] = recorded(test_id)
    # The SDK's own version (2026-10-21) is one the API knows.
    assert rec["headers"]["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION
    assert rec["headers"]["x-api-key"] == KEY["E2E_KEY_OK"] and "authorization" not in rec["headers"]


def test_anthropic_count_tokens(emu, test_id):
    body = {"model": "claude-x", "system": "Be terse.",
            "messages": [{"role": "user", "content": f"one two three [test_id={test_id}]"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]}
    first = anthropic_post("/v1/messages/count_tokens", body)
    assert first.status_code == 200, first.text
    assert set(first.json()) == {"input_tokens"} and first.json()["input_tokens"] > 0
    assert anthropic_post("/v1/messages/count_tokens", body).json() == first.json()  # deterministic
    longer = dict(body, messages=[{"role": "user", "content": f"one two three four five [test_id={test_id}]"}])
    assert anthropic_post("/v1/messages/count_tokens", longer).json()["input_tokens"] == first.json()["input_tokens"] + 2
    records = recorded(test_id)
    assert [r["path"] for r in records] == ["/v1/messages/count_tokens"] * 3
    assert records[0]["body"] == body and json.loads(records[0]["raw"]) == body
    for field, value in (("max_tokens", 10), ("stream", True), ("metadata", {"user_id": "x"})):
        message = anthropic_error(anthropic_post("/v1/messages/count_tokens", dict(body, **{field: value})),
                                  400, "invalid_request_error")
        assert message == f"{field}: Extra inputs are not permitted"
    anthropic_error(anthropic_post("/v1/messages/count_tokens", body, key="E2E_KEY_429"), 429, "rate_limit_error")
    anthropic_error(anthropic_post("/v1/messages/count_tokens", body, key="E2E_KEY_401"), 401, "authentication_error")


def test_anthropic_versions_betas_and_raw_body(emu, test_id):
    body = {"model": "claude-x", "max_tokens": 10, "metadata": {"user_id": test_id},
            "messages": [{"role": "user", "content": "héllo 🌍"}]}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    betas = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    for version in ("2023-06-01", "2026-10-21"):
        r = anthropic_post("/v1/messages", raw, {"anthropic-version": version, "anthropic-beta": betas})
        assert r.status_code == 200, r.text
    assert "anthropic-version: header is required" == anthropic_error(
        anthropic_post("/v1/messages", raw, {"anthropic-version": ""}), 400, "invalid_request_error")
    assert "invalid version" in anthropic_error(
        anthropic_post("/v1/messages", raw, {"anthropic-version": "1999-01-01"}), 400, "invalid_request_error")
    records = recorded(test_id)
    assert [r["headers"]["anthropic-version"] for r in records[:2]] == ["2023-06-01", "2026-10-21"]
    assert records[0]["headers"]["anthropic-beta"] == betas
    assert records[0]["raw"].encode() == raw and records[0]["body"] == body


def test_anthropic_thinking_blocks_in_history(emu, test_id):
    def history(signature: str | None, role: str = "assistant") -> dict:
        block = {"type": "thinking", "thinking": "Let me think."}
        if signature is not None:
            block["signature"] = signature
        turns = [{"role": "user", "content": "q"},
                 {"role": "assistant", "content": [block, {"type": "text", "text": "a"}]},
                 {"role": "user", "content": "again"}]
        if role == "user":
            turns = [{"role": "user", "content": [{"type": "text", "text": "q"}, block]}]
        return {"model": "claude-x", "max_tokens": 10, "metadata": {"user_id": test_id}, "messages": turns}

    assert anthropic_post("/v1/messages", history(REAL_SIGNATURE)).status_code == 200
    redacted = history(REAL_SIGNATURE)
    redacted["messages"][1]["content"].insert(0, {"type": "redacted_thinking", "data": "EmwKAhgB"})
    assert anthropic_post("/v1/messages", redacted).status_code == 200
    # What the proxy mints for another provider's reasoning: a real Anthropic API refuses it.
    assert anthropic_error(anthropic_post("/v1/messages", history("aiwp1.85944171f73967e8")), 400,
                           "invalid_request_error") == "messages.1.content.0: Invalid `signature` in `thinking` block"
    assert "signature" in anthropic_error(anthropic_post("/v1/messages", history(None)), 400, "invalid_request_error")
    assert "only allowed in `assistant`" in anthropic_error(
        anthropic_post("/v1/messages", history(REAL_SIGNATURE, role="user")), 400, "invalid_request_error")


TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}
THINK = {"type": "enabled", "budget_tokens": 1024}


def test_anthropic_thinking_rules(emu):
    base = {"model": "claude-x", "max_tokens": 2048, "messages": [{"role": "user", "content": "q"}]}
    cases = [
        (dict(base, thinking={"type": "enabled", "budget_tokens": 512}), "greater than or equal to 1024"),
        (dict(base, thinking={"type": "enabled", "budget_tokens": 2048}), "`max_tokens` must be greater than"),
        (dict(base, thinking={"type": "sometimes"}), "does not match any of the expected tags"),
        (dict(base, thinking=THINK, temperature=0.5), "`temperature` may only be set to 1"),
        (dict(base, thinking=THINK, tools=[TOOL], tool_choice={"type": "any"}), "forces tool use"),
    ]
    for body, message in cases:
        assert message in anthropic_error(anthropic_post("/v1/messages", body), 400, "invalid_request_error"), body
    assert anthropic_post("/v1/messages", dict(base, thinking=THINK, temperature=1)).status_code == 200
    assert anthropic_post("/v1/messages", dict(base, thinking={"type": "adaptive"})).status_code == 200
    # A tool loop with thinking on: the turn that called the tool must start with its thinking.
    loop = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"location": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]}]
    body = dict(base, thinking=THINK, tools=[TOOL], messages=loop)
    message = anthropic_error(anthropic_post("/v1/messages", body), 400, "invalid_request_error")
    assert message.startswith("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`")
    signed = json.loads(json.dumps(loop))
    signed[1]["content"].insert(0, {"type": "thinking", "thinking": "t", "signature": REAL_SIGNATURE})
    assert anthropic_post("/v1/messages", dict(body, messages=signed)).status_code == 200
    assert anthropic_post("/v1/messages", dict(base, tools=[TOOL], messages=loop)).status_code == 200


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_thinking_answers(emu, stream):
    """With thinking on, a signed thinking block comes first; ``scenario:thinking`` replays the
    wire notes' stream, folded when not streaming."""
    def ask(body):
        r = anthropic_post("/v1/messages", dict(body, stream=stream))
        assert r.status_code == 200, r.text
        if not stream:
            return r.json()["content"]
        events = sse_events(r.content)
        blocks = []
        for name, data in events:
            if name == "content_block_start":
                assert data["index"] == len(blocks)
                blocks.append(dict(data["content_block"]))
            elif name == "content_block_delta":
                block, delta = blocks[data["index"]], data["delta"]
                key = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature",
                       "input_json_delta": "partial_json"}[delta["type"]]
                block[key] = block.get(key, "") + delta[key]
        for block in blocks:
            if "partial_json" in block:
                block["input"] = json.loads(block.pop("partial_json"))
        return blocks

    content = ask({"model": "claude-x", "max_tokens": 4096, "thinking": THINK,
                   "messages": [{"role": "user", "content": "hello"}]})
    assert content == [{"type": "thinking", "thinking": "Thinking about: hello", "signature": anthropic_emulator.SIGNATURE},
                       {"type": "text", "text": "echo: hello"}]
    content = ask({"model": "claude-x", "max_tokens": 4096, "thinking": THINK, "tools": [TOOL],
                   "messages": [{"role": "user", "content": "weather?"}]})
    assert [b["type"] for b in content] == ["thinking", "text", "tool_use"]
    assert content[2]["input"] == {"location": "Paris"}
    content = ask({"model": "claude-x", "max_tokens": 4096, "messages": [{"role": "user", "content": "scenario:thinking"}]})
    assert content == [{"type": "thinking", "thinking": "I need to find the GCD...", "signature": "EqQBCgIYAhIM..."},
                       {"type": "text", "text": "The GCD is 21."}]


# --------------------------------------------------------------------------- Gemini countTokens

def gemini_post(path: str, body: dict, key: str = "E2E_KEY_OK") -> httpx.Response:
    return httpx.post(f"{EMULATOR_URL}{path}", json=body, headers={"x-goog-api-key": KEY[key]}, timeout=10)


def test_gemini_count_tokens(emu, test_id):
    path = GEMINI_PATH.format("countTokens")
    contents = [{"role": "user", "parts": [{"text": f"one two three [test_id={test_id}]"}]}]
    r = gemini_post(path, {"contents": contents})
    assert r.status_code == 200, r.text
    total = r.json()["totalTokens"]
    assert total > 0 and r.json() == {"totalTokens": total,
                                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    whole = {"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": contents,
                                        "systemInstruction": {"parts": [{"text": "Be terse."}]},
                                        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}]}}
    r = gemini_post(path, whole)
    assert r.status_code == 200, r.text
    assert r.json()["totalTokens"] > total
    assert gemini_post(path, whole).json() == r.json()  # deterministic
    records = recorded(test_id)
    assert [rec["path"] for rec in records] == ["/v1beta/models/gemini-2.5-flash:countTokens"] * 3
    bad = [({"contents": contents, "generateContentRequest": whole["generateContentRequest"]}, "exactly one of"),
           ({"contents": contents, "systemInstruction": {"parts": [{"text": "x"}]}}, "Unknown name \"systemInstruction\""),
           ({"generateContentRequest": {"contents": contents}}, "unexpected model name format"),
           ({"contents": [{"role": "user", "parts": [{"text": "a", "thought": True, "bogus": 1}]}]}, "Unknown name \"bogus\"")]
    for body, message in bad:
        r = gemini_post(path, body)
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", r.text
        assert message in r.json()["error"]["message"], r.text
    r = gemini_post(path, {"contents": contents}, key="E2E_KEY_401")
    assert r.status_code == 400 and r.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert gemini_post(path, {"contents": contents}, key="E2E_KEY_429").status_code == 429


# --------------------------------------------------------------------------- test ids

def test_openai_user_that_is_a_test_id_tags_the_request(emu, test_id):
    emu.chat.completions.create(model="m", messages=user("x"), user=test_id)
    emu.chat.completions.create(model="m", messages=user("x"), user="someone-" + test_id)
    [rec] = recorded(test_id)
    assert rec["body"]["user"] == test_id and json.loads(rec["raw"]) == rec["body"]


def test_workers_ai_leaves_the_tag_out_of_its_echo(emu, test_id):
    r = httpx.post(f"{EMULATOR_URL}/client/v4/accounts/emu-account-0a1b2c/ai/run/@cf/meta/llama-3.1-8b-instruct",
                   json={"messages": user(f"hi there [test_id={test_id}]"), "max_tokens": 10},
                   headers={"authorization": f"Bearer {KEY['E2E_KEY_OK']}"}, timeout=10)
    assert r.status_code == 200 and r.json()["result"]["response"] == "echo: hi there", r.text
    assert len(recorded(test_id)) == 1
