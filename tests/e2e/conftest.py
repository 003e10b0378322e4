"""Shared fixtures for the ai-worker-proxy end-to-end suite.

Environment:
  PROXY_URL     the proxy under test (native binary or the Worker), default http://127.0.0.1:18787
  EMULATOR_URL  tests/emulators/openai_emulator.py, default http://127.0.0.1:18080
  E2E_HOST      the host under test, ``native`` or ``worker`` (set by run.sh)
  E2E_PROXY_LOG_FILE  where run.sh writes the proxy's log (target/e2e/proxy.log natively,
                target/e2e/worker.log for wrangler dev); ``proxy_log_*`` below read it
Secrets come from tests/e2e/secrets.env (the proxy token is E2E_PROXY_TOKEN).

Every test tags its requests with a unique ``test_id`` (sent through the SDK's ``extra_body``) and
asks the emulator (``GET /_emulator/requests?test_id=…``) what upstream actually received.

Every JSON response the SDK clients built here receive from the proxy is validated against the
official OpenAPI schema (an httpx response hook); streamed chunks are validated by ``collect()``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
import uuid
from pathlib import Path

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import openai
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import openai_schema  # noqa: E402

PROXY_URL = os.environ.get("PROXY_URL", "http://127.0.0.1:18787").rstrip("/")
EMULATOR_URL = os.environ.get("EMULATOR_URL", "http://127.0.0.1:18080").rstrip("/")
ROUTES_TOML = REPO / "tests" / "routes" / "e2e.toml"
E2E_HOST = os.environ.get("E2E_HOST") or "native"
PROXY_LOG_FILE = Path(os.environ.get("E2E_PROXY_LOG_FILE")
                      or REPO / "target" / "e2e" / ("worker.log" if E2E_HOST == "worker" else "proxy.log"))


def parse_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip().strip('"').strip("'")
    return out


SECRETS = parse_env_file(HERE / "secrets.env")
TOKEN = SECRETS["E2E_PROXY_TOKEN"]
KEY = {name: value for name, value in SECRETS.items() if name.startswith("E2E_KEY_")}
SECRET_VALUES = list(SECRETS.values())
# Client tokens ([clients.*] in tests/routes/e2e.toml), by secret name: tests/e2e/test_clients.py.
CLIENT_TOKEN = {name: value for name, value in SECRETS.items() if name.startswith("E2E_CLIENT_")}


def route_names() -> list[str]:
    """The concrete route names, in file order (patterns such as `claude-*` are not models)."""
    with open(ROUTES_TOML, "rb") as f:
        return [name for name in tomllib.load(f)["routes"] if not name.endswith("*")]


# --------------------------------------------------------------------------- assertions

def assert_no_secrets(*texts) -> None:
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            text = json.dumps(text) if not hasattr(text, "items") else json.dumps(dict(text))
        for value in SECRET_VALUES:
            assert value not in text, f"secret value of length {len(value)} leaked into: {text[:500]!r}"


def assert_error_shape(body: dict) -> dict:
    """Exactly {"error": {message, type, param, code}} and schema-valid; returns the inner error."""
    assert isinstance(body, dict) and list(body.keys()) == ["error"], body
    err = body["error"]
    assert set(err.keys()) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str), err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] is None or isinstance(err["code"], str), err
    openai_schema.validate_error(body)
    assert_no_secrets(body)
    return err


# --------------------------------------------------------------------------- emulator

def recorded(test_id: str) -> list[dict]:
    r = httpx.get(f"{EMULATOR_URL}/_emulator/requests", params={"test_id": test_id}, timeout=10)
    r.raise_for_status()
    return r.json()


def recorded_keys(test_id: str) -> list[str | None]:
    return [r["key"] for r in recorded(test_id)]


def recorded_model(record: dict) -> str | None:
    """The model an upstream request asked for: the body's ``model``, or for Gemini, the URL's."""
    body = record["body"]
    if isinstance(body, dict) and body.get("model") is not None:
        return body["model"]
    found = re.match(r"/v1beta/models/([^/:?]+):", record["path"])
    return found.group(1) if found else None


def recorded_attempts(test_id: str) -> list[tuple[str, str | None]]:
    """(model, key value) of every upstream request tagged ``test_id``, in arrival order."""
    return [(recorded_model(r), r["key"]) for r in recorded(test_id)]


def release(hold_id: str) -> None:
    httpx.post(f"{EMULATOR_URL}/_emulator/release/{hold_id}", timeout=10).raise_for_status()


def only_upstream_request(test_id: str) -> dict:
    """The one upstream request a test made."""
    records = recorded(test_id)
    assert len(records) == 1, records
    return records[0]


def streamed_tool_calls(chunks) -> dict[int, dict]:
    """Reassemble streamed tool calls by index, checking id/name come once, in the first fragment."""
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                if tc.index not in calls:
                    assert tc.id and tc.type == "function" and tc.function.name
                    calls[tc.index] = {"id": tc.id, "name": tc.function.name,
                                       "arguments": tc.function.arguments or ""}
                else:
                    assert tc.id is None and tc.function.name is None, "id/name repeated"
                    calls[tc.index]["arguments"] += tc.function.arguments or ""
    return calls


def finish_reasons(chunks) -> list[str]:
    """Every finish_reason a stream carried, in order."""
    return [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason]


# --------------------------------------------------------------------------- the proxy's log

def proxy_log_size() -> int:
    """The proxy log's current size in bytes (0 if it does not exist yet): an offset for
    ``proxy_log_since``."""
    try:
        return PROXY_LOG_FILE.stat().st_size
    except FileNotFoundError:
        return 0


def proxy_log_since(offset: int) -> str:
    """What the proxy logged after ``offset`` (``proxy_log_size()`` taken earlier)."""
    try:
        with open(PROXY_LOG_FILE, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------- client limits

def fresh_minute(margin_s: float = 10.0) -> None:
    """Client limits count per calendar UTC minute: a test that needs its steps in one window
    waits for the next minute when fewer than ``margin_s`` seconds are left of this one."""
    import time

    left = 60.0 - time.time() % 60.0
    if left < margin_s:
        time.sleep(left + 0.1)


# --------------------------------------------------------------------------- SSE

def parse_sse(raw: bytes) -> list[str]:
    """Return the `data:` payloads of an SSE byte stream, in order."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    out = []
    for block in text.split("\n\n"):
        data = [line[5:].lstrip(" ") if line.startswith("data:") else None
                for line in block.split("\n")]
        data = [d for d in data if d is not None]
        if data:
            out.append("\n".join(data))
    return out


