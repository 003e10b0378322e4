"""Fault tolerance: every emulator fault mode, in every position of a route, streamed or not.

Each fault key (``E2E_KEY_<FAULT>``; the fault list in tests/emulators/openai_emulator.py) sits in
three routes of tests/routes/e2e.toml, all with short deadlines (connect/headers/idle 1 s, first
token 1.5 s; ``[server] total_timeout = 6``):

    f-<fault>-first  one target: the fault key, then E2E_KEY_OK                 (model emu-model)
    f-<fault>-last   target 1: the fault key (emu-first); target 2: E2E_KEY_OK  (emu-second)
    f-<fault>-end    target 1: E2E_KEY_503 (emu-first); target 2: the fault key (emu-second)

The contract (``expect``):
* A fault before the client could have been sent a byte is a failed attempt, and the proxy moves on:
  stallheaders, resetheaders, 429, 429hint, 529, badjson, badsse, redirect; for streams also
  stallfirst (a role-only chunk or an SSE comment is not a first token); for plain requests every
  fault but drip (the whole JSON is read before the client gets a byte). With nothing left to try
  (``end``) the client gets a 500 whose message names both attempts.
* drip is slow but healthy: answered by the drip key itself.
* After the first token of a stream (resetmid, truncated, endless) there is no failover: the client
  has status 200 and some content, then ``data: {"error": ...}`` and ``data: [DONE]``.
* A plain request to ``endless`` never completes: the whole request's deadline (6 s) ends it with
  504 ``deadline_exceeded``, before any later key is tried.

Every cell asserts the client outcome and the exact (model, key) attempts the emulator recorded for
its test_id. The cells are independent, so the ``outcomes`` fixture runs the selected ones
concurrently (the slowest take the 6 s total deadline) and each test checks its own.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import openai
import pytest

import openai_schema
from conftest import (KEY, PROXY_URL, TOKEN, assert_error_shape, assert_no_secrets, collect,
                      make_client, parse_sse, recorded, recorded_attempts, recorded_keys, user)

K = KEY
OK, K503 = K["E2E_KEY_OK"], K["E2E_KEY_503"]
TEXT = "one two three four"
ANSWER = f"echo: {TEXT}"

FAULTS = ("stallheaders", "stallfirst", "drip", "resetheaders", "resetmid", "429", "429hint", "529",
          "badjson", "badsse", "truncated", "endless", "redirect")
POSITIONS = ("first", "last", "end")
MODES = ("plain", "stream")
# Failed attempts whatever the mode: nothing usable arrived.
BEFORE_FIRST_BYTE = {"stallheaders", "resetheaders", "429", "429hint", "529", "badjson", "badsse",
                     "redirect"}
# Streams that break after their first token: the client already has content, no failover.
AFTER_FIRST_TOKEN = {"resetmid", "truncated", "endless"}
# What a stream carries before it breaks (role chunk first), for the message TEXT.
PARTIAL_CONTENT = {"resetmid": "echo: one", "truncated": "echo:"}
STALLS = {"stallheaders", "stallfirst"}
TOTAL_TIMEOUT_S = 6.0


def key_name(fault: str) -> str:
    return f"E2E_KEY_{fault.upper()}"


@dataclass(frozen=True)
class Expect:
    kind: str                          # "ok" | "error" (500) | "deadline" (504) | "midstream"
    attempts: list                     # exact (model, key value) attempts, in order
    model: str | None = None           # "ok": the model that answers
    names: tuple = ()                  # "error": secret names the message must list, in order


def expect(fault: str, mode: str, position: str) -> Expect:
    """The outcome the proxy owes the client for one cell."""
    stream, fkey = mode == "stream", K[key_name(fault)]
    upto = {"first": [("emu-model", fkey)],
            "last": [("emu-first", fkey)],
            "end": [("emu-first", K503), ("emu-second", fkey)]}[position]
    if fault == "drip":
        return Expect("ok", upto, model=upto[-1][0])
    if stream and fault in AFTER_FIRST_TOKEN:
        return Expect("midstream", upto)
    if not stream and fault == "endless":
        return Expect("deadline", upto)
    # before the first byte (BEFORE_FIRST_BYTE, a stream's stallfirst, any other plain fault)
    if position == "end":
        return Expect("error", upto, names=("E2E_KEY_503", key_name(fault)))
    model = "emu-model" if position == "first" else "emu-second"
    return Expect("ok", upto + [(model, OK)], model=model)


@dataclass(frozen=True)
class Cell:
    route: str
    stream: bool
    expect: Expect
    tag: str = "body"                  # how the test_id travels: "body", "user" (Anthropic), "text" (Gemini)


CELLS: dict[str, Cell] = {
    f"{fault}-{mode}-{position}": Cell(f"f-{fault}-{position}", mode == "stream",
                                       expect(fault, mode, position))
    for fault in FAULTS for mode in MODES for position in POSITIONS
}
PROVIDER_CELLS: dict[str, Cell] = {}
for provider, model, tag in (("anthropic", "claude-sonnet-4-20250514", "user"),
                             ("gemini", "gemini-2.5-flash", "text")):
    for fault in sorted(STALLS):
        for mode in MODES:
            PROVIDER_CELLS[f"{provider}-{fault}-{mode}"] = Cell(
                f"f-{provider}-{fault}", mode == "stream",
                Expect("ok", [(model, K[key_name(fault)]), (model, OK)], model=model), tag)
ALL_CELLS = {**CELLS, **PROVIDER_CELLS}


@dataclass
class Outcome:
    test_id: str
    elapsed: float = 0.0
    status: int | None = None
    headers: dict = field(default_factory=dict)
    raw: bytes = b""                   # the raw body (httpx cells)
    content: str | None = None         # the answer's text (SDK cells)
    models: set = field(default_factory=set)
    chunk_ids: set = field(default_factory=set)
    finish: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    error: BaseException | None = None


def request_body(cell: Cell, test_id: str) -> dict:
    text = f"{TEXT} [test_id={test_id}]" if cell.tag == "text" else TEXT
    body: dict = {"model": cell.route, "messages": user(text), "stream": cell.stream}
    if cell.tag == "body":
        body["test_id"] = test_id
    elif cell.tag == "user":
        body["user"] = test_id
    return body


def run_sdk(cell: Cell, out: Outcome) -> None:
    """A cell that must succeed, as the official SDK sees it (JSON and chunks schema-checked)."""
    body = request_body(cell, out.test_id)
    test_id = body.pop("test_id", None)  # not an SDK argument
    client = make_client(timeout=30)
    try:
        resp = client.chat.completions.create(**body, extra_body={"test_id": test_id} if test_id else None)
        if cell.stream:
            chunks, out.content = collect(resp)
            out.models = {c.model for c in chunks}
            out.chunk_ids = {c.id for c in chunks}
            out.finish = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
        else:
            out.content = resp.choices[0].message.content
            out.models = {resp.model}
            out.finish = [resp.choices[0].finish_reason]
        out.status = 200
    finally:
        client.close()


def run_raw(cell: Cell, out: Outcome) -> None:
    """A cell whose bytes matter: status, headers and the raw body (SSE included) via httpx."""
    with httpx.stream("POST", f"{PROXY_URL}/v1/chat/completions", json=request_body(cell, out.test_id),
                      headers={"authorization": f"Bearer {TOKEN}"}, timeout=30) as r:
        out.status, out.headers = r.status_code, dict(r.headers)
        out.raw = b"".join(r.iter_bytes())


def run_cell(cell: Cell) -> Outcome:
    out = Outcome("t-" + uuid.uuid4().hex)
    start = time.monotonic()
    try:
        (run_sdk if cell.expect.kind == "ok" else run_raw)(cell, out)
    except Exception as exc:  # reported by the cell's own test
        out.error = exc
    out.elapsed = time.monotonic() - start
    out.attempts = recorded_attempts(out.test_id)
    return out


@pytest.fixture(scope="module")
def outcomes(request, proxy_url) -> dict[str, Outcome]:
    """Runs every selected cell at once (slowest first) and returns their outcomes by cell id."""
    wanted = [item.callspec.params["cell"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec")
              and "cell" in item.callspec.params]
    slow_first = lambda c: ALL_CELLS[c].expect.kind not in ("deadline", "midstream")  # noqa: E731
    wanted = sorted(dict.fromkeys(wanted), key=slow_first)
    with ThreadPoolExecutor(max_workers=32) as pool:
        return dict(zip(wanted, pool.map(lambda c: run_cell(ALL_CELLS[c]), wanted)))


def outcome_of(outcomes: dict, cell_id: str) -> Outcome:
    out = outcomes[cell_id]
    if out.error is not None:
        raise AssertionError(f"{cell_id}: request failed after {out.elapsed:.2f}s "
                             f"(attempts {out.attempts}): {out.error!r}") from out.error
    return out


# --------------------------------------------------------------------------- checks

def check_ok(cell: Cell, out: Outcome) -> None:
    assert out.content == ANSWER
    assert out.models == {cell.expect.model}
    assert out.finish == ["stop"]
    if cell.stream:
        # one answer's chunks only: nothing of a failed attempt (its role chunk) reached the client
        assert len(out.chunk_ids) == 1, out.chunk_ids


def check_error(cell: Cell, out: Outcome) -> None:
    assert out.status == 500, (out.status, out.raw[:300])
    assert out.headers["content-type"].startswith("application/json")
    err = assert_error_shape(json.loads(out.raw))
    msg = err["message"]
    at = [msg.find(name) for name in cell.expect.names]
    assert all(i >= 0 for i in at) and at == sorted(at), f"{cell.expect.names} not named in order: {msg!r}"
    assert_no_secrets(out.raw, out.headers)


def check_deadline(cell: Cell, out: Outcome) -> None:
    assert out.status == 504, (out.status, out.raw[:300])
    assert out.headers["content-type"].startswith("application/json")
    err = assert_error_shape(json.loads(out.raw))
    assert err["code"] == "deadline_exceeded", err
    assert TOTAL_TIMEOUT_S - 1 <= out.elapsed < TOTAL_TIMEOUT_S + 4, out.elapsed
    assert_no_secrets(out.raw, out.headers)


def check_midstream(cell: Cell, out: Outcome, fault: str) -> None:
    assert out.status == 200, (out.status, out.raw[:300])
    assert out.headers["content-type"].startswith("text/event-stream")
    raw = out.raw.replace(b"\r\n", b"\n")
    assert raw.endswith(b"data: [DONE]\n\n"), raw[-300:]
    # every block is whole: SSE fields only, each data payload a complete JSON object (an empty
    # block, from a tail that first closes whatever event was open, dispatches nothing)
    for block in raw.decode().split("\n\n")[:-1]:
        if block:
            assert all(line.startswith(("data: ", ":")) for line in block.split("\n")), repr(block[:300])
    payloads = parse_sse(raw)
    assert payloads[-1] == "[DONE]" and "[DONE]" not in payloads[:-1]
    # The Worker pipes a pass-through stream after its first token (no proxy code per chunk, the
    # default: README "Worker pass-through"), so when the upstream is cut mid-event the client
    # keeps the half event; the error event and [DONE] still follow, whole.
    half_allowed = fault == "resetmid" and os.environ.get("E2E_HOST") == "worker"
    events = []
    for i, payload in enumerate(payloads[:-1]):
        try:
            events.append(json.loads(payload))
        except json.JSONDecodeError:
            if half_allowed and i == len(payloads) - 3:
                continue
            raise AssertionError(f"a half-written event reached the client: {payload[:300]!r}") from None
        assert isinstance(events[-1], dict), payload
    assert "error" in events[-1], events[-1]
    last = events[-1]
    if list(last.keys()) != ["error"]:
        # The upstream was cut mid-event, after the client got part of it: the proxy completes
        # that half event with an `error` member (the SDKs raise on a payload with `error`;
        # a separate event would come after one they cannot parse). What was cut is null.
        assert fault == "resetmid", last
        assert list(last.keys())[-1] == "error", last
        last = {"error": last["error"]}
    assert_error_shape(last)
    chunks = events[:-1]
    for chunk in chunks:
        assert "error" not in chunk
        openai_schema.validate_chunk(chunk)
        assert all(ch.get("finish_reason") is None for ch in chunk["choices"]), chunk
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    content = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    if fault == "endless":
        assert content and set(content) == {"x"}, content[:100]
        # the total deadline ends it, counted from the request's start
        assert TOTAL_TIMEOUT_S - 1 <= out.elapsed < TOTAL_TIMEOUT_S + 4, out.elapsed
    else:
        assert content == PARTIAL_CONTENT[fault]
    assert_no_secrets(out.raw, out.headers)


@pytest.mark.parametrize("cell", list(CELLS))
def test_fault(outcomes, cell):
    c, out = CELLS[cell], outcome_of(outcomes, cell)
    fault = cell.split("-", 1)[0]
    {"ok": lambda: check_ok(c, out), "error": lambda: check_error(c, out),
     "deadline": lambda: check_deadline(c, out),
     "midstream": lambda: check_midstream(c, out, fault)}[c.expect.kind]()
    assert out.attempts == c.expect.attempts
    if fault in STALLS and c.expect.kind != "midstream":
        # the per-attempt deadline gave up the stalled key: not at once, and long before its 30 s
        assert 0.9 <= out.elapsed < 10, out.elapsed
    elif c.expect.kind in ("ok", "error"):
        assert out.elapsed < 10, out.elapsed


@pytest.mark.parametrize("cell", list(PROVIDER_CELLS))
def test_provider_stall(outcomes, cell):
    """Stalls behind the translating providers fail over to the route's next key too."""
    c, out = PROVIDER_CELLS[cell], outcome_of(outcomes, cell)
    check_ok(c, out)
    assert out.attempts == c.expect.attempts
    assert 0.9 <= out.elapsed < 10, out.elapsed


