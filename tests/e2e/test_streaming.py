"""Streamed answers on the function URL edge (issue 23), through the local stack with the real
`ttf`: the caller gets the local app's body as it is produced (SSE timing per event, subdomain and
path form), slow answers, a 20 MB download with no redirect, Range/206 and Content-Encoding
unchanged, the path-encoding table, an old agent's whole answers, and max_stream_seconds.

The origin runs in this test's own event loop, so the times it writes events at and the times the
caller reads them come from one clock (time.monotonic)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import AsyncIterator, Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from scripts.harness.stack import LocalStack, TtfAgent, agent_token
from scripts.harness.wait import wait_until_async
from tests.e2e.client import request, target
from tests.e2e.conftest import MAX_STREAM_S, Tunnel
from tests.e2e.origin import pattern

SSE_EVENTS = 20
SSE_GAP_S = 0.2
DOWNLOAD = 20 * 1024 * 1024


class Origin:
    """A local app that streams: SSE with recorded write times, slow answers, files with Range."""

    def __init__(self, folder: Path) -> None:
        self.written: dict[str, list[float]] = {}  # run id -> monotonic time each event was written
        self.ended: dict[str, str] = {}  # run id -> "done" | "cancelled" (the agent stopped the request)
        self.file = folder / "download.bin"
        self.file.write_bytes(pattern(DOWNLOAD))
        self.gzipped = gzip.compress(b"compressed by the app " * 1000)
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def sse(self, request: web.Request) -> web.StreamResponse:
        run, n, gap = request.query["run"], int(request.query["n"]), float(request.query["gap"])
        times = self.written.setdefault(run, [])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            for i in range(n):
                if i:
                    await asyncio.sleep(gap)  # the app's own pacing: what is measured is the delay after it
                times.append(time.monotonic())
                await response.write(f"id: {i}\ndata: {json.dumps({'i': i})}\n\n".encode())
        except (asyncio.CancelledError, ConnectionResetError):
            self.ended[run] = "cancelled"
            raise
        self.ended[run] = "done"
        await response.write_eof()
        return response

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query["s"]))  # the slow local service under test
        return web.Response(text="slept")

    async def download(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(self.file, headers={"Content-Type": "application/octet-stream"})  # Range/206 built in

    async def compressed(self, request: web.Request) -> web.Response:
        return web.Response(body=self.gzipped, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async def broken(self, request: web.Request) -> web.StreamResponse:
        """Half a chunked body, then the connection drops (an app that crashed mid-answer)."""
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        await response.write(b"half of the body")
        await asyncio.sleep(0.3)
        assert request.transport is not None
        request.transport.close()
        return response

    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response({"raw_path": request.raw_path})

    SHORT = json.dumps({"ok": True, "items": list(range(50)), "text": "caf\u00e9 \u2713"}).encode()

    async def short(self, request: web.Request) -> web.Response:
        """A ~1 KB JSON answer, complete at once, with repeated headers and two cookies."""
        response = web.Response(body=self.SHORT, headers={"Content-Type": "application/json"})
        response.headers.add("X-Multi", "one")
        response.headers.add("X-Multi", "two")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    BLOCK = bytes(range(256)) * 4096  # 1 MiB

    async def big(self, request: web.Request) -> web.StreamResponse:
        """``mib`` MiB written 1 MiB at a time, never held whole."""
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for _ in range(int(request.query["mib"])):
            await response.write(self.BLOCK)
        await response.write_eof()
        return response

    async def __aenter__(self) -> "Origin":
        app = web.Application()
        app.router.add_get("/sse", self.sse)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/download", self.download)
        app.router.add_get("/compressed", self.compressed)
        app.router.add_get("/echo/{tail:.*}", self.echo)
        app.router.add_get("/short", self.short)
        app.router.add_get("/broken", self.broken)
        app.router.add_get("/big", self.big)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def origin_app(tmp_path: Path) -> AsyncIterator[Origin]:
    async with Origin(tmp_path) as app:
        yield app


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180), auto_decompress=False) as s:
        yield s


def forms(stack, tunnel_id: str) -> dict[str, str]:
    """The tunnel's two URL forms on the stream edge: ``<id>.localhost:<port>`` and ``/<id>``."""
    if not stack.stream_url:
        pytest.fail("the stack wrote no stream_url")
    port = urlsplit(stack.stream_url).port
    return {"subdomain": f"http://{tunnel_id}.localhost:{port}", "path": f"{stack.stream_url}/{tunnel_id}"}


@pytest.fixture
def streaming_tunnel(agent_factory, origin_app: Origin) -> Iterator[str]:
    """Today's `ttf` (it announces `stream`) in front of the streaming origin."""
    yield agent_factory(origin_app.port).tunnel_id


