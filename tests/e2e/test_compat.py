"""Channel v2 against the previous release, both ways (issue 26): that release's `ttf` on today's
stack, and today's `ttf` on that release's stack. The tree is `git archive` of PREVIOUS_RELEASE,
built as `make bench BASELINE=...` builds it (scripts/bench prepare_baseline, bench/cache/)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest

from scripts.bench.__main__ import prepare_baseline
from scripts.harness.stack import LocalStack, TtfAgent, agent_token
from tests.e2e.client import request

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_RELEASE = "be75307"  # main before channel v2


@pytest.fixture(scope="module")
def previous_tree() -> Path:
    known = subprocess.run(["git", "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"], cwd=ROOT, capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"{PREVIOUS_RELEASE} is not in this clone (a shallow checkout): the compatibility runs need it")
    return prepare_baseline(PREVIOUS_RELEASE)[1]


@pytest.fixture(scope="module")
def previous_stack(previous_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("previous-stack"), root=previous_tree) as stack:
        yield stack


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def test_the_previous_agent_on_todays_stack(session, stack, origin, previous_tree, tmp_path):
    """It announces nothing: today's stack gives it the old protocol, and its echoed ids verify."""
    with TtfAgent(stack.ws_url, origin, tmp_path, name="previous-ttf", root=previous_tree,
                  token=stack.token) as agent:
        replies = [await request(session, "GET", agent.public_url, f"/bytes?n={n}") for n in (10, 40_000)]
    assert [(r.status, len(r.body)) for r in replies] == [(200, 10), (200, 40_000)]


async def test_todays_agent_on_the_previous_stack(session, previous_stack, origin, tmp_path):
    """The previous stack ignores X-Tunnel-Capabilities and agrees nothing: ttf speaks today's
    protocol to it (no seq, no waiting for acks that never come, no resends)."""
    with TtfAgent(previous_stack.state["ws_url"], origin, tmp_path, root=ROOT, extra_args=("-v",),
                  token=agent_token(previous_stack.state)) as agent:
        replies = [await request(session, "GET", agent.public_url, f"/bytes?n={n}") for n in (10, 40_000)]
        log = agent.proc.log_path.read_text(errors="replace")
    assert [(r.status, len(r.body)) for r in replies] == [(200, 10), (200, 40_000)]
    assert "resending the answer" not in log
