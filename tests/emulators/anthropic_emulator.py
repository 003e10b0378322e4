"""Anthropic Messages API emulator, served by tests/emulators/openai_emulator.py on the same port.

Wire format follows ``shared/wire/anthropic-messages.md``: ``POST /v1/messages`` with ``x-api-key``
and ``anthropic-version``; the ``Message`` object (§3), the SSE event sequence (§4: ``message_start``,
``content_block_*``, ``ping``, ``message_delta``, ``message_stop``, ``error``) and the error envelope
``{"type":"error","error":{"type","message"},"request_id"}`` (§5). ``POST /v1/messages/count_tokens``
answers ``{"input_tokens": N}`` (see ``count_tokens``: N is computed from the request's text, so
the same body always gets the same count).

Like the real API it rejects what the proxy must pre-empt (§2.1, §6), with Anthropic's own 400
messages: a missing ``max_tokens`` or ``anthropic-version`` (or a version the API does not know:
``2023-06-01``, ``2023-01-01`` and the newer SDKs' ``2026-10-21`` are known), a first turn that is
not ``user``, two turns of the same role in a row, empty text blocks, ``temperature`` outside 0–1
or beside ``top_p``, a ``tool_use`` not answered by a ``tool_result`` in the next turn,
``tool_use``/``tool_result`` blocks without ``tools``, an unknown top-level field. Thinking, as the
real API checks it: ``thinking.budget_tokens`` at least 1024 and below ``max_tokens``; with
thinking on, ``temperature`` only 1 and no forced tool use (``tool_choice`` ``any``/``tool``), and an
assistant turn whose ``tool_use`` the last turn answers must start with its thinking block. A
``thinking`` block in history needs its ``signature``; a signature the proxy minted (``aiwp1.…``,
for another provider's reasoning) is refused as the real API refuses any signature it did not
issue: 400 "Invalid `signature` in `thinking` block". ``count_tokens`` takes only the fields the
real endpoint takes (no ``max_tokens``, ``stream`` or ``metadata``). So an end-to-end test that
passes proves the translated request was acceptable, not just that it arrived.

Every request is recorded with its headers (``anthropic-version``, ``anthropic-beta``, …) and, in
``raw``, the body exactly as it arrived (decoded as UTF-8), so a test can compare bytes.

Behaviour by ``x-api-key`` value (the same key words as the OpenAI emulator): ``ok`` answers;
``429`` rate_limit_error (no ``retry-after``), ``429hint`` the same with ``retry-after: 30``,
``500`` api_error, ``503``, ``529`` overloaded_error, ``401`` authentication_error, ``403``
permission_error, ``400`` invalid_request_error, ``404`` not_found_error; ``drop`` closes the
connection; ``midstream`` streams two text deltas then an ``error`` event (overloaded);
``overloadfirst`` sends ``message_start`` then an ``error`` event before any content.
Fault modes (tests/e2e/test_faults.py; holds end when the client goes away, else after 30 s):
``stallheaders`` reads the request and sends nothing; ``stallfirst`` streams ``message_start`` and
``ping`` then holds (non-stream: 200 headers and half the ``Message`` JSON, then holds).

Answers (an ``ok`` key), chosen from the request:
* ``scenario:NAME`` in the last user text replays ``tests/fixtures/anthropic/NAME.sse`` — the literal
  streams of the wire notes (``thinking``, ``refusal``, ``parallel_tools``, ``tool_use``…).
* a ``tool_choice`` forcing ``json_tool_call`` → the ``json_tool`` fixture;
* ``tools`` offered and the last turn is not a tool result → ``tool_use`` (one ``get_weather`` call)
  or, with ``get_time`` offered too and parallel use allowed, ``parallel_tools``;
* the last turn carries tool results → ``"tool said: " + <their text, joined by " | ">``;
* otherwise ``"echo: " + <last user text>`` (a ``[test_id=…]`` tag left out).
With ``thinking`` enabled (or adaptive), the answer (unless a ``scenario:``) starts with a thinking
block, ``"Thinking about: " + <last user text>`` signed ``SIGNATURE``, the other blocks after it.
Non-streaming answers are the same event sequence folded into a ``Message``, so both paths agree.
``emulator_chunks=N`` in the last user text streams N small text deltas, generated lazily.
``emulator_endless`` and ``emulator_echo_key=MODE`` in the last user text: the OpenAI emulator's
markers (see its docstring), in this API's shapes: ``first`` is ``message_start`` then an
``error`` event, ``mid`` one text delta then an ``error`` event, a status the error envelope.
Every answer's ``model`` is the request's ``model``.

The proxy does not forward the OpenAI ``test_id`` field; tests send it as the OpenAI ``user``,
which arrives as ``metadata.user_id`` and is recorded as the request's ``test_id``. A request
without one (``count_tokens`` has no ``metadata``) is tagged by ``[test_id=X]`` in a text block.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic"

TOP_LEVEL = {"model", "max_tokens", "messages", "system", "stop_sequences", "stream", "temperature",
             "top_p", "top_k", "tools", "tool_choice", "thinking", "metadata", "output_config",
             "service_tier", "context_management", "container", "mcp_servers", "cache_control",
             "inference_geo", "speed"}
# What /v1/messages/count_tokens takes (the real endpoint refuses the rest, max_tokens included).
COUNT_TOP_LEVEL = {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                   "context_management", "output_config", "cache_control", "speed"}
VERSIONS = {"2023-06-01", "2023-01-01", "2026-10-21"}
MESSAGES_PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
# The signature of the thinking blocks this emulator writes (a real one is longer base64).
SIGNATURE = "EqQBCgIYAhIMemulatedThinkingSignature0000000000000=="
# What the proxy's own thinking signatures start with: a real Anthropic API refuses them.
MINTED = "aiwp1."
INVALID_SIGNATURE = "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
THINKING_FIRST = ("messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{kind}`. "
                  "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                  "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                  "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please "
                  "consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")

ERRORS = {
    400: ("invalid_request_error", "max_tokens: emulated client error"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: emulated-missing-model"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}

# Whole tokens of the key's value; the first listed that matches wins.
BEHAVIOURS = ("stallheaders", "stallfirst", "429hint", "overloadfirst", "midstream", "drop", "ok",
              "429", "500", "503", "529", "401", "403", "400", "404")


def handles(path: str) -> bool:
    return path in (MESSAGES_PATH, COUNT_PATH)


def behaviour_for(key: str | None) -> str:
    tokens = [t for t in re.split(r"[^a-z0-9]+", (key or "").lower()) if t]
    return next((b for b in BEHAVIOURS if b in tokens), "401")


def error_body(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message},
            "request_id": "req_emu" + uuid.uuid4().hex[:20]}


# --------------------------------------------------------------------------- validation

def _blocks(content) -> list:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _thinking_on(body: dict) -> bool:
    return (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")


def _thinking_problem(body: dict, count: bool) -> str | None:
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        return "thinking: Input tag 'x' found using 'type' does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return "thinking.enabled.budget_tokens: Field required"
        if budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if not count and budget >= body["max_tokens"]:
            return ("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
    if kind in ("enabled", "adaptive"):
        t = body.get("temperature")
        if t is not None and t != 1:
            return ("`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please consult our "
                    "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility")
        if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
            return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def problem(body: dict, headers, count: bool = False) -> str | None:
    """The 400 message the real API would give this request, or None if it is acceptable
    (``count``: as ``/v1/messages/count_tokens`` checks it)."""
    version = headers.get("anthropic-version")
    if not version:
        return "anthropic-version: header is required"
    if version not in VERSIONS:
        return f"anthropic-version: invalid version {version!r}"
    unknown = sorted(set(body) - (COUNT_TOP_LEVEL if count else TOP_LEVEL))
    if unknown:
        return f"{unknown[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not count and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        return "max_tokens: Field required"
    t = body.get("temperature")
    if t is not None and not 0 <= t <= 1:
        return "temperature: Input should be less than or equal to 1"
    if t is not None and body.get("top_p") is not None:
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    bad = _thinking_problem(body, count)
    if bad:
        return bad
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    tool_names = {t.get("name") for t in body.get("tools") or []}
    for t in body.get("tools") or []:
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", t.get("name", "")):
            return "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
        if (t.get("input_schema") or {}).get("type") != "object":
            return "tools.0.custom.input_schema.type: Input should be 'object'"
    pending: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if i == 0 and role != "user":
            return "messages: first message must use the \"user\" role"
        if i > 0 and role == messages[i - 1].get("role"):
            return "messages: roles must alternate between \"user\" and \"assistant\""
        blocks = _blocks(m.get("content"))
        if not blocks and i != len(messages) - 1:
            return f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        answered = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if pending and sorted(answered) != sorted(pending):
            return (f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(pending)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.")
        pending = []
        for j, b in enumerate(blocks):
            kind = b.get("type")
            if kind == "text" and not b.get("text"):
                return "messages: text content blocks must be non-empty"
            if kind in ("thinking", "redacted_thinking") and role != "assistant":
                return f"messages.{i}.content.{j}: `{kind}` blocks are only allowed in `assistant` messages"
            if kind == "thinking":
                signature = b.get("signature")
                if not isinstance(b.get("thinking"), str) or not isinstance(signature, str) or not signature:
                    return f"messages.{i}.content.{j}.thinking.signature: Field required"
                if signature.startswith(MINTED):
                    return INVALID_SIGNATURE.format(i=i, j=j)
            if kind == "redacted_thinking" and not b.get("data"):
                return f"messages.{i}.content.{j}.redacted_thinking.data: Field required"
            if kind in ("tool_use", "tool_result") and not tool_names:
                return f"messages.{i}: tool use requires `tools` to be defined"
            if kind == "tool_use":
                if not isinstance(b.get("input"), dict) or not re.fullmatch(r"[a-zA-Z0-9_-]+", b.get("id", "")):
                    return f"messages.{i}: invalid tool_use block"
                pending.append(b["id"])
            if kind == "image" and b.get("source", {}).get("type") not in ("base64", "url"):
                return f"messages.{i}: invalid image source"
    if pending:
        return f"messages: `tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(pending)}"
    if _thinking_on(body) and len(messages) >= 2:
        # The tool loop the last turn continues must start with the thinking that called the tools.
        last, turn = _blocks(messages[-1].get("content")), _blocks(messages[-2].get("content"))
        if (messages[-2].get("role") == "assistant" and any(b.get("type") == "tool_result" for b in last)
                and turn and turn[0].get("type") not in ("thinking", "redacted_thinking")):
            return THINKING_FIRST.format(i=len(messages) - 2, kind=turn[0].get("type"))
    return None


# --------------------------------------------------------------------------- answers

def _fixture(name: str) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a literal stream in tests/fixtures/anthropic."""
    out = []
    for block in (FIXTURES / f"{name}.sse").read_text().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.strip().splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def _text_stream(text: str, input_tokens: int) -> list[tuple[str, dict]]:
    """A text answer in the shape of wire notes §4.1, two deltas."""
    half = len(text) // 2
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "", "type": "message", "role": "assistant", "content": [], "model": "",
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    for piece in (text[:half], text[half:]):
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": piece}}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": max(1, len(text.split()))}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _text(blocks) -> str:
    return " ".join(b.get("text", "") for b in _blocks(blocks) if b.get("type") == "text")


