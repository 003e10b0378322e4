"""Self-check of tests/emulators/openai_emulator.py: driven directly with the openai SDK, its
outputs must match the official schema, or the proxy tests would prove nothing."""

from __future__ import annotations

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import openai
import pytest

import openai_schema
from conftest import EMULATOR_URL, KEY, TIME_TOOL, TOOL_ARGS, WEATHER_TOOL, collect, recorded, sse_json_events, user


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
