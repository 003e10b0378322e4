"""Plain completions and streaming through the proxy (routes `plain`, `gpt`)."""

from __future__ import annotations

import json
import uuid

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import pytest

import openai_schema
from conftest import (EMULATOR_URL, KEY, PROXY_URL, TOKEN, WEATHER_TOOL, assert_no_secrets, collect,
                      make_client, normalise_sse, parse_sse, proxy_post, recorded, release, sse_json_events,
                      user)

TARGET_MODEL = {"plain": "emu-model", "gpt": "gpt-4o-mini"}


@pytest.mark.parametrize("route", ["plain", "gpt"])
def test_plain_completion(client, test_id, route):
    resp = client.chat.completions.create(model=route, messages=user("hello proxy"),
                                          extra_body={"test_id": test_id})
    assert resp.object == "chat.completion"
    assert resp.model == TARGET_MODEL[route]
    assert resp.choices[0].message.content == "echo: hello proxy"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    reqs = recorded(test_id)
    assert len(reqs) == 1
    assert reqs[0]["path"] == "/v1/chat/completions"
    assert reqs[0]["body"]["model"] == TARGET_MODEL[route]
    assert reqs[0]["headers"]["authorization"] == f"Bearer {KEY['E2E_KEY_OK']}"
    # the proxy's own token must never reach upstream
    assert TOKEN not in json.dumps(reqs[0]["headers"])


