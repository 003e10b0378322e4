"""Anthropic routes (tests/routes/e2e.toml `claude*`), driven by the official OpenAI Python SDK.

The emulator (tests/emulators/anthropic_emulator.py) replays the literal streams of
shared/wire/anthropic-messages.md and rejects requests the real API would reject, so a passing
test shows both directions of the translation. Tests pass their id as the OpenAI `user`, which
reaches Anthropic as `metadata.user_id` and tags the recorded upstream request.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import openai
import pytest

from conftest import (finish_reasons, only_upstream_request, streamed_tool_calls,
                      KEY, TOKEN, assert_error_shape, collect, parse_sse, proxy_post,
                      recorded, recorded_keys, sse_json_events, user)

import openai_schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulators"))
import anthropic_emulator  # noqa: E402  (the thinking signature it writes)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"], "$defs": {"unit": {"enum": ["c", "f"]}}}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the local time",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}


# --------------------------------------------------------------------------- plain

def test_plain_request_and_answer(client, test_id):
    resp = client.chat.completions.create(
        model="claude", user=test_id,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hello"}])
    assert resp.object == "chat.completion"
    assert resp.model == "claude-sonnet-4-20250514"
    assert resp.choices[0].message.content == "echo: hello"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (6, 2, 8)
    rec = only_upstream_request(test_id)
    assert rec["path"] == "/v1/messages"
    assert rec["key"] == KEY["E2E_KEY_OK"]
    assert rec["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in rec["headers"]
    assert rec["body"] == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 64000,
        "system": [{"type": "text", "text": "Be terse."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "metadata": {"user_id": test_id},
    }


def test_stream_with_usage(client, test_id):
    stream = client.chat.completions.create(model="claude", messages=user("stream me"), user=test_id,
                                            stream=True, stream_options={"include_usage": True})
    chunks, content = collect(stream)
    assert content == "echo: stream me"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])
    assert only_upstream_request(test_id)["body"]["stream"] is True


def test_stream_raw_sse_ends_with_done_and_no_usage_unless_asked(test_id):
    r = proxy_post("/v1/chat/completions", {"model": "claude", "messages": user("raw"), "stream": True,
                                            "user": test_id})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    data = parse_sse(r.content)
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    for ev in events:
        openai_schema.validate_chunk(ev)
        assert ev["object"] == "chat.completion.chunk" and len(ev["choices"]) == 1
        assert "usage" not in ev or ev["usage"] is None
    assert [e["choices"][0]["finish_reason"] for e in events].count("stop") == 1


def test_per_target_and_client_max_tokens(client, test_id):
    client.chat.completions.create(model="claude-budget", messages=user("a"), user=test_id)
    assert only_upstream_request(test_id)["body"]["max_tokens"] == 1000
    other = test_id + "-client"
    client.chat.completions.create(model="claude-budget", messages=user("a"), user=other,
                                   max_completion_tokens=50)
    assert only_upstream_request(other)["body"]["max_tokens"] == 50


def test_sampling_fields_are_made_acceptable(client, test_id):
    client.chat.completions.create(model="claude", messages=user("a"), user=test_id, temperature=1.7,
                                   top_p=1, stop=["END", "  "], seed=7, presence_penalty=0.5)
    body = only_upstream_request(test_id)["body"]
    assert body["temperature"] == 1.0 and "top_p" not in body
    assert body["stop_sequences"] == ["END"]
    assert not {"seed", "presence_penalty"} & set(body)


def test_conversation_starting_with_assistant_and_repeated_roles(client, test_id):
    resp = client.chat.completions.create(model="claude", user=test_id, messages=[
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "second"}]},
    ])
    assert resp.choices[0].message.content == "echo: first second"
    messages = only_upstream_request(test_id)["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[2]["content"] == [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]


def test_images_become_base64_and_url_sources(client, test_id):
    client.chat.completions.create(model="claude", user=test_id, messages=[{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]}])
    assert only_upstream_request(test_id)["body"]["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


# --------------------------------------------------------------------------- tools

def test_single_tool_call(client, test_id):
    resp = client.chat.completions.create(model="claude", messages=user("Weather in Paris?"),
                                          user=test_id, tools=[WEATHER], tool_choice="required")
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the current weather in Paris for you."
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"location": "Paris"}
    body = only_upstream_request(test_id)["body"]
    assert body["tools"] == [{"name": "get_weather", "description": "Get the current weather in a given location",
                              "input_schema": WEATHER["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "any"}


def test_single_tool_call_stream(client, test_id):
    stream = client.chat.completions.create(model="claude", messages=user("Weather in Paris?"),
                                            user=test_id, tools=[WEATHER], stream=True)
    chunks, content = collect(stream)
    assert content == "I'll check the current weather in Paris for you."
    calls = streamed_tool_calls(chunks)
    # Anthropic's block index 1 (after the text block) is the client's tool index 0.
    assert list(calls) == [0]
    assert calls[0]["id"] == "toolu_01NRLabsLyVHZPKxbKvkfSMn" and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"location": "Paris"}
    assert finish_reasons(chunks) == ["tool_calls"]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_parallel_tool_calls(client, test_id, stream):
    resp = client.chat.completions.create(model="claude", messages=user("Weather and time in Paris?"),
                                          user=test_id, tools=[WEATHER, TIME], stream=stream)
    if stream:
        chunks, _ = collect(resp)
        calls = [streamed_tool_calls(chunks)[i] for i in (0, 1)]
        assert finish_reasons(chunks) == ["tool_calls"]
    else:
        assert resp.choices[0].finish_reason == "tool_calls"
        calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                 for c in resp.choices[0].message.tool_calls]
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("toolu_01ParisWeather0000000001", "get_weather", {"location": "Paris"}),
        ("toolu_01ParisTime000000000000001", "get_time", {"timezone": "Europe/Paris"}),
    ]


def test_parallel_tool_calls_false_disables_parallel_use(client, test_id):
    resp = client.chat.completions.create(model="claude", messages=user("Weather and time?"), user=test_id,
                                          tools=[WEATHER, TIME], parallel_tool_calls=False)
    assert len(resp.choices[0].message.tool_calls) == 1
    assert only_upstream_request(test_id)["body"]["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_tool_result_round_trip(client, test_id, stream):
    messages = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01ParisWeather0000000001", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
            # An id minted by another provider is made acceptable to Anthropic, the same way twice.
            {"id": "call:abc.1", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01ParisWeather0000000001", "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": "call:abc.1", "content": [{"type": "text", "text": "14:00"}]},
    ]
    resp = client.chat.completions.create(model="claude", messages=messages, user=test_id,
                                          tools=[WEATHER, TIME], stream=stream)
    content = collect(resp)[1] if stream else resp.choices[0].message.content
    assert content == "tool said: 18C and sunny | 14:00"
    turns = only_upstream_request(test_id)["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    uses = turns[1]["content"]
    assert [b["type"] for b in uses] == ["tool_use", "tool_use"]
    assert uses[0]["input"] == {"location": "Paris"} and uses[1]["input"] == {}
    results = turns[2]["content"]
    assert [(b["type"], b["tool_use_id"]) for b in results] == [
        ("tool_result", "toolu_01ParisWeather0000000001"), ("tool_result", uses[1]["id"])]
    assert results[0]["content"] == "18C and sunny"


def test_invalid_tool_arguments_are_a_400(client, test_id):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="claude", user=test_id, tools=[WEATHER], messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "toolu_1", "type": "function",
                                                  "function": {"name": "get_weather", "arguments": "{oops"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "x"}])
    err = assert_error_shape(exc.value.response.json())
    assert err["param"] == "messages[1].tool_calls[0].function.arguments"
    assert recorded(test_id) == []


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_response_format_json_schema_is_content(client, test_id, stream):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}}
    resp = client.chat.completions.create(
        model="claude", messages=user("Largest French city as JSON"), user=test_id, stream=stream,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}})
    if stream:
        chunks, content = collect(resp)
        assert finish_reasons(chunks) == ["stop"] and not streamed_tool_calls(chunks)
    else:
        content = resp.choices[0].message.content
        assert resp.choices[0].finish_reason == "stop" and resp.choices[0].message.tool_calls is None
    assert json.loads(content) == {"city": "Paris", "population": 2102650}
    body = only_upstream_request(test_id)["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    assert body["tools"][0]["input_schema"] == schema


def test_n_above_one_is_a_400_that_says_so(client, test_id):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="claude", messages=user("a"), user=test_id, n=2)
    err = assert_error_shape(exc.value.response.json())
    assert err["param"] == "n" and "n" in err["message"]
    assert recorded(test_id) == []


# --------------------------------------------------------------------------- thinking, refusal

@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_thinking_is_reasoning_content_not_content(test_id, stream):
    r = proxy_post("/v1/chat/completions", {"model": "claude", "messages": user("scenario:thinking"),
                                            "user": test_id, "stream": stream})
    assert r.status_code == 200
    if stream:
        events = sse_json_events(r.content)
        for ev in events:
            openai_schema.validate_chunk(ev)
        deltas = [ev["choices"][0]["delta"] for ev in events if ev["choices"]]
        content = "".join(d.get("content") or "" for d in deltas)
        reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    else:
        message = r.json()["choices"][0]["message"]
        openai_schema.validate_completion(r.json())
        content, reasoning = message["content"], message["reasoning_content"]
    assert content == "The GCD is 21."
    assert reasoning == "I need to find the GCD..."


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_refusal_is_content_filter(client, test_id, stream):
    resp = client.chat.completions.create(model="claude", messages=user("scenario:refusal"), user=test_id,
                                          stream=stream)
    if stream:
        assert finish_reasons(collect(resp)[0]) == ["content_filter"]
    else:
        assert resp.choices[0].finish_reason == "content_filter"


# --------------------------------------------------------------------------- reasoning_effort, thinking_blocks

# src/providers/anthropic/request.rs: the budget each effort asks Anthropic for.
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
SIGNATURE = anthropic_emulator.SIGNATURE  # what the emulator signs its thinking with
GCD_THINKING = {"type": "thinking", "thinking": "I need to find the GCD...", "signature": "EqQBCgIYAhIM..."}


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_reasoning_effort_turns_thinking_on(test_id, effort):
    # The emulator, like Anthropic, takes no temperature but 1 with thinking on.
    r = proxy_post("/v1/chat/completions", {"model": "claude", "messages": user("hi"), "user": test_id,
                                            "reasoning_effort": effort, "temperature": 0.2})
    assert r.status_code == 200, r.text
    openai_schema.validate_completion(r.json())
    body = only_upstream_request(test_id)["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]}
    assert body["thinking"]["budget_tokens"] < body["max_tokens"]
    assert body.get("temperature") in (None, 1) and "top_p" not in body
    message = r.json()["choices"][0]["message"]
    assert message["content"] == "echo: hi"
    assert message["reasoning_content"] == "Thinking about: hi"
    # LiteLLM's convention: the blocks, signature and all, for the client to send back.
    assert message["thinking_blocks"] == [{"type": "thinking", "thinking": "Thinking about: hi", "signature": SIGNATURE}]


def test_reasoning_effort_none_leaves_thinking_off(client, test_id):
    client.chat.completions.create(model="claude", messages=user("hi"), user=test_id, reasoning_effort="none")
    assert "thinking" not in only_upstream_request(test_id)["body"]


def test_thinking_blocks_round_trip(test_id):
    first = proxy_post("/v1/chat/completions", {"model": "claude", "messages": user("scenario:thinking"),
                                                "user": test_id})
    assert first.status_code == 200, first.text
    message = first.json()["choices"][0]["message"]
    assert message["thinking_blocks"] == [GCD_THINKING]
    again = test_id + "-again"
    r = proxy_post("/v1/chat/completions", {"model": "claude", "user": again, "reasoning_effort": "low", "messages": [
        {"role": "user", "content": "scenario:thinking"},
        {"role": "assistant", "content": message["content"], "thinking_blocks": message["thinking_blocks"]},
        {"role": "user", "content": "and 21 and 14?"}]})
    assert r.status_code == 200, r.text
    turns = only_upstream_request(again)["body"]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [GCD_THINKING, {"type": "text", "text": "The GCD is 21."}]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_thinking_blocks_carry_a_tool_loop(test_id, stream):
    """With thinking on, Anthropic wants the turn that called the tools back with its thinking
    first (the emulator checks it): the client's thinking_blocks make that possible."""
    thought = {"type": "thinking", "thinking": "I should call get_weather.", "signature": "EqQBCgIYAhIMxY0bdWTsIYpPBwMNGgxa"}
    r = proxy_post("/v1/chat/completions", {
        "model": "claude", "user": test_id, "reasoning_effort": "medium", "tools": [WEATHER], "stream": stream,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "thinking_blocks": [thought], "tool_calls": [
                {"id": "toolu_01ParisWeather0000000001", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_01ParisWeather0000000001", "content": "18C"}]})
    assert r.status_code == 200, r.text
    if stream:
        content = "".join((e["choices"][0]["delta"].get("content") or "") for e in sse_json_events(r.content) if e["choices"])
    else:
        content = r.json()["choices"][0]["message"]["content"]
    assert content == "tool said: 18C"
    turns = only_upstream_request(test_id)["body"]["messages"]
    assert [b["type"] for b in turns[1]["content"]] == ["thinking", "tool_use"]
    assert turns[1]["content"][0] == thought


def test_minted_thinking_blocks_are_not_sent_to_anthropic(test_id):
    """A thinking block the proxy signed for another provider's reasoning (`aiwp1.`): Anthropic
    would refuse it (400 "Invalid signature"), so it stays behind."""
    r = proxy_post("/v1/chat/completions", {"model": "claude", "user": test_id, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "thinking_blocks": [
            {"type": "thinking", "thinking": "Gemini thought this.", "signature": "aiwp1.0123456789abcdef"}]},
        {"role": "user", "content": "again"}]})
    assert r.status_code == 200, r.text
    turns = only_upstream_request(test_id)["body"]["messages"]
    assert turns[1]["content"] == [{"type": "text", "text": "a"}]


# --------------------------------------------------------------------------- failover and errors

@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_429_529_401_rotate_keys(client, test_id, stream):
    resp = client.chat.completions.create(model="claude-rotate", messages=user("rotate"), user=test_id,
                                          stream=stream)
    content = collect(resp)[1] if stream else resp.choices[0].message.content
    assert content == "echo: rotate"
    assert recorded_keys(test_id) == [KEY["E2E_KEY_429"], KEY["E2E_KEY_529"], KEY["E2E_KEY_401"], KEY["E2E_KEY_OK"]]


def test_failover_to_the_next_anthropic_target(client, test_id):
    resp = client.chat.completions.create(model="claude-failover", messages=user("next"), user=test_id)
    assert resp.model == "claude-sonnet-4-20250514"
    assert [(r["body"]["model"], r["key"]) for r in recorded(test_id)] == [
        ("claude-opus-4-20250514", KEY["E2E_KEY_529"]), ("claude-opus-4-20250514", KEY["E2E_KEY_429"]),
        ("claude-sonnet-4-20250514", KEY["E2E_KEY_OK"])]


def test_failover_from_anthropic_to_openai(client, test_id):
    # The OpenAI emulator tags requests by the body's test_id, so this test sends both.
    resp = client.chat.completions.create(model="claude-to-openai", messages=user("cross"), user=test_id,
                                          extra_body={"test_id": test_id})
    assert resp.model == "emu-second" and resp.choices[0].message.content == "echo: cross"
    assert [(r["path"], r["key"]) for r in recorded(test_id)] == [
        ("/v1/messages", KEY["E2E_KEY_503"]), ("/v1/chat/completions", KEY["E2E_KEY_OK"])]


def test_error_event_before_content_fails_over(client, test_id):
    stream = client.chat.completions.create(model="claude-overload-first", messages=user("again"),
                                            user=test_id, stream=True)
    chunks, content = collect(stream)
    assert content == "echo: again" and finish_reasons(chunks) == ["stop"]
    assert recorded_keys(test_id) == [KEY["E2E_KEY_OVERLOAD_FIRST"], KEY["E2E_KEY_OK"]]


def test_error_event_mid_stream_is_an_openai_error_then_done(client, test_id):
    stream = client.chat.completions.create(model="claude-midstream", messages=user("x"), user=test_id,
                                            stream=True)
    content = ""
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            for choice in chunk.choices:
                assert choice.finish_reason is None
                content += choice.delta.content or ""
    assert content == "Partial answer"
    assert "Overloaded" in str(exc.value)
    assert recorded_keys(test_id) == [KEY["E2E_KEY_MIDSTREAM"]]

    raw = proxy_post("/v1/chat/completions", {"model": "claude-midstream", "messages": user("x"),
                                              "stream": True, "user": test_id + "-raw"}).content
    data = parse_sse(raw)
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2]) == {"error": {"message": "Overloaded", "type": "overloaded_error",
                                              "param": None, "code": None}}


def test_midstream_key_without_streaming_rotates(client, test_id):
    # Not streaming, the same upstream fault is a 529 before any byte: the next key answers.
    resp = client.chat.completions.create(model="claude-midstream", messages=user("whole"), user=test_id)
    assert resp.choices[0].message.content == "echo: whole"
    assert recorded_keys(test_id) == [KEY["E2E_KEY_MIDSTREAM"], KEY["E2E_KEY_OK"]]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_anthropic_400_is_returned_at_once_with_its_message(test_id, stream):
    r = proxy_post("/v1/chat/completions", {"model": "claude-client-error", "messages": user("x"),
                                            "user": test_id, "stream": stream})
    assert r.status_code == 400
    assert r.headers["access-control-allow-origin"] == "*"
    err = assert_error_shape(r.json())
    assert (err["type"], err["message"]) == ("invalid_request_error", "max_tokens: emulated client error")
    assert recorded_keys(test_id) == [KEY["E2E_KEY_400"]]


def test_secrets_never_reach_the_client(test_id):
    r = proxy_post("/v1/chat/completions", {"model": "claude-rotate", "messages": user("s"), "user": test_id})
    assert r.status_code == 200
    for value in KEY.values():
        assert value not in r.text
    assert TOKEN not in r.text