TAG = re.compile(r"\s*\[test_id=([^\]]+)\]")


def _untagged(text: str) -> str:
    return TAG.sub("", text)


def _think(events: list[tuple[str, dict]], thought: str) -> list[tuple[str, dict]]:
    """``events`` with a signed thinking block first (wire notes §4.4), the others one index on."""
    for _event, data in events:
        if "index" in data:
            data["index"] += 1
    block = [
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": thought}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": SIGNATURE}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]
    return events[:1] + block + events[1:]


def plan(body: dict) -> list[tuple[str, dict]]:
    events = _plan(body)
    scenario = re.search(r"scenario:([a-z_]+)", _text(body["messages"][-1].get("content")))
    if _thinking_on(body) and not scenario:
        said = _untagged(_text(body["messages"][-1].get("content"))).strip()
        events = _think(events, "Thinking about: " + (said or "the tool results"))
    return events


def _plan(body: dict) -> list[tuple[str, dict]]:
    last = body["messages"][-1]
    blocks = _blocks(last.get("content"))
    results = [b for b in blocks if b.get("type") == "tool_result"]
    said = _untagged(_text(blocks))
    prompt_tokens = sum(len(_text(m.get("content")).split()) for m in body["messages"]) + 5
    scenario = re.search(r"scenario:([a-z_]+)", said)
    choice = body.get("tool_choice") or {}
    names = [t["name"] for t in body.get("tools") or []]
    if scenario and (FIXTURES / f"{scenario.group(1)}.sse").exists():
        return _fixture(scenario.group(1))
    if choice.get("type") == "tool" and choice.get("name") == "json_tool_call":
        return _fixture("json_tool")
    if results:
        texts = [r["content"] if isinstance(r.get("content"), str) else _text(r.get("content") or [])
                 for r in results]
        return _text_stream("tool said: " + " | ".join(texts), prompt_tokens)
    if names and choice.get("type") != "none":
        parallel = "get_time" in names and not choice.get("disable_parallel_tool_use")
        return _fixture("parallel_tools" if parallel else "tool_use")
    return _text_stream("echo: " + said, prompt_tokens)


