"""Bounds on what one request may ask, on both hosts: the token before the body, a chunked body
cut off at the size cap, work budgets (nesting, values, messages, the Gemini schema cleaner), and
parameters a target cannot honour (an error the client can act on, or another target that can)."""

from __future__ import annotations

import json
import os
import socket
import time
from urllib.parse import urlsplit

import pytest

from conftest import (TOKEN, assert_error_shape, proxy_post, recorded, recorded_model, user)

CHAT = "/v1/chat/completions"
MIB = 1024 * 1024


def _connect() -> tuple[socket.socket, str]:
    u = urlsplit(__import__("conftest").PROXY_URL)
    host, port = u.hostname, u.port or 80
    return socket.create_connection((host, port), timeout=30), f"{host}:{port}"


def _read_response(s: socket.socket) -> tuple[int, bytes]:
    """One response with a content-length (or until close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    try:
        while length is None or len(body) < length:
            piece = s.recv(65536)
            if not piece:
                break
            body += piece
    except (ConnectionResetError, socket.timeout):
        pass
    assert head.startswith(b"HTTP/1."), data[:200]
    return int(head.split(b" ", 2)[1]), body


# wrangler dev's own proxy reads a request body whole before the Worker sees it; the same two
# checks run against the Worker under plain workerd in tests/worker_limits.sh.
native_only = pytest.mark.skipif(os.environ.get("E2E_HOST") == "worker",
                                 reason="wrangler dev buffers request bodies; tests/worker_limits.sh "
                                        "runs these under workerd itself")


@native_only
def test_a_wrong_token_is_refused_before_the_body_arrives(proxy_url, test_id):
    """The headers announce a chunked body that never comes: only a proxy that checks the token
    first can answer."""
    s, host = _connect()
    with s:
        s.sendall((f"POST {CHAT} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer wrong\r\n"
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        status, body = _read_response(s)
    assert status == 401, body[:300]
    assert assert_error_shape(json.loads(body))["code"] == "invalid_api_key"


@native_only
def test_a_chunked_body_is_cut_off_at_16_mib(proxy_url, test_id):
    """No declared length: the proxy counts as it reads and stops at the cap, without waiting
    for the rest (the client here would send 64 MiB)."""
    s, host = _connect()
    refused = None
    with s:
        s.sendall((f"POST {CHAT} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"a" * MIB
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        try:
            s.sendall(b'1\r\n[\r\n')
            for _ in range(64):
                s.sendall(framed)
        except (BrokenPipeError, ConnectionResetError):
            refused = True
        try:
            status, body = _read_response(s)
        except ConnectionResetError:
            status, body = None, b""
    # Refused while sending, or answered 413: never accepted, never forwarded.
    assert status == 413 or (status is None and refused), (status, body[:300])
    if status == 413:
        assert assert_error_shape(json.loads(body))["code"] == "request_too_large"
    assert recorded(test_id) == []


def test_deep_nesting_and_too_many_values_are_400_before_parsing(proxy_url, test_id):
    deep = ('{"model":"plain","messages":[{"role":"user","content":"x"}],"test_id":"%s","x":%s%s}'
            % (test_id, "[" * 65, "]" * 65))
    r = proxy_post(CHAT, content=deep.encode())
    assert r.status_code == 400, r.text
    assert assert_error_shape(r.json())["code"] == "request_too_complex"
    many = json.dumps({"model": "plain", "messages": user("x"), "test_id": test_id,
                       "x": [0] * 250_001}).encode()
    r = proxy_post(CHAT, content=many)
    assert r.status_code == 400, r.text
    assert assert_error_shape(r.json())["code"] == "request_too_complex"
    messages = json.dumps({"model": "plain", "messages": user("x") * 10_001,
                           "test_id": test_id}).encode()
    r = proxy_post(CHAT, content=messages)
    assert r.status_code == 400, r.text
    error = assert_error_shape(r.json())
    assert (error["param"], error["code"]) == ("messages", "array_above_max_length")
    assert recorded(test_id) == []


def _fan_out_schema() -> dict:
    """About 1.6 KB: ten definitions, each naming the next four times (4^10 nodes inlined)."""
    defs = {f"d{i}": {"type": "object", "description": "one level",
                      "properties": {k: {"$ref": f"#/$defs/d{i + 1}"} for k in "abcd"}}
            for i in range(10)}
    defs["d10"] = {"type": "string"}
    return {"type": "object", "$defs": defs, "properties": {"root": {"$ref": "#/$defs/d0"}}}


def test_a_schema_that_fans_out_is_a_400_naming_the_tool_on_gemini(proxy_url, test_id):
    schema = _fan_out_schema()
    assert len(json.dumps(schema)) < 2_000
    tools = [{"type": "function", "function": {"name": "explode", "parameters": schema}}]
    started = time.monotonic()
    r = proxy_post(CHAT, {"model": "gemini", "messages": user("x"), "tools": tools,
                          "test_id": test_id})
    elapsed = time.monotonic() - started
    assert r.status_code == 400, r.text
    error = assert_error_shape(r.json())
    assert (error["param"], error["code"]) == ("tools[0].function.parameters", "schema_too_large")
    assert "`explode`" in error["message"]
    assert recorded(test_id) == []
    print(f"fan-out schema answered in {elapsed * 1000:.1f} ms")


def test_a_route_with_another_target_takes_what_gemini_cannot(proxy_url, test_id):
    """gemini-to-openai: Gemini first, OpenAI second. What only OpenAI can do goes to OpenAI, not
    to a Gemini key, and nothing is dropped on the way."""
    tools = [{"type": "function", "function": {"name": "explode", "parameters": _fan_out_schema()}}]
    for extra in ({"logprobs": True, "top_logprobs": 2}, {"tools": tools}):
        r = proxy_post(CHAT, {"model": "gemini-to-openai", "messages": user("x"),
                              "test_id": test_id, **extra})
        assert r.status_code == 200, r.text
    records = recorded(test_id)
    assert [recorded_model(rec) for rec in records] == ["emu-second", "emu-second"]
    assert records[0]["body"]["logprobs"] is True and records[0]["body"]["top_logprobs"] == 2


def test_outputs_a_target_cannot_give_are_unsupported_parameter_errors(proxy_url, test_id):
    cases = [("gemini", "logprobs", True), ("claude", "logprobs", True),
             ("claude", "top_logprobs", 3), ("gemini", "modalities", ["text", "audio"]),
             ("claude", "audio", {"voice": "alloy", "format": "wav"})]
    for route, field, value in cases:
        r = proxy_post(CHAT, {"model": route, "messages": user("x"), "test_id": test_id,
                              field: value})
        assert r.status_code == 400, (route, field, r.text)
        error = assert_error_shape(r.json())
        assert (error["param"], error["code"]) == (field, "unsupported_parameter"), error
        provider = {"gemini": "Gemini", "claude": "Anthropic"}[route]
        assert provider in error["message"], error
    assert recorded(test_id) == []
