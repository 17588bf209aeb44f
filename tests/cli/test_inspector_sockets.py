"""The inspector's caller WebSocket sessions (issue 24 item 4), against an agent in-process: the fake
API Gateway opens caller sockets (ws_open) to a real local WebSocket app; the API lists them, shows
one with its last messages, and sends a text into an open one (toward the caller or the app),
behind the same guard as every other write."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from httptunnel import protocol
from ttf.events import TunnelEstablished

from conftest import make_config, wait_until
from test_inspector import get_json

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)> & \"quotes\" \u202e"


class WsApp:
    """The local app: echoes each text as "echo: <text>", says hello first, closes on "bye"."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.close_codes: list[int | None] = []

    async def handler(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/refuse":
            return web.Response(status=403, text="origin not allowed")
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        await ws.send_str("hello from the app")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.received.append(msg.data)
                if msg.data == "bye":
                    await ws.close(code=4000, message=b"app says bye")
                    break
                await ws.send_str("echo: " + msg.data)
        self.close_codes.append(ws.close_code)
        return ws


@pytest.fixture
async def ws_app(aiohttp_server):
    app = WsApp()
    web_app = web.Application()
    web_app.router.add_get("/{tail:.*}", app.handler)
    server = await aiohttp_server(web_app, host="127.0.0.1")
    return app, server.port


@pytest.fixture
async def inspected(gateway, ws_app, running):
    gateway.speaks = ("ws",)
    _, port = ws_app
    h = running(make_config(gateway, port, inspect=("127.0.0.1", 0)))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    url = h.of(TunnelEstablished)[0].inspector_url
    async with aiohttp.ClientSession() as client:
        yield h, url, client


class Caller:
    """The server's side of one caller socket: ws_open, caller messages, acks for the agent's."""

    def __init__(self, gateway, socket_id: str) -> None:
        self.conn = gateway.conns[-1]
        self.socket_id = socket_id
        self.seq = 0

    def frames(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.conn.received if f.get("type") == kind and f.get("socket_id") == self.socket_id]

    def texts(self) -> list[str]:
        return [t for f in self.frames("ws_message") for t in f["data"]]

    async def open(self, uri: str = "/live?x=1", headers: dict[str, list[str]] | None = None) -> None:
        await self.conn.ws.send_str(protocol.encode(protocol.WsOpen(
            "req-" + self.socket_id, self.socket_id, uri,
            headers or {"Origin": ["https://page.example"], "Sec-WebSocket-Protocol": ["chat"]}, 5000)))
        await wait_until(lambda: self.frames("ws_opened") or self.frames("ws_refused"), what="ws_opened")

    async def say(self, text: str) -> None:
        await self.conn.send({"type": "ws_message", "socket_id": self.socket_id, "seq": self.seq, "data": [text]})
        self.seq += 1

    async def ack_all(self) -> None:
        sent = self.frames("ws_message")
        if sent:
            await self.conn.send({"type": "ws_ack", "socket_id": self.socket_id, "seq": max(f["seq"] for f in sent)})

    async def close(self, code: int = 1000) -> None:
        await self.conn.send({"type": "ws_close", "socket_id": self.socket_id, "code": code, "reason": "caller done"})


async def opened(gateway, socket_id: str) -> Caller:
    """A caller socket open, the app's greeting received and acknowledged."""
    caller = Caller(gateway, socket_id)
    await caller.open()
    await wait_until(lambda: "hello from the app" in caller.texts(), what="the app's first message")
    await caller.ack_all()
    return caller


async def post(client, url: str, body: Any, status: int, **kwargs: Any) -> dict:
    async with client.post(url, data=body if isinstance(body, (str, bytes)) else json.dumps(body), **kwargs) as resp:
        data = await resp.json()
        assert resp.status == status, data
        return data


async def test_sessions_are_listed_with_counts_bytes_and_the_last_messages(gateway, ws_app, inspected):
    app, _ = ws_app
    h, url, client = inspected
    caller = await opened(gateway, "conn-A=")
    for text in ("one", "dos ✓", HOSTILE):
        await caller.say(text)
        await wait_until(lambda t=text: "echo: " + t in caller.texts(), what=f"echo of {text!r}")
        await caller.ack_all()

    listed = await get_json(client, f"{url}/api/sockets")
    assert listed["open"] == 1 and listed["count"] == 1
    s = listed["sockets"][0]
    assert (s["id"], s["socket_id"], s["uri"], s["protocol"], s["state"]) == (1, "conn-A=", "/live?x=1", "chat", "open")
    sent = ["one", "dos ✓", HOSTILE]
    assert s["messages"] == {"to_app": 3, "to_caller": 4}
    assert s["bytes"]["to_app"] == sum(len(t.encode()) for t in sent)
    assert s["bytes"]["to_caller"] == len(b"hello from the app") + sum(len(("echo: " + t).encode()) for t in sent)
    assert s["last"]["direction"] == "to_caller" and s["last"]["text"] == "echo: " + HOSTILE
    status = await get_json(client, f"{url}/api/status")
    assert status["sockets"] == {"open": 1, "count": 1}

    detail = await get_json(client, f"{url}/api/sockets/1")
    assert detail["headers"]["Origin"] == ["https://page.example"]
    assert [(m["direction"], m["text"]) for m in detail["kept"]] == [
        ("to_caller", "hello from the app"), ("to_app", "one"), ("to_caller", "echo: one"), ("to_app", "dos ✓"),
        ("to_caller", "echo: dos ✓"), ("to_app", HOSTILE), ("to_caller", "echo: " + HOSTILE)]
    assert detail["kept"][5]["text"] == HOSTILE  # the API gives the bytes as they passed: the page escapes them

    await caller.close(4100)
    await wait_until(lambda: app.close_codes, what="the app's socket closed")
    closed = await get_json(client, f"{url}/api/sockets/1")
    assert (closed["state"], closed["close_code"], closed["closed_by"]) == ("closed", 4100, "caller")
    assert closed["closed_at"] >= closed["opened_at"]
    assert "error" in await get_json(client, f"{url}/api/sockets/2", status=404)
    assert "error" in await get_json(client, f"{url}/api/sockets/abc", status=404)


async def test_the_inspector_sends_into_an_open_session_toward_the_caller_or_the_app(gateway, ws_app, inspected):
    app, _ = ws_app
    h, url, client = inspected
    caller = await opened(gateway, "conn-B=")

    done = await post(client, f"{url}/api/sockets/1/send", {"text": "injected ✓ " + HOSTILE}, 200)  # default: caller
    assert done["sent"] == {"to": "caller", "size": len(("injected ✓ " + HOSTILE).encode())}
    await wait_until(lambda: "injected ✓ " + HOSTILE in caller.texts(), what="the injected text reaches the caller")
    await caller.ack_all()
    assert "injected ✓ " + HOSTILE not in app.received  # toward the caller only

    await post(client, f"{url}/api/sockets/1/send", {"text": "to the app", "to": "app"}, 200)
    await wait_until(lambda: "to the app" in app.received, what="the injected text reaches the app")
    await wait_until(lambda: "echo: to the app" in caller.texts(), what="the app's answer to it")
    await caller.ack_all()
    await wait_until(lambda: h.agent.socket_log.get(1).count["to_caller"] == 3, what="the echo is recorded")

    detail = await get_json(client, f"{url}/api/sockets/1")
    marked = [(m["direction"], m["text"], m["injected"]) for m in detail["kept"]]
    assert marked == [("to_caller", "hello from the app", False), ("to_caller", "injected ✓ " + HOSTILE, True),
                      ("to_app", "to the app", True), ("to_caller", "echo: to the app", False)]

    for bad, field in (({"text": 5}, "text"), ({"text": "x", "to": "server"}, "to"), ({"text": "x", "as": 1}, "as"),
                       ([], "body")):
        assert (await post(client, f"{url}/api/sockets/1/send", bad, 400))["field"] == field
    assert "UTF-8" in (await post(client, f"{url}/api/sockets/1/send", '{"text": "\\ud800"}', 400))["error"]
    assert "not JSON" in (await post(client, f"{url}/api/sockets/1/send", "{nope", 400))["error"]
    too_big = await post(client, f"{url}/api/sockets/1/send", {"text": "x" * 40_000}, 413)  # over one ws_message
    assert "at most" in too_big["error"]
    assert "at most" in (await post(client, f"{url}/api/sockets/1/send", {"text": "x" * 140_000, "to": "app"}, 413))["error"]
    assert "unknown id" in (await post(client, f"{url}/api/sockets/9/send", {"text": "x"}, 404))["error"]


async def test_sending_into_a_closed_or_refused_session_is_a_clear_409(gateway, ws_app, inspected):
    app, _ = ws_app
    h, url, client = inspected
    caller = await opened(gateway, "conn-C=")
    await caller.say("bye")  # the app closes with 4000
    await wait_until(lambda: caller.frames("ws_close"), what="the app's close reaches the server")
    closed = await get_json(client, f"{url}/api/sockets/1")
    assert (closed["state"], closed["close_code"], closed["closed_by"]) == ("closed", 4000, "app")
    refused = await post(client, f"{url}/api/sockets/1/send", {"text": "too late"}, 409)
    assert refused["error"] == "WebSocket session #1 is closed (by the app with 4000): nothing was sent"
    sent_before = len(caller.frames("ws_message"))
    await asyncio.sleep(0)  # nothing was queued: no frame can follow
    assert len(caller.frames("ws_message")) == sent_before

    other = Caller(gateway, "conn-D=")
    await other.open("/refuse")
    assert other.frames("ws_refused")[0]["status"] == 403
    listed = (await get_json(client, f"{url}/api/sockets"))["sockets"]
    assert (listed[0]["state"], listed[0]["refused_status"], listed[0]["uri"]) == ("refused", 403, "/refuse")
    assert "refused handshake" in (await post(client, f"{url}/api/sockets/2/send", {"text": "x"}, 409))["error"]


async def test_sending_is_refused_from_another_origin_and_off_loopback_without_the_token(gateway, ws_app, running,
                                                                                         monkeypatch):
    monkeypatch.setattr("ttf.inspector.security.is_loopback", lambda host: False)  # as if bound to a LAN address
    app, port = ws_app
    gateway.speaks = ("ws",)
    h = running(make_config(gateway, port, inspect=("127.0.0.1", 0)))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    base, token = h.of(TunnelEstablished)[0].inspector_url.split("/?token=")
    await opened(gateway, "conn-E=")
    send = f"{base}/api/sockets/1/send"
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as client:
        assert "token" in (await post(client, send, {"text": "no token", "to": "app"}, 401))["error"]
        assert "token" in (await get_json(client, f"{base}/api/sockets", status=401))["error"]
        assert "token" in (await post(client, send, {"text": "x"}, 401, headers={"Authorization": "Bearer wrong"}))["error"]
        for cross in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            assert (await post(client, send, {"text": "cross", "to": "app"}, 403, headers=auth | cross))["error"]
        await post(client, send, {"text": "with the token", "to": "app"}, 200, headers=auth)
    await wait_until(lambda: app.received, what="the allowed text reaches the app")
    assert app.received == ["with the token"]  # nothing refused ever reached it