def stamp(events: list[tuple[str, dict]], model: str) -> list[tuple[str, dict]]:
    """Give the answer this response's id and the request's model."""
    msg_id = "msg_emu" + uuid.uuid4().hex[:20]
    for event, data in events:
        if event == "message_start":
            data["message"].update(id=msg_id, model=model)
    return events


def fold(events: list[tuple[str, dict]]) -> dict:
    """The non-streaming ``Message`` an event sequence adds up to."""
    message: dict = {}
    partial: dict[int, str] = {}
    for event, data in events:
        if event == "message_start":
            message = data["message"]
        elif event == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif event == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif event == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial.pop(data["index"]))
        elif event == "message_delta":
            message.update(data["delta"])
            message.pop("stop_details", None)
            message["usage"].update(data["usage"])
    return message


def _long_stream(handler, model: str, count: int) -> None:
    """``emulator_chunks=N`` in the last user text: N text deltas generated one at a time, so a
    stream of any length costs the emulator no memory (the memory benchmark)."""
    start, block, _ping, delta, _, stop, message_delta, message_stop = stamp(_text_stream("ab", 1), model)
    handler._start_stream()
    for event, data in (start, block):
        handler._chunk(_sse(event, data))
    line = _sse("content_block_delta", dict(delta[1], delta={"type": "text_delta", "text": " tok"}))
    for _ in range(count):
        handler._chunk(line)
    for event, data in (stop, message_delta, message_stop):
        handler._chunk(_sse(event, data))
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def _stall_first(handler, events: list[tuple[str, dict]], stream: bool) -> None:
    """Fault ``stallfirst``: ``message_start`` and ``ping`` (non-stream: half the JSON), then hold."""
    if stream:
        handler._start_stream()
        for event, data in events:
            if event in ("message_start", "ping"):
                handler._chunk(_sse(event, data))
    else:
        whole = json.dumps(fold(events)).encode()
        handler._head(200, "application/json", len(whole))
        handler._send(whole[:len(whole) // 2])
    handler.hold()
    handler._abort()


def _endless(handler, events: list[tuple[str, dict]], stream: bool) -> None:
    """``emulator_endless``: text deltas every 50 ms (non-stream: spaces) until the client goes away."""
    if stream:
        handler._start_stream()
        start, block, _ping, delta = events[:4]
        first = b"".join(_sse(event, data) for event, data in (start, block, delta))
        line = _sse("content_block_delta", dict(delta[1], delta={"type": "text_delta", "text": "x"}))
        handler.trickle(first, line)
    else:
        handler._head(200, "application/json")
        handler.trickle(b"", b" ")


def _echo_key(handler, events: list[tuple[str, dict]], stream: bool, key, mode: str) -> None:
    """``emulator_echo_key=MODE``: an error that repeats the key it was sent."""
    message = handler.echo_message(key, handler.headers.get("x-api-key"))
    leak = {"x-echo-key": str(key), "www-authenticate": f'x-api-key error="{key}"'}
    if mode == "400text":
        data = message.encode()
        handler._head(400, "text/plain", len(data), leak)
        handler._send(data)
        return
    status = handler.echo_status(mode)
    if mode in ("first", "mid") and stream:
        handler._head(200, "text/event-stream", None, leak)
        start, block, _ping, delta = events[:4]
        for event, data in ((start, block, delta) if mode == "mid" else (start,)):
            handler._chunk(_sse(event, data))
        handler._chunk(_sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                 "message": message}}))
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
        return
    kind = {200: "overloaded_error", 400: "invalid_request_error", 401: "authentication_error",
            404: "not_found_error", 422: "invalid_request_error", 429: "rate_limit_error"}.get(status, "api_error")
    handler._json(status, error_body(kind, message), leak)  # ``first``: a 200 whose body is an error


