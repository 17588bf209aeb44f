"""Fakes for the agent tests: an aiohttp server playing API Gateway, and a local app.

FakeGateway accepts WebSocket upgrades on /ws, answers `ready` with
`connection_established`, answers `ping` with `pong`, records every frame, lets a test
send `http_request` frames, kill a socket, go silent, or refuse upgrades. Like the connect
Lambda it keeps the reclaim token the agent presents with a new id, and honours `X-Tunnel-Id`
only with that token (else 409, also for an id it never handed out); connection_established
carries no token. It also serves presigned-URL-like endpoints: GET /body/{key} and PUT /upload/{key}.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import WSMsgType, web

from ttf.agent import TunnelAgent
from ttf.backoff import Backoff
from ttf.config import Config

from httptunnel.limits import WS_FRAME_MAX
from scripts.harness.wait import wait_until_async


wait_until = wait_until_async  # one deadline-based wait for the tests, the bench and the dev loop


@dataclass
class FakeConn:
    index: int
    headers: dict[str, str]
    ws: web.WebSocketResponse
    request: web.Request
    received: list[dict[str, Any]] = field(default_factory=list)
    frame_sizes: list[int] = field(default_factory=list)
    inbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    silent: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def request_frame(self, request_id: str, method: str = "GET", uri: str = "/", **extra: Any) -> None:
        message = {"type": "http_request", "request_id": request_id, "method": method, "uri": uri,
                   "headers": extra.pop("headers", {}), "body": extra.pop("body", ""), "timestamp": 0}
        message.update(extra)
        await self.send(message)

    async def next_reply(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    def kill(self) -> None:
        """Drop the TCP connection without a close handshake."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


def raw_query(request: web.Request) -> str:
    return request.raw_path.partition("?")[2]


