"""Google Gemini routes (tests/routes/e2e.toml `gemini*`), driven by the official OpenAI Python SDK.

The emulator (tests/emulators/gemini_emulator.py) replays the literal responses of
shared/wire/gemini.md (CRLF-framed SSE, the raw JSON error appended to a failing stream) and
rejects requests the real API would reject, so a passing test shows both directions of the
translation. The proxy forwards no OpenAI-only field, so tests tag a request by writing
`[test_id=X]` into a user message (see `tagged`); the emulator records it as the request's tag.
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import (finish_reasons, only_upstream_request, streamed_tool_calls,
                      KEY, TOKEN, assert_error_shape, collect, parse_sse, proxy_post, recorded,
                      recorded_keys, sse_json_events)

import openai_schema

WEATHER = {"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "strict": True,
    "parameters": {"type": "object", "additionalProperties": False,
                   "$defs": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "properties": {"location": {"type": "string", "description": "The city and state"},
                                  "unit": {"$ref": "#/$defs/unit"},
                                  "days": {"type": ["integer", "null"], "exclusiveMinimum": 0}},
                   "required": ["location"]}}}
# What Gemini must receive for WEATHER: the keywords it rejects removed, the $ref inlined.
WEATHER_DECLARATION = {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object",
                   "properties": {"location": {"type": "string", "description": "The city and state"},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                  "days": {"type": "integer", "nullable": True}},
                   "required": ["location"]}}
TIME = {"type": "function", "function": {
    "name": "get_local_time", "description": "Get the local time in a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
SIGNATURE = "CiQB0e2Kb..."


def tagged(text: str, test_id: str) -> str:
    return f"{text} [test_id={test_id}]"


def ask(text: str, test_id: str) -> list[dict]:
    return [{"role": "user", "content": tagged(text, test_id)}]


def calls_of(resp, stream: bool) -> tuple[list[dict], list[str]]:
    """(tool calls, finish reasons) of a streamed or whole response."""
    if stream:
        chunks, _ = collect(resp)
        calls = streamed_tool_calls(chunks)
        return [calls[i] for i in sorted(calls)], finish_reasons(chunks)
    choice = resp.choices[0]
    return ([{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
             for c in choice.message.tool_calls or []], [choice.finish_reason])


# --------------------------------------------------------------------------- plain

def test_plain_request_and_answer(client, test_id):
    resp = client.chat.completions.create(model="gemini", messages=[
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": tagged("hello", test_id)}])
    assert resp.object == "chat.completion"
    assert resp.model == "gemini-2.5-flash"
    assert resp.id.startswith("chatcmpl-emu")
    assert resp.choices[0].message.content == "echo: hello"
    assert resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (5, 2, 7)
    assert resp.usage.completion_tokens_details.reasoning_tokens == 0
    rec = only_upstream_request(test_id)
    # The key travels in x-goog-api-key, never in the URL.
    assert rec["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert rec["key"] == KEY["E2E_KEY_OK"] and rec["headers"]["x-goog-api-key"] == KEY["E2E_KEY_OK"]
    assert "authorization" not in rec["headers"]
    assert rec["body"] == {
        "contents": [{"role": "user", "parts": [{"text": tagged("hello", test_id)}]}],
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
    }


def test_stream_with_usage(client, test_id):
    stream = client.chat.completions.create(model="gemini", messages=ask("stream me", test_id), stream=True,
                                            stream_options={"include_usage": True})
    chunks, content = collect(stream)
    assert content == "echo: stream me"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 9
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and chunks[0].model == "gemini-2.5-flash"
    assert only_upstream_request(test_id)["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_stream_raw_sse_ends_with_done_and_no_usage_unless_asked(test_id):
    r = proxy_post("/v1/chat/completions", {"model": "gemini", "messages": ask("raw", test_id), "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert b"\r\n" not in r.content  # Gemini's CRLF framing is not passed on
    data = parse_sse(r.content)
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    for ev in events:
        openai_schema.validate_chunk(ev)
        assert ev["object"] == "chat.completion.chunk" and len(ev["choices"]) == 1
        assert "usage" not in ev
    assert [e["choices"][0]["finish_reason"] for e in events] == [None, None, None, "stop"]


def test_generation_config_fields(client, test_id):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city"], "additionalProperties": False}
    client.chat.completions.create(
        model="gemini", messages=ask("a", test_id), temperature=1.7, top_p=0.9, stop=["END"], seed=7,
        presence_penalty=0.5, frequency_penalty=0.25, max_completion_tokens=300, reasoning_effort="low",
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        user="someone", metadata={"a": "b"}, parallel_tool_calls=False)
    body = only_upstream_request(test_id)["body"]
    assert set(body) == {"contents", "generationConfig"}
    assert body["generationConfig"] == {
        "maxOutputTokens": 300, "temperature": 1.7, "topP": 0.9, "stopSequences": ["END"], "seed": 7,
        "presencePenalty": 0.5, "frequencyPenalty": 0.25, "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"city": {"type": "string"},
                                                            "population": {"type": "integer"}},
                           "required": ["city"], "propertyOrdering": ["city", "population"]},
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024},
    }


def test_per_target_and_client_max_tokens(client, test_id):
    client.chat.completions.create(model="gemini-budget", messages=ask("a", test_id))
    assert only_upstream_request(test_id)["body"]["generationConfig"] == {"maxOutputTokens": 1000}
    other = test_id + "-client"
    client.chat.completions.create(model="gemini-budget", messages=ask("a", other), max_tokens=50)
    assert only_upstream_request(other)["body"]["generationConfig"] == {"maxOutputTokens": 50}


def test_roles_merge_and_alternate(client, test_id):
    resp = client.chat.completions.create(model="gemini", messages=[
        {"role": "user", "content": tagged("first", test_id)},
        {"role": "assistant", "content": "ok"},
        {"role": "developer", "content": "Use metric."},
        {"role": "user", "content": "second"},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "third"}]},
    ])
    assert resp.choices[0].message.content == "echo: second third"
    body = only_upstream_request(test_id)["body"]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"] == [{"text": "second"}, {"text": "third"}]
    assert body["systemInstruction"] == {"parts": [{"text": "Use metric."}]}


def test_images_become_inline_data_and_file_data(client, test_id):
    client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": [
        {"type": "text", "text": tagged("compare", test_id)},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]}])
    assert only_upstream_request(test_id)["body"]["contents"][0]["parts"] == [
        {"text": tagged("compare", test_id)},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]


def test_an_image_url_without_a_media_type_is_a_clear_400(client, test_id):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": [
            {"type": "text", "text": tagged("look", test_id)},
            {"type": "image_url", "image_url": {"url": "https://example.com/image?id=5"}}]}])
    err = assert_error_shape(exc.value.response.json())
    assert err["param"] == "messages[0].content[1].image_url.url" and "data URL" in err["message"]
    assert recorded(test_id) == []


# --------------------------------------------------------------------------- tools

@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_single_tool_call(client, test_id, stream):
    resp = client.chat.completions.create(model="gemini", messages=ask("Weather in Boston?", test_id),
                                          tools=[WEATHER], tool_choice="required", stream=stream)
    calls, finish = calls_of(resp, stream)
    assert finish == ["tool_calls"]
    [call] = calls
    assert call["id"].startswith("call_") and call["name"] == "get_current_weather"
    assert json.loads(call["arguments"]) == {"location": "Boston, MA"}
    body = only_upstream_request(test_id)["body"]
    assert body["tools"] == [{"functionDeclarations": [WEATHER_DECLARATION]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_parallel_tool_calls_finish_once_with_tool_calls(client, test_id, stream):
    # The emulator answers with both calls, then STOP alone in a later event (newer models).
    resp = client.chat.completions.create(model="gemini", messages=ask("Weather and time?", test_id),
                                          tools=[WEATHER, TIME], stream=stream)
    calls, finish = calls_of(resp, stream)
    assert finish == ["tool_calls"]
    assert [c["name"] for c in calls] == ["get_current_weather", "get_local_time"]
    assert len({c["id"] for c in calls}) == 2


def test_named_tool_choice_and_none(client, test_id):
    client.chat.completions.create(model="gemini", messages=ask("a", test_id), tools=[WEATHER, TIME],
                                   tool_choice={"type": "function", "function": {"name": "get_local_time"}})
    assert only_upstream_request(test_id)["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_local_time"]}}
    other = test_id + "-none"
    resp = client.chat.completions.create(model="gemini", messages=ask("b", other), tools=[WEATHER],
                                          tool_choice="none")
    assert resp.choices[0].message.content == "echo: b" and resp.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_tool_result_round_trip(client, test_id, stream):
    first = client.chat.completions.create(model="gemini", messages=ask("Weather and time?", test_id),
                                           tools=[WEATHER, TIME])
    calls = first.choices[0].message.tool_calls
    second_id = test_id + "-2"
    messages = ask("Weather and time?", second_id) + [
        {"role": "assistant", "content": None, "tool_calls": [c.to_dict() for c in calls]},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "14:00"},
        {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 18, "sky": "sunny"}'},
    ]
    resp = client.chat.completions.create(model="gemini", messages=messages, tools=[WEATHER, TIME],
                                          stream=stream)
    content = collect(resp)[1] if stream else resp.choices[0].message.content
    assert content == 'tool said: get_local_time={"content":"14:00"} | get_current_weather={"temp_c":18,"sky":"sunny"}'
    contents = only_upstream_request(second_id)["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "get_current_weather", "args": {"location": "Boston, MA"}}},
        {"functionCall": {"name": "get_local_time", "args": {"location": "Boston, MA"}}}]
    # Gemini needs the function's name: it is looked up from the call with the same id.
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_local_time", "response": {"content": "14:00"}}},
        {"functionResponse": {"name": "get_current_weather", "response": {"temp_c": 18, "sky": "sunny"}}}]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_thought_signature_round_trip(client, test_id, stream):
    # Turn one: Gemini 3 answers with a signed call (gemini.md §4.2); the signature rides in the id.
    first = client.chat.completions.create(model="gemini-3", messages=ask("scenario:signature", test_id),
                                           tools=[WEATHER], stream=stream)
    calls, finish = calls_of(first, stream)
    assert finish == ["tool_calls"]
    [call] = calls
    assert call["id"].endswith("__thought__" + SIGNATURE)
    # Turn two: the emulator, like Gemini 3, rejects a call that comes back without a signature.
    second_id = test_id + "-2"
    resp = client.chat.completions.create(model="gemini-3", tools=[WEATHER], messages=ask("scenario:signature", second_id) + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 12, "sky": "cloudy"}'},
    ])
    assert resp.choices[0].message.content == 'tool said: get_current_weather={"temp_c":12,"sky":"cloudy"}'
    contents = only_upstream_request(second_id)["body"]["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "get_current_weather", "args": {"location": "Paris"}},
                                     "thoughtSignature": SIGNATURE}]
    assert contents[2]["parts"][0] == {"functionResponse": {"name": "get_current_weather",
                                                            "response": {"temp_c": 12, "sky": "cloudy"}}}


def test_unsigned_history_on_gemini_3_gets_the_documented_sentinel(client, test_id):
    resp = client.chat.completions.create(model="gemini-3", tools=[WEATHER], messages=ask("q", test_id) + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_01abc", "type": "function",
             "function": {"name": "get_current_weather", "arguments": '{"location": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01abc", "content": "sunny"}])
    assert resp.choices[0].message.content == 'tool said: get_current_weather={"content":"sunny"}'
    part = only_upstream_request(test_id)["body"]["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "skip_thought_signature_validator"


def test_a_tool_result_for_an_unknown_call_is_a_400(client, test_id):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gemini", messages=ask("q", test_id) + [
            {"role": "tool", "tool_call_id": "call_nowhere", "content": "x"}])
    err = assert_error_shape(exc.value.response.json())
    assert err["param"] == "messages[1].tool_call_id" and "call_nowhere" in err["message"]
    assert recorded(test_id) == []


# --------------------------------------------------------------------------- thinking, safety

@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_thoughts_are_reasoning_content_and_reasoning_tokens(test_id, stream):
    r = proxy_post("/v1/chat/completions", {"model": "gemini", "messages": ask("scenario:thinking", test_id),
                                            "stream": stream, "stream_options": {"include_usage": True} if stream else None})
    assert r.status_code == 200
    if stream:
        events = sse_json_events(r.content)
        for ev in events:
            openai_schema.validate_chunk(ev)
        deltas = [ev["choices"][0]["delta"] for ev in events if ev["choices"]]
        content = "".join(d.get("content") or "" for d in deltas)
        reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
        usage = events[-1]["usage"]
    else:
        openai_schema.validate_completion(r.json())
        message = r.json()["choices"][0]["message"]
        content, reasoning, usage = message["content"], message["reasoning_content"], r.json()["usage"]
    assert content == "The GCD is 21."
    assert reasoning == "**Finding the GCD**\n\nI need the common divisors."
    assert usage["completion_tokens"] == 46 and usage["completion_tokens_details"]["reasoning_tokens"] == 40


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_a_blocked_prompt_is_content_filter_with_a_refusal(client, test_id, stream):
    resp = client.chat.completions.create(model="gemini", messages=ask("scenario:safety", test_id), stream=stream)
    if stream:
        chunks, content = collect(resp)
        refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
        assert content == "" and finish_reasons(chunks) == ["content_filter"]
    else:
        message = resp.choices[0].message
        assert message.content is None and resp.choices[0].finish_reason == "content_filter"
        refusal = message.refusal
    assert refusal == "Gemini blocked the prompt (SAFETY)."


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_a_safety_finish_is_content_filter(client, test_id, stream):
    resp = client.chat.completions.create(model="gemini", messages=ask("scenario:safety_finish", test_id),
                                          stream=stream)
    if stream:
        chunks, content = collect(resp)
        assert content == "Here is how" and finish_reasons(chunks) == ["content_filter"]
    else:
        assert resp.choices[0].finish_reason == "content_filter"


# --------------------------------------------------------------------------- failover and errors

@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_429_503_invalid_key_and_403_rotate_keys(client, test_id, stream):
    # Gemini reports an invalid key as 400 INVALID_ARGUMENT (API_KEY_INVALID): it rotates too.
    resp = client.chat.completions.create(model="gemini-rotate", messages=ask("rotate", test_id), stream=stream)
    content = collect(resp)[1] if stream else resp.choices[0].message.content
    assert content == "echo: rotate"
    assert recorded_keys(test_id) == [KEY["E2E_KEY_429"], KEY["E2E_KEY_503"], KEY["E2E_KEY_401"],
                                      KEY["E2E_KEY_403"], KEY["E2E_KEY_OK"]]


def test_failover_to_the_next_gemini_target(client, test_id):
    resp = client.chat.completions.create(model="gemini-failover", messages=ask("next", test_id))
    assert resp.model == "gemini-2.5-flash"
    assert [(r["path"], r["key"]) for r in recorded(test_id)] == [
        ("/v1beta/models/gemini-2.5-pro:generateContent", KEY["E2E_KEY_429"]),
        ("/v1beta/models/gemini-2.5-pro:generateContent", KEY["E2E_KEY_503"]),
        ("/v1beta/models/gemini-2.5-flash:generateContent", KEY["E2E_KEY_OK"])]


def test_failover_from_gemini_to_openai(client, test_id):
    # The OpenAI emulator tags requests by the body's test_id, so this test sends both.
    resp = client.chat.completions.create(model="gemini-to-openai", messages=ask("cross", test_id),
                                          extra_body={"test_id": test_id})
    assert resp.model == "emu-second" and resp.choices[0].message.content.startswith("echo: cross")
    assert [(r["path"], r["key"]) for r in recorded(test_id)] == [
        ("/v1beta/models/gemini-2.5-flash:generateContent", KEY["E2E_KEY_500"]),
        ("/v1/chat/completions", KEY["E2E_KEY_OK"])]


def test_an_error_before_any_content_fails_over(client, test_id):
    stream = client.chat.completions.create(model="gemini-overload-first", messages=ask("again", test_id),
                                            stream=True)
    chunks, content = collect(stream)
    assert content == "echo: again" and finish_reasons(chunks) == ["stop"]
    assert recorded_keys(test_id) == [KEY["E2E_KEY_OVERLOAD_FIRST"], KEY["E2E_KEY_OK"]]


def test_an_error_appended_mid_stream_is_an_openai_error_then_done(client, test_id):
    stream = client.chat.completions.create(model="gemini-midstream", messages=ask("x", test_id), stream=True)
    content = ""
    with pytest.raises(openai.APIError) as exc:
        for chunk in stream:
            for choice in chunk.choices:
                assert choice.finish_reason is None
                content += choice.delta.content or ""
    assert content == "Okay"
    assert "The model is overloaded. Please try again later." in str(exc.value)
    assert recorded_keys(test_id) == [KEY["E2E_KEY_MIDSTREAM"]]

    raw_id = test_id + "-raw"
    raw = proxy_post("/v1/chat/completions", {"model": "gemini-midstream", "messages": ask("x", raw_id),
                                              "stream": True}).content
    data = parse_sse(raw)
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2]) == {"error": {"message": "The model is overloaded. Please try again later.",
                                              "type": "server_error", "param": None, "code": "unavailable"}}


def test_midstream_key_without_streaming_rotates(client, test_id):
    # Not streaming, the same upstream fault is a 503 before any byte: the next key answers.
    resp = client.chat.completions.create(model="gemini-midstream", messages=ask("whole", test_id))
    assert resp.choices[0].message.content == "echo: whole"
    assert recorded_keys(test_id) == [KEY["E2E_KEY_MIDSTREAM"], KEY["E2E_KEY_OK"]]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_gemini_400_is_returned_at_once_with_its_message(test_id, stream):
    r = proxy_post("/v1/chat/completions", {"model": "gemini-client-error", "messages": ask("x", test_id),
                                            "stream": stream})
    assert r.status_code == 400
    assert r.headers["access-control-allow-origin"] == "*"
    err = assert_error_shape(r.json())
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_argument"
    assert err["message"].startswith('Invalid JSON payload received. Unknown name "additionalProperties"')
    assert recorded_keys(test_id) == [KEY["E2E_KEY_400"]]


def test_secrets_never_reach_the_client(test_id):
    r = proxy_post("/v1/chat/completions", {"model": "gemini-rotate", "messages": ask("s", test_id)})
    assert r.status_code == 200
    for value in KEY.values():
        assert value not in r.text
    assert TOKEN not in r.text
    for rec in recorded(test_id):
        assert "key=" not in rec["path"]
