"""Key health: cool-downs after a rate limit, and the key strategies (tests/routes/e2e.toml
`cool-*`, `sticky`, `round-robin`).

Cool-downs belong to a key name x model, so each route here has a model of its own, and the
`[server]` table turns cool-downs off (`cooldown = { max = 0 }`) for every other route. The state
lives in the proxy's memory (per process natively, per isolate on the Worker; `wrangler dev` runs
one isolate), so these tests expect a proxy started for this run: a second run against the same
proxy within 30 s would find the cool-downs of the first.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import openai
import pytest

from conftest import (KEY, PROXY_URL, TOKEN, assert_error_shape, assert_no_secrets, recorded,
                      recorded_keys, user)

K = KEY
HINTED = K["E2E_KEY_429HINT"]   # answers 429 with Retry-After: 30
OK = K["E2E_KEY_OK"]
THREE = [K["E2E_KEY_OK"], K["E2E_KEY_OK_2"], K["E2E_KEY_OK_3"]]


def new_id() -> str:
    return "t-" + uuid.uuid4().hex


def ask(client, route: str, test_id: str, **kw) -> str:
    resp = client.chat.completions.create(model=route, messages=user("health"),
                                          extra_body={"test_id": test_id}, **kw)
    return resp.choices[0].message.content


def post(route: str, test_id: str) -> httpx.Response:
    return httpx.post(f"{PROXY_URL}/v1/chat/completions",
                      json={"model": route, "messages": user("health"), "test_id": test_id},
                      headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)


# --------------------------------------------------------------------------- cool-downs

def test_rate_limited_key_is_skipped_while_it_cools_down(client):
    first, second = new_id(), new_id()
    assert ask(client, "cool-429", first) == "echo: health"
    assert recorded_keys(first) == [HINTED, OK]
    # Retry-After: 30 put E2E_KEY_429HINT x emu-cool-429 on ice: the next request skips it
    assert ask(client, "cool-429", second) == "echo: health"
    assert recorded_keys(second) == [OK]


def test_every_key_cooling_down_is_429_at_once(client):
    first = new_id()
    r = post("cool-all", first)
    assert r.status_code == 429, r.text
    assert_error_shape(r.json())
    assert recorded_keys(first) == [HINTED]

    second = new_id()
    start = time.monotonic()
    r = post("cool-all", second)
    elapsed = time.monotonic() - start
    assert r.status_code == 429, r.text
    err = assert_error_shape(r.json())
    assert "cooling down" in err["message"], err["message"]
    retry_after = r.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), r.headers
    assert 0 < int(retry_after) <= 30
    assert recorded(second) == [], "a cooling key must get no request"
    assert elapsed < 2, elapsed
    assert_no_secrets(r.text, dict(r.headers))

    # the SDK sees an ordinary rate limit
    third = new_id()
    with pytest.raises(openai.RateLimitError) as info:
        ask(client, "cool-all", third)
    assert info.value.status_code == 429
    assert recorded(third) == []


# --------------------------------------------------------------------------- strategies

def keys_for(client, route: str, sessions: list[dict]) -> list[str]:
    """One request per entry (keyword arguments for create); the key each one reached."""
    test_id = new_id()
    for kw in sessions:
        assert ask(client, route, test_id, **kw) == "echo: health"
    keys = recorded_keys(test_id)
    assert len(keys) == len(sessions), keys
    return keys


def test_sticky_same_user_same_key(client):
    user_id = "sticky-user-" + uuid.uuid4().hex[:8]
    keys = keys_for(client, "sticky", [{"user": user_id}] * 6)
    assert len(set(keys)) == 1 and keys[0] in THREE, keys


def test_sticky_users_spread_over_keys(client):
    keys = keys_for(client, "sticky", [{"user": f"sticky-spread-{i}"} for i in range(12)])
    assert set(keys) <= set(THREE) and len(set(keys)) >= 2, keys


def test_sticky_session_header(client):
    session = "sticky-session-" + uuid.uuid4().hex[:8]
    keys = keys_for(client, "sticky", [{"extra_headers": {"x-session-id": session}}] * 6)
    assert len(set(keys)) == 1 and keys[0] in THREE, keys
    keys = keys_for(client, "sticky", [{"extra_headers": {"x-session-id": f"sticky-header-{i}"}}
                                       for i in range(12)])
    assert set(keys) <= set(THREE) and len(set(keys)) >= 2, keys


def test_round_robin_takes_turns(client):
    keys = keys_for(client, "round-robin", [{}] * 6)
    assert Counter(keys) == {k: 2 for k in THREE}, keys
    assert all(a != b for a, b in zip(keys, keys[1:])), keys