def _words(value) -> int:
    """Words and punctuation marks in ``value`` (a string, or any JSON value's text)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    return len(re.findall(r"\w+|[^\w\s]", text))


def count_tokens(body: dict) -> int:
    """The emulator's token count of a request: the words and punctuation marks of its system
    prompt, of every block of every turn (text, thinking, a tool call's input, a tool result, 85 per
    image or document) and of every tool definition, plus 3 per turn and 5 for the request.
    Deterministic, so a test can ask for the same body twice and get the same number."""
    n = 5
    system = body.get("system")
    if isinstance(system, str):
        n += _words(system)
    for block in system if isinstance(system, list) else []:
        n += _words(block.get("text", ""))
    for m in body.get("messages") or []:
        n += 3
        for b in _blocks(m.get("content")):
            kind = b.get("type")
            if kind == "text":
                n += _words(b.get("text", ""))
            elif kind == "thinking":
                n += _words(b.get("thinking", ""))
            elif kind == "tool_use":
                n += _words(b.get("name", "")) + _words(b.get("input") or {})
            elif kind == "tool_result":
                content = b.get("content")
                n += _words(content if isinstance(content, str) else _text(content or []))
            elif kind in ("image", "document"):
                n += 85
    for t in body.get("tools") or []:
        n += _words(t.get("name", "")) + _words(t.get("description", "")) + _words(t.get("input_schema") or {})
    return n


def _test_id(body) -> str | None:
    """``metadata.user_id``, else the first ``[test_id=X]`` in a text block of the system prompt or
    a turn."""
    if not isinstance(body, dict):
        return None
    user_id = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if user_id:
        return user_id
    system = body.get("system")
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system or [] if isinstance(b, dict)]
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            texts += [b.get("text", "") for b in _blocks(m.get("content")) or [] if isinstance(b, dict)]
    for text in texts:
        found = TAG.search(text or "")
        if found:
            return found.group(1)
    return None


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


# --------------------------------------------------------------------------- HTTP

def handle(handler, url, raw: bytes) -> None:
    key = handler.headers.get("x-api-key")
    try:
        body = json.loads(raw.decode("utf-8"))
    except Exception:
        body = raw.decode("utf-8", "replace")
    handler.record(url.path, key, body, test_id=_test_id(body), raw=raw.decode("utf-8", "replace"))
    b = behaviour_for(key)
    if url.path == COUNT_PATH and b not in ("drop", "stallheaders") and not b.isdigit() and b != "429hint":
        if not isinstance(body, dict):
            handler._json(400, error_body("invalid_request_error", "There was an error parsing the body"))
            return
        bad = problem(body, handler.headers, count=True)
        if bad:
            handler._json(400, error_body("invalid_request_error", bad))
            return
        handler._json(200, {"input_tokens": count_tokens(body)})
        return
    if b == "drop":
        handler._abort()
        return
    if b == "stallheaders":
        handler.stall_headers()
        return
    if b.isdigit() or b == "429hint":
        status = int(b[:3])
        kind, message = ERRORS[status]
        handler._json(status, error_body(kind, message), {"retry-after": "30"} if b == "429hint" else None)
        return
    if not isinstance(body, dict):
        handler._json(400, error_body("invalid_request_error", "There was an error parsing the body"))
        return
    bad = problem(body, handler.headers)
    if bad:
        handler._json(400, error_body("invalid_request_error", bad))
        return
    if b == "overloadfirst":
        events = _fixture("error_first")
    elif b == "midstream":
        events = _fixture("error_midstream")
    else:
        events = plan(body)
    said = _text(body["messages"][-1].get("content"))
    echo = handler.marker(said, "echo_key")
    if echo is not None:
        _echo_key(handler, stamp(_text_stream("echo: x", 1), body["model"]), bool(body.get("stream")), key, echo)
        return
    if handler.marker(said, "endless") is not None:
        _endless(handler, stamp(_text_stream("echo: x", 1), body["model"]), bool(body.get("stream")))
        return
    long = re.search(r"emulator_chunks=(\d+)", said)
    if long and body.get("stream"):
        _long_stream(handler, body["model"], int(long.group(1)))
        return
    events = stamp(events, body["model"])
    if b == "stallfirst":
        _stall_first(handler, events, bool(body.get("stream")))
        return
    if not body.get("stream"):
        if any(event == "error" for event, _ in events):
            handler._json(529, error_body("overloaded_error", "Overloaded"))
        else:
            handler._json(200, fold(events))
        return
    handler._start_stream()
    for event, data in events:
        handler._chunk(_sse(event, data))
    if events[-1][0] == "error":
        # The real API may just stop after an error event.
        handler._abort()
        return
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()

