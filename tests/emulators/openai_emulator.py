#!/usr/bin/env python3
"""OpenAI Chat Completions upstream emulator for the ai-worker-proxy end-to-end tests.

Wire format follows ``shared/wire/openai-chat.md`` (the project's OpenAI Chat Completions wire
reference): §2 for non-streaming ``chat.completion`` objects, §3 / §3.1 / §3.2 for the SSE
``chat.completion.chunk`` stream (role chunk, content or tool-call fragments, finish chunk, optional
usage chunk with ``choices: []``, ``data: [DONE]``) and §4 for the error envelope
``{"error": {"message", "type", "param", "code"}}``.

The same server speaks the other providers' formats through the modules in ``PROVIDERS``
(``anthropic_emulator.py``: ``POST /v1/messages``; ``gemini_emulator.py``:
``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``;
``workers_ai_emulator.py``: Workers AI's REST ``/client/v4/accounts/{id}/ai/run/{model}`` and the
AI-binding stand-in's ``/_emulator/ai-binding/run``).

Standard library only. Usage::

    python3 tests/emulators/openai_emulator.py --port 18080 [--host 127.0.0.1]

Routes
------
``POST .../chat/completions``   behaviour chosen by the bearer key *value* (tests/e2e/secrets.env):

    ok          success (non-stream or SSE stream)
    429         429, rate_limit_exceeded, no ``Retry-After`` header
    429hint     429 + ``Retry-After: 30``
    500/503/529 that status, server_error
    401 / 403   auth errors            400 / 404 / 422  client errors
    204         204 No Content: a success status with no body at all
    huge        non-stream: 200 and a JSON answer of 33 MiB, chunked (past the proxy's 32 MiB cap
                on a whole answer); stream: as ``ok``
    drop        close the TCP connection without any response
    streamdrop  200 + SSE/chunked headers, then close before any body byte (non-stream: close)
    midstream   stream: role chunk + two content chunks, then close abruptly (no 0-chunk, no
                [DONE]); non-stream: normal success
    missing / unknown key → 401

    Fault modes (tests/e2e/test_faults.py). A hold ends early when the client goes away, else
    after ``STALL_S`` (30 s; ``ENDLESS_S``, 60 s, for ``endless``), so no thread lingers:

    stallheaders  read the request, send nothing (hold), then close
    stallfirst    stream: 200 SSE headers, the role-only chunk (``delta: {"role": "assistant",
                  "content": ""}``) and an SSE comment ``: keep-alive``, then hold; non-stream:
                  200 headers (full ``Content-Length``) + the first half of the JSON, then hold
    drip          a slow but healthy answer: stream: role chunk, 6 content chunks 0.3 s apart,
                  finish chunk (+ usage), [DONE]; non-stream: the JSON written in 4 pieces 0.3 s
                  apart
    resetheaders  read the request, then a TCP RST (``SO_LINGER`` 0) before any response byte
    resetmid      stream: role chunk + two content chunks (``"echo:"``, ``" <word>"``) and the
                  first half of the next event's bytes, then RST; non-stream: headers (full
                  ``Content-Length``) + half the JSON, then RST
    badjson       200 ``application/json`` whose complete body is ``{"id": "chatcmpl-x",
                  "choices": [``; stream: 200 SSE with one malformed event
                  ``data: {"id":"chatcmpl-x","choices":[{"delta":{"content``, then
                  ``data: [DONE]``
    badsse        200 ``text/event-stream`` (stream or not) whose body is the HTML page
                  ``<html><body>502 Bad Gateway</body></html>``
    truncated     chunked transfer-encoding; stream: role chunk + one content chunk
                  (``"echo:"``), non-stream: half the JSON; then a clean close (FIN) without the
                  terminating 0-length chunk
    endless       stream: role chunk, then a content chunk ``"x"`` every 50 ms; non-stream: 200
                  JSON headers, chunked, then one space byte every 50 ms; until the client goes
                  away (or 60 s)
    redirect      307 with ``Location: http://<this emulator>/v1/chat/completions`` (a proxy must
                  not follow it: it would come back here with the same key)

    Success content is ``"echo: " + <last user message text>``; with ``tools`` the answer is a tool
    call (two parallel calls when 2+ tools and ``parallel_tool_calls`` is not false); when the last
    message has role ``tool`` the answer is ``"tool said: " + <its content>``. The response ``model``
    is the request's ``model`` so tests can tell which target answered.

    ``"emulator_chunks": N`` in the body: a stream of N small content chunks, generated lazily.

    ``"emulator_hold": "<id>"`` in the body: after the role chunk and the first content chunk the
    stream pauses until ``POST /_emulator/release/<id>`` (max 30 s).

``POST /_emulator/release/<id>``  release a held stream (may be called before the hold starts).
``GET  /_emulator/requests?test_id=X``  JSON list of recorded upstream requests tagged X (each
                                 ``{"seq","path","headers","body","key","test_id"}``, and ``raw``,
                                 the body as it arrived, where a provider module keeps it); the
                                 tag is the body's ``test_id``, else its ``user`` when that is a
                                 test id (``t-`` and 32 hex digits: what the Anthropic front door
                                 makes of ``metadata.user_id``), or what a provider module extracts.
``GET  /_emulator/health``       ``{"ok": true}``.
``GET  /_emulator/threads``      ``{"threads": N, "faults": F, "client_gone": G, "requests": R}``
                                 (R: how many requests were recorded so far): the live
                                 threads (one per open connection, +1), the fault answers still
                                 holding or running (stalls, ``endless``), so a test can check they
                                 end when their client leaves, and how many of them ended because
                                 their client (the proxy) closed the connection. Such a request's
                                 record gains ``"client_gone_after_s"``: seconds from its arrival
                                 to the close.

Markers in the last user message's text, read by every provider module (OpenAI, Anthropic,
Gemini), so a test reaches them through any route with an ``ok`` key
(tests/e2e/test_security.py):

    ``emulator_endless``        an answer that never ends until the client goes away (or 60 s):
                                stream: the provider's opening events and a first text piece,
                                then a text piece ``"x"`` every 50 ms; non-stream: 200 JSON
                                headers (chunked), then a space every 50 ms. Counted as a
                                running fault; the close is recorded as above.
    ``emulator_echo_key=MODE``  an error that repeats the key the emulator received (its error
                                message, and an ``x-echo-key`` response header), as a careless
                                upstream might: a proxy must never relay it. MODE is a status
                                (``400``, ``401``, ``404``, ``422``, ``429``, ``500``, ``503``;
                                the provider's own error envelope), ``400text`` (a 400 whose body
                                is plain text), ``first`` (stream: an in-band error before any
                                content; non-stream: a 200 whose JSON is an error) or ``mid``
                                (stream: one text piece, then an in-band error; non-stream: 500).

``id`` is random per response (``chatcmpl-emu…``) and ``created`` is the current time; tests that
compare bytes normalise those two values.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import select
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Other providers' wire formats, served on the same port: each module has
# ``handles(path) -> bool`` and ``handle(handler, url, raw)``.
import anthropic_emulator  # noqa: E402
import gemini_emulator  # noqa: E402
import workers_ai_emulator  # noqa: E402

PROVIDERS = (anthropic_emulator, gemini_emulator, workers_ai_emulator)

HOLD_TIMEOUT_S = 30.0
STALL_S = 30.0        # longest a stall fault holds a connection
ENDLESS_S = 60.0      # longest an ``endless`` answer runs
DRIP_GAP_S = 0.3      # between the pieces of a ``drip`` answer
ENDLESS_GAP_S = 0.05  # between the bytes of an ``endless`` answer

_records: list[dict] = []
_records_lock = threading.Lock()
_holds: dict[str, threading.Event] = {}
_holds_lock = threading.Lock()
_faults_running = 0  # stalls and endless answers in progress (GET /_emulator/threads)
_client_gone = 0     # of those, how many ended because their client closed the connection
_faults_lock = threading.Lock()


@contextlib.contextmanager
def fault_running():
    """Counts a stall or an ``endless`` answer while it runs."""
    global _faults_running
    with _faults_lock:
        _faults_running += 1
    try:
        yield
    finally:
        with _faults_lock:
            _faults_running -= 1


def marker(text: str, name: str) -> str | None:
    """``emulator_<name>`` (``""``) or ``emulator_<name>=VALUE`` (``VALUE``) in ``text``, else None."""
    found = re.search(rf"\bemulator_{name}(?:=([A-Za-z0-9]+))?", text or "")
    return None if found is None else (found.group(1) or "")


def echo_message(key: str | None, auth: str | None) -> str:
    """The careless upstream's error text: it repeats the credentials it was sent."""
    return f"Incorrect API key provided: {key}. You sent the header {auth!r}; check the key {key}."


