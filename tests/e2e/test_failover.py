"""Failover rules (tests/routes/e2e.toml), each non-stream and stream.

The emulator records every attempt with the key it received, so the tests check the exact order
of (model, key) attempts for their test_id.
"""

from __future__ import annotations

import json

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import openai
import pytest

from conftest import (KEY, PROXY_URL, TOKEN, assert_error_shape, assert_no_secrets, collect,
                      recorded_attempts, recorded_keys, sse_json_events, user)

K = KEY
# route → expected (model, key) attempts seen by the emulator, and the model that answers
SUCCESS = {
    "rotate-429": ([("emu-model", K["E2E_KEY_429"]), ("emu-model", K["E2E_KEY_OK"])], "emu-model"),
    "rotate-5xx": ([("emu-model", K["E2E_KEY_500"]), ("emu-model", K["E2E_KEY_503"]),
                    ("emu-model", K["E2E_KEY_529"]), ("emu-model", K["E2E_KEY_OK"])], "emu-model"),
    "rotate-auth": ([("emu-model", K["E2E_KEY_401"]), ("emu-model", K["E2E_KEY_403"]),
                     ("emu-model", K["E2E_KEY_OK"])], "emu-model"),
    # E2E_KEY_NEVER_SET is not in the environment: skipped without an upstream attempt
    "unset-key": ([("emu-model", K["E2E_KEY_OK"])], "emu-model"),
    "failover": ([("emu-first", K["E2E_KEY_429"]), ("emu-first", K["E2E_KEY_503"]),
                  ("emu-second", K["E2E_KEY_OK"])], "emu-second"),
    # first target's base URL is unreachable (never reaches the emulator), then a dropped connection
    "network": ([("emu-model", K["E2E_KEY_DROP"]), ("emu-model", K["E2E_KEY_OK"])], "emu-model"),
    # 200 + SSE headers then close before any byte (non-stream: plain close)
    "stream-drop": ([("emu-model", K["E2E_KEY_STREAM_DROP"]), ("emu-model", K["E2E_KEY_OK"])],
                    "emu-model"),
    # an upstream 404 is the route's fault (a misspelt model id in routes.toml), not the client's
    "client-404": ([("emu-model", K["E2E_KEY_404"]), ("emu-model", K["E2E_KEY_OK"])], "emu-model"),
    # a 204 is a success status with no body, so no answer (on the Worker, a response whose
    # `body` is null)
    "no-content": ([("emu-model", K["E2E_KEY_204"]), ("emu-model", K["E2E_KEY_OK"])], "emu-model"),
}


@pytest.mark.parametrize("route", SUCCESS)
def test_failover_success_non_stream(client, test_id, route):
    attempts, model = SUCCESS[route]
    resp = client.chat.completions.create(model=route, messages=user(f"failover {route}"),
                                          extra_body={"test_id": test_id})
    assert resp.choices[0].message.content == f"echo: failover {route}"
    assert resp.model == model
    assert recorded_attempts(test_id) == attempts


@pytest.mark.parametrize("route", SUCCESS)
def test_failover_success_stream(client, test_id, route):
    attempts, model = SUCCESS[route]
    stream = client.chat.completions.create(model=route, messages=user(f"failover {route}"),
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"test_id": test_id})
    chunks, content = collect(stream)
    assert content == f"echo: failover {route}"
    assert {c.model for c in chunks} == {model}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert recorded_attempts(test_id) == attempts


def test_a_whole_answer_past_32_mib_is_not_collected_and_fails_over(client, test_id):
    # Natively the translator refuses it at the cap; on the Worker the fetch's JavaScript stops
    # reading there and hands the module nothing of it.
    resp = client.chat.completions.create(model="too-large", messages=user("huge"),
                                          extra_body={"test_id": test_id})
    assert resp.choices[0].message.content == "echo: huge"
    assert recorded_attempts(test_id) == [("emu-model", K["E2E_KEY_HUGE"]),
                                          ("emu-model", K["E2E_KEY_OK"])]