class FakeGateway:
    def __init__(self) -> None:
        self.conns: list[FakeConn] = []
        self.refuse_status: int | None = None
        self.establish = True
        # request ids sent on a new socket before it is established (the server routes to a
        # connection from $connect on, before the agent's `ready`)
        self.early_request_ids: list[str] = []
        self.tunnel_id = "tun123"
        self.next_ids: list[str] = []  # ids for new tunnels, in order (then tunnel_id), for several tunnels
        self.reservations: dict[str, str] = {}  # tunnel id -> reclaim token
        self.bodies: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        self.url = ""
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/ws", self._ws)
        self.app.router.add_get("/body/{key}", self._get_body)
        self.app.router.add_put("/upload/{key}", self._put_body)
        self.app.router.add_post("/form", self._post_form)
        self.form_max = 64 * 1024 * 1024  # the policy's content-length-range, as S3 enforces it
        self.form_parts: list[list[str]] = []  # part names of each POST, in order
        # channel v2: what this fake server speaks (default: nothing, like servers before it), and
        # how many of the next answers it refuses the way API Gateway refuses a throttled message
        self.speaks: tuple[str, ...] = ()
        self.throttle_answers = 0

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def body_url(self, key: str) -> str:
        return f"{self.url}/body/{key}?X-Amz-Signature=ab%2Fcd&X-Amz-Expires=60"

    def upload_url(self, key: str) -> str:
        return f"{self.url}/upload/{key}?X-Amz-Signature=ab%2Fcd"

    async def _get_body(self, request: web.Request) -> web.Response:
        if raw_query(request) != "X-Amz-Signature=ab%2Fcd&X-Amz-Expires=60":
            return web.Response(status=403, text="signature mangled")
        key = request.match_info["key"]
        if key not in self.bodies:
            return web.Response(status=404)
        return web.Response(body=self.bodies[key])

    async def _put_body(self, request: web.Request) -> web.Response:
        if raw_query(request) != "X-Amz-Signature=ab%2Fcd":
            return web.Response(status=403, text="signature mangled")
        self.uploads[request.match_info["key"]] = await request.read()
        return web.Response(status=200)

    def upload_form(self, key: str) -> dict[str, Any]:
        """Like a presigned S3 POST: the fields must come back as sent, the file last."""
        return {"url": f"{self.url}/form", "fields": {"key": f"resp/{key}", "policy": "cG9saWN5",
                                                       "x-amz-signature": "ab/cd"}}

    async def _post_form(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        fields: dict[str, str] = {}
        names: list[str] = []
        body = b""
        async for part in reader:
            names.append(part.name or "")
            if part.name == "file":
                body = await part.read()
                break
            fields[part.name or ""] = await part.text()
        self.form_parts.append(names)
        if fields.get("x-amz-signature") != "ab/cd" or fields.get("policy") != "cG9saWN5":
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        if len(body) > self.form_max:
            return web.Response(status=400, text="<Error><Code>EntityTooLarge</Code></Error>")
        self.uploads[fields["key"].removeprefix("resp/")] = body
        return web.Response(status=204)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_status is not None:
            return web.Response(status=self.refuse_status, text="refused")
        wanted = request.headers.get("X-Tunnel-Id")
        if wanted and (wanted not in self.reservations
                       or self.reservations[wanted] != request.headers.get("X-Tunnel-Reclaim-Token")):
            return web.Response(status=409, text="tunnel id is not reserved for this reclaim token")
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        conn = FakeConn(len(self.conns), dict(request.headers), ws, request)
        self.conns.append(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                conn.frame_sizes.append(len(msg.data.encode("utf-8")))
                data = json.loads(msg.data)
                conn.received.append(data)
                if conn.silent:
                    continue
                if data.get("type") == "ready" and self.establish:
                    for request_id in self.early_request_ids:
                        await conn.request_frame(request_id, "GET", f"/echo?early={request_id}")
                    await conn.send(self._established(conn))
                elif data.get("type") == "ping":
                    await conn.send({"type": "pong"})
                elif data.get("type") in {"http_response", "error"}:
                    if self.throttle_answers > 0:
                        self.throttle_answers -= 1
                        await conn.send({"message": "Too Many Requests", "connectionId": f"conn-{conn.index}",
                                         "requestId": "Zm9vYmFyYmF6cXV4PQ="})
                        continue
                    conn.inbox.put_nowait(data)
                    if "seq" in data and data.get("ack"):
                        await conn.send({"type": "ack", "request_id": data["request_id"], "seq": data["seq"]})
        finally:
            conn.closed.set()
        return ws

    def _established(self, conn: FakeConn) -> dict[str, Any]:
        tunnel_id = conn.headers.get("X-Tunnel-Id") or \
            (self.next_ids.pop(0) if self.next_ids else self.tunnel_id)
        self.reservations[tunnel_id] = conn.headers.get("X-Tunnel-Reclaim-Token", "")
        announced = [c.strip() for c in conn.headers.get("X-Tunnel-Capabilities", "").split(",")]
        agreed = [c for c in self.speaks if c in announced]
        return ({"capabilities": agreed} if agreed else {}) | {
            "type": "connection_established",
            "connection_id": f"conn-{conn.index}",
            "tunnel_id": tunnel_id,
            "public_url": f"https://api.example.test/{tunnel_id}",
            "subdomain_url": f"https://{tunnel_id}.t.example.test",
            "path_based_url": f"https://api.example.test/{tunnel_id}",
            "future_field": "ignored by the agent",
        }

    def assert_frames_fit(self) -> None:
        for conn in self.conns:
            assert all(size <= WS_FRAME_MAX for size in conn.frame_sizes), conn.frame_sizes


class LocalApp:
    """The developer's local service."""

    def __init__(self) -> None:
        self.inflight = 0
        self.max_inflight = 0
        self.arrived = 0
        self.slow_arrived = 0
        self.release = asyncio.Event()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        r = self.app.router
        r.add_route("*", "/echo", self._echo)
        r.add_route("*", "/echo/{tail:.*}", self._echo)
        r.add_get("/redirect", self._redirect)
        r.add_get("/slow", self._slow)
        r.add_get("/hold", self._hold)
        r.add_route("*", "/big", self._big)
        r.add_get("/gzip", self._gzip)
        r.add_get("/fatheaders", self._fat_headers)

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        data = {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        resp = web.json_response(data)
        resp.headers.add("X-Multi", "one")
        resp.headers.add("X-Multi", "two")
        resp.headers["Connection"] = "keep-alive, X-Secret-Hop"
        resp.headers["X-Secret-Hop"] = "should vanish"
        return resp

    async def _redirect(self, request: web.Request) -> web.Response:
        resp = web.Response(status=302, headers={"Location": "/elsewhere?x=1"})
        resp.set_cookie("a", "1")
        resp.set_cookie("b", "2")
        return resp

    async def _slow(self, request: web.Request) -> web.Response:
        self.slow_arrived += 1
        await asyncio.sleep(float(request.query.get("s", "1")))
        return web.Response(text="slow done")

    async def _hold(self, request: web.Request) -> web.Response:
        self.arrived += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await self.release.wait()
        finally:
            self.inflight -= 1
        return web.Response(text="held " + request.query.get("i", ""))

    async def _big(self, request: web.Request) -> web.Response:
        return web.Response(body=pattern(int(request.query["n"])), content_type="application/octet-stream")

    async def _fat_headers(self, request: web.Request) -> web.Response:
        resp = web.Response(text="small body")
        for i in range(5):
            resp.headers[f"X-Fat-{i}"] = "f" * 7000
        return resp

    async def _gzip(self, request: web.Request) -> web.Response:
        import gzip

        return web.Response(body=gzip.compress(b"hello " * 100), headers={"Content-Encoding": "gzip"})


def pattern(n: int) -> bytes:
    """n deterministic, non-repeating-looking bytes."""
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KB
    return (block * (n // len(block) + 1))[:n]


@pytest.fixture
async def gateway(aiohttp_server: Callable[..., Awaitable[Any]]) -> FakeGateway:
    fake = FakeGateway()
    server = await aiohttp_server(fake.app, host="127.0.0.1")
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.assert_frames_fit()


@pytest.fixture
async def local_app(aiohttp_server: Callable[..., Awaitable[Any]]) -> tuple[LocalApp, int]:
    app = LocalApp()
    server = await aiohttp_server(app.app, host="127.0.0.1")
    yield app, server.port
    app.release.set()


# ---- the agent in-process ------------------------------------------------------------

class Harness:
    def __init__(self, config: Config, sleep=None, backoff: Backoff | None = None) -> None:
        self.events: list[object] = []
        kwargs = {}
        if sleep is not None:
            kwargs["sleep"] = sleep
        self.agent = TunnelAgent(config, self.events.append, backoff=backoff or Backoff(initial=0.05, rand=lambda: 0.0), **kwargs)
        self.task: asyncio.Task | None = None

    def start(self) -> "Harness":
        self.task = asyncio.create_task(self.agent.run())
        return self

    async def stop(self, timeout: float = 10.0) -> None:
        self.agent.request_stop()
        await asyncio.wait_for(self.task, timeout)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def make_config(gateway, port: int, **over) -> Config:
    base = Config(endpoint=gateway.ws_url, port=port, host="127.0.0.1", heartbeat_interval=5.0,
                  connect_timeout=2.0, request_timeout=5.0, drain_timeout=3.0)
    return dataclasses.replace(base, **over)


@pytest.fixture
async def running():
    harnesses: list[Harness] = []

    def start(config: Config, **kwargs) -> Harness:
        h = Harness(config, **kwargs).start()
        harnesses.append(h)
        return h

    yield start
    for h in harnesses:
        if not h.task.done():
            await h.stop()
