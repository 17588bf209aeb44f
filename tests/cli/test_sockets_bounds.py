"""ttf.sockets' bounds (issue 24 item 3): the per-tunnel cap over all of a tunnel's sockets
(--max-websockets), the caller -> app queue in bytes, and what a tunnel socket that ends tells the
server about its caller sockets."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from multidict import CIMultiDict

from httptunnel import protocol
from ttf import sockets
from ttf.sockets import CallerSockets, SocketCap

from test_sockets import Tunnel, local, open_one  # noqa: F401 - fixture


def plain_headers(h: protocol.Headers) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, vs in h.items() for v in vs)


@pytest.fixture
async def two_sockets(local):  # noqa: F811 - the fixture
    """One tunnel during a renewal: its old and new socket (a CallerSockets each) share one cap of 2."""
    _, port = local
    cap = SocketCap(2)
    old_tunnel, new_tunnel = Tunnel(), Tunnel()
    async with aiohttp.ClientSession() as http:
        old = CallerSockets(old_tunnel.send, http, f"ws://127.0.0.1:{port}", plain_headers, cap=cap)
        new = CallerSockets(new_tunnel.send, http, f"ws://127.0.0.1:{port}", plain_headers, cap=cap)
        yield cap, (old, old_tunnel), (new, new_tunnel)
        await old.close_all()
        await new.close_all()


async def test_the_cap_is_the_tunnels_over_all_its_sockets(local, two_sockets):  # noqa: F811
    cap, (old, old_tunnel), (new, new_tunnel) = two_sockets
    await open_one(old, old_tunnel, "s1")
    await open_one(new, new_tunnel, "s2")
    await open_one(new, new_tunnel, "s3")
    assert [(r.socket_id, r.status, r.code) for r in new_tunnel.of(protocol.WsRefused)] == [("s3", 429, "tunnel_busy")]
    assert cap.count == 2
    await old.close_all()  # the old socket retires: its caller socket ends, its place is free
    assert cap.count == 1 and old not in cap.members
    await open_one(new, new_tunnel, "s4")
    assert [o.socket_id for o in new_tunnel.of(protocol.WsOpened)] == ["s2", "s4"]


def test_the_cap_must_allow_one():
    with pytest.raises(ValueError, match="max_websockets"):
        SocketCap(0)


async def test_a_tunnel_socket_that_ends_asks_the_server_to_end_each_callers_socket(local):  # noqa: F811
    app, port = local
    tunnel = Tunnel()
    async with aiohttp.ClientSession() as http:
        owner = CallerSockets(tunnel.send, http, f"ws://127.0.0.1:{port}", plain_headers)
        await open_one(owner, tunnel, "s1")
        await open_one(owner, tunnel, "s2")
        await owner.close_all()
    closes = tunnel.of(protocol.WsClose)
    assert sorted((c.socket_id, c.code) for c in closes) == [("s1", 1012), ("s2", 1012)], \
        "without it a caller that never sends waits for the 10-minute idle timeout"
    async with asyncio.timeout(5):
        while len(app.close_codes) < 2:
            await asyncio.sleep(0.01)  # bounded by the timeout
    assert app.close_codes == [1012, 1012]


@pytest.fixture
async def bounded(local, monkeypatch):  # noqa: F811 - the fixture
    """One open caller socket whose caller -> app queue holds at most 10,000 bytes."""
    app, port = local
    monkeypatch.setattr(sockets, "TO_APP_BYTES", 10_000)
    tunnel = Tunnel()
    async with aiohttp.ClientSession() as http:
        owner = CallerSockets(tunnel.send, http, f"ws://127.0.0.1:{port}", plain_headers)
        await open_one(owner, tunnel, "s1")
        yield owner, tunnel, app
        await owner.close_all()


async def test_caller_frames_held_past_the_byte_bound_end_both_sides(bounded):
    owner, tunnel, app = bounded
    for seq in range(1, 4):  # held out of order (0 never comes): 3 x 4,000 bytes > 10,000
        owner.handle(protocol.WsMessage("s1", seq, ["x" * 4000]))
    await tunnel.wait(lambda: bool(tunnel.of(protocol.WsClose)))
    assert [(c.socket_id, c.code) for c in tunnel.of(protocol.WsClose)] == [("s1", 1008)]
    assert app.received == [], "nothing out of order reached the app"


async def test_frames_within_the_byte_bound_pass(bounded):
    owner, tunnel, app = bounded
    for seq in range(6):  # in order, each written to the app: the bound counts what waits only
        owner.handle(protocol.WsMessage("s1", seq, ["y" * 4000]))
        async with asyncio.timeout(5):
            while len(app.received) <= seq:
                await asyncio.sleep(0.01)  # bounded by the timeout
    assert not tunnel.of(protocol.WsClose)


def test_max_websockets_from_the_command_line_the_environment_and_a_config_file(tmp_path) -> None:
    from ttf.config import ConfigError, parse_config
    from ttf.configfile import load

    assert parse_config(["-e", "wss://x.example/prod"], env={}, cwd=tmp_path).max_websockets == 64
    assert parse_config(["-e", "wss://x.example/prod", "--max-websockets", "3"], env={},
                        cwd=tmp_path).max_websockets == 3
    assert parse_config(["-e", "wss://x.example/prod"], env={"TTF_MAX_WEBSOCKETS": "5"},
                        cwd=tmp_path).max_websockets == 5
    with pytest.raises(ConfigError, match="max-websockets|max_websockets"):
        parse_config(["-e", "wss://x.example/prod", "--max-websockets", "0"], env={}, cwd=tmp_path)
    (tmp_path / "ttf.toml").write_text('endpoint = "wss://x.example/prod"\nmax-websockets = 2\n'
                                       '[tunnels.web]\nport = 3000\n[tunnels.api]\nport = 8000\nmax-websockets = 4\n')
    plan = load(["--config", str(tmp_path / "ttf.toml")], env={}, cwd=tmp_path)
    assert sorted(c.max_websockets for c in plan.tunnels) == [2, 4]
