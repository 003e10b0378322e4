"""Cloudflare Workers AI routes (tests/routes/e2e.toml `wai*`), driven by the official OpenAI SDK.

On the Worker (E2E_HOST=worker) the `api_keys = []` targets run through the AI binding, stood in
by tests/e2e/ai_binding/index.js; the native host has no binding and fails over to the REST API.
Both doors lead to tests/emulators/workers_ai_emulator.py, which validates inputs the way the
binding does (strict fields, string contents, explicit max_tokens), answers in each model
family's literal shapes and formats (shared/wire/workers-ai.md) and records what arrived.

The proxy sends Workers AI no `test_id` field (the binding would reject it), so each test puts its
id in the message text, where the emulator finds it.
"""

from __future__ import annotations

import json
import os

import openai
import pytest

from conftest import (TOKEN, assert_error_shape, assert_no_secrets, collect, finish_reasons, proxy_post,
                      recorded, sse_json_events, streamed_tool_calls)

HOST = os.environ.get("E2E_HOST", "native")
LLAMA = "@cf/meta/llama-3.1-8b-instruct"

# A tool whose schema nests objects, arrays and enums: exactly what workers-rs#1050 empties
# when the input is handed to the binding as serde_json Maps.
NESTED_TOOL = {"type": "function", "function": {
    "name": "book_trip", "description": "Book a trip",
    "parameters": {
        "type": "object",
        "properties": {
            "destination": {
                "type": "object", "description": "Where to go",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "coords": {"type": "array", "description": "lat, lon",
                               "items": {"type": "number"}},
                    "kind": {"type": "string", "description": "kind", "enum": ["city", "beach"]},
                },
                "required": ["city"],
            },
            "nights": {"type": "integer", "description": "How many nights"},
        },
        "required": ["destination"],
    }}}


def says(test_id: str, text: str) -> list[dict]:
    return [{"role": "user", "content": f"{text} {test_id}"}]


def workers_ai_records(test_id: str) -> list[dict]:
    return [r for r in recorded(test_id)
            if r["path"].startswith("binding:") or "/ai/run/" in r["path"]]


def answered_via(test_id: str, model: str = LLAMA) -> dict:
    """The record of the Workers AI request that answered: the binding on the Worker, REST on
    the native host (which has no binding)."""
    records = workers_ai_records(test_id)
    assert len(records) == 1, records
    r = records[0]
    if HOST == "worker":
        assert r["path"] == f"binding:{model}", r["path"]
    else:
        assert r["path"].endswith(f"/ai/run/{model}"), r["path"]
        assert r["headers"]["authorization"].startswith("Bearer ")
    return r


# --------------------------------------------------------------------------- plain

def test_plain(client, test_id):
    resp = client.chat.completions.create(model="wai", messages=says(test_id, "Hello there"))
    assert resp.object == "chat.completion"
    assert resp.model == LLAMA
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: Hello there"
    assert choice.finish_reason == "stop"
    assert resp.usage.prompt_tokens == 12 and resp.usage.total_tokens == 15
    inputs = answered_via(test_id)["body"]
    # Exactly what the model's schema knows: no `model`, no `test_id`, an explicit budget.
    assert inputs == {"messages": [{"role": "user", "content": f"Hello there {test_id}"}],
                      "max_tokens": 4096}


def test_content_null_and_developer_and_parts_become_strings(client, test_id):
    resp = client.chat.completions.create(model="wai", max_tokens=50, messages=[
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": test_id}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": f"again {test_id}"},
    ])
    assert resp.choices[0].message.content == "echo: again"
    inputs = answered_via(test_id)["body"]
    assert inputs["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Hi {test_id}"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": f"again {test_id}"},
    ]
    assert inputs["max_tokens"] == 50


# --------------------------------------------------------------------------- streams

@pytest.mark.parametrize("route,model", [("wai", LLAMA), ("wai-chat", "@cf/moonshotai/kimi-k2.6")])
def test_stream_with_usage(client, test_id, route, model):
    chunks, content = collect(client.chat.completions.create(
        model=route, messages=says(test_id, "Stream me please"), stream=True,
        stream_options={"include_usage": True}))
    assert content == "echo: Stream me please"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 16
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    inputs = answered_via(test_id, model)["body"]
    assert inputs["stream"] is True and "stream_options" not in inputs


def test_stream_raw_sse_ends_with_done_and_has_no_usage_unless_asked(test_id):
    r = proxy_post("/v1/chat/completions", {"model": "wai", "stream": True,
                                            "messages": says(test_id, "raw")})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("data: [DONE]\n\n")
    events = sse_json_events(r.content)
    assert all("usage" not in e for e in events)
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == "echo: raw"