async def read_events(session: aiohttp.ClientSession, base: str, path: str) -> tuple[int, dict, list[float], bytes]:
    """GET an event stream; (status, headers, monotonic arrival time of each event, whole body)."""
    url, host = target(base, path)
    arrivals: list[float] = []
    body = b""
    async with session.get(aiohttp.client.URL(url, encoded=True), headers={"Host": host},
                           allow_redirects=False) as resp:
        buffered = b""
        async for piece in resp.content.iter_any():
            now = time.monotonic()
            body += piece
            buffered += piece
            while b"\n\n" in buffered:
                _, buffered = buffered.split(b"\n\n", 1)
                arrivals.append(now)
        return resp.status, dict(resp.headers), arrivals, body


@pytest.mark.parametrize("form", ["subdomain", "path"])
async def test_sse_events_reach_the_caller_as_they_are_written(session, stack, origin_app, streaming_tunnel, form):
    run = f"sse-{form}"
    status, headers, arrivals, body = await read_events(
        session, forms(stack, streaming_tunnel)[form], f"/sse?run={run}&n={SSE_EVENTS}&gap={SSE_GAP_S}")
    assert status == 200 and headers["Content-Type"] == "text/event-stream", body[:300]
    assert body == b"".join(f"id: {i}\ndata: {json.dumps({'i': i})}\n\n".encode() for i in range(SSE_EVENTS))
    written = origin_app.written[run]
    assert len(arrivals) == len(written) == SSE_EVENTS
    in_order = [a - w for a, w in zip(arrivals, written, strict=True)]
    delays = sorted(in_order)
    p50, p95 = statistics.median(delays), delays[int(0.95 * len(delays)) - 1]
    print(f"\n{form}: per-event delay p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms")
    assert p50 <= 0.25 and p95 <= 0.5, [round(d * 1000) for d in in_order]


async def test_a_40_s_answer_is_served(session, stack, streaming_tunnel):
    reply = await request(session, "GET", forms(stack, streaming_tunnel)["subdomain"], "/slow?s=40")
    assert reply.status == 200 and reply.body == b"slept" and reply.seconds >= 40


async def test_a_20_mb_download_streams_byte_exact_with_no_redirect(session, stack, streaming_tunnel):
    reply = await request(session, "GET", forms(stack, streaming_tunnel)["path"], "/download")
    assert reply.status == 200, reply.body[:300]
    assert "location" not in reply.headers and "x-tunnel-body" not in reply.headers
    assert len(reply.body) == DOWNLOAD
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(pattern(DOWNLOAD)).digest()


async def test_range_206_accept_ranges_and_content_encoding_pass_unchanged(session, stack, origin_app,
                                                                          streaming_tunnel):
    base = forms(stack, streaming_tunnel)["subdomain"]
    whole = await request(session, "GET", base, "/download", headers={"Range": "bytes=1000-1999"})
    assert whole.status == 206, whole.body[:300]
    assert whole.headers["Content-Range"] == f"bytes 1000-1999/{DOWNLOAD}"
    assert whole.body == pattern(DOWNLOAD)[1000:2000]
    head = await request(session, "GET", base, "/download", headers={"Range": "bytes=0-0"})
    assert head.headers.get("Accept-Ranges") == "bytes" and head.body == pattern(1)
    packed = await request(session, "GET", base, "/compressed", headers={"Accept-Encoding": "gzip"})
    assert packed.status == 200 and packed.headers["Content-Encoding"] == "gzip"
    assert packed.body == origin_app.gzipped  # the app's bytes, not decompressed on the way


async def test_a_body_that_breaks_mid_way_is_cut_so_the_caller_can_tell(session, stack, streaming_tunnel):
    """The app drops its connection mid-body: the agent ends the stream with an error, forward fails
    the Runtime API stream (error trailers), and the caller's chunked body ends without its last
    chunk: an HTTP client reports an incomplete body instead of a short one."""
    url, host = target(forms(stack, streaming_tunnel)["subdomain"], "/broken")
    async with session.get(url, headers={"Host": host}) as resp:
        assert resp.status == 200
        got = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for piece in resp.content.iter_any():
                got += piece
    assert got == b"half of the body"


PATHS = [("/echo/a%2Fb", "/echo/a%2Fb"), ("/echo/%2525", "/echo/%2525"), ("/echo/100%25done", "/echo/100%25done")]


@pytest.mark.parametrize("form", ["subdomain", "path"])
@pytest.mark.parametrize("sent,received", PATHS)
async def test_the_path_encoding_table_on_the_streaming_edge(session, stack, streaming_tunnel, form, sent, received):
    reply = await request(session, "GET", forms(stack, streaming_tunnel)[form], sent)
    assert reply.status == 200, reply.body[:300]
    assert json.loads(reply.body)["raw_path"] == received


