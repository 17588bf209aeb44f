"""The agent's streamed answers through the local stack's streaming edge (``stream_url``): SSE
events reach the caller as the local app writes them, a download past the bulk-lane threshold
arrives byte for byte, and ``--max-streams`` turns a stream past the cap into 429 ``tunnel_busy``.
The local app here runs in the test's loop on 127.0.0.1 (an ephemeral port); ttf is a real process."""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from httptunnel import protocol
from tests.e2e.client import target
from tests.e2e.origin import pattern

# The layer side of streaming (forward_stream's relay, the response Lambda's frames: h/relay) sets
# CAP_STREAM in SERVER_CAPABILITIES when it lands; before that the edge answers whole.
pytestmark = pytest.mark.skipif(protocol.CAP_STREAM not in protocol.SERVER_CAPABILITIES,
                                reason="the server side does not speak `stream` yet (issue 23's relay)")


class SseApp:
    def __init__(self) -> None:
        self.written: dict[int, float] = {}  # event number -> monotonic time the app wrote it
        self.hold = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/events", self._events)
        self.app.router.add_get("/bytes", self._bytes)
        self.app.router.add_get("/hold", self._hold)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i in range(int(request.query.get("n", "10"))):
            await asyncio.sleep(float(request.query.get("gap", "0.2")))
            self.written[i] = time.monotonic()
            await resp.write(f"id: {i}\ndata: {{\"n\": {i}}}\n\n".encode())
        await resp.write_eof()
        return resp

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        body = pattern(int(request.query["n"]))
        for start in range(0, len(body), 1 << 20):
            await resp.write(body[start:start + (1 << 20)])
        await resp.write_eof()
        return resp

    async def _hold(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": held\n\n")
        await self.hold.wait()
        await resp.write_eof()
        return resp


@pytest.fixture
async def sse_app(aiohttp_server):
    app = SseApp()
    server = await aiohttp_server(app.app, host="127.0.0.1")
    yield app, server.port
    app.hold.set()


def subdomain(stack, tunnel) -> str:
    if not stack.stream_url:
        pytest.fail("the stack wrote no stream_url")
    return f"http://{tunnel.tunnel_id}.localhost:{urlsplit(stack.stream_url).port}"


async def test_sse_events_arrive_as_they_are_written(stack, agent_factory, sse_app):
    app, port = sse_app
    tunnel = agent_factory(port)
    url, host = target(subdomain(stack, tunnel), "/events?n=10&gap=0.2")
    arrived: dict[int, float] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        async with s.get(url, headers={"Host": host}) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            buf = b""
            async for piece in resp.content.iter_any():
                buf += piece
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    n = int(event.split(b"\n")[0].removeprefix(b"id: "))
                    arrived[n] = time.monotonic()
    assert sorted(arrived) == list(range(10))
    delays = [arrived[i] - app.written[i] for i in range(10)]
    print(f"per-event delay p50 {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms")
    assert statistics.median(delays) < 0.5, delays  # live, not one lump at the end (2 s of events)
    assert arrived[9] - arrived[0] > 1.0  # they came spread out as written


async def test_a_big_streamed_download_arrives_byte_for_byte(stack, agent_factory, sse_app):
    app, port = sse_app
    tunnel = agent_factory(port)
    size = 12 * 1024 * 1024 + 321  # past the 256 KiB bulk threshold: segments through S3
    url, host = target(subdomain(stack, tunnel), f"/bytes?n={size}")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        async with s.get(url, headers={"Host": host}) as resp:
            assert resp.status == 200 and "location" not in resp.headers
            digest = hashlib.sha256()
            got = 0
            async for piece in resp.content.iter_any():
                digest.update(piece)
                got += len(piece)
    assert got == size and digest.digest() == hashlib.sha256(pattern(size)).digest()


async def test_past_max_streams_the_caller_gets_429_tunnel_busy(stack, agent_factory, sse_app):
    app, port = sse_app
    tunnel = agent_factory(port, "--max-streams", "1")
    url, host = target(subdomain(stack, tunnel), "/hold")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        async with s.get(url, headers={"Host": host}) as first:
            assert first.status == 200
            assert await first.content.readuntil(b"\n\n") == b": held\n\n"
            async with s.get(url, headers={"Host": host}) as second:
                assert second.status == 429 and second.headers["x-tunnel-error"] == "tunnel_busy"
            app.hold.set()
            await first.read()