@pytest.mark.parametrize("stream", [False, True])
def test_model_that_answers_whole_when_asked_to_stream(client, test_id, stream):
    model = "@cf/openai/gpt-oss-120b"
    if stream:
        chunks, content = collect(client.chat.completions.create(
            model="wai-whole", messages=says(test_id, "whole answer"), stream=True,
            stream_options={"include_usage": True}))
        assert content == "echo: whole answer"
        assert finish_reasons(chunks) == ["stop"]
        assert chunks[-1].usage.completion_tokens == 3
    else:
        resp = client.chat.completions.create(model="wai-whole", messages=says(test_id, "whole answer"))
        assert resp.choices[0].message.content == "echo: whole answer"
        assert resp.choices[0].message.model_extra.get("reasoning_content") == "Thinking about it."
    inputs = answered_via(test_id, model)["body"]
    assert inputs["max_tokens"] == 1500  # the target's max_tokens


def test_literal_legacy_stream_of_the_wire_notes(client, test_id):
    chunks, content = collect(client.chat.completions.create(
        model="wai", messages=says(test_id, "scenario:stream_legacy"), stream=True,
        stream_options={"include_usage": True}))
    assert content == "Hello! How can?"
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1].usage.prompt_tokens == 755 and chunks[-1].usage.total_tokens == 765


@pytest.mark.parametrize("scenario", ["output_legacy", "output_llama4", "output_openai"])
def test_literal_output_shapes_of_the_wire_notes(client, test_id, scenario):
    resp = client.chat.completions.create(model="wai", messages=says(test_id, f"scenario:{scenario}"))
    message = resp.choices[0].message
    if scenario == "output_openai":
        assert message.content == "Hi" and resp.choices[0].finish_reason == "stop"
    else:
        assert resp.choices[0].finish_reason == "tool_calls"
        assert message.tool_calls[0].function.name == "get_weather"
        assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}


# --------------------------------------------------------------------------- tools

def test_nested_tool_schema_arrives_intact(client, test_id):
    """workers-rs#1050: on the Worker this goes through the binding (RPC keeps a Map a Map, and
    the stand-in records it as `{}`), so an intact schema proves plain JS objects were sent."""
    resp = client.chat.completions.create(model="wai", messages=says(test_id, "Book it"),
                                          tools=[NESTED_TOOL])
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.type == "function" and call.id
    assert call.function.name == "book_trip"
    assert json.loads(call.function.arguments) == {"location": "Boston, MA"}
    inputs = answered_via(test_id)["body"]
    assert inputs["tools"] == [NESTED_TOOL]
    assert "tool_choice" not in inputs  # legacy models have none


def test_nested_tool_schema_reaches_the_binding(client, test_id):
    if HOST != "worker":
        pytest.skip("the AI binding exists only on the Worker")
    client.chat.completions.create(model="wai", messages=says(test_id, "Book it"), tools=[NESTED_TOOL])
    r = answered_via(test_id)
    assert r["path"] == f"binding:{LLAMA}"
    params = r["body"]["tools"][0]["function"]["parameters"]
    assert params["properties"]["destination"]["properties"]["coords"]["items"] == {"type": "number"}


@pytest.mark.parametrize("route", ["wai", "wai-chat"])
def test_tool_call_stream(client, test_id, route):
    chunks, content = collect(client.chat.completions.create(
        model=route, messages=says(test_id, "weather?"), tools=[NESTED_TOOL], stream=True))
    calls = streamed_tool_calls(chunks)
    assert list(calls) == [0]
    assert calls[0]["name"] == "book_trip"
    assert json.loads(calls[0]["arguments"]) == {"location": "Boston, MA"}
    assert finish_reasons(chunks) == ["tool_calls"]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_result_round_trip(client, test_id, stream):
    messages = says(test_id, "Book it") + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "book_trip", "arguments": '{"destination": {"city": "Nice"}}'}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "booked"},
    ]
    if stream:
        _, content = collect(client.chat.completions.create(
            model="wai", messages=messages, tools=[NESTED_TOOL], stream=True))
    else:
        resp = client.chat.completions.create(model="wai", messages=messages, tools=[NESTED_TOOL])
        content = resp.choices[0].message.content
        assert resp.choices[0].finish_reason == "stop"
    assert content == "tool said: booked"
    sent = answered_via(test_id)["body"]["messages"]
    assert sent[1] == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "book_trip", "arguments": '{"destination": {"city": "Nice"}}'},
         "id": "call_abc"}]}
    assert sent[2] == {"role": "tool", "content": "booked", "tool_call_id": "call_abc"}


