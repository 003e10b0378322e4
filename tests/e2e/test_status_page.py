"""The status page (`GET /status`) in a real browser: Debian's chromium (scripts/bootstrap.sh
installs it), driven by Playwright with ``executable_path``, so Playwright never downloads a
browser of its own.

The page carries no data: its script asks for ``status.json`` with the operator's token, which
its form keeps in the tab's sessionStorage (never a cookie). Traffic through client ``c-page`` on
route ``team-page`` (tests/routes/e2e.toml, both used by nothing else) gives the tables known
counts.
"""

from __future__ import annotations

import shutil
import time
import uuid

try:
    import httpx2 as httpx  # the openai SDK >= 3 ships on httpx2
except ImportError:  # older SDKs use httpx
    import httpx
import pytest

from conftest import (CLIENT_TOKEN, PROXY_URL, TOKEN, assert_no_secrets, fresh_minute, recorded,
                      route_names, user)

PAGE_TOKEN = CLIENT_TOKEN["E2E_CLIENT_PAGE"]
REQUESTS = 3  # c-page's traffic: answered requests on team-page
CHROMIUM_PATHS = ("chromium", "chromium-browser", "/usr/bin/chromium")


def chromium_path() -> str:
    for name in CHROMIUM_PATHS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on PATH: scripts/bootstrap.sh installs Debian's `chromium`")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # The system's chromium; as root it needs --no-sandbox.
        b = p.chromium.launch(executable_path=chromium_path(), headless=True,
                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def status_json() -> dict:
    r = httpx.get(f"{PROXY_URL}/status.json", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return r.json()


@pytest.fixture(scope="module")
def page_traffic(proxy_url) -> dict:
    """REQUESTS answers for c-page on team-page, in one minute, settled; and the route's last
    hour before them (the operator's requests count there too: test_security.py's sweep runs
    every route)."""
    fresh_minute(20)
    before = route_hour(status_json())
    for _ in range(REQUESTS):
        test_id = "t-" + uuid.uuid4().hex
        r = httpx.post(f"{PROXY_URL}/v1/chat/completions",
                       json={"model": "team-page", "messages": user("hi"), "test_id": test_id},
                       headers={"authorization": f"Bearer {PAGE_TOKEN}"}, timeout=30)
        assert r.status_code == 200, r.text[:300]
        assert r.headers["x-ratelimit-limit-requests"] == "100"
        assert len(recorded(test_id)) == 1
    # Each request settles, and is recorded, once its answer has ended (on the Worker, in the
    # background): wait until none is in flight and all are in the last hour.
    deadline = time.monotonic() + 5
    while True:
        status = status_json()
        client = next(c for c in status["clients"] if c["name"] == "c-page")
        if (client["max_concurrent"] == [5, 0] and client["hour"]["requests"] == REQUESTS) \
                or time.monotonic() > deadline:
            return {"route_before": before}
        time.sleep(0.1)


def route_hour(status: dict) -> dict:
    return next(r for r in status["routes"] if r["name"] == "team-page")["hour"]


def test_page_carries_no_data(proxy_url):
    r = httpx.get(f"{PROXY_URL}/status", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers.get("content-security-policy", "")
    for directive in ("default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'",
                      "form-action 'none'"):
        assert directive in csp, csp
    assert r.headers.get("cache-control") == "no-store"
    assert "set-cookie" not in r.headers
    assert_no_secrets(r.text, dict(r.headers))
    # No route, client or key of the configuration in the page itself.
    for name in ("team-page", "c-page", "E2E_KEY_OK", "E2E_CLIENT_PAGE", "plain"):
        assert name not in r.text, name
    # No token is needed to load it, and a token changes nothing.
    with_token = httpx.get(f"{PROXY_URL}/status", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert with_token.text == r.text


def cells(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(r => Array.from(r.cells, c => c.innerText.trim()))")


def test_status_page_in_a_browser(browser, page_traffic):
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    fetched: list = []
    page.on("request", lambda req: fetched.append(req) if "status.json" in req.url else None)
    try:
        response = page.goto(f"{PROXY_URL}/status")
        assert response.status == 200
        assert "default-src 'none'" in (response.headers.get("content-security-policy") or "")
        assert page.locator("#status").is_hidden()
        assert fetched == [], "the page asked for data without a token"

        # A wrong token: refused, nothing shown, nothing kept.
        page.fill("#token", "not-the-token")
        page.click("button[type=submit]")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert page.text_content("#error") == "That token was refused."
        assert page.locator("#status").is_hidden()
        assert page.evaluate("sessionStorage.getItem('aiwp-token')") is None

        # The operator's token: the tables.
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#status", state="visible")
        assert page.text_content("#error") == ""
        assert page.input_value("#token") == "", "the token stays in the form"
        request = fetched[-1]
        assert request.headers.get("authorization") == f"Bearer {TOKEN}"
        assert TOKEN not in request.url

        status = status_json()
        # What the last hour covers: the whole Worker (its LAST_HOUR objects; tests/e2e/worker.sh
        # binds them), or the process.
        scope = {"worker": "every isolate's requests, from the LAST_HOUR Durable Objects",
                 "process": "this process's requests"}[status["scope"]]
        assert page.text_content("#taken").endswith(f"; the last hour: {scope}."), \
            page.text_content("#taken")
        routes = cells(page, "routes")
        first_cells = [row[0] for row in routes if row[0]]
        assert first_cells == [r["name"] for r in status["routes"]]
        assert set(route_names()) <= set(first_cells)
        row = next(r for r in routes if r[0] == "team-page")
        assert row[1] == "1. openai-compatible emu-page"
        assert row[2] == "E2E_KEY_OK: healthy"
        hour, before = route_hour(status), page_traffic["route_before"]
        assert hour["requests"] - before["requests"] == REQUESTS, (before, hour)
        assert (row[3], row[4], row[6]) == (str(hour["requests"]), str(hour["errors"]),
                                            str(hour["tokens"])), row

        clients = {row[0]: row for row in cells(page, "clients")}
        assert list(clients) == [c["name"] for c in status["clients"]]
        row = clients["c-page"]
        c = next(c for c in status["clients"] if c["name"] == "c-page")
        tokens = c["tokens_per_minute"][1]
        spent = c["budget"]["spent_usd"]
        assert row[1:5] == [f"{REQUESTS} / 100", f"{tokens} / 100000", "0 / 5",
                                f"${spent:.2f} / $10.00 per month"], row
        assert (row[5], row[6]) == (str(REQUESTS), "0"), row
        assert row[8] == str(c["hour"]["tokens"]), row
        # A client without limits shows dashes.
        assert clients["c-allow"][1:5] == ["—", "—", "—", "—"], clients["c-allow"]

        # The token is in this tab's session storage, and in no cookie.
        assert page.evaluate("sessionStorage.getItem('aiwp-token')") == TOKEN
        assert page.evaluate("localStorage.length") == 0
        assert page.evaluate("document.cookie") == ""
        assert context.cookies() == []

        # A reload keeps the session: the data comes back without the form.
        page.reload()
        page.wait_for_selector("#status", state="visible")

        # "Forget token" hides the data and drops the token; a reload then shows nothing.
        page.click("#forget")
        assert page.locator("#status").is_hidden()
        assert page.evaluate("sessionStorage.getItem('aiwp-token')") is None
        before = len(fetched)
        page.reload()
        page.wait_for_load_state("load")
        assert page.locator("#status").is_hidden()
        assert len(fetched) == before, "the page asked for data after the token was forgotten"
        assert context.cookies() == []
        # A new tab (another session) never had the token.
        other = context.new_page()
        other.goto(f"{PROXY_URL}/status")
        assert other.evaluate("sessionStorage.getItem('aiwp-token')") is None
        assert other.locator("#status").is_hidden()
        # The wrong token's 401 is the one failed load the console may report.
        problems = [m for m in problems if "status of 401" not in m]
        assert problems == [], problems
    finally:
        context.close()
