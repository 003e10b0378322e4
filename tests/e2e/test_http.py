"""HTTP surface of the proxy: auth, request errors, /v1/models, /health, CORS."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import openai
import pytest

import openai_schema
from conftest import (PROXY_URL, TOKEN, assert_error_shape, make_client, proxy_post, recorded,
                      route_names, user)

CHAT = "/v1/chat/completions"


# --------------------------------------------------------------------------- auth

def test_no_auth_header_is_401(proxy_url, test_id):
    r = proxy_post(CHAT, {"model": "plain", "messages": user("x"), "test_id": test_id}, auth=False)
    assert r.status_code == 401
    assert_error_shape(r.json())
    assert recorded(test_id) == []


def test_wrong_token_is_401(proxy_url, test_id):
    r = proxy_post(CHAT, {"model": "plain", "messages": user("x"), "test_id": test_id}, auth=False,
                   headers={"authorization": "Bearer not-the-token"})
    assert r.status_code == 401
    assert_error_shape(r.json())
    assert recorded(test_id) == []


def test_wrong_token_sdk(proxy_url, test_id):
    c = make_client(api_key="definitely-wrong")
    with pytest.raises(openai.AuthenticationError) as info:
        c.chat.completions.create(model="plain", messages=user("x"), extra_body={"test_id": test_id})
    assert info.value.status_code == 401
    assert recorded(test_id) == []


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", TOKEN], ids=["bearer", "bare"])
def test_token_forms_accepted(proxy_url, test_id, header):
    r = proxy_post(CHAT, {"model": "plain", "messages": user("auth ok"), "test_id": test_id},
                   auth=False, headers={"authorization": header})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: auth ok"
    openai_schema.validate_completion(r.json())


# --------------------------------------------------------------------------- request errors

def test_malformed_json_is_400(proxy_url):
    r = proxy_post(CHAT, content=b'{"model": "plain", "messages": [')
    assert r.status_code == 400
    assert_error_shape(r.json())


@pytest.mark.parametrize("missing", ["model", "messages"])
def test_missing_required_field_is_400(proxy_url, test_id, missing):
    body = {"model": "plain", "messages": user("x"), "test_id": test_id}
    del body[missing]
    r = proxy_post(CHAT, body)
    assert r.status_code == 400
    err = assert_error_shape(r.json())
    assert err["param"] == missing
    assert recorded(test_id) == []


def test_unknown_model_is_404(proxy_url, test_id):
    r = proxy_post(CHAT, {"model": "no-such-route", "messages": user("x"), "test_id": test_id})
    assert r.status_code == 404
    err = assert_error_shape(r.json())
    assert err["code"] == "model_not_found"
    assert recorded(test_id) == []


def test_unknown_model_sdk(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-route", messages=user("x"))


def _raw_post(path: str, body: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
    """POST with a raw socket so an early response (e.g. 413 before the body is read) is still
    seen even if the server stops reading and closes."""
    u = urlsplit(PROXY_URL)
    host, port = u.hostname, u.port or 80
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(head)
            view = memoryview(body)
            for i in range(0, len(body), 1 << 20):
                s.sendall(view[i:i + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while True:
                piece = s.recv(65536)
                if not piece:
                    break
                data += piece
        except (ConnectionResetError, socket.timeout):
            pass
    assert data.startswith(b"HTTP/1."), data[:200]
    return int(data.split(b" ", 2)[1]), data


def _body_of_size(size: int, test_id: str) -> bytes:
    skeleton = json.dumps({"model": "plain", "messages": user(""), "test_id": test_id}).encode()
    pad = size - len(skeleton)
    return json.dumps({"model": "plain", "messages": user("a" * pad), "test_id": test_id}).encode()


def test_body_over_16_mib_is_413(proxy_url, test_id):
    body = _body_of_size(16 * 1024 * 1024 + 1024, test_id)
    status, raw = _raw_post(CHAT, body)
    assert status == 413, raw[:500]
    assert recorded(test_id) == []


def test_body_just_under_16_mib_is_accepted(proxy_url, test_id):
    body = _body_of_size(16 * 1024 * 1024 - 4096, test_id)
    r = proxy_post(CHAT, content=body, timeout=120)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["choices"][0]["message"]["content"].startswith("echo: aaaa")


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("POST", "/v1/nope"), ("GET", "/v1/chat"),
                                         ("POST", "/v2/chat/completions")])
def test_unknown_path_is_404(proxy_url, method, path):
    r = httpx.request(method, f"{PROXY_URL}{path}", headers={"authorization": f"Bearer {TOKEN}"},
                      content=b"{}", timeout=30)
    assert r.status_code == 404
    assert_error_shape(r.json())


# --------------------------------------------------------------------------- models / health

def test_models_list_raw(proxy_url):
    r = httpx.get(f"{PROXY_URL}/v1/models", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    openai_schema.validate_models(body)
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == route_names()
    for m in body["data"]:
        assert {"id", "object", "created", "owned_by"} <= set(m)
        assert m["object"] == "model"
        assert isinstance(m["created"], int) and isinstance(m["owned_by"], str)


def test_models_list_sdk(client):
    ids = [m.id for m in client.models.list()]
    assert ids == route_names()


def test_health_without_auth(proxy_url):
    r = httpx.get(f"{PROXY_URL}/health", timeout=10)
    assert r.status_code == 200


# --------------------------------------------------------------------------- CORS

def _acao(r: httpx.Response) -> str | None:
    return r.headers.get("access-control-allow-origin")


def test_cors_on_success(proxy_url):
    r = proxy_post(CHAT, {"model": "plain", "messages": user("x")}, headers={"origin": "https://app.example"})
    assert r.status_code == 200 and _acao(r) == "*"


def test_cors_on_401(proxy_url):
    r = proxy_post(CHAT, {"model": "plain", "messages": user("x")}, auth=False,
                   headers={"origin": "https://app.example"})
    assert r.status_code == 401 and _acao(r) == "*"


def test_cors_on_404(proxy_url):
    r = proxy_post(CHAT, {"model": "no-such-route", "messages": user("x")},
                   headers={"origin": "https://app.example"})
    assert r.status_code == 404 and _acao(r) == "*"


def test_cors_on_stream(proxy_url):
    with httpx.stream("POST", f"{PROXY_URL}{CHAT}", json={"model": "plain", "messages": user("x"), "stream": True},
                      headers={"authorization": f"Bearer {TOKEN}", "origin": "https://app.example"},
                      timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert _acao(r) == "*"
        r.read()


def test_cors_preflight(proxy_url):
    r = httpx.request("OPTIONS", f"{PROXY_URL}{CHAT}", timeout=10, headers={
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os",
    })
    assert r.status_code == 204
    assert _acao(r) == "*"
    methods = {m.strip().upper() for m in r.headers.get("access-control-allow-methods", "").split(",")}
    assert "POST" in methods or "*" in methods
    allowed = {h.strip().lower() for h in r.headers.get("access-control-allow-headers", "").split(",")}
    if "*" not in allowed:
        assert {"authorization", "content-type", "x-stainless-os"} <= allowed, allowed
    else:
        # "*" does not cover Authorization per the Fetch spec; it must be listed explicitly
        assert "authorization" in allowed, allowed