CLIENT_ERRORS = {
    "client-error": (400, openai.BadRequestError, "E2E_KEY_400",
                     "Invalid value for 'temperature': emulated client error."),
    "client-422": (422, openai.UnprocessableEntityError, "E2E_KEY_422", "emulated client error"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("route", CLIENT_ERRORS)
def test_client_errors_are_not_retried(client, test_id, route, stream):
    status, exc_type, key_name, message = CLIENT_ERRORS[route]
    with pytest.raises(exc_type) as info:
        res = client.chat.completions.create(model=route, messages=user("bad request"), stream=stream,
                                             extra_body={"test_id": test_id})
        if stream:
            collect(res)
    assert info.value.status_code == status
    assert message in info.value.message
    assert_no_secrets(str(info.value), info.value.body)
    assert recorded_keys(test_id) == [K[key_name]], "a 4xx client error must not be retried"


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_all_429_is_rate_limit(client, test_id, stream):
    with pytest.raises(openai.RateLimitError) as info:
        res = client.chat.completions.create(model="all-429", messages=user("x"), stream=stream,
                                             extra_body={"test_id": test_id})
        if stream:
            collect(res)
    assert info.value.status_code == 429
    assert_no_secrets(str(info.value), info.value.body)
    assert recorded_keys(test_id) == [K["E2E_KEY_429"], K["E2E_KEY_429_B"]]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_all_fail_names_every_attempt(client, test_id, stream):
    with pytest.raises(openai.InternalServerError) as info:
        res = client.chat.completions.create(model="all-fail", messages=user("x"), stream=stream,
                                             extra_body={"test_id": test_id})
        if stream:
            collect(res)
    err = info.value
    assert err.status_code == 500
    msg = err.message
    for name, status in (("E2E_KEY_500", "500"), ("E2E_KEY_401", "401"), ("E2E_KEY_429", "429")):
        assert name in msg, f"{name} missing from {msg!r}"
        assert status in msg, f"status {status} missing from {msg!r}"
    # the key names appear in attempt order
    assert msg.index("E2E_KEY_500") < msg.index("E2E_KEY_401") < msg.index("E2E_KEY_429")
    assert_no_secrets(msg, err.body, dict(err.response.headers))
    assert recorded_keys(test_id) == [K["E2E_KEY_500"], K["E2E_KEY_401"], K["E2E_KEY_429"]]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_all_fail_raw_body(proxy_url, test_id, stream):
    r = httpx.post(f"{PROXY_URL}/v1/chat/completions",
                   json={"model": "all-fail", "messages": user("x"), "stream": stream, "test_id": test_id},
                   headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/json")
    assert_error_shape(r.json())
    assert_no_secrets(r.text, dict(r.headers))


def test_midstream_non_stream_succeeds(client, test_id):
    resp = client.chat.completions.create(model="midstream", messages=user("whole answer"),
                                          extra_body={"test_id": test_id})
    assert resp.choices[0].message.content == "echo: whole answer"
    assert recorded_keys(test_id) == [K["E2E_KEY_MIDSTREAM"]]


def test_midstream_failure_sdk(client, test_id):
    stream = client.chat.completions.create(model="midstream", messages=user("one two three four"),
                                            stream=True, extra_body={"test_id": test_id})
    content = ""
    finishes = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            for ch in chunk.choices:
                content += ch.delta.content or ""
                if ch.finish_reason:
                    finishes.append(ch.finish_reason)
    # the emulator sent role + "echo:" + " one" before closing the socket
    assert content == "echo: one"
    assert finishes == []
    # an in-band `data: {"error": ...}` event raises a plain APIError; a dropped connection would
    # raise APIConnectionError (a subclass) and a non-200 status APIStatusError — both are wrong here
    assert type(info.value) is openai.APIError, repr(info.value)
    assert info.value.body and info.value.body.get("message")
    assert_no_secrets(str(info.value), info.value.body)
    # bytes were already forwarded: no failover to the next key
    assert recorded_keys(test_id) == [K["E2E_KEY_MIDSTREAM"]]


def test_midstream_failure_raw(proxy_url, test_id):
    r = httpx.post(f"{PROXY_URL}/v1/chat/completions",
                   json={"model": "midstream", "messages": user("one two three four"), "stream": True,
                         "stream_options": {"include_usage": True}, "test_id": test_id},
                   headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200
    raw = r.content
    assert raw.endswith(b"data: [DONE]\n\n"), raw[-300:]
    events = sse_json_events(raw)
    assert "error" in events[-1], events[-1]
    assert_error_shape(events[-1])
    assert_no_secrets(raw)
    for ev in events[:-1]:
        assert "error" not in ev
        for ch in ev.get("choices", []):
            assert ch.get("finish_reason") != "stop"
    content = "".join(ch["delta"].get("content") or "" for ev in events[:-1] for ch in ev["choices"])
    assert content == "echo: one"
    # the error event is the last event before [DONE]
    tail = raw.rsplit(b"data: ", 2)
    assert json.loads(tail[1]).get("error") and tail[2] == b"[DONE]\n\n"

