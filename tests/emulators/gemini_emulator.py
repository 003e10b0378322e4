"""Google Gemini API emulator, served by tests/emulators/openai_emulator.py on the same port.

Wire format follows ``shared/wire/gemini.md``: ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` with the key in ``x-goog-api-key`` (§1); ``GenerateContentResponse``
(§3); SSE events ``data: {...}`` separated by ``\\r\\n\\r\\n`` as in real traffic, no ``[DONE]`` (§4); a
failing stream ends with a raw, pretty-printed JSON error object that is not SSE-framed (§4.1); the
Google RPC error envelope ``{"error": {"code", "message", "status"}}`` (§5).

``POST /v1beta/models/{model}:countTokens`` (the API's ``CountTokensRequest``): a body of either
``contents`` alone or ``generateContentRequest`` (a whole ``GenerateContentRequest`` with its
``model``, ``models/…``; system instruction and tools only fit in there), checked like
``generateContent``'s; the answer is ``{"totalTokens": N, "promptTokensDetails": [{"modality":
"TEXT", "tokenCount": N}]}`` with N from the request's text (see ``count_tokens``), the same for the
same request. Key behaviours as below (errors only; the fault modes answer normally).

Like the real API it rejects, with Gemini's own 400 messages, what the proxy must pre-empt: an
unknown top-level field or schema keyword (``Unknown name "additionalProperties" at '…': Cannot find
field.``), a JSON-Schema type list (``Proto field is not repeating, cannot start list``), a role
other than ``user``/``model``, turns that do not alternate, an empty or multi-field part, a
``functionResponse`` without ``name`` or with a non-object ``response``, ``streamGenerateContent``
without ``alt=sse``, and — on ``gemini-3*`` models — a model turn whose first ``functionCall`` has
no ``thoughtSignature`` (§5, the literal "missing a thought_signature" error).

Behaviour by ``x-goog-api-key`` value (the OpenAI emulator's key words): ``ok`` answers; ``429``
RESOURCE_EXHAUSTED (no retry hint), ``429hint`` the same with a ``google.rpc.RetryInfo`` detail
``"retryDelay": "30s"``, ``500`` INTERNAL, ``503``/``529`` UNAVAILABLE, ``401`` the 400
INVALID_ARGUMENT ``API_KEY_INVALID`` Gemini really sends for a bad key, ``403`` PERMISSION_DENIED,
``400`` the schema INVALID_ARGUMENT of §2.2, ``404`` NOT_FOUND; ``drop`` closes the connection;
``midstream`` replays §4.1 (text, STOP, then the raw 503 object, after a pause so the text reaches
the client first); ``overloadfirst`` answers 200 and then only the raw 503 object.
Fault modes (tests/e2e/test_faults.py; holds end when the client goes away, else after 30 s):
``stallheaders`` reads the request and sends nothing; ``stallfirst`` sends 200 SSE headers then
holds (Gemini has no role-only event; non-stream: 200 headers and half the JSON, then holds).

Answers (an ``ok`` key), chosen from the request:
* ``scenario:NAME`` in the last user text replays ``tests/fixtures/google/<file>.sse``: ``safety``
  (prompt blocked), ``safety_finish``, ``signature`` (§4.2: a signed call, STOP in a later event),
  ``thinking``, ``parallel``;
* the last turn carries ``functionResponse`` parts → ``"tool said: " + name=json(response)`` joined
  by ``" | "``;
* function declarations offered (mode not NONE) → one ``functionCall`` with STOP in the same event
  (the older models' shape), or with two or more declarations, a call to each of the first two in
  one event and STOP in a trailing one (the newer models' shape);
* otherwise ``"echo: " + <last user text>``, in two text events and an empty STOP event.
Non-streaming answers are the same events folded into one response. ``modelVersion`` is the
model in the URL, ``responseId`` fresh per response (events without one keep none).

``emulator_endless`` and ``emulator_echo_key=MODE`` in the last user text: the OpenAI emulator's
markers (see its docstring), in this API's shapes: ``first`` is a 200 stream carrying only the raw
error object, ``mid`` one text event then the raw error object (§4.1), a status the RPC error
envelope (``401`` the ``API_KEY_INVALID`` 400).

The proxy does not forward OpenAI-only fields, so tests tag a request by writing
``[test_id=X]`` in a user message; it is recorded as the request's ``test_id``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "google"

SCENARIOS = {"safety": "prompt_blocked", "safety_finish": "safety_finish",
             "signature": "function_call_split", "thinking": "thinking", "parallel": "parallel_calls"}

PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
COUNT_FIELDS = {"contents", "generateContentRequest"}

TOP_LEVEL = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
             "safetySettings", "cachedContent"}
PART_FIELDS = {"text", "inlineData", "fileData", "functionCall", "functionResponse",
               "executableCode", "codeExecutionResult"}
SCHEMA_KEYS = {"type", "format", "title", "description", "nullable", "enum", "items", "minItems",
               "maxItems", "properties", "required", "minProperties", "maxProperties", "minLength",
               "maxLength", "pattern", "minimum", "maximum", "default", "example", "anyOf",
               "propertyOrdering"}
GENERATION_KEYS = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens",
                   "stopSequences", "presencePenalty", "frequencyPenalty", "seed", "responseMimeType",
                   "responseSchema", "responseJsonSchema", "thinkingConfig", "responseLogprobs",
                   "logprobs", "responseModalities"}

ERRORS = {
    400: ("INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name \"additionalProperties\" at "
          "'tools[0].function_declarations[34].parameters.properties[6].value.items.any_of[0]': Cannot find field."),
    403: ("PERMISSION_DENIED", "Permission denied: Consumer 'api_key:emulated' has been suspended."),
    404: ("NOT_FOUND", "models/emulated is not found for API version v1beta, or is not supported for generateContent."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}
BAD_KEY = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                     "status": "INVALID_ARGUMENT",
                     "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                  "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                                  "metadata": {"service": "generativelanguage.googleapis.com"}}]}}
MISSING_SIGNATURE = ("Function call is missing a thought_signature in functionCall parts. This is required "
                     "for tools to work correctly, and missing thought_signature may lead to degraded model "
                     "performance. Additional data, function call `default_api:{name}` , position {pos}. Please "
                     "refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")

# Whole tokens of the key's value; the first listed that matches wins.
BEHAVIOURS = ("stallheaders", "stallfirst", "429hint", "overloadfirst", "midstream", "drop", "ok",
              "429", "500", "503", "529", "401", "403", "400", "404")
RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}


def handles(path: str) -> bool:
    return PATH.match(path) is not None


def behaviour_for(key: str | None) -> str:
    tokens = [t for t in re.split(r"[^a-z0-9]+", (key or "").lower()) if t]
    return next((b for b in BEHAVIOURS if b in tokens), "401")


def error_body(code: int, status: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "status": status}}


def _error(code: int) -> dict:
    status, message = ERRORS[code]
    return error_body(code, status, message)


def _raw_error(code: int) -> bytes:
    """The pretty-printed error object Google appends to a failing 200 stream (§4.1)."""
    return (json.dumps(_error(code), indent=2) + "\n").encode()


# --------------------------------------------------------------------------- validation

def _schema_problem(schema, at: str) -> str | None:
    if not isinstance(schema, dict):
        return f"Invalid value at '{at}': expected a Schema object"
    for key, value in schema.items():
        if key not in SCHEMA_KEYS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field."
        if key == "type" and isinstance(value, list):
            return f"Invalid JSON payload received. Unknown name \"type\" at '{at}': Proto field is not repeating, cannot start list."
        if key == "enum" and not all(isinstance(v, str) and v for v in value):
            return f"Invalid value at '{at}.enum': enum values must be non-empty strings"
    for name, sub in (schema.get("properties") or {}).items():
        bad = _schema_problem(sub, f"{at}.properties[{name}].value")
        if bad:
            return bad
    if "items" in schema:
        bad = _schema_problem(schema["items"], f"{at}.items")
        if bad:
            return bad
    for i, sub in enumerate(schema.get("anyOf") or []):
        bad = _schema_problem(sub, f"{at}.any_of[{i}]")
        if bad:
            return bad
    missing = [r for r in schema.get("required") or [] if r not in (schema.get("properties") or {})]
    if missing:
        return f"GenerateContentRequest.{at}.required[0]: property is not defined"
    return None


def problem(body: dict, model: str) -> str | None:
    """The 400 message the real API would give this request, or None if it is acceptable."""
    for key in body:
        if key not in TOP_LEVEL:
            return f"Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        role = content.get("role", "user")
        if role not in ("user", "model"):
            return "Please use a valid role: user, model."
        if i > 0 and role == contents[i - 1].get("role", "user"):
            return "Please ensure that multiturn requests alternate between user and model."
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
        calls = 0
        for j, part in enumerate(parts):
            fields = [k for k in part if k in PART_FIELDS]
            unknown = [k for k in part if k not in PART_FIELDS | {"thought", "thoughtSignature"}]
            if unknown:
                return f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'contents[{i}].parts[{j}]': Cannot find field."
            if len(fields) != 1:
                return f"* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof field 'data' must have one initialized field"
            if "functionResponse" in part:
                fr = part["functionResponse"]
                if not fr.get("name"):
                    return f"* GenerateContentRequest.contents[{i}].parts[{j}].function_response.name: Name cannot be empty."
                if not isinstance(fr.get("response"), dict):
                    return f"Invalid value at 'contents[{i}].parts[{j}].function_response.response' (type.googleapis.com/google.protobuf.Struct)"
            if "functionCall" in part:
                if not isinstance(part["functionCall"].get("args", {}), dict):
                    return f"Invalid value at 'contents[{i}].parts[{j}].function_call.args' (type.googleapis.com/google.protobuf.Struct)"
                if model.startswith("gemini-3") and calls == 0 and not part.get("thoughtSignature"):
                    return MISSING_SIGNATURE.format(name=part["functionCall"].get("name"), pos=j + 1)
                calls += 1
            for media in ("inlineData", "fileData"):
                if media in part and not part[media].get("mimeType"):
                    return f"* GenerateContentRequest.contents[{i}].parts[{j}].{media}.mime_type: mime_type must be set"
    for t, tool in enumerate(body.get("tools") or []):
        for d, decl in enumerate(tool.get("functionDeclarations") or []):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}", decl.get("name", "")):
                return f"* GenerateContentRequest.tools[{t}].function_declarations[{d}].name: Invalid function name."
            if "parameters" in decl:
                bad = _schema_problem(decl["parameters"], f"tools[{t}].function_declarations[{d}].parameters")
                if bad:
                    return bad
    config = body.get("generationConfig") or {}
    for key in config:
        if key not in GENERATION_KEYS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': Cannot find field."
    if "responseSchema" in config:
        bad = _schema_problem(config["responseSchema"], "generation_config.response_schema")
        if bad:
            return bad
    fcc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if fcc.get("allowedFunctionNames") and fcc.get("mode") != "ANY":
        return "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: only allowed when mode is ANY"
    return None


# --------------------------------------------------------------------------- answers

def _fixture(name: str) -> list[dict]:
    """The events of a literal stream in tests/fixtures/google."""
    return [json.loads(block[len("data: "):])
            for block in (FIXTURES / f"{name}.sse").read_text().split("\n\n")
            if block.startswith("data: ")]


def _text_of(parts) -> str:
    return " ".join(p["text"] for p in parts or [] if isinstance(p.get("text"), str) and not p.get("thought"))


def _usage(prompt: int, output: int) -> dict:
    return {"promptTokenCount": prompt, "candidatesTokenCount": output,
            "totalTokenCount": prompt + output}


def _candidate(parts: list, finish: str | None = None) -> dict:
    c = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        c["finishReason"] = finish
    return c


def _text_stream(text: str, prompt: int) -> list[dict]:
    """A text answer in the shape of §4.1: two text events, then an empty STOP event."""
    half = len(text) // 2
    output = max(1, len(text.split()))
    return [
        {"candidates": [_candidate([{"text": text[:half]}])], "usageMetadata": _usage(prompt, 0),
         "responseId": ""},
        {"candidates": [_candidate([{"text": text[half:]}])], "usageMetadata": _usage(prompt, output - 1),
         "responseId": ""},
        {"candidates": [_candidate([{"text": ""}], "STOP")], "usageMetadata": _usage(prompt, output),
         "responseId": ""},
    ]


def _calls(names: list[str], prompt: int) -> list[dict]:
    args = {"location": "Boston, MA"}
    if len(names) == 1:
        # Older models: the call and its STOP in one event (gemini.md §4.2, second example).
        return [{"candidates": [_candidate([{"functionCall": {"name": names[0], "args": args}}], "STOP")],
                 "usageMetadata": _usage(prompt, 4)}]
    # Newer models: the calls, then STOP alone in a trailing event (§4.2).
    return [
        {"candidates": [_candidate([{"functionCall": {"name": n, "args": args}} for n in names[:2]])],
         "usageMetadata": {"trafficType": "ON_DEMAND"}, "responseId": ""},
        {"candidates": [_candidate([{"text": ""}], "STOP")], "usageMetadata": _usage(prompt, 8),
         "responseId": ""},
    ]


def plan(body: dict) -> list[dict]:
    contents = body["contents"]
    last = contents[-1].get("parts") or []
    said = _text_of(last)
    prompt = sum(len(_text_of(c.get("parts")).split()) for c in contents) + 3
    results = [p["functionResponse"] for p in last if "functionResponse" in p]
    scenario = re.search(r"scenario:([a-z_]+)", said)
    if scenario and scenario.group(1) in SCENARIOS:
        return _fixture(SCENARIOS[scenario.group(1)])
    if results:
        said = " | ".join(f"{r['name']}={json.dumps(r['response'], separators=(',', ':'))}" for r in results)
        return _text_stream("tool said: " + said, prompt)
    mode = (((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")) or "AUTO"
    names = [d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    if names and mode != "NONE":
        return _calls(names, prompt)
    return _text_stream("echo: " + re.sub(r"\s*\[test_id=[^\]]*\]", "", said), prompt)


def stamp(events: list[dict], model: str) -> list[dict]:
    """This response's id and the request's model on every event that names them."""
    response_id = "emu" + uuid.uuid4().hex[:20]
    for event in events:
        event["modelVersion"] = model
        if "responseId" in event:
            event["responseId"] = response_id
    return events


def fold(events: list[dict]) -> dict:
    """The non-streaming response a stream adds up to."""
    out: dict = {}
    candidates: dict[int, dict] = {}
    for event in events:
        for key in ("promptFeedback", "usageMetadata", "modelVersion", "responseId"):
            if key in event:
                out[key] = event[key]
        for c in event.get("candidates") or []:
            cand = candidates.setdefault(c.get("index", 0), {"content": {"parts": [], "role": "model"},
                                                            "index": c.get("index", 0)})
            parts = cand["content"]["parts"]
            for p in (c.get("content") or {}).get("parts") or []:
                if "text" in p and parts and "text" in parts[-1] and parts[-1].get("thought") == p.get("thought"):
                    parts[-1]["text"] += p["text"]
                    if "thoughtSignature" in p:
                        parts[-1]["thoughtSignature"] = p["thoughtSignature"]
                elif p.get("text") != "" or "thoughtSignature" in p:
                    parts.append(dict(p))
            if "finishReason" in c:
                cand["finishReason"] = c["finishReason"]
    if candidates:
        out["candidates"] = [candidates[i] for i in sorted(candidates)]
    return out


def _endless(handler, events: list[dict], stream: bool) -> None:
    """``emulator_endless``: text events every 50 ms (non-stream: spaces) until the client goes away."""
    if stream:
        handler._start_stream()
        first = events[0]
        line = _sse(dict(first, candidates=[_candidate([{"text": "x"}])]))
        handler.trickle(_sse(first), line)
    else:
        handler._head(200, "application/json")
        handler.trickle(b"", b" ")


def _echo_key(handler, events: list[dict], stream: bool, key, mode: str) -> None:
    """``emulator_echo_key=MODE``: an error that repeats the key it was sent."""
    message = handler.echo_message(key, handler.headers.get("x-goog-api-key"))
    leak = {"x-echo-key": str(key), "www-authenticate": f'x-goog-api-key error="{key}"'}
    if mode == "400text":
        data = message.encode()
        handler._head(400, "text/plain", len(data), leak)
        handler._send(data)
        return
    status = handler.echo_status(mode)
    if status == 401:
        bad = json.loads(json.dumps(BAD_KEY))
        bad["error"]["message"] = message
        handler._json(400, bad, leak)
        return
    rpc = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 422: "INVALID_ARGUMENT",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}.get(status, "UNAVAILABLE")
    err = (json.dumps(error_body(503 if status == 200 else status, rpc, message), indent=2) + "\n").encode()
    if mode in ("first", "mid") and stream:
        handler._head(200, "text/event-stream", None, leak)
        if mode == "mid":
            handler._chunk(_sse(events[0]))
            time.sleep(0.3)  # the text reaches the client before the error
        handler._chunk(err)
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
        return
    handler._head(status, "application/json", len(err), leak)  # ``first``: a 200 whose body is an error
    handler._send(err)


def _words(value) -> int:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    return len(re.findall(r"\w+|[^\w\s]", text))


def count_tokens(request: dict) -> int:
    """The emulator's count for a ``GenerateContentRequest``: the words and punctuation marks of
    every part's text (a function call's or response's JSON; 258 per inline or file media), of
    the system instruction and of the function declarations, plus 2 per turn."""
    n = 0
    contents = list(request.get("contents") or [])
    if request.get("systemInstruction"):
        contents.append(request["systemInstruction"])
    for content in contents:
        n += 2
        for part in content.get("parts") or []:
            if isinstance(part.get("text"), str):
                n += _words(part["text"])
            for key in ("functionCall", "functionResponse"):
                if key in part:
                    n += _words(part[key])
            if "inlineData" in part or "fileData" in part:
                n += 258
    for tool in request.get("tools") or []:
        n += _words(tool)
    return max(n, 1)


def count_problem(body: dict, model: str) -> str | None:
    """The 400 the real ``countTokens`` would give, or None."""
    for key in body:
        if key not in COUNT_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
    if ("contents" in body) == ("generateContentRequest" in body):
        return "* CountTokensRequest: exactly one of contents and generate_content_request must be set"
    if "contents" in body:
        return problem({"contents": body["contents"]}, model)
    inner = body["generateContentRequest"]
    if not isinstance(inner, dict):
        return "Invalid value at 'generate_content_request' (type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentRequest)"
    name = inner.get("model")
    if not isinstance(name, str) or not name.startswith("models/"):
        return "* GenerateContentRequest.model: unexpected model name format"
    return problem({k: v for k, v in inner.items() if k != "model"}, model)


def _sse(event: dict) -> bytes:
    # Real traffic separates events with CRLF pairs (gemini.md §4, issue 4).
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\r\n\r\n"


def _test_id(body) -> str | None:
    if not isinstance(body, dict):
        return None
    inner = body.get("generateContentRequest")
    if isinstance(inner, dict):
        body = inner
    contents = list(body.get("contents") or [])
    if isinstance(body.get("systemInstruction"), dict):
        contents.append(body["systemInstruction"])
    for content in contents:
        for part in content.get("parts") or []:
            found = re.search(r"\[test_id=([^\]]+)\]", part.get("text") or "")
            if found:
                return found.group(1)
    return None


# --------------------------------------------------------------------------- HTTP

def handle(handler, url, raw: bytes) -> None:
    key = handler.headers.get("x-goog-api-key")
    model, method = PATH.match(url.path).groups()
    query = parse_qs(url.query)
    try:
        body = json.loads(raw.decode("utf-8"))
    except Exception:
        body = raw.decode("utf-8", "replace")
    handler.record(url.path + ("?" + url.query if url.query else ""), key, body, test_id=_test_id(body))
    b = behaviour_for(key if key else (query.get("key") or [None])[0])
    if b == "drop":
        handler._abort()
        return
    if b == "stallheaders":
        handler.stall_headers()
        return
    if b == "401":
        handler._json(400, BAD_KEY)
        return
    if b == "429hint":
        hinted = _error(429)
        hinted["error"]["details"] = [RETRY_INFO]
        handler._json(429, hinted)
        return
    if b.isdigit():
        status = 503 if b == "529" else int(b)
        handler._json(status, _error(status))
        return
    if not isinstance(body, dict):
        handler._json(400, error_body(400, "INVALID_ARGUMENT",
                                      "Invalid JSON payload received. Unexpected token."))
        return
    if method == "countTokens":
        bad = count_problem(body, model)
        if bad:
            handler._json(400, error_body(400, "INVALID_ARGUMENT", bad))
            return
        request = body.get("generateContentRequest") or {"contents": body.get("contents")}
        total = count_tokens(request)
        handler._json(200, {"totalTokens": total,
                            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})
        return
    stream = method == "streamGenerateContent"
    if stream and query.get("alt") != ["sse"]:
        handler._json(400, error_body(400, "INVALID_ARGUMENT",
                                      "emulator: streamGenerateContent without alt=sse streams a JSON array"))
        return
    bad = problem(body, model)
    if bad:
        handler._json(400, error_body(400, "INVALID_ARGUMENT", bad))
        return
    said = _text_of((body["contents"][-1].get("parts") or []))
    echo = handler.marker(said, "echo_key")
    if echo is not None:
        _echo_key(handler, stamp(_text_stream("echo: x", 1), model), stream,
                  key if key else (query.get("key") or [None])[0], echo)
        return
    if handler.marker(said, "endless") is not None:
        _endless(handler, stamp(_text_stream("echo: x", 1), model), stream)
        return
    if b in ("midstream", "overloadfirst") and not stream:
        handler._json(503, _error(503))
        return
    if b == "midstream":
        events, tail = _fixture("midstream_error"), _raw_error(503)
    elif b == "overloadfirst":
        events, tail = [], _raw_error(503)
    else:
        events, tail = plan(body), b""
    events = stamp(events, model)
    if b == "stallfirst":
        if stream:
            handler._start_stream()
        else:
            whole = json.dumps(fold(events)).encode()
            handler._head(200, "application/json", len(whole))
            handler._send(whole[:len(whole) // 2])
        handler.hold()
        handler._abort()
        return
    if not stream:
        handler._json(200, fold(events))
        return
    handler._start_stream()
    for event in events:
        handler._chunk(_sse(event))
    if tail:
        if events:
            time.sleep(0.3)  # let the proxy pass the text on before the error arrives
        handler._chunk(tail)
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()