def sse_json_events(raw: bytes) -> list[dict]:
    return [json.loads(d) for d in parse_sse(raw) if d != "[DONE]"]


def normalise_sse(raw: bytes) -> bytes:
    """Blank out the per-response `id` and `created` values (random/time-based in the emulator)."""
    raw = re.sub(rb'"id":"chatcmpl-[^"]*"', b'"id":"<id>"', raw)
    return re.sub(rb'"created":\d+', b'"created":0', raw)


def collect(stream, validate: bool = True) -> tuple[list, str]:
    """Drain an SDK stream; validate every chunk against the stream schema; return
    (chunks, concatenated content)."""
    chunks, content = [], ""
    for chunk in stream:
        if validate:
            openai_schema.validate_chunk(chunk.to_dict())
        chunks.append(chunk)
        for choice in chunk.choices:
            if choice.delta and choice.delta.content:
                content += choice.delta.content
    return chunks, content


# --------------------------------------------------------------------------- clients

def _validating_hook(response: httpx.Response) -> None:
    ctype = response.headers.get("content-type", "")
    if "application/json" not in ctype:
        return
    response.read()
    body = response.json()
    path = response.request.url.path
    if response.status_code >= 400:
        assert_error_shape(body)
    elif path.endswith("/chat/completions"):
        openai_schema.validate_completion(body)
    elif path.endswith("/models"):
        openai_schema.validate_models(body)


def make_client(base_url: str | None = None, api_key: str = TOKEN, timeout: float = 30.0,
                capture: list | None = None) -> openai.OpenAI:
    hooks: dict = {"response": [_validating_hook]}
    if capture is not None:
        hooks["request"] = [lambda req: capture.append(json.loads(req.content or b"null"))]
    http_client = httpx.Client(timeout=timeout, event_hooks=hooks)
    return openai.OpenAI(base_url=base_url or f"{PROXY_URL}/v1", api_key=api_key,
                         max_retries=0, timeout=timeout, http_client=http_client)


def proxy_post(path: str, body=None, headers: dict | None = None, auth: bool = True,
               content: bytes | None = None, timeout: float = 30.0) -> httpx.Response:
    h = {"content-type": "application/json"}
    if auth:
        h["authorization"] = f"Bearer {TOKEN}"
    h.update(headers or {})
    if content is None:
        content = json.dumps(body).encode()
    return httpx.post(f"{PROXY_URL}{path}", content=content, headers=h, timeout=timeout)


@pytest.fixture(scope="session")
def proxy_url() -> str:
    try:
        r = httpx.get(f"{PROXY_URL}/health", timeout=5)
    except httpx.HTTPError as exc:
        pytest.fail(f"proxy not reachable at {PROXY_URL}: {exc}")
    assert r.status_code == 200, f"{PROXY_URL}/health → {r.status_code}"
    try:
        e = httpx.get(f"{EMULATOR_URL}/_emulator/health", timeout=5)
    except httpx.HTTPError as exc:
        pytest.fail(f"emulator not reachable at {EMULATOR_URL}: {exc}")
    assert e.status_code == 200
    return PROXY_URL


@pytest.fixture
def client(proxy_url) -> openai.OpenAI:
    c = make_client()
    yield c
    c.close()


@pytest.fixture
def test_id() -> str:
    return "t-" + uuid.uuid4().hex


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_local_time",
        "description": "Get the local time in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                       "required": ["location"]},
    },
}
TOOL_ARGS = '{"location": "Boston, MA"}'