@pytest.mark.parametrize("route", ["plain", "gpt"])
def test_request_fields_pass_through_untouched(proxy_url, test_id, route):
    sent: list = []
    client = make_client(capture=sent)
    resp = client.chat.completions.create(
        model=route,
        messages=[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": [{"type": "text", "text": "weather?"}]}],
        temperature=0.3, top_p=0.9, stop=["END", "STOP"], user="user-1234",
        metadata={"purpose": "e2e", "n": "1"}, max_completion_tokens=77, seed=42,
        tools=[WEATHER_TOOL], tool_choice="auto",
        extra_body={"test_id": test_id, "custom_unknown_field": {"nested": [1, 2.5, None, "x"]},
                    "another_extension": True},
    )
    assert resp.model == TARGET_MODEL[route]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert len(sent) == 1
    reqs = recorded(test_id)
    assert len(reqs) == 1
    got = dict(reqs[0]["body"])
    want = dict(sent[0])
    assert got.pop("model") == TARGET_MODEL[route]
    assert want.pop("model") == route
    assert got == want
    assert reqs[0]["headers"]["authorization"] == f"Bearer {KEY['E2E_KEY_OK']}"


@pytest.mark.parametrize("route", ["plain", "gpt"])
def test_the_clients_bytes_reach_the_upstream_but_for_model(test_id, route):
    """A pass-through forwards the request as written (layout, numbers past 64 bits and their
    spellings, escapes) with only the model's value replaced; a `model` nested deeper is the
    client's own."""
    sent = ('{\n  "model" : "%s",\n  "temperature": 1.0e0,\n  "x_big": 123456789012345678901234567890,\n'
            '  "metadata": {"model": "not this one"},\n'
            '  "messages": [{"role": "user", "content": "caf\\u00e9 \\"model\\": \\"x\\""}],\n'
            '  "test_id": "%s"\n}\n' % (route, test_id)).encode()
    r = proxy_post("/v1/chat/completions", content=sent)
    assert r.status_code == 200, r.text
    [rec] = recorded(test_id)
    assert rec["raw"].encode() == sent.replace(f'"model" : "{route}"'.encode(),
                                               f'"model" : "{TARGET_MODEL[route]}"'.encode())


def test_stream_without_usage(client, test_id):
    stream = client.chat.completions.create(model="plain", messages=user("stream me please"),
                                            stream=True, extra_body={"test_id": test_id})
    chunks, content = collect(stream)
    assert content == "echo: stream me please"
    assert len(chunks) >= 4  # role, ≥2 content, finish: really streamed in pieces
    assert all(c.usage is None for c in chunks)
    assert all(c.model == "emu-model" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    # The proxy meters every request: it asks the upstream for the usage chunk the client did
    # not ask for, and takes it (and each chunk's `"usage": null`) out again.
    body = recorded(test_id)[0]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_stream_with_include_usage(client, test_id):
    stream = client.chat.completions.create(model="plain", messages=user("count my tokens"),
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"test_id": test_id})
    chunks, content = collect(stream)
    assert content == "echo: count my tokens"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert recorded(test_id)[0]["body"]["stream_options"] == {"include_usage": True}


def _raw_stream(url: str, key: str, body: dict) -> httpx.Response:
    with httpx.Client(timeout=30) as c:
        r = c.post(url, json=body, headers={"authorization": f"Bearer {key}"})
        return r


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_bytes_pass_through(proxy_url, include_usage):
    """The proxy forwards an openai-compatible upstream's SSE bytes unchanged.
    `id` and `created` differ per response, so both sides are normalised by regex first."""
    body = {"messages": user("byte for byte please"), "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    via_proxy = _raw_stream(f"{PROXY_URL}/v1/chat/completions", TOKEN,
                            {**body, "model": "plain", "test_id": "t-" + uuid.uuid4().hex})
    direct = _raw_stream(f"{EMULATOR_URL}/v1/chat/completions", KEY["E2E_KEY_OK"],
                         {**body, "model": "emu-model", "test_id": "t-" + uuid.uuid4().hex})
    assert via_proxy.status_code == 200, via_proxy.text
    assert via_proxy.headers["content-type"].startswith("text/event-stream")
    assert direct.status_code == 200
    assert via_proxy.content.endswith(b"data: [DONE]\n\n")
    assert normalise_sse(via_proxy.content) == normalise_sse(direct.content)
    for ev in sse_json_events(via_proxy.content):
        openai_schema.validate_chunk(ev)
        assert ("usage" in ev) == include_usage


def test_stream_is_not_buffered(proxy_url, test_id):
    """The emulator pauses after the first content chunk until released. A proxy that buffers
    the stream never delivers that chunk, so the read timeout fails the test instead of hanging."""
    hold_id = "hold-" + uuid.uuid4().hex
    body = {"model": "plain", "messages": user("held stream works"), "stream": True,
            "test_id": test_id, "emulator_hold": hold_id}
    timeout = httpx.Timeout(10.0, read=8.0)
    released = False
    datas: list[str] = []
    try:
        with httpx.Client(timeout=timeout) as c:
            with c.stream("POST", f"{PROXY_URL}/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status_code == 200
                buf = b""
                for piece in r.iter_bytes():
                    buf += piece
                    end = buf.rfind(b"\n\n")
                    if not released and end >= 0:
                        events = sse_json_events(buf[:end + 2])
                        if any(ch.get("delta", {}).get("content")
                               for ev in events for ch in ev.get("choices", [])):
                            # first content chunk arrived while upstream is still holding
                            assert b"held" not in buf
                            release(hold_id)
                            released = True
                datas = parse_sse(buf)
    finally:
        if not released:
            release(hold_id)  # let the emulator thread go
    assert released, "first content chunk never arrived before release"
    assert datas[-1] == "[DONE]"
    content = "".join(ch["delta"].get("content") or "" for d in datas[:-1]
                      for ch in json.loads(d)["choices"])
    assert content == "echo: held stream works"


def test_base_url_ending_in_chat_completions(proxy_url, test_id):
    """A client whose base URL already ends in /v1/chat/completions posts to
    .../v1/chat/completions/chat/completions; the proxy must accept that."""
    seen: list = []
    c = make_client(base_url=f"{PROXY_URL}/v1/chat/completions")
    c._client.event_hooks["request"] = [lambda req: seen.append(req.url.path)]
    resp = c.chat.completions.create(model="plain", messages=user("doubled path"),
                                     extra_body={"test_id": test_id})
    assert seen == ["/v1/chat/completions/chat/completions"]
    assert resp.choices[0].message.content == "echo: doubled path"
    stream = c.chat.completions.create(model="plain", messages=user("doubled stream"), stream=True,
                                       extra_body={"test_id": test_id})
    assert collect(stream)[1] == "echo: doubled stream"
    assert [r["path"] for r in recorded(test_id)] == ["/v1/chat/completions"] * 2


def test_upstream_never_sees_proxy_token_and_response_has_no_secret(proxy_url, test_id):
    r = httpx.post(f"{PROXY_URL}/v1/chat/completions",
                   json={"model": "plain", "messages": user("x"), "test_id": test_id},
                   headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200
    assert_no_secrets(r.text, dict(r.headers))
    assert TOKEN not in json.dumps(recorded(test_id))
