"""Fixtures of the load and fault suite: one local stack, origin services, `ttf` agents.

Everything binds 127.0.0.1 on ephemeral ports and runs in its own process group; fixtures stop
them on success, failure and Ctrl-C. Results (counts, peak RSS) go to bench/cache/load-report.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from scripts.harness.proc import Proc
from scripts.harness.stack import LocalStack, TtfAgent, agent_token
from tests.e2e.conftest import SUITE_THROTTLES

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "bench" / "cache" / "logs" / ("load-" + time.strftime("%Y%m%dT%H%M%S"))
REPORT = ROOT / "bench" / "cache" / "load-report.json"


@pytest.fixture(scope="session")
def report():
    data: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu_count": os.cpu_count()}
    yield data
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nload report: {REPORT}\n{json.dumps(data, indent=2)}")


@pytest.fixture(scope="session")
def stack():
    if not (ROOT / "emulator" / "stack.py").exists():
        pytest.skip("emulator/stack.py (the local stack entry point) is not in this tree yet")
    if not (ROOT / "build" / "local").exists():
        pytest.skip("build/local is missing: run `make build-local` (make test-load does)")
    # the suite's 50 callers are far past API Gateway's default throttles (the e2e stack's raised values);
    # the stream port is ephemeral, not the fixed 4043
    with LocalStack(LOG_DIR, "local", extra_args=["--stream-port", "0",
                                                  *(a for v in SUITE_THROTTLES for a in ("--var", v))]) as s:
        yield s


class Origin:
    """The local service behind a tunnel; restartable on the same port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.proc: Proc | None = None

    def start(self) -> "Origin":
        self.proc = Proc([sys.executable, "-m", "scripts.bench.origin", "--port", str(self.port)], self.name,
                         LOG_DIR / f"{self.name}.stderr.log",
                         cwd=ROOT).start()
        self.port = self.proc.wait_json(lambda d: d.get("event") == "listening", 30)["port"]
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()


@pytest.fixture(scope="session")
def origin():
    o = Origin("origin").start()
    yield o
    o.stop()


@pytest.fixture
def make_origin():
    made: list[Origin] = []

    def make(name: str) -> Origin:
        o = Origin(name).start()
        made.append(o)
        return o

    yield make
    for o in made:
        o.stop()


@pytest.fixture
def make_agent(stack):
    made: list[TtfAgent] = []

    def make(port: int, name: str, extra_args: list[str] | None = None, state_dir: Path | None = None) -> TtfAgent:
        a = TtfAgent(stack.state["ws_url"], port, LOG_DIR, name=name, extra_args=extra_args or (),
                     state_dir=state_dir, token=agent_token(stack.state)).start()
        made.append(a)
        return a

    yield make
    for a in made:
        a.stop()
