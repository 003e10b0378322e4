"""Cloudflare Workers AI emulator, served by tests/emulators/openai_emulator.py on the same port.

Wire format follows ``shared/wire/workers-ai.md``. Two doors, one behaviour:

* REST (the native host's path, §6): ``POST /client/v4/accounts/{account_id}/ai/run/{model}``
  with ``Authorization: Bearer <token>``. Answers ``{"result": <output>, "success": true,
  "errors": [], "messages": []}``, ``text/event-stream`` when the input has ``stream: true``, and
  errors in the v4 envelope ``{"success": false, "errors": [{"code", "message"}], ...}``.
  Behaviour by the token *value*, with the key words of the OpenAI emulator: ``ok`` answers;
  ``429`` → 429 with code 3040 (capacity; no ``retry-after``), ``500``/``503`` → that status,
  ``401`` → 401 (code 10000), ``400`` → 400 (5004); unknown → 401. The account id must be
  ``ACCOUNT``, the value of ``E2E_CF_ACCOUNT`` in tests/e2e/secrets.env (else 404, code 7003).
* The AI binding (the Worker's path, §1): ``tests/e2e/ai_binding/index.js`` is bound to the proxy
  as ``AI`` under ``wrangler dev``; its ``run(model, inputs)`` posts ``{"model", "inputs"}`` to
  ``POST /_emulator/ai-binding/run`` and turns the answer back into what the real binding gives:
  a JSON body → the output object, a ``text/event-stream`` body → a ``ReadableStream`` of its
  bytes, ``x-ai-throw: 1`` → ``throw new Error(<body text>)`` (the binding's errors are thrown
  with the internal code in the message, §5).

What both check, like the real binding's strict schema validation: the input is an object with
``messages`` (or ``prompt``) and only fields the model's family knows (§2; so no ``model``,
``test_id`` or ``stream_options``), every ``content`` a string or a parts list (``null`` is
rejected), an explicit ``max_tokens`` (the proxy must always send one), tools shaped
``{type: "function", function: {name, description, parameters}}``. A violation is error 5004
(400 over REST, thrown by the binding).

Answers, by model and request (``{model}`` is the path's model):
* a model containing ``capacity`` → error 3040 (429); ``badinput`` → 5004 (400); ``stall`` →
  the usual answer, after ``STALL_SECONDS`` (longer than the e2e routes' ``headers_timeout``);
* ``scenario:NAME`` in the last user text → replays ``tests/fixtures/workers_ai/NAME.sse``
  (streaming) or ``NAME.json`` (otherwise): the literal outputs of workers-ai.md;
* tools offered and the last message is not a tool result → a ``get_current_weather``-style call
  to the first tool with ``{"location": "Boston, MA"}``;
* the last message is a tool result → ``"tool said: " + <its content>``;
* otherwise ``"echo: " + <last user text>`` (the test id, bare or as ``[test_id=…]``, left out).
Output shape by model family: ``@cf/openai/gpt-oss-*`` answers the OpenAI ``chat.completion``
shape and ignores ``stream: true`` (§4.3); other chat-family models (``kimi``, ``glm``, ``gemma-4``,
``qwen3``) answer the OpenAI shape and stream OpenAI chunks followed by the native usage event
(§4.2); ``llama-4`` answers shape (b) of §3; every other model is legacy: shape (a) and the
``data: {"response": ...}`` stream with ``p`` padding (§4.1), tool calls in native format.

The proxy forwards no ``test_id`` field (the binding would reject it): tests put their ``t-<hex>``
id in the message text, and every request is recorded under the first such id in its input.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workers_ai"
ACCOUNT = "emu-account-0a1b2c"

REST = re.compile(r"^/client/v4/accounts/([^/]+)/ai/run/(.+)$")
BINDING_PATH = "/_emulator/ai-binding/run"
# How long a `stall` model takes to answer.
STALL_SECONDS = 3
TEST_ID = re.compile(r"t-[0-9a-f]{32}")
TAG = re.compile(r"\s*\[test_id=[^\]]*\]")  # the other emulators' tag, left out of an echo too

LEGACY_FIELDS = {"messages", "prompt", "raw", "stream", "max_tokens", "temperature", "top_p", "top_k",
                 "seed", "repetition_penalty", "frequency_penalty", "presence_penalty",
                 "response_format", "tools", "functions", "lora"}
CHAT_FIELDS = LEGACY_FIELDS | {"max_completion_tokens", "tool_choice", "parallel_tool_calls", "stop",
                               "reasoning_effort", "chat_template_kwargs", "n", "logprobs",
                               "top_logprobs", "user", "stream_options"}
CHAT_MODELS = ("@cf/openai/gpt-oss-", "@cf/moonshotai/kimi-", "@cf/zai-org/glm-", "@cf/google/gemma-4",
               "@cf/qwen/qwen3-", "@cf/nvidia/nemotron-3")

ERRORS = {  # status → (code, message), as Workers AI reports them
    400: (5004, "Invalid data"),
    401: (10000, "Authentication error"),
    404: (7003, "Could not route to /client/v4/accounts/…/ai/run: account not found"),
    429: (3040, "Capacity temporarily exceeded"),
    500: (3043, "Internal server error"),
    503: (3040, "Service unavailable"),
}

BEHAVIOURS = ("ok", "429", "500", "503", "401", "400")


class WorkersAiError(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def handles(path: str) -> bool:
    return path == BINDING_PATH or bool(REST.match(path))


def behaviour_for(key: str | None) -> str:
    tokens = [t for t in re.split(r"[^a-z0-9]+", (key or "").lower()) if t]
    return next((b for b in BEHAVIOURS if b in tokens), "401")


def envelope_error(code: int, message: str) -> dict:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


def is_chat(model: str) -> bool:
    return model.startswith(CHAT_MODELS)


# --------------------------------------------------------------------------- validation

def check(model: str, inputs) -> None:
    """Raise 5004 the way the binding's schema validation would."""
    def bad(why: str):
        raise WorkersAiError(400, 5004, f"Invalid data: {why}")

    if not isinstance(inputs, dict):
        bad("input must be an object")
    allowed = CHAT_FIELDS if is_chat(model) else LEGACY_FIELDS
    unknown = sorted(set(inputs) - allowed)
    if unknown:
        bad(f"unknown field(s) {unknown}")
    if not isinstance(inputs.get("max_tokens"), int) or inputs["max_tokens"] < 1:
        bad("the proxy must send an explicit positive max_tokens (the default 256 truncates)")
    messages = inputs.get("messages")
    if not isinstance(messages, list) or not messages:
        bad("messages must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            bad(f"messages[{i}] needs a role")
        if not isinstance(m.get("content"), (str, list)):
            bad(f"messages[{i}].content must be a string or a list, not {type(m.get('content')).__name__}")
    for i, t in enumerate(inputs.get("tools") or []):
        f = t.get("function") if isinstance(t, dict) else None
        if t.get("type") != "function" or not isinstance(f, dict) or not isinstance(f.get("name"), str):
            bad(f"tools[{i}] must be {{type: 'function', function: {{name, ...}}}}")
        if "parameters" in f and not isinstance(f["parameters"], dict):
            bad(f"tools[{i}].function.parameters must be an object")
    if "capacity" in model:
        raise WorkersAiError(429, 3040, "Capacity temporarily exceeded")
    if "stall" in model:
        time.sleep(STALL_SECONDS)
    if "badinput" in model:
        bad("emulated invalid input")


# --------------------------------------------------------------------------- answers

def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def plan(inputs: dict) -> tuple[str | None, list[dict], str | None]:
    """(content, calls, scenario) for an input: calls are {name, arguments(dict)}."""
    messages = inputs["messages"]
    last_user = next((_text(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
    scenario = re.search(r"scenario:([a-z0-9_]+)", last_user)
    if scenario:
        return None, [], scenario.group(1)
    last = messages[-1]
    if last["role"] == "tool":
        said = " | ".join(_text(m["content"]) for m in messages if m["role"] == "tool")
        return "tool said: " + said, [], None
    tools = inputs.get("tools") or []
    if tools:
        return "", [{"name": tools[0]["function"]["name"], "arguments": {"location": "Boston, MA"}}], None
    return "echo: " + TEST_ID.sub("", TAG.sub("", last_user)).strip(), [], None


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def output(model: str, content: str | None, calls: list[dict]) -> dict:
    """The non-streaming output in the model's shape (§3)."""
    u = usage(12, max(1, len((content or "").split())))
    if is_chat(model):
        message = {"role": "assistant", "content": content if not calls else None, "refusal": None,
                   "reasoning_content": "Thinking about it."}
        if calls:
            message["tool_calls"] = [{"id": f"chatcmpl-tool-{i}", "type": "function",
                                      "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                                     for i, c in enumerate(calls)]
        return {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": message,
                                             "finish_reason": "tool_calls" if calls else "stop", "logprobs": None}],
                "usage": dict(u, prompt_tokens_details={"cached_tokens": 0})}
    if "llama-4" in model:
        return {"response": content or "", "tool_calls": [
            {"id": f"chatcmpl-tool-{uuid.uuid4().hex[:8]}", "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls], "usage": u}
    out = {"response": content or "", "usage": u}
    if calls:
        out["tool_calls"] = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
    return out


def _sse(obj) -> str:
    return "data: " + (obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))) + "\n\n"


def stream_text(model: str, content: str | None, calls: list[dict]) -> str:
    """The SSE stream in the model's format (§4.1 legacy, §4.2 OpenAI-shaped)."""
    words = re.findall(r"\S+\s*|\s+", content or "")
    u = usage(12, max(1, len(words)))
    out = []
    if is_chat(model):
        cid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())

        def chunk(delta, finish=None, **extra):
            return dict({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "created": created,
                         "id": cid, "model": model + "-external", "object": "chat.completion.chunk"}, **extra)
        out.append(_sse(chunk({"role": "assistant", "content": ""}, p="sxm6")))
        out.append(_sse(chunk({"reasoning_content": "Thinking about it."})))
        for w in words:
            out.append(_sse(chunk({"content": w})))
        for i, c in enumerate(calls):
            args = json.dumps(c["arguments"])
            out.append(_sse(chunk({"tool_calls": [{"index": i, "id": f"chatcmpl-tool-{i}", "type": "function",
                                                   "function": {"name": c["name"], "arguments": ""}}]})))
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                out.append(_sse(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})))
        out.append(_sse(chunk({}, "tool_calls" if calls else "stop")))
        out.append(_sse({"choices": [], "created": created, "id": cid, "model": model + "-external",
                         "object": "chat.completion.chunk", "p": "abc", "usage": usage(0, 1)}))
        out.append(_sse({"response": "", "usage": u}))
    else:
        pad = "abcdefghijklmnopqrstuvwxyz0123456789"
        for i, w in enumerate(words):
            out.append(_sse({"response": w, "p": pad[: 8 + (i * 7) % 28]}))
        for i, c in enumerate(calls):
            out.append(_sse({"tool_calls": [{"id": f"call{i}", "type": "function", "index": i, "function": {
                "name": c["name"], "arguments": json.dumps(c["arguments"])}}]}))
        if calls:
            out.append(_sse({"finish_reason": "tool_calls"}))
        out.append(_sse({"response": ""}))
        out.append(_sse({"response": "", "usage": u}))
    out.append(_sse("[DONE]"))
    return "".join(out)


def answer(model: str, inputs) -> tuple[str, object]:
    """("sse", text) or ("json", output) for a valid input; raises WorkersAiError."""
    check(model, inputs)
    content, calls, scenario = plan(inputs)
    stream = inputs.get("stream") is True
    if scenario:
        path = FIXTURES / f"{scenario}.sse"
        if stream and path.exists():
            return "sse", path.read_text()
        return "json", json.loads((FIXTURES / f"{scenario}.json").read_text())
    # gpt-oss ignores `stream: true` and answers whole (§4.3).
    if stream and not model.startswith("@cf/openai/gpt-oss-"):
        return "sse", stream_text(model, content, calls)
    return "json", output(model, content, calls)


# --------------------------------------------------------------------------- HTTP

def _test_id(inputs) -> str | None:
    m = TEST_ID.search(json.dumps(inputs))
    return m.group(0) if m else None


def _send_sse(handler, text: str) -> None:
    handler._start_stream()
    data = text.encode()
    # A few network-sized pieces, split mid-event, like the real stream.
    for i in range(0, len(data), 61):
        handler._chunk(data[i:i + 61])
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def handle(handler, url, raw: bytes) -> None:
    try:
        body = json.loads(raw.decode("utf-8"))
    except Exception:
        body = raw.decode("utf-8", "replace")
    if url.path == BINDING_PATH:
        model = body.get("model", "") if isinstance(body, dict) else ""
        inputs = body.get("inputs") if isinstance(body, dict) else None
        handler.record(f"binding:{model}", None, inputs, test_id=_test_id(inputs))
        try:
            kind, result = answer(model, inputs)
        except WorkersAiError as e:
            text = f"InferenceUpstreamError: {e.code}: {e.message}" if e.code == 3040 else f"AiError: {e.code}: {e.message}"
            data = text.encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("x-ai-throw", "1")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        if kind == "sse":
            _send_sse(handler, result)
        else:
            handler._json(200, result)
        return

    match = REST.match(url.path)
    account, model = match.group(1), match.group(2)
    auth = handler.headers.get("Authorization") or ""
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    handler.record(url.path, key, body, test_id=_test_id(body))
    b = behaviour_for(key)
    if b != "ok":
        status = int(b)
        code, message = ERRORS[status]
        handler._json(status, envelope_error(code, message))
        return
    if account != ACCOUNT:
        code, message = ERRORS[404]
        handler._json(404, envelope_error(code, message))
        return
    try:
        kind, result = answer(model, body)
    except WorkersAiError as e:
        handler._json(e.status, envelope_error(e.code, e.message))
        return
    if kind == "sse":
        _send_sse(handler, result)
    else:
        handler._json(200, {"result": result, "success": True, "errors": [], "messages": []})
