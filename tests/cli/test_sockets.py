"""ttf.sockets: caller WebSockets on the agent's side, against a real local WebSocket app and a fake
tunnel socket (the frames the agent would send to API Gateway are collected)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from httptunnel import protocol
from ttf import sockets
from ttf.sockets import CallerSockets

from scripts.harness.wait import wait_until_async


class Tunnel:
    """The agent's socket to API Gateway: what CallerSockets sends, decoded."""

    def __init__(self) -> None:
        self.frames: list[protocol.Message] = []
        self.arrived = asyncio.Event()

    async def send(self, frame: str) -> bool:
        self.frames.append(protocol.decode(frame))
        self.arrived.set()
        return True

    def of(self, kind: type) -> list[Any]:
        return [f for f in self.frames if isinstance(f, kind)]

    async def wait(self, predicate, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()


class LocalApp:
    def __init__(self) -> None:
        self.received: list[str] = []
        self.handshakes: list[dict[str, Any]] = []
        self.close_codes: list[int | None] = []
        self.sockets: list[web.WebSocketResponse] = []

    async def handler(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("refuse"):
            return web.Response(status=int(request.query["refuse"]))
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        self.sockets.append(ws)
        self.handshakes.append({"path_qs": request.path_qs, "cookie": request.headers.get("Cookie"),
                                "protocol": ws.ws_protocol})
        for n in range(int(request.query.get("greet", "0"))):
            await ws.send_str(f"hi {n}")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.received.append(msg.data)
                if msg.data == "binary please":
                    await ws.send_bytes(b"\x00")
                if msg.data == "close please":
                    await ws.close(code=4001, message=b"bye now")
        self.close_codes.append(ws.close_code)
        return ws


@pytest.fixture
async def local(aiohttp_server):
    app = LocalApp()
    web_app = web.Application()
    web_app.router.add_get("/{tail:.*}", app.handler)
    server = await aiohttp_server(web_app, host="127.0.0.1")  # pytest-aiohttp's: stopped after the test
    return app, server.port


@pytest.fixture
async def agent(local):
    _, port = local
    tunnel = Tunnel()
    async with aiohttp.ClientSession() as http:
        owner = CallerSockets(tunnel.send, http, f"ws://127.0.0.1:{port}",
                              lambda h: CIMultiDict((k, v) for k, vs in h.items() for v in vs), max_sockets=2)
        yield owner, tunnel
        await owner.close_all()


async def open_one(owner: CallerSockets, tunnel: Tunnel, socket_id: str = "s1", uri: str = "/x?a=1") -> None:
    owner.handle(protocol.WsOpen("req-" + socket_id, socket_id, uri,
                                 {"Cookie": ["sid=1"], "Sec-WebSocket-Protocol": ["other, chat"]}, 5000))
    await tunnel.wait(lambda: any(getattr(f, "socket_id", None) == socket_id
                                  for f in tunnel.of(protocol.WsOpened) + tunnel.of(protocol.WsRefused)))


async def test_the_local_socket_gets_the_callers_handshake_and_the_apps_protocol_goes_back(local, agent):
    app, _ = local
    owner, tunnel = agent
    await open_one(owner, tunnel)
    assert tunnel.of(protocol.WsOpened) == [protocol.WsOpened("req-s1", "s1", "chat")]
    assert app.handshakes == [{"path_qs": "/x?a=1", "cookie": "sid=1", "protocol": "chat"}]


async def test_caller_frames_reach_the_app_in_seq_order_whatever_order_they_come_in(local, agent):
    app, _ = local
    owner, tunnel = agent
    await open_one(owner, tunnel)
    for seq in (2, 0, 3, 1, 1, 0):  # out of order, with duplicates
        owner.handle(protocol.WsMessage("s1", seq, [f"m{seq}"]))
    async with asyncio.timeout(5):
        while len(app.received) < 4:
            await asyncio.sleep(0.01)  # the app's handler runs in this loop; bounded by the timeout
    assert app.received == ["m0", "m1", "m2", "m3"]


async def test_a_frame_that_never_comes_is_skipped_after_the_gap_wait(local, agent, monkeypatch):
    monkeypatch.setattr(sockets, "GAP_SKIP_S", 0.2)
    app, _ = local
    owner, tunnel = agent
    await open_one(owner, tunnel)
    owner.handle(protocol.WsMessage("s1", 1, ["after the gap"]))
    async with asyncio.timeout(5):
        while not app.received:
            await asyncio.sleep(0.01)  # bounded by the timeout
    assert app.received == ["after the gap"]


async def test_the_app_speaking_first_goes_stop_and_wait_in_batches(local, agent):
    owner, tunnel = agent
    await open_one(owner, tunnel, uri="/?greet=40")
    await tunnel.wait(lambda: tunnel.of(protocol.WsMessage))
    await asyncio.sleep(0.1)  # nothing more may be sent before the ack (a negative check: a short look)
    first = tunnel.of(protocol.WsMessage)
    assert [m.seq for m in first] == [0], "one batch in flight until acknowledged"
    owner.handle(protocol.WsAck("s1", 0))
    await tunnel.wait(lambda: sum(len(m.data) for m in tunnel.of(protocol.WsMessage)) >= 40
                      or len(tunnel.of(protocol.WsMessage)) > 1)
    owner.handle(protocol.WsAck("s1", 1))
    await tunnel.wait(lambda: sum(len(m.data) for m in tunnel.of(protocol.WsMessage)) >= 40)
    texts = [t for m in tunnel.of(protocol.WsMessage) for t in m.data]
    assert texts == [f"hi {n}" for n in range(40)]
    assert all(len(m.data) <= sockets.BATCH_MESSAGES for m in tunnel.of(protocol.WsMessage))


async def test_the_callers_close_code_reaches_the_app(local, agent):
    app, _ = local
    owner, tunnel = agent
    await open_one(owner, tunnel)
    owner.handle(protocol.WsClose("s1", 4005, "bye"))
    async with asyncio.timeout(5):
        while not app.close_codes:
            await asyncio.sleep(0.01)  # bounded by the timeout
    assert app.close_codes == [4005] and "s1" not in owner.sockets


@pytest.mark.parametrize("code,sent", [(1006, 1001), (1005, 1000), (1015, 1001), (4000, 4000), (1000, 1000),
                                       (2000, 1000)])
def test_codes_that_cannot_go_on_the_wire_are_replaced(code, sent):
    assert sockets.wire_code(code) == sent


async def test_an_app_close_is_sent_after_what_it_wrote(local, agent):
    owner, tunnel = agent
    await open_one(owner, tunnel)
    owner.handle(protocol.WsMessage("s1", 0, ["close please"]))
    await tunnel.wait(lambda: tunnel.of(protocol.WsClose))
    assert tunnel.of(protocol.WsClose)[0].code == 4001


async def test_an_app_close_is_answered_with_its_own_code_and_its_reason_goes_on(local, agent):
    """RFC 6455 5.5.1: the answering close echoes the code it got; aiohttp's autoclose answered 1000,
    so the app saw its own 4001 close come back as 1000."""
    app, _ = local
    owner, tunnel = agent
    await open_one(owner, tunnel)
    owner.handle(protocol.WsMessage("s1", 0, ["close please"]))
    await tunnel.wait(lambda: tunnel.of(protocol.WsClose))
    await wait_until_async(lambda: app.close_codes, timeout=5, what="the app's socket closed")
    close = tunnel.of(protocol.WsClose)[0]
    assert (close.code, close.reason) == (4001, "bye now")
    assert app.close_codes == [4001]


async def test_a_binary_message_from_the_app_ends_both_sides_with_1003(local, agent):
    app, _ = local
    owner, tunnel = agent
    await open_one(owner, tunnel)
    owner.handle(protocol.WsMessage("s1", 0, ["binary please"]))
    await tunnel.wait(lambda: tunnel.of(protocol.WsClose))
    assert tunnel.of(protocol.WsClose)[0].code == 1003


async def test_refusals_carry_the_apps_status_or_503(local, agent):
    owner, tunnel = agent
    await open_one(owner, tunnel, "s1", "/?refuse=403")
    refused = tunnel.of(protocol.WsRefused)
    assert (refused[0].status, refused[0].code) == (403, "local_service_error")
    owner.base = "ws://127.0.0.1:1"  # nothing listens there
    await open_one(owner, tunnel, "s2")
    assert (tunnel.of(protocol.WsRefused)[1].status, tunnel.of(protocol.WsRefused)[1].code) == \
        (503, "local_service_unavailable")


async def test_past_the_cap_a_socket_is_refused_429_at_once(local, agent):
    owner, tunnel = agent
    await open_one(owner, tunnel, "s1")
    await open_one(owner, tunnel, "s2")
    await open_one(owner, tunnel, "s3")
    assert [(r.socket_id, r.status, r.code) for r in tunnel.of(protocol.WsRefused)] == [("s3", 429, "tunnel_busy")]


async def test_when_the_tunnel_socket_ends_every_local_socket_closes_with_1012(local, agent):
    app, _ = local
    owner, tunnel = agent
    await open_one(owner, tunnel, "s1")
    await owner.close_all()
    async with asyncio.timeout(5):
        while not app.close_codes:
            await asyncio.sleep(0.01)  # bounded by the timeout
    assert app.close_codes == [1012] and owner.sockets == {}


def test_a_texts_size_is_its_json_inside_the_frame():
    assert sockets.text_bytes('é"') == len(json.dumps('é"', ensure_ascii=False).encode()) + 1