def first_event_for(agent: Tunnel, path: str) -> dict:
    """The agent's first JSON line about ``path``: ``stream_started`` if the answer streamed, else ``request``."""
    return agent.agent.wait_json(lambda d: d.get("path") == path and d.get("event") in ("stream_started", "request"),
                                 30)


@pytest.mark.parametrize("form", ["subdomain", "path"])
async def test_a_short_answer_goes_whole_on_the_stream_edge_byte_exact(session, stack, agent_factory, origin_app,
                                                                       form):
    """Today's ttf, offered a stream, sends a short complete answer as one http_response (ttf.whole):
    its JSON line says it did not stream, and the caller gets what the HTTP API edge gives, byte for byte.
    An event stream as short still streams (the same observable, the other way)."""
    agent = agent_factory(origin_app.port)
    base = forms(stack, agent.tunnel_id)[form]
    reply = await request(session, "GET", base, "/short?x=%2F")
    assert reply.status == 200 and reply.body == Origin.SHORT
    assert len(reply.headers.getall("Set-Cookie")) == 2
    assert reply.headers["X-Multi"] == "one, two" and reply.headers["Content-Type"] == "application/json"
    done = first_event_for(agent, "/short")
    assert done["event"] == "request" and "streamed" not in done and done["status"] == 200
    assert done["bytes_out"] == len(Origin.SHORT)
    http_api = await request(session, "GET", agent.public_url if form == "subdomain" else agent.path_based_url,
                             "/short?x=%2F")
    assert http_api.body == reply.body
    assert {k: http_api.headers.getall(k) for k in ("X-Multi", "Set-Cookie", "Content-Type")} == \
        {k: reply.headers.getall(k) for k in ("X-Multi", "Set-Cookie", "Content-Type")}
    status, _, _, body = await read_events(session, base, "/sse?run=short-" + form + "&n=1&gap=0")
    assert status == 200 and body == b'id: 0\ndata: {"i": 0}\n\n'
    assert first_event_for(agent, "/sse")["event"] == "stream_started"


async def test_an_old_agent_gets_whole_answers_on_the_streaming_edge(session, stack, origin_app, tmp_path):
    """The release before channel v2 announces nothing: forward_stream offers it no stream, and the
    answer reaches the caller whole, when the app has finished it."""
    from scripts.bench.__main__ import prepare_baseline
    from tests.e2e.test_compat import PREVIOUS_RELEASE
    previous_tree = prepare_baseline(PREVIOUS_RELEASE)[1]
    with TtfAgent(stack.ws_url, origin_app.port, tmp_path, name="previous-ttf", root=previous_tree,
                  token=stack.token) as agent:
        status, _, arrivals, body = await read_events(session, forms(stack, agent.tunnel_id)["path"],
                                                      "/sse?run=old&n=5&gap=0.3")
    assert status == 200 and body.count(b"\n\n") == 5
    written = origin_app.written["old"]
    assert min(arrivals) >= written[-1]  # nothing before the app's last event: one whole answer


async def test_max_stream_seconds_ends_a_stream_and_the_agent_stops_the_local_request(session, stack, origin_app,
                                                                                       streaming_tunnel):
    """The e2e stack runs with max_stream_seconds = MAX_STREAM_S (conftest): an endless SSE stream
    ends cleanly there (EventSource reconnects), and the agent, told by stream_cancel, stops its local request."""
    started = time.monotonic()
    status, _, arrivals, _ = await read_events(session, forms(stack, streaming_tunnel)["subdomain"],
                                               "/sse?run=cap&n=100000&gap=1")
    took = time.monotonic() - started
    assert status == 200 and MAX_STREAM_S - 5 <= took <= MAX_STREAM_S + 10
    assert len(arrivals) >= MAX_STREAM_S * 0.8  # one event a second, live until the cap
    await wait_until_async(lambda: "cap" in origin_app.ended, 5, what="the origin's request to be stopped")
    assert origin_app.ended["cap"] == "cancelled"


# --------------------------------------------------------------------------- load (make test-load)
# A stack of their own: the session stack caps streams at 45 s; these need the default 600 s.

MIB = 1024 * 1024
RSS_DOWNLOAD_MB = 100
FIVE_MINUTES_S = 300  # one event a second


@pytest.fixture(scope="module")
def long_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("long-stack"), extra_args=("--stream-port", "0")) as local:
        yield local


