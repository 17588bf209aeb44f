"""End-to-end fixtures: the local stack (once per session), a real origin server, real `ttf` agents.

The stack is `python -m emulator.stack` on ephemeral ports with a temporary state file,
stopped (whole process group) at the end of the session. Set HTTP_TUNNEL_E2E_STATE to the
state file of a stack you already run (`make stack`) to reuse it while iterating.

The stack runs with auth on, as production does: agents present the dev token from the state
file's auth block. The session's stack also trusts a JWKS holding one RSA key of a stand-in
identity provider (``IDP_KID``, with its audience) and caps token lifetime at
``MAX_LIFETIME_S``, so every JWT attack can be tried through it (tests/e2e/test_auth.py).

Other suites use these fixtures by importing them into their own conftest (tests/security does).
pytest then holds one definition per conftest, so ``stack`` keeps the stack it started in the
session's stash: whichever suite runs first starts it, the others get the same one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from scripts.harness.proc import Proc, ProcError
from scripts.harness.stack import LocalStack, TtfAgent, read_state

ROOT = Path(__file__).resolve().parents[2]
STACK_START_TIMEOUT_S = 240
IDP_KID = "e2e-idp"
IDP_AUDIENCE = "e2e-tunnel-agents"
MAX_LIFETIME_S = 86_400
MAX_STREAM_S = 120  # long enough for a 20 MB download on a loaded machine, short enough to test the cap
# The emulator throttles as API Gateway does (emulator/README.md, Throttling). The suite sends more
# than the defaults allow (200 concurrent requests to one tunnel, dozens of agents connecting within
# seconds), so its stack raises them; tests/security/test_flood.py runs a stack on the defaults.
SUITE_THROTTLES = ("http_throttling_rate_limit=1000", "http_throttling_burst_limit=1000",
                   "websocket_throttling_rate_limit=2000", "websocket_throttling_burst_limit=2000",
                   "websocket_connect_throttling_rate_limit=200", "websocket_connect_throttling_burst_limit=400",
                   "tunnel_rate_limit=1000", "tunnel_burst_limit=1000", "tunnel_max_in_flight=400",
                   "agent_message_rate_limit=1000", "agent_message_burst_limit=2000",
                   # the caller WebSocket API (issue 24): its stage carries the 1,000-message bursts of
                   # test_caller_ws; its $connect stays under the account's 500/s with the agents' 200/s
                   "caller_message_throttling_rate_limit=2000", "caller_message_throttling_burst_limit=2000",
                   "caller_connect_throttling_rate_limit=200", "caller_connect_throttling_burst_limit=400",
                   "tunnel_caller_message_rate_limit=2000", "tunnel_caller_message_burst_limit=2000")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class StackInfo:
    http_url: str
    ws_url: str
    aws_endpoint_url: str
    admin_url: str
    management_url: str
    pending_table: str
    connections_table: str
    http_port: int
    state_file: Path
    auth: dict | None  # the state file's auth block: token, secret, issuer, audience, max_lifetime, ...
    idp_key: Any = None  # private RSA key behind the stack's JWKS (None for a reused stack)
    stream_url: str | None = None  # the function URL edge (forward_stream), None on an older stack

    @property
    def token(self) -> str:
        assert self.auth, "the stack runs without auth"
        return self.auth["token"]


@dataclass(frozen=True)
class Tunnel:
    agent: Proc
    tunnel_id: str
    public_url: str
    path_based_url: str
    connection_id: str


def stack_info(state: dict, state_file: Path, idp_key: Any = None) -> StackInfo:
    return StackInfo(state["http_url"], state["ws_url"], state["aws_endpoint_url"], state["admin_url"],
                     state["management_url"], state["pending_table"], state["connections_table"],
                     int(state["http_url"].rsplit(":", 1)[1]), state_file, state.get("auth"), idp_key,
                     state.get("stream_url"))


def idp_jwks(key: Any) -> str:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**jwk, "kid": IDP_KID, "use": "sig", "alg": "RS256"}]})


SESSION_STACK = pytest.StashKey[StackInfo]()


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    running = request.config.stash.get(SESSION_STACK, None)
    if running is not None:  # another suite's copy of this fixture started it; that copy stops it
        yield running
        return
    with _session_stack(tmp_path_factory) as info:
        request.config.stash[SESSION_STACK] = info
        try:
            yield info
        finally:
            del request.config.stash[SESSION_STACK]


@contextmanager
def _session_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    reuse = os.environ.get("HTTP_TUNNEL_E2E_STATE")
    if reuse:
        state = read_state(Path(reuse))
        if state is None:
            pytest.fail(f"HTTP_TUNNEL_E2E_STATE={reuse} holds no stack state")
        yield stack_info(state, Path(reuse))
        return
    if not (ROOT / "build" / "local" / "build.json").exists():
        pytest.fail("build/local is missing: run `make build-local` (make test does it)")
    folder = tmp_path_factory.mktemp("stack")
    state_file = folder / "stack.json"
    idp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    local = LocalStack(folder, state_file=state_file, extra_args=(
        "--cleanup-interval", "5", "--stream-port", "0", "--var", f"jwks={idp_jwks(idp_key)}",
        "--var", f"jwt_audience={IDP_AUDIENCE}", "--var", f"jwt_max_lifetime={MAX_LIFETIME_S}",
        # streams end at MAX_STREAM_S (tests/e2e/test_streaming.py measures it; its load tests run a stack of their own)
        "--var", f"max_stream_seconds={MAX_STREAM_S}",
        *(arg for var in SUITE_THROTTLES for arg in ("--var", var))))
    started = time.monotonic()
    try:
        local.start(STACK_START_TIMEOUT_S)
    except ProcError as exc:
        pytest.fail(str(exc))
    try:
        print(f"\nlocal stack started in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield stack_info(local.state, state_file, idp_key)
    finally:
        # 30 s: after minute-long streamed requests the stack took up to ~17 s to exit here (its
        # stop() itself 0.2 s; what delays the process's exit is not found yet: see the relay report)
        local.stop(grace=30)
        assert not state_file.exists(), "the stack left its state file behind after SIGTERM"


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("origin")
    child = Proc([sys.executable, str(Path(__file__).parent / "origin.py"), "--port", "0"], "origin",
                 folder / "origin.log").start()
    try:
        line = child.wait_line(lambda l: l.startswith("{"), 20)
        yield int(json.loads(line)["port"])
    finally:
        child.stop()


def start_agent(stack: StackInfo, port: int, log_dir: Path, *extra: str) -> Tunnel:
    # Reclaim state goes to the test's own folder (never ~/.local/state); no inspector port.
    # The stack's dev token unless the test brings its own -t.
    token = stack.token if stack.auth and "-t" not in extra else None
    ttf = TtfAgent(stack.ws_url, port, log_dir, state_dir=log_dir / "ttf-state", extra_args=extra,
                   token=token).start(30)
    return Tunnel(ttf.proc, ttf.tunnel_id, ttf.public_url, ttf.path_based_url, ttf.connection_id)


@pytest.fixture(scope="session")
def tunnel(stack: StackInfo, origin: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    """One agent for the read-only tests of the session."""
    agent = start_agent(stack, origin, tmp_path_factory.mktemp("agent"))
    try:
        yield agent
    finally:
        agent.agent.stop()


@pytest.fixture
def agent_factory(stack: StackInfo, tmp_path: Path) -> Iterator:
    """Start extra agents inside one test; all are stopped after it."""
    started: list[Tunnel] = []

    def make(port: int, *extra: str) -> Tunnel:
        agent = start_agent(stack, port, tmp_path, *extra)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.agent.stop()