def test_expectations_cover_the_contract():
    """The table above, spelled out for the faults whose outcome depends on the mode."""
    kinds = {cell: c.expect.kind for cell, c in CELLS.items()}
    assert kinds["stallfirst-stream-first"] == kinds["stallfirst-plain-first"] == "ok"
    assert kinds["resetmid-stream-first"] == "midstream" and kinds["resetmid-plain-first"] == "ok"
    assert kinds["endless-plain-first"] == kinds["endless-plain-end"] == "deadline"
    assert kinds["drip-stream-end"] == kinds["drip-plain-end"] == "ok"
    assert kinds["429-stream-end"] == kinds["429hint-plain-end"] == "error"
    assert {c.expect.kind for c in CELLS.values()} == {"ok", "error", "deadline", "midstream"}


# --------------------------------------------------------------------------- one-off checks

def test_hung_first_key_fails_over_within_the_first_token_deadline(client, test_id):
    """A stream whose upstream sends headers and a role chunk, then nothing, is given up once the
    first-token deadline passes: the next key answers long before the emulator's 30 s hold ends."""
    start = time.monotonic()
    stream = client.chat.completions.create(model="f-stallfirst-first", messages=user(TEXT), stream=True,
                                            extra_body={"test_id": test_id})
    chunks, content = collect(stream)
    elapsed = time.monotonic() - start
    assert content == ANSWER and {c.model for c in chunks} == {"emu-model"}
    assert 0.9 <= elapsed < 10, elapsed
    assert recorded_attempts(test_id) == [("emu-model", K["E2E_KEY_STALLFIRST"]), ("emu-model", OK)]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_max_subrequests_stops_the_request(proxy_url, test_id, stream):
    r = httpx.post(f"{PROXY_URL}/v1/chat/completions",
                   json={"model": "f-subrequests", "messages": user("x"), "stream": stream,
                         "test_id": test_id},
                   headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 500, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = assert_error_shape(r.json())
    assert "max_subrequests" in err["message"], err["message"]
    names = ["E2E_KEY_500"] + [f"E2E_KEY_500_{i}" for i in range(2, 9)]
    assert recorded_keys(test_id) == [K[n] for n in names]
    assert_no_secrets(r.text, dict(r.headers))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_retry_same_key_then_next(client, test_id, stream):
    """`retry = { attempts = 2 }`: a 503 is tried three times on its key, then the next key answers."""
    resp = client.chat.completions.create(model="f-retry", messages=user(TEXT), stream=stream,
                                          extra_body={"test_id": test_id})
    content = collect(resp)[1] if stream else resp.choices[0].message.content
    assert content == ANSWER
    assert recorded_keys(test_id) == [K503, K503, K503, OK]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_retry_never_repeats_a_client_error(client, test_id, stream):
    with pytest.raises(openai.BadRequestError) as info:
        resp = client.chat.completions.create(model="f-retry-400", messages=user(TEXT), stream=stream,
                                              extra_body={"test_id": test_id})
        if stream:
            collect(resp)
    assert info.value.status_code == 400
    assert recorded_keys(test_id) == [K["E2E_KEY_400"]]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_redirect_is_not_followed(proxy_url, test_id, stream):
    """A 307 is a failed attempt: following it would send the same key to the Location again."""
    r = httpx.post(f"{PROXY_URL}/v1/chat/completions",
                   json={"model": "f-redirect-first", "messages": user(TEXT), "stream": stream,
                         "test_id": test_id},
                   headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert "location" not in r.headers
    assert [rec["path"] for rec in recorded(test_id)] == ["/v1/chat/completions"] * 2
    assert recorded_keys(test_id) == [K["E2E_KEY_REDIRECT"], OK]