def echo_status(mode: str) -> int:
    """The HTTP status of an ``emulator_echo_key`` answer (``first``: 200, ``mid``: 500)."""
    digits = re.match(r"\d+", mode)
    return int(digits.group(0)) if digits else (200 if mode == "first" else 500)


# The ids tests tag their requests with (tests/e2e/conftest.py ``test_id``).
TEST_ID = re.compile(r"t-[0-9a-f]{32}")


def _hold_event(hold_id: str) -> threading.Event:
    with _holds_lock:
        return _holds.setdefault(hold_id, threading.Event())


# --------------------------------------------------------------------------- behaviours

# Fault modes (tests/e2e/test_faults.py), each answered by ``Handler._fault_<name>``.
FAULTS = ("stallheaders", "stallfirst", "drip", "resetheaders", "resetmid", "429hint", "badjson",
          "badsse", "truncated", "endless", "redirect")
# The size of the ``huge`` answer: past the proxy's cap on a whole answer (32 MiB).
HUGE_BYTES = 33 << 20

# A key's value is split into lowercase alphanumeric tokens and the first behaviour in this order
# that is one of them wins; tokens match whole, so ``429hint`` is never taken for ``429``.
BEHAVIOURS = FAULTS + ("streamdrop", "midstream", "drop", "ok", "huge",
                       "204", "429", "500", "503", "529", "401", "403", "400", "404", "422")


