"""make smoke's caller-WebSocket checks (scripts/smoke/sockets.py) without a stack: aimed at the
smoke origin's own /ws (what a perfect tunnel delivers), at in-process fakes that mangle or refuse,
and the deployments they cannot check. tests/e2e/test_smoke.py runs them through the local stack."""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web

from scripts.smoke import __main__ as smoke
from scripts.smoke import battery, sockets
from scripts.smoke.client import Client
from tests.smoke import test_smoke_battery

origin_url = test_smoke_battery.origin_url  # the smoke origin (a fixture)


def no_restart() -> battery.Tunnel:
    raise AssertionError("not restarted here")


def direct(http_url: str, **kwargs) -> battery.Context:
    """The checks aimed at an app itself: its /ws as the caller API, its HTTP as the tunnel."""
    ws_base = "ws" + http_url.removeprefix("http") + sockets.PATH
    return battery.Context(battery.Tunnel("direct", http_url), no_restart, caller_ws_url=ws_base, **kwargs)


def test_the_socket_check_passes_against_a_perfect_tunnel(origin_url):
    result = battery.one(sockets.SOCKET, sockets.check_socket, direct(origin_url))
    assert result.ok, result.detail
    assert f"subprotocol {sockets.SUBPROTOCOL}" in result.detail and "reached the app" in result.detail
    closes = Client().request("GET", f"{origin_url}{sockets.CLOSES_PATH}")
    assert closes.status == 200 and any(4000 <= c < 5000 for c in json.loads(closes.body))


def test_the_order_burst_reports_what_came_back(origin_url):
    result = battery.one(sockets.ORDER, sockets.check_order, direct(origin_url))
    assert result.ok, result.detail
    assert result.detail.startswith(f"observed: {sockets.BURST} frames sent at once, 0 came back out of place, "
                                    "0 never"), result.detail


def test_out_of_place_counts_moved_and_missing_frames():
    sent = [f"burst {i:04d}" for i in range(6)]
    assert sockets.out_of_place(sent, sent) == (0, 0)
    swapped = sent[:2] + [sent[3], sent[2]] + sent[4:]
    assert sockets.out_of_place(swapped, sent) == (2, 0)
    assert sockets.out_of_place(sent[:2] + sent[3:], sent) == (3, 1)  # one lost: everything after it moved up


def test_the_idle_observation_is_opt_in_and_counts_pongs(origin_url, monkeypatch):
    result = battery.one(sockets.IDLE, sockets.check_idle, direct(origin_url))
    assert result.status == battery.NOT_CHECKABLE and "--socket-idle" in result.detail
    monkeypatch.setattr(sockets, "IDLE_S", 1.0)
    monkeypatch.setattr(sockets, "PING_EVERY_S", 0.3)
    result = battery.one(sockets.IDLE, sockets.check_idle, direct(origin_url, socket_idle=True))
    assert result.ok and result.detail.startswith("observed: open after 1 s of pings only (4 pings, 4 pongs)"), \
        result.detail


def test_without_a_caller_api_every_socket_check_is_not_checkable():
    ctx = battery.Context(battery.Tunnel("abc", "https://t.example"), no_restart)
    for name, check in ((sockets.SOCKET, sockets.check_socket), (sockets.ORDER, sockets.check_order)):
        result = battery.one(name, check, ctx)
        assert result.status == battery.NOT_CHECKABLE and "no caller WebSocket API" in result.detail
    ctx.caller_ws_url = "wss://c.example/live"
    assert sockets.caller_url(ctx) == "wss://c.example/live?tunnel=abc"


class Fake:
    """An in-process stand-in for a tunnel: refuses the handshake with ``status``, or mangles."""

    def __init__(self, status: int = 101) -> None:
        self.status = status
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if self.status != 101:
            return web.Response(status=self.status, text="no", headers={"x-tunnel-error": "websocket_unsupported"})
        ws = web.WebSocketResponse()  # negotiates no subprotocol
        await ws.prepare(request)
        await ws.send_str(sockets.GREETING)
        async for msg in ws:
            await ws.send_str(msg.data.replace("\x00", ""))
        return ws

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get(sockets.PATH, self.socket)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> str:
        self._thread.start()
        assert self._ready.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None and self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_an_agent_without_ws_is_not_checkable_and_other_refusals_fail():
    with Fake(501) as url:
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.status == battery.NOT_CHECKABLE and result.detail == f"{sockets.NO_WS} (websocket_unsupported)"
    with Fake(404) as url:
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.failed and result.detail == "the caller's handshake got 404 (websocket_unsupported)"


def test_a_tunnel_that_drops_the_subprotocol_or_a_nul_fails(monkeypatch):
    with Fake() as url:
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.failed and result.detail.startswith("subprotocol None, expected 'smoke.v1'"), result.detail
        monkeypatch.setattr(sockets, "SUBPROTOCOL", None)
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.failed and result.detail.startswith("sent 'NUL \\x00 in the middle \\x00'"), result.detail


def test_the_origin_refuses_a_plain_get_on_its_socket_path(origin_url):
    reply = Client().request("GET", f"{origin_url}{sockets.PATH}")
    assert reply.status == 400 and b"WebSocket handshake" in reply.body


def test_the_caller_url_comes_from_terraform_or_the_flag(capsys):
    assert smoke.caller_ws_url_of({"caller_ws_url": {"value": "wss://x.execute-api.us-east-1.amazonaws.com/live"}}) \
        == "wss://x.execute-api.us-east-1.amazonaws.com/live"
    assert smoke.caller_ws_url_of({}) == ""  # a deployment from before issue 24
    assert smoke.main(["--endpoint", "ws://127.0.0.1:1", "--caller-ws-url", "https://x"]) == 2
    assert "--caller-ws-url must be a ws://" in capsys.readouterr().err
    assert smoke.parse_args(["--endpoint", "ws://h", "--socket-idle"]).socket_idle
    assert not smoke.parse_args(["--endpoint", "ws://h"]).socket_idle
