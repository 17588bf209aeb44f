"""The pytest plugin, as a user gets it: a pytest subprocess on a tiny sample suite.

The plugin comes from the installed distribution's pytest11 entry point (nothing here loads it
by hand). The sample suite has its own `tunnel` fixture, which must stay its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

SAMPLE = '''
import pytest

@pytest.fixture
def tunnel():  # the suite's own fixture of that name: the plugin's are ttf_*
    return "mine"

@pytest.fixture
def ttf_target():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return app

def test_own_fixture(tunnel):
    assert tunnel == "mine"

def test_factory(ttf_tunnel, tunnel):
    opened = ttf_tunnel(app=lambda environ, start_response: [], connect_timeout=5)
    assert opened.url == "https://api.example.test/tun123" and tunnel == "mine"

def test_public_url(ttf_public_url):
    assert ttf_public_url.startswith("https://api.example.test/")
'''


async def run_pytest(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TTF_") and k != "PYTEST_ADDOPTS"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_sample.py", *args,
        cwd=folder, env=base | (env or {}), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return int(proc.returncode or 0), out.decode()


def sample(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_sample.py").write_text(SAMPLE)
    return folder


def summary(out: str) -> str:
    lines = [line for line in out.splitlines() if re.search(r"\d+ (passed|skipped|failed|error)", line)]
    return lines[-1] if lines else out


async def test_nothing_configured_skips_with_the_reason_and_leaves_the_suites_own_fixture(tmp_path):
    code, out = await run_pytest(sample(tmp_path))
    assert code == 0, out
    assert re.search(r"1 passed, 2 skipped", summary(out)), out
    assert out.count("ttf: no tunnel endpoint configured: set TTF_ENDPOINT (and TTF_TOKEN), pass --ttf-endpoint") == 2


async def test_the_endpoint_and_token_from_options_or_environment(gateway, tmp_path):
    folder = sample(tmp_path)
    code, out = await run_pytest(folder, "--ttf-endpoint", gateway.ws_url, "--ttf-token", "opt-token")
    assert code == 0 and "3 passed" in summary(out), out
    assert {c.headers.get("Authorization") for c in gateway.conns} == {"Bearer opt-token"}
    code, out = await run_pytest(folder, env={"TTF_ENDPOINT": gateway.ws_url, "TTF_TOKEN": "env-token"})
    assert code == 0 and "3 passed" in summary(out), out
    assert gateway.conns[-1].headers.get("Authorization") == "Bearer env-token"


async def test_a_running_stacks_state_file_gives_endpoint_and_token_and_a_dead_one_skips(gateway, tmp_path):
    folder = sample(tmp_path)
    state = tmp_path / "stack.json"
    state.write_text(json.dumps({"ws_url": gateway.ws_url, "pid": os.getpid(), "auth": {"token": "stack-token"}}))
    code, out = await run_pytest(folder, "--ttf-stack", str(state))
    assert code == 0 and "3 passed" in summary(out), out
    assert gateway.conns[-1].headers.get("Authorization") == "Bearer stack-token"
    code, out = await run_pytest(folder, env={"TTF_STACK": str(tmp_path / "none.json")})
    assert code == 0 and "1 passed, 2 skipped" in summary(out), out
    assert f"ttf: no local stack runs: {tmp_path / 'none.json'} does not exist (start one with `make stack`)" in out
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    state.write_text(json.dumps({"ws_url": gateway.ws_url, "pid": dead.pid}))
    code, out = await run_pytest(folder, "--ttf-stack", str(state))
    assert "1 passed, 2 skipped" in summary(out) and f"(process {dead.pid} is gone)" in out, out
    state.write_text("not json")
    code, out = await run_pytest(folder, "--ttf-stack", str(state))
    assert code != 0 and "not a stack state file" in out, out
