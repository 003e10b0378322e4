"""The README's usage examples (tests/e2e/examples/) run as written against the proxy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import HERE, PROXY_URL, REPO, TOKEN

EXAMPLES = HERE / "examples"


def node_binary() -> str:
    local = REPO / "node_modules" / ".bin" / "node"
    if local.exists():
        return str(local)
    found = shutil.which("node")
    if not found:
        pytest.fail("no node binary (run scripts/bootstrap.sh)")
    return found


def run_example(argv: list[str]) -> str:
    env = dict(os.environ, PROXY_URL=PROXY_URL, PROXY_TOKEN=TOKEN, MODEL="plain")
    p = subprocess.run(argv, cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def test_curl_example(proxy_url):
    out = run_example(["bash", str(EXAMPLES / "curl.sh")])
    assert "echo: Hello from curl" in out


def test_python_example(proxy_url):
    out = run_example([sys.executable, str(EXAMPLES / "python_client.py")])
    assert out.strip() == "echo: Hello from Python"


def test_node_example(proxy_url):
    out = run_example([node_binary(), str(EXAMPLES / "node_client.mjs")])
    assert out.strip() == "echo: Hello from Node"


@pytest.mark.parametrize("name, starts_at", [
    ("curl.sh", 'curl -sS --fail-with-body "$PROXY_URL/v1/chat/completions"'),
    ("python_client.py", "import os"),
    ("node_client.mjs", 'import OpenAI from "openai";'),
])
def test_readme_quotes_the_examples_verbatim(name, starts_at):
    source = (EXAMPLES / name).read_text()
    code = source[source.index(starts_at):].rstrip("\n")
    readme = (REPO / "README.md").read_text()
    assert code in readme, f"README.md no longer quotes tests/e2e/examples/{name} as it is"