def behaviour_for(key: str | None) -> str:
    """Map a bearer key value to a behaviour name (unknown/missing → '401')."""
    if not key:
        return "401"
    tokens = [t for t in re.split(r"[^a-z0-9]+", key.lower()) if t]
    for b in BEHAVIOURS:
        if b in tokens:
            return b
    if "ok" in key.lower():
        return "ok"
    return "401"


def error_body(status: int, model: str) -> dict:
    if status == 429:
        err = ("Rate limit reached for requests", "requests", None, "rate_limit_exceeded")
    elif status >= 500:
        err = ("The server had an error while processing your request.", "server_error", None, None)
    elif status == 401:
        err = ("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key")
    elif status == 403:
        err = ("Country, region, or territory not supported.", "invalid_request_error", None,
               "unsupported_country_region_territory")
    elif status == 400:
        err = ("Invalid value for 'temperature': emulated client error.", "invalid_request_error",
               "temperature", "invalid_value")
    elif status == 404:
        err = (f"The model `{model}` does not exist or you do not have access to it.",
               "invalid_request_error", None, "model_not_found")
    elif status == 422:
        err = ("Unprocessable entity: emulated client error.", "invalid_request_error", None,
               "unprocessable_entity")
    else:
        err = ("Emulated error.", "invalid_request_error", None, None)
    message, typ, param, code = err
    return {"error": {"message": message, "type": typ, "param": param, "code": code}}


# --------------------------------------------------------------------------- answers

def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content
                 if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)]
        return " ".join(parts)
    return ""


def _last_user_text(body: dict) -> str:
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return _text_of(m.get("content"))
    return ""