def long_forms(local: LocalStack, tunnel_id: str) -> dict[str, str]:
    port = urlsplit(local.state["stream_url"]).port
    return {"subdomain": f"http://{tunnel_id}.localhost:{port}", "path": f"{local.state['stream_url']}/{tunnel_id}"}


class Silent(Origin):
    """Event 0, a silence of ``s`` seconds, event 1."""

    async def sse(self, request: web.Request) -> web.StreamResponse:
        if "silence" not in request.query:
            return await super().sse(request)
        run, silence = request.query["run"], float(request.query["silence"])
        times = self.written.setdefault(run, [])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(2):
            if i:
                await asyncio.sleep(silence)  # the silence under test
            times.append(time.monotonic())
            await response.write(f"data: {i}\n\n".encode())
        await response.write_eof()
        return response


@pytest.mark.load
async def test_after_60_s_of_silence_the_next_event_arrives_within_1_s(session, long_stack, tmp_path):
    async with Silent(tmp_path) as app:
        with TtfAgent(long_stack.state["ws_url"], app.port, tmp_path, token=agent_token(long_stack.state)) as agent:
            status, _, arrivals, _ = await read_events(session, long_forms(long_stack, agent.tunnel_id)["subdomain"],
                                                       "/sse?run=quiet&silence=60")
    assert status == 200 and len(arrivals) == 2
    late = arrivals[1] - app.written["quiet"][1]
    print(f"\nafter 60 s of silence: the next event {late * 1000:.0f} ms after it was written")
    assert late <= 1.0


@pytest.mark.load
async def test_a_5_minute_stream_arrives_whole_and_in_order(long_stack, tmp_path):
    # Its own client: the shared session's 180 s total would cut this 300 s stream; a stall
    # still fails it (no byte for 30 s), and the whole stays bounded.
    timeout = aiohttp.ClientTimeout(total=FIVE_MINUTES_S + 120, sock_read=30)
    async with Origin(tmp_path) as app, aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        with TtfAgent(long_stack.state["ws_url"], app.port, tmp_path, token=agent_token(long_stack.state)) as agent:
            status, _, arrivals, body = await read_events(session, long_forms(long_stack, agent.tunnel_id)["path"],
                                                          f"/sse?run=long&n={FIVE_MINUTES_S}&gap=1")
    assert status == 200
    assert body == b"".join(f"id: {i}\ndata: {json.dumps({'i': i})}\n\n".encode() for i in range(FIVE_MINUTES_S))
    delays = sorted(a - w for a, w in zip(arrivals, app.written["long"], strict=True))
    print(f"\n5-minute stream: per-event delay p50 {statistics.median(delays) * 1000:.0f} ms, "
          f"max {delays[-1] * 1000:.0f} ms")


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (from /proc's parent links)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found.extend(children)
        todo.extend(children)
    return found


def forward_stream_peaks(stack_pid: int) -> dict[int, int]:
    """pid -> peak RSS (VmHWM, KiB) of the stack's forward_stream environments (httptunnel.runtime_api)."""
    peaks = {}
    for pid in descendants(stack_pid):
        try:
            if b"httptunnel.runtime_api" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks[pid] = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return peaks


@pytest.mark.load
async def test_forward_streams_a_100_mb_download_without_holding_it(session, long_stack, tmp_path):
    """Issue 23 item 4, forward's side: the peak RSS of the forward_stream environment that relayed
    a 100 MiB download, against the idle ones. Run alone:
    .venv/bin/python -m pytest -m load -s tests/e2e/test_streaming.py -k 100_mb"""
    async with Origin(tmp_path) as app:
        before = forward_stream_peaks(long_stack.proc.pid)
        with TtfAgent(long_stack.state["ws_url"], app.port, tmp_path, token=agent_token(long_stack.state)) as agent:
            reply = await request(session, "GET", long_forms(long_stack, agent.tunnel_id)["path"],
                                  f"/big?mib={RSS_DOWNLOAD_MB}")
        after = forward_stream_peaks(long_stack.proc.pid)
    assert reply.status == 200 and len(reply.body) == RSS_DOWNLOAD_MB * MIB
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(Origin.BLOCK * RSS_DOWNLOAD_MB).digest()
    grown = {pid: after[pid] - before.get(pid, after[pid]) for pid in after}
    relayed = max(grown, key=lambda pid: grown[pid])
    idle = min(after.values())
    print(f"\nforward_stream peak RSS for a {RSS_DOWNLOAD_MB} MiB download: {after[relayed] / 1024:.1f} MiB "
          f"(grew {grown[relayed] / 1024:.1f} MiB; an idle environment: {idle / 1024:.1f} MiB)")
    assert after[relayed] - idle < 48 * 1024  # one 8 MiB segment and its copies, never the body
