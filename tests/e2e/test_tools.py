"""Tool calling through the proxy (route `plain`), non-stream and stream."""

from __future__ import annotations

import pytest

from conftest import TIME_TOOL, TOOL_ARGS, WEATHER_TOOL, collect, recorded, streamed_tool_calls, user

CASES = {
    "single": ([WEATHER_TOOL], {}, [("call_emu_0", "get_current_weather")]),
    "parallel": ([WEATHER_TOOL, TIME_TOOL], {},
                 [("call_emu_0", "get_current_weather"), ("call_emu_1", "get_local_time")]),
    "parallel_disabled": ([WEATHER_TOOL, TIME_TOOL], {"parallel_tool_calls": False},
                          [("call_emu_0", "get_current_weather")]),
}


@pytest.mark.parametrize("case", CASES)
def test_tool_calls_non_stream(client, test_id, case):
    tools, extra, expected = CASES[case]
    resp = client.chat.completions.create(model="plain", messages=user("What is the weather in Boston?"),
                                          tools=tools, extra_body={"test_id": test_id}, **extra)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [(c.id, c.function.name) for c in calls] == expected
    assert all(c.type == "function" and c.function.arguments == TOOL_ARGS for c in calls)
    body = recorded(test_id)[0]["body"]
    assert body["tools"] == tools
    if extra:
        assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize("case", CASES)
def test_tool_calls_stream(client, test_id, case):
    tools, extra, expected = CASES[case]
    stream = client.chat.completions.create(model="plain", messages=user("What is the weather in Boston?"),
                                            tools=tools, stream=True, extra_body={"test_id": test_id},
                                            **extra)
    chunks, content = collect(stream)
    assert content == ""
    calls = streamed_tool_calls(chunks)
    assert sorted(calls) == list(range(len(expected)))
    assert [(calls[i]["id"], calls[i]["name"]) for i in sorted(calls)] == expected
    assert all(c["arguments"] == TOOL_ARGS for c in calls.values())
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["tool_calls"]


def _round_trip_messages():
    return [
        {"role": "user", "content": "What is the weather in Boston?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_emu_0", "type": "function",
                         "function": {"name": "get_current_weather", "arguments": TOOL_ARGS}}]},
        {"role": "tool", "tool_call_id": "call_emu_0", "content": '{"temp_f": 41}'},
    ]


def test_tool_result_round_trip(client, test_id):
    resp = client.chat.completions.create(model="plain", messages=_round_trip_messages(),
                                          tools=[WEATHER_TOOL], extra_body={"test_id": test_id})
    assert resp.choices[0].message.content == 'tool said: {"temp_f": 41}'
    assert resp.choices[0].finish_reason == "stop"
    assert recorded(test_id)[0]["body"]["messages"] == _round_trip_messages()


def test_tool_result_round_trip_stream(client, test_id):
    stream = client.chat.completions.create(model="plain", messages=_round_trip_messages(),
                                            tools=[WEATHER_TOOL], stream=True,
                                            extra_body={"test_id": test_id})
    chunks, content = collect(stream)
    assert content == 'tool said: {"temp_f": 41}'
    assert chunks[-1].choices[0].finish_reason == "stop"
