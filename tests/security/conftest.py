"""Fixtures of the security suite: the local stack, a hostile local service, agents.

One local stack per test session: when the end-to-end suite already runs one in this session
(pytest collects tests/e2e first), its state file is found under the session's temporary
folder and reused; otherwise (tests/security run alone) this suite starts its own, exactly as
tests/e2e/conftest.py does. HTTP_TUNNEL_E2E_STATE reuses a stack you already run (`make stack`).
Agents start through the e2e suite's start_agent, so they present whatever the stack requires.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from scripts.harness.proc import Proc, ProcError
from scripts.harness.stack import LocalStack, read_state
from tests.e2e.conftest import STACK_START_TIMEOUT_S, StackInfo, Tunnel, stack_info, start_agent

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(pytest.mark.e2e)


def _running_e2e_stack(base: Path) -> tuple[dict[str, Any], Path] | None:
    """The state of a stack the e2e fixtures started in this session, if it is still up."""
    for state_file in sorted(base.glob("stack*/stack.json")):
        state = read_state(state_file)
        if state and state.get("pid") and _alive(int(state["pid"])):
            return state, state_file
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    reuse = os.environ.get("HTTP_TUNNEL_E2E_STATE")
    if reuse:
        state = read_state(Path(reuse))
        if state is None:
            pytest.fail(f"HTTP_TUNNEL_E2E_STATE={reuse} holds no stack state")
        yield stack_info(state, Path(reuse))
        return
    running = _running_e2e_stack(tmp_path_factory.getbasetemp())
    if running is not None:
        yield stack_info(*running)
        return
    if not (ROOT / "build" / "local" / "build.json").exists():
        pytest.fail("build/local is missing: run `make build-local` (make test does it)")
    folder = tmp_path_factory.mktemp("security-stack")
    state_file = folder / "stack.json"
    local = LocalStack(folder, state_file=state_file, extra_args=("--cleanup-interval", "5"))
    started = time.monotonic()
    try:
        local.start(STACK_START_TIMEOUT_S)
    except ProcError as exc:
        pytest.fail(str(exc))
    try:
        print(f"\nlocal stack (security suite) started in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield stack_info(local.state, state_file)
    finally:
        local.stop(grace=15)


@pytest.fixture(scope="session")
def hostile_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("hostile-origin")
    child = Proc([sys.executable, str(Path(__file__).parent / "origin.py"), "--port", "0"], "hostile-origin",
                 folder / "origin.log").start()
    try:
        yield int(json.loads(child.wait_line(lambda line: line.startswith("{"), 20))["port"])
    finally:
        child.stop()


@pytest.fixture(scope="session")
def tunnel(stack: StackInfo, hostile_origin: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    """One ttf agent in front of the hostile origin, for the read-only attacks."""
    agent = start_agent(stack, hostile_origin, tmp_path_factory.mktemp("security-agent"))
    try:
        yield agent
    finally:
        agent.agent.stop()


@pytest.fixture
def agent_factory(stack: StackInfo, tmp_path: Path) -> Iterator[Any]:
    started: list[Tunnel] = []

    def make(port: int, *extra: str) -> Tunnel:
        agent = start_agent(stack, port, tmp_path, *extra)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.agent.stop()


def agent_token(stack: StackInfo) -> str | None:
    """The token agents present, when the stack requires one (auth on); None otherwise."""
    auth = getattr(stack, "auth", None) or (read_state(stack.state_file) or {}).get("auth")
    return auth.get("token") if isinstance(auth, dict) else None
