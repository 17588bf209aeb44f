"""The pytest plugin (entry point `ttf` in the `pytest11` group): public URLs for webhook tests.

    def test_github_delivery(ttf_tunnel):
        tunnel = ttf_tunnel(app=my_wsgi_app, verify_webhook=["github:s3cret"])
        register_webhook(tunnel.url + "/hook")
        assert tunnel.wait_for_request(path="/hook").status == 200

    @pytest.fixture
    def ttf_target():           # what ttf_public_url exposes: a port, an http:// URL, or an app
        return 8000

    def test_url(ttf_public_url): ...

Where the tunnels go, first found: --ttf-endpoint/--ttf-token, TTF_ENDPOINT/TTF_TOKEN, or a
running local stack's state file (--ttf-stack PATH or TTF_STACK, e.g. .local/stack.json from
`make stack`): its ws_url and dev token. The plugin never starts a stack (nor imports the
repository's emulator or scripts). With none of these, the tests that use the fixtures are
skipped, saying so. Fixture names start with `ttf_`, so a suite's own `tunnel` fixture is untouched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

if TYPE_CHECKING:
    from ttf.api import Tunnel

SKIP_REASON = ("ttf: no tunnel endpoint configured: set TTF_ENDPOINT (and TTF_TOKEN), pass --ttf-endpoint "
               "(and --ttf-token), or point --ttf-stack / TTF_STACK at a running local stack's stack.json")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ttf", "public URLs from http-tunnel (ttf_tunnel, ttf_public_url)")
    group.addoption("--ttf-endpoint", metavar="WS_URL", help="the tunnel endpoint (default: TTF_ENDPOINT)")
    group.addoption("--ttf-token", metavar="JWT", help="the agent token (default: TTF_TOKEN)")
    group.addoption("--ttf-stack", metavar="STACK_JSON",
                    help="use a running local stack's state file (its ws_url and dev token; default: TTF_STACK)")


@dataclass(frozen=True)
class Target:
    """Where the fixtures' tunnels go, and what said so."""

    endpoint: str
    token: str | None
    source: str


def _stack(path: Path) -> Target:
    """A running local stack's endpoint and dev token, read from its state file (never started)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pytest.skip(f"ttf: no local stack runs: {path} does not exist (start one with `make stack`)")
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--ttf-stack {path}: not a stack state file ({exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("ws_url"), str):
        raise pytest.UsageError(f"--ttf-stack {path}: not a stack state file (no ws_url)")
    pid = state.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        pytest.skip(f"ttf: the local stack of {path} is not running (process {pid} is gone)")
    auth = state.get("auth")
    token = auth.get("token") if isinstance(auth, dict) and isinstance(auth.get("token"), str) else None
    return Target(state["ws_url"], token, f"the local stack of {path}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def resolve(config: pytest.Config, env: dict[str, str] | None = None) -> Target | None:
    """The endpoint and token the options and environment give; None when nothing is configured."""
    env = dict(os.environ) if env is None else env
    endpoint = config.getoption("ttf_endpoint") or env.get("TTF_ENDPOINT") or None
    token = config.getoption("ttf_token") or env.get("TTF_TOKEN") or None
    if endpoint:
        return Target(endpoint, token, "--ttf-endpoint" if config.getoption("ttf_endpoint") else "TTF_ENDPOINT")
    stack = config.getoption("ttf_stack") or env.get("TTF_STACK")
    if stack:
        found = _stack(Path(stack).expanduser())
        return Target(found.endpoint, token or found.token, found.source)
    return None


@pytest.fixture
def ttf_tunnel(request: pytest.FixtureRequest) -> Iterator[Callable[..., Tunnel]]:
    """A factory: ttf_tunnel(port_or_url | app=..., **expose_options) -> an open ttf.Tunnel,
    closed after the test. Skips the test when no endpoint is configured."""
    target = resolve(request.config)
    if target is None:
        pytest.skip(SKIP_REASON)
    from ttf.api import expose

    opened: list[Tunnel] = []

    def open_tunnel(port_or_url: int | str | None = None, **options: Any) -> Tunnel:
        options.setdefault("endpoint", target.endpoint)
        options.setdefault("token", target.token)
        tunnel = expose(port_or_url, **options)
        opened.append(tunnel)
        return tunnel

    try:
        yield open_tunnel
    finally:
        for tunnel in opened:
            tunnel.close()


@pytest.fixture
def ttf_target() -> Any:
    """Override it: the port, http:// URL or ASGI/WSGI app that ttf_public_url exposes."""
    raise pytest.UsageError("ttf_public_url needs a `ttf_target` fixture returning a port, an http://HOST:PORT "
                            "URL or an ASGI/WSGI app")


@pytest.fixture
def ttf_public_url(ttf_tunnel: Callable[..., Tunnel], ttf_target: Any) -> str:
    """The public URL of a tunnel to `ttf_target` (open for the test)."""
    if isinstance(ttf_target, (int, str)):
        return ttf_tunnel(ttf_target).url
    return ttf_tunnel(app=ttf_target).url