def user_turn(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def plan_answer(body: dict) -> tuple[str | None, list[dict]]:
    """Return (content, tool_calls) for a successful answer. tool_calls items are
    {"id", "name", "arguments"}; content is None when tool calls are returned."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    messages = [m for m in messages if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return "tool said: " + _text_of(last.get("content")), []
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    names = []
    for t in tools:
        if isinstance(t, dict):
            fn = t.get("function") if isinstance(t.get("function"), dict) else {}
            names.append(str(fn.get("name") or (t.get("custom") or {}).get("name") or "tool"))
    if names:
        count = 2 if len(names) >= 2 and body.get("parallel_tool_calls") is not False else 1
        calls = [{"id": f"call_emu_{i}", "name": names[i],
                  "arguments": json.dumps({"location": "Boston, MA"})} for i in range(count)]
        return None, calls
    user_text = ""
    for m in reversed(messages):
        if m.get("role") == "user":
            user_text = _text_of(m.get("content"))
            break
    return "echo: " + user_text, []


def _prompt_tokens(body: dict) -> int:
    n = 0
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            n += len(_text_of(m.get("content")).split()) + 3
    return max(n, 1)


def usage_for(body: dict, content: str | None, calls: list[dict]) -> dict:
    completion = len((content or "").split()) + sum(len(c["arguments"]) // 4 + 1 for c in calls)
    prompt = _prompt_tokens(body)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def completion_object(body: dict, content: str | None, calls: list[dict]) -> dict:
    message: dict = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                 for c in calls]
    return {
        "id": "chatcmpl-emu" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": usage_for(body, content, calls),
    }


def stream_events(body: dict, content: str | None, calls: list[dict]) -> list[dict]:
    """All chunk objects of a streamed answer, in order (without [DONE])."""
    so = body.get("stream_options")
    include_usage = isinstance(so, dict) and so.get("include_usage") is True
    base = {"id": "chatcmpl-emu" + uuid.uuid4().hex[:24], "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body.get("model")}

    def chunk(delta: dict, finish=None) -> dict:
        c = dict(base)
        c["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if include_usage:
            c["usage"] = None
        return c

    events = [chunk({"role": "assistant", "content": ""})]
    if calls:
        for i, call in enumerate(calls):
            events.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                 "function": {"name": call["name"], "arguments": ""}}]}))
            args = call["arguments"]
            for j in range(0, len(args), 5):
                events.append(chunk({"tool_calls": [{"index": i,
                                                     "function": {"arguments": args[j:j + 5]}}]}))
    else:
        for word in re.findall(r"\s*\S+", content or "") or [content or ""]:
            events.append(chunk({"content": word}))
    events.append(chunk({}, "tool_calls" if calls else "stop"))
    if include_usage:
        u = dict(base)
        u["choices"] = []
        u["usage"] = usage_for(body, content, calls)
        events.append(u)
    return events


def with_delta(chunk: dict, delta: dict, finish: str | None = None) -> dict:
    """A copy of a one-choice ``chat.completion.chunk`` with another delta (and finish_reason)."""
    return dict(chunk, choices=[dict(chunk["choices"][0], delta=delta, finish_reason=finish)])


def sse(obj) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


# --------------------------------------------------------------------------- HTTP

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-emulator/1.0"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the client's
    # delayed ACK holds the body back ~40 ms, which would swamp every latency measured through it.
    disable_nagle_algorithm = True
    # Shared with the provider modules, which get the handler.
    marker = staticmethod(marker)
    echo_message = staticmethod(echo_message)
    echo_status = staticmethod(echo_status)

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if getattr(self.server, "verbose", False):
            sys.stderr.write("emulator: " + (fmt % args) + "\n")

    # ---- helpers
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline()
            return out
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json(self, status: int, obj, extra_headers: dict | None = None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _huge(self):
        """A 200 JSON answer of HUGE_BYTES, a MiB per chunk; stops when the client goes away."""
        self._head(200, "application/json")
        piece = b"x" * (1 << 20)
        try:
            self._chunk(b'{"id":"chatcmpl-huge","object":"chat.completion","pad":"')
            for _ in range(HUGE_BYTES >> 20):
                self._chunk(piece)
            self._chunk(b'"}')
            self._send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _abort(self):
        """Close the socket now, without any further byte."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except Exception:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass

    def reset(self):
        """Close the socket with a TCP RST (``SO_LINGER`` 0): the peer sees "connection reset"."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except Exception:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except Exception:
            pass

    def client_gone(self) -> bool:
        """True once the client has closed (or reset) its side of the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def hold(self, seconds: float = STALL_S) -> bool:
        """Send nothing for up to ``seconds``; returns False as soon as the client goes away."""
        with fault_running():
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if self.client_gone():
                    self.note_client_gone()
                    return False
                time.sleep(0.05)
            return True

    def note_client_gone(self) -> None:
        """A running fault answer saw its client close: count it, and stamp the request's record."""
        global _client_gone
        with _faults_lock:
            _client_gone += 1
        rec = getattr(self, "_record", None)
        if rec is not None:
            with _records_lock:
                rec["client_gone_after_s"] = round(time.monotonic() - self._recorded_at, 3)

    def trickle(self, first: bytes, line: bytes, chunked: bool = True) -> None:
        """``first``, then ``line`` every 50 ms until the client goes away (or ``ENDLESS_S``);
        the caller has sent the headers. A running fault while it lasts."""
        send = self._chunk if chunked else self._send
        if first:
            send(first)
        with fault_running():
            end = time.monotonic() + ENDLESS_S
            while time.monotonic() < end:
                send(line)
                time.sleep(ENDLESS_GAP_S)
                if self.client_gone():
                    self.note_client_gone()
                    self.close_connection = True
                    return
        self._abort()

    def stall_headers(self):
        """Fault ``stallheaders``: the request was read; no response byte ever comes."""
        self.hold(STALL_S)
        self._abort()

    def _safe(self, fn):
        try:
            fn()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:  # never crash the server on bad input
            self.close_connection = True
            try:
                self._json(500, {"error": {"message": f"emulator bug: {exc!r}", "type": "server_error",
                                           "param": None, "code": None}})
            except Exception:
                pass

    # ---- verbs
    def do_GET(self):
        self._safe(self._get)

    def do_POST(self):
        self._safe(self._post)

    def do_PUT(self):
        self._safe(lambda: (self._read_body(), self._not_found()))

    do_DELETE = do_PATCH = do_PUT

    def _not_found(self):
        self._json(404, {"error": {"message": f"Unknown emulator path {self.path}",
                                   "type": "invalid_request_error", "param": None, "code": None}})

    def _get(self):
        url = urlsplit(self.path)
        if url.path == "/_emulator/health":
            self._json(200, {"ok": True})
        elif url.path == "/_emulator/threads":
            with _records_lock:
                count = len(_records)
            self._json(200, {"threads": threading.active_count(), "faults": _faults_running,
                             "client_gone": _client_gone, "requests": count})
        elif url.path == "/_emulator/requests":
            test_id = (parse_qs(url.query).get("test_id") or [None])[0]
            with _records_lock:
                items = [r for r in _records if test_id is None or r["test_id"] == test_id]
            self._json(200, items)
        else:
            self._not_found()

    def _post(self):
        url = urlsplit(self.path)
        raw = self._read_body()
        if url.path.startswith("/_emulator/release/"):
            _hold_event(url.path[len("/_emulator/release/"):]).set()
            self._json(200, {"ok": True})
            return
        if url.path.endswith("/chat/completions"):
            self._chat(url.path, raw)
            return
        for provider in PROVIDERS:
            if provider.handles(url.path):
                provider.handle(self, url, raw)
                return
        self._not_found()

    def record(self, path: str, key: str | None, body, test_id: str | None = None,
               raw: str | None = None) -> None:
        """Keep what upstream received, for ``GET /_emulator/requests``; ``test_id`` defaults to
        the body's own ``test_id`` field, else its ``user`` if that is a test id; ``raw`` (the
        body's bytes as text) is kept when given."""
        if test_id is None and isinstance(body, dict):
            test_id = body.get("test_id")
            user = body.get("user")
            if test_id is None and isinstance(user, str) and TEST_ID.fullmatch(user):
                test_id = user
        with _records_lock:
            self._record = {"seq": len(_records), "path": path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body, "key": key, "test_id": test_id}
            if raw is not None:
                self._record["raw"] = raw
            self._recorded_at = time.monotonic()
            _records.append(self._record)

    def _chat(self, path: str, raw: bytes):
        auth = self.headers.get("Authorization") or ""
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else (auth.strip() or None)
        try:
            body = json.loads(raw.decode("utf-8"))
        except Exception:
            body = raw.decode("utf-8", "replace")
        # The bytes too, for tests of what exactly arrived; not the limit tests' megabytes.
        self.record(path, key, body, raw=raw.decode("utf-8", "replace") if len(raw) < 1 << 20 else None)
        if not isinstance(body, dict):
            self._json(400, {"error": {"message": "We could not parse the JSON body of your request.",
                                       "type": "invalid_request_error", "param": None, "code": None}})
            return
        model = body.get("model") if isinstance(body.get("model"), str) else ""
        stream = body.get("stream") is True
        b = behaviour_for(key)
        said = _last_user_text(body)
        echo = marker(said, "echo_key")
        if echo is not None:
            self._echo_key(body, stream, key, auth, echo)
            return
        if marker(said, "endless") is not None:
            self._fault_endless(body, stream)
            return

        if b in FAULTS:
            getattr(self, "_fault_" + b)(body, stream)
            return
        if b == "drop" or (b == "streamdrop" and not stream):
            self._abort()
            return
        if b == "streamdrop":
            self._start_stream()
            self._abort()
            return
        if b == "204":
            self.send_response(204)
            self.end_headers()
            return
        if b == "huge" and not stream:
            self._huge()
            return
        if b.isdigit():
            status = int(b)
            self._json(status, error_body(status, model))
            return

        content, calls = plan_answer(body)
        if not stream:
            self._json(200, completion_object(body, content, calls))
            return

        chunks = body.get("emulator_chunks")
        if isinstance(chunks, int) and not isinstance(chunks, bool) and chunks > 0:
            self._long_stream(body, chunks)
            return

        events = stream_events(body, content, calls)
        hold = body.get("emulator_hold")
        self._start_stream()
        if b == "midstream":
            for ev in events[:3]:  # role + two content chunks
                self._chunk(sse(ev))
            self._abort()
            return
        for i, ev in enumerate(events):
            self._chunk(sse(ev))
            if i == 1 and isinstance(hold, str) and hold:
                _hold_event(hold).wait(HOLD_TIMEOUT_S)
        self._chunk(sse("[DONE]"))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- fault modes (FAULTS; see the module docstring)
    def _head(self, status: int, content_type: str, length: int | None = None, extra: dict | None = None):
        """Status line and headers; ``length`` None means chunked transfer-encoding."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def _send(self, data: bytes):
        self.wfile.write(data)
        self.wfile.flush()

    def _answer(self, body: dict) -> tuple[bytes, list[dict]]:
        """The whole JSON of a successful answer, and the chunk objects of its stream."""
        content, calls = plan_answer(body)
        whole = json.dumps(completion_object(body, content, calls)).encode()
        return whole, stream_events(body, content, calls)

    def _fault_stallheaders(self, body: dict, stream: bool):
        self.stall_headers()

    def _fault_stallfirst(self, body: dict, stream: bool):
        whole, events = self._answer(body)
        if stream:
            self._start_stream()
            self._chunk(sse(events[0]))
            self._chunk(b": keep-alive\n\n")
        else:
            self._head(200, "application/json", len(whole))
            self._send(whole[:len(whole) // 2])
        self.hold(STALL_S)
        self._abort()

    def _fault_drip(self, body: dict, stream: bool):
        if not stream:
            whole, _ = self._answer(body)
            self._head(200, "application/json", len(whole))
            step = -(-len(whole) // 4)
            for i in range(0, len(whole), step):
                if i:
                    time.sleep(DRIP_GAP_S)
                self._send(whole[i:i + step])
            return
        content, calls = plan_answer(body)
        events = stream_events(body, content, calls)
        end = next(i for i, e in enumerate(events) if not e["choices"] or e["choices"][0]["finish_reason"])
        first, middle, tail = events[0], events[1:end], events[end:]
        if content and not calls:  # the text in 6 pieces
            step = -(-len(content) // 6)
            middle = [with_delta(first, {"content": content[i:i + step]})
                      for i in range(0, len(content), step)]
        self._start_stream()
        self._chunk(sse(first))
        for ev in middle:
            time.sleep(DRIP_GAP_S)
            self._chunk(sse(ev))
        for ev in tail:
            self._chunk(sse(ev))
        self._chunk(sse("[DONE]"))
        self._send(b"0\r\n\r\n")

    def _fault_resetheaders(self, body: dict, stream: bool):
        self.reset()

    def _fault_resetmid(self, body: dict, stream: bool):
        whole, events = self._answer(body)
        if stream:
            self._start_stream()
            for ev in events[:3]:  # role + "echo:" + " <word>"
                self._chunk(sse(ev))
            if len(events) > 3:  # half an event: a proxy must not pass it on
                partial = sse(events[3])
                self._chunk(partial[:len(partial) // 2])
        else:
            self._head(200, "application/json", len(whole))
            self._send(whole[:len(whole) // 2])
        time.sleep(0.2)  # let the bytes reach the client before the reset
        self.reset()

    def _fault_429hint(self, body: dict, stream: bool):
        self._json(429, error_body(429, str(body.get("model") or "")), {"Retry-After": "30"})

    def _fault_badjson(self, body: dict, stream: bool):
        if stream:
            self._start_stream()
            self._chunk(b'data: {"id":"chatcmpl-x","choices":[{"delta":{"content\n\n')
            self._chunk(sse("[DONE]"))
            self._send(b"0\r\n\r\n")
        else:
            data = b'{"id": "chatcmpl-x", "choices": ['
            self._head(200, "application/json", len(data))
            self._send(data)

    def _fault_badsse(self, body: dict, stream: bool):
        data = b"<html><body>502 Bad Gateway</body></html>"
        self._head(200, "text/event-stream", len(data))
        self._send(data)

    def _fault_truncated(self, body: dict, stream: bool):
        whole, events = self._answer(body)
        if stream:
            self._start_stream()
            for ev in events[:2]:  # role + "echo:"
                self._chunk(sse(ev))
        else:
            self._head(200, "application/json")
            self._chunk(whole[:len(whole) // 2])
        time.sleep(0.2)
        self._abort()  # FIN, without the terminating 0-length chunk

    def _fault_endless(self, body: dict, stream: bool):
        whole, events = self._answer(body)
        if stream:
            first = events[0]
            self._start_stream()
            self._chunk(sse(first))
            line = sse(with_delta(first, {"content": "x"}))
        else:
            self._head(200, "application/json")
            line = b" "
        with fault_running():
            end = time.monotonic() + ENDLESS_S
            while time.monotonic() < end:
                self._chunk(line)
                time.sleep(ENDLESS_GAP_S)
                if self.client_gone():
                    self.note_client_gone()
                    self.close_connection = True
                    return
        if stream:
            self._chunk(sse(with_delta(first, {}, "length")))
            self._chunk(sse("[DONE]"))
        else:
            self._chunk(whole)
        self._send(b"0\r\n\r\n")

    def _echo_key(self, body: dict, stream: bool, key: str | None, auth: str | None, mode: str):
        """``emulator_echo_key=MODE``: an error that repeats the key (see the module docstring)."""
        message = echo_message(key, auth)
        status = echo_status(mode)
        err = {"error": {"message": message,
                         "type": "server_error" if status >= 500 else "invalid_request_error",
                         "param": key, "code": "invalid_api_key"}}
        leak = {"x-echo-key": str(key), "www-authenticate": f'Bearer error="{key}"'}
        if mode == "400text":
            data = message.encode()
            self._head(400, "text/plain", len(data), leak)
            self._send(data)
        elif mode in ("first", "mid") and stream:
            _, events = self._answer(dict(body, messages=user_turn("echo")))
            self._head(200, "text/event-stream", None, leak)
            self._chunk(sse(events[0]))
            if mode == "mid":
                self._chunk(sse(events[1]))
                time.sleep(0.2)  # the text reaches the client before the error
            self._chunk(sse(err))
            self._chunk(sse("[DONE]"))
            self._send(b"0\r\n\r\n")
        else:
            self._json(status, err, leak)

    def _fault_redirect(self, body: dict, stream: bool):
        host, port = self.server.server_address[:2]
        self._head(307, "application/json", 0,
                   {"Location": f"http://{host}:{port}/v1/chat/completions"})

    def _long_stream(self, body: dict, count: int):
        """``"emulator_chunks": N``: N content chunks generated one at a time, so a stream of any
        length costs the emulator no memory (used by the memory benchmark)."""
        first, finish = stream_events(dict(body, stream_options=None), "", [])[::2]
        self._start_stream()
        self._chunk(sse(first))
        template = dict(first, choices=[{"index": 0, "delta": {"content": " tok"}, "logprobs": None,
                                         "finish_reason": None}])
        line = sse(template)
        for _ in range(count):
            self._chunk(line)
        self._chunk(sse(finish))
        self._chunk(sse("[DONE]"))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The fault tests open dozens of connections at once; socketserver's default backlog of 5
    # would drop SYNs, and a retransmitted SYN comes a second later (past a 1 s connect deadline).
    request_queue_size = 128
    verbose = False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    srv = Server((args.host, args.port), Handler)
    srv.verbose = args.verbose
    print(f"openai emulator listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