# --------------------------------------------------------------------------- keys, failover, errors

def test_rest_rotates_tokens_and_reads_the_llama4_shape(client, test_id):
    resp = client.chat.completions.create(model="wai-rest", messages=says(test_id, "Hi"), tools=[NESTED_TOOL])
    assert resp.choices[0].message.tool_calls[0].id.startswith("chatcmpl-tool-")
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments) == {"location": "Boston, MA"}
    records = workers_ai_records(test_id)
    assert [r["key"] for r in records] == ["emu-429-a1", "emu-ok-7d3a9c"]
    assert all(r["path"] == "/client/v4/accounts/emu-account-0a1b2c/ai/run/@cf/meta/llama-4-scout-17b-16e-instruct"
               for r in records)


def answered_content(client, route: str, test_id: str, stream: bool) -> str:
    """The text `route` answers "Hi" with, streamed or whole."""
    kwargs = dict(model=route, messages=says(test_id, "Hi"), extra_body={"test_id": test_id})
    if stream:
        _, content = collect(client.chat.completions.create(stream=True, **kwargs))
        return content
    return client.chat.completions.create(**kwargs).choices[0].message.content


def binding_call(model: str) -> list[str]:
    """What the emulator records of a binding call to `model`: one on the Worker, none on the
    native host, which has no binding."""
    return [f"binding:{model}"] if HOST == "worker" else []


@pytest.mark.parametrize("stream", [False, True])
def test_failover_from_workers_ai_to_another_provider(client, test_id, stream):
    assert answered_content(client, "wai-failover", test_id, stream).startswith("echo: Hi")
    assert [r["path"] for r in recorded(test_id)] == binding_call("@cf/emu/capacity-model") + [
        f"/client/v4/accounts/emu-account-0a1b2c/ai/run/{LLAMA}", "/v1/chat/completions"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_binding_that_does_not_answer_within_headers_timeout_fails_over(client, test_id, stream):
    # The binding's call has no signal to abort: past headers_timeout (1 s) the Worker leaves it
    # unread and the next target answers; the binding's late answer (3 s) never reaches the client.
    assert answered_content(client, "wai-stall", test_id, stream).startswith("echo: Hi")
    assert [r["path"] for r in recorded(test_id)] == binding_call("@cf/emu/stall-model") + [
        "/v1/chat/completions"]


@pytest.mark.parametrize("stream", [False, True])
def test_bad_input_is_a_400_with_workers_ai_message_and_no_failover(test_id, stream):
    r = proxy_post("/v1/chat/completions", {"model": "wai-bad-input", "stream": stream,
                                            "messages": says(test_id, "x"), "test_id": test_id})
    assert r.status_code == 400
    err = assert_error_shape(r.json())
    assert "Invalid data" in err["message"] and err["code"] == "5004"
    assert all(not r["path"].endswith("/chat/completions") for r in recorded(test_id))


def test_n_above_one_is_a_400(client, test_id):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="wai", n=2, messages=says(test_id, "x"))
    assert "one choice" in str(e.value)
    assert workers_ai_records(test_id) == []


def test_secrets_never_reach_the_client(test_id):
    r = proxy_post("/v1/chat/completions", {"model": "wai-failover", "messages": says(test_id, "x"),
                                            "test_id": test_id})
    assert r.status_code == 200
    assert_no_secrets(r.text, dict(r.headers))
    assert TOKEN not in r.text


def test_repeated_tool_call_ids_are_made_unique_and_restored_on_the_way_back(client, test_id):
    """Legacy models name their calls `call0` on every turn; the client sees unique ids and the
    model gets its own back."""
    ids = []
    for _ in range(2):
        chunks, _ = collect(client.chat.completions.create(
            model="wai", messages=says(test_id, "weather?"), tools=[NESTED_TOOL], stream=True))
        ids.append(streamed_tool_calls(chunks)[0]["id"])
    assert ids[0] != ids[1] and all(i.startswith("call0") for i in ids)
    follow_up = says(test_id, "weather?") + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": ids[0], "type": "function", "function": {"name": "book_trip", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": ids[0], "content": "sunny"},
    ]
    resp = client.chat.completions.create(model="wai", messages=follow_up, tools=[NESTED_TOOL])
    assert resp.choices[0].message.content == "tool said: sunny"
    sent = workers_ai_records(test_id)[-1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call0"
    assert sent[2]["tool_call_id"] == "call0"
