"""Several tunnels from one `ttf` and one ttf.toml, through the local stack: one tunnel's local
service is down (its requests get 503, the other serves), a third cannot reach its endpoint
(it retries in its own row), every JSON line says which tunnel, one inspector lists both, and
each tunnel gets its own URL back after a restart (saved per name)."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

from scripts.harness.proc import Proc
from scripts.harness.stack import ttf_argv
from tests.e2e.client import request

START_TIMEOUT_S = 60


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


@pytest.fixture
def closed_ports() -> Iterator[tuple[int, int]]:
    """Two ports bound and not listening for the whole test: connections to them are refused."""
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        yield one.getsockname()[1], two.getsockname()[1]


class MultiTtf:
    """`ttf --config FILE` whose JSON lines are all kept (whatever the waits consumed)."""

    def __init__(self, config: Path, log_dir: Path, name: str) -> None:
        self.proc = Proc([*ttf_argv(), "--config", str(config)], name, log_dir / f"{name}.log", cwd=log_dir)

    def __enter__(self) -> "MultiTtf":
        self.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop(grace=10)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.proc.history if line.startswith("{")]

    def wait(self, event: str, tunnel: str | None = None) -> dict[str, Any]:
        return self.proc.wait_json(lambda d: d.get("event") == event and (tunnel is None or d.get("tunnel") == tunnel),
                                   START_TIMEOUT_S)

    def established(self) -> dict[str, dict[str, Any]]:
        """Both served tunnels' tunnel_established lines, by name."""
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < 2:
            line = self.wait("tunnel_established")
            seen[line["tunnel"]] = line
        return seen


def write_config(folder: Path, ws_url: str, token: str | None, origin: int, down: int, dead: int) -> Path:
    """The stack runs with auth on: its dev token goes at the top, for every tunnel (0600: a secret)."""
    path = folder / "ttf.toml"
    path.touch(mode=0o600)
    path.write_text(f"""\
endpoint = "{ws_url}"
{f'token = "{token}"' if token else ""}
state-dir = "{folder / 'state'}"
inspect = "127.0.0.1:0"
json = true

[tunnels.app]
port = {origin}

[tunnels.down]      # nothing listens on this port
port = {down}
no-rewrite = true

[tunnels.nowhere]   # nothing listens at this endpoint
port = {origin}
endpoint = "ws://127.0.0.1:{dead}/ws"
""")
    return path


async def test_two_tunnels_from_one_config_one_local_service_down(stack, origin, closed_ports, tmp_path, session):
    down, dead = closed_ports
    config = write_config(tmp_path, stack.ws_url, stack.token if stack.auth else None, origin, down, dead)
    with MultiTtf(config, tmp_path, "ttf-multi") as ttf:
        first = ttf.established()
        assert first["app"]["tunnel_id"] != first["down"]["tunnel_id"]  # one socket and one URL each
        assert first["app"]["inspector_url"] == first["down"]["inspector_url"]  # one inspector

        reply = await request(session, "POST", first["app"]["public_url"], "/echo?via=app", data=b"hello")
        assert reply.status == 200, reply.body[:300]
        assert json.loads(reply.body)["method"] == "POST"
        reply = await request(session, "GET", first["app"]["path_based_url"], "/echo?a=%2F")
        assert json.loads(reply.body)["raw_path"] == "/echo?a=%2F"  # path mode; JSON is data (issue 14)
        reply = await request(session, "GET", first["down"]["public_url"], "/echo?via=down")
        assert reply.status == 503
        assert reply.headers["x-tunnel-error"] == "local_service_unavailable"

        requests = [ttf.wait("request"), ttf.wait("request"), ttf.wait("request")]
        assert sorted((r["tunnel"], r["status"]) for r in requests) == [("app", 200), ("app", 200), ("down", 503)]
        ttf.wait("reconnecting", "nowhere")  # the third retries on its own; the others were never held up
        inspector = first["app"]["inspector_url"]
        with urllib.request.urlopen(inspector + "/api/requests?tunnel=down", timeout=10) as resp:
            listed = json.loads(resp.read())
        assert [(e["tunnel"], e["status"], e["uri"]) for e in listed["requests"]] == [
            ("down", 503, "/echo?via=down")]
        with urllib.request.urlopen(inspector + "/api/status", timeout=10) as resp:
            status = json.loads(resp.read())
        assert [(t["name"], t["state"], t["tunnel_id"]) for t in status["tunnels"]] == [
            ("app", "online", first["app"]["tunnel_id"]), ("down", "online", first["down"]["tunnel_id"]),
            ("nowhere", "reconnecting", None)]
        ttf.proc.signal_group(signal.SIGTERM)
        assert ttf.proc.popen.wait(20) == 0

    # every line of a tunnel says which; each tunnel's rows are all there
    events = ttf.events
    assert {e["tunnel"] for e in events if e["event"] == "tunnel_established"} == {"app", "down"}
    assert {e.get("tunnel") for e in events if e["event"] == "reconnecting"} == {"nowhere"}
    assert all("tunnel" in e for e in events if e["event"] != "notice")
    assert not [e for e in events if e["event"] == "notice" and e["level"] == "warning"]  # e.g. the file's mode

    # restarted: each tunnel reclaims its own saved id (the same endpoint, one state file per name)
    assert len(list((tmp_path / "state").glob("tunnel-*.json"))) == 2
    with MultiTtf(config, tmp_path, "ttf-multi-again") as again:
        second = again.established()
        assert {n: e["tunnel_id"] for n, e in second.items()} == {n: e["tunnel_id"] for n, e in first.items()}
        reply = await request(session, "GET", second["app"]["public_url"], "/echo")
        assert reply.status == 200
