"""Streamed answers in the agent (ttf.streaming): a fake edge (records frames, acks what it reads or
not) and a real local aiohttp server on 127.0.0.1. The wire contract is shared/README.md "The chunk
channel"; every frame the agent sends is decoded by protocol.decode, which refuses what breaks it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import math
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web

from httptunnel import protocol
from httptunnel.chunks import RetransmitTimer
from httptunnel.limits import AGENT_MESSAGE_MAX
from httptunnel.protocol import STREAM_CHUNK_MAX, STREAM_SEGMENT_MAX
from ttf.events import StreamStarted, TunnelEstablished
from ttf.forward import Forwarder, local_session, remote_session
from ttf.inspector import History
from ttf import whole
from ttf.streaming import BULK_MIN, Streamer, StreamSlots

from conftest import make_config, pattern, wait_until

Frame = protocol.HttpResponseHead | protocol.HttpResponseChunk | protocol.HttpResponseEnd


class StreamApp:
    """A local service that writes its answer over time, and tells what it went through."""

    def __init__(self) -> None:
        self.written = 0  # body bytes the app's writes have handed to its socket
        self.pending_since: float | None = None  # loop time a write started that has not returned
        self.disconnected = asyncio.Event()
        self.script: list[tuple[float, bytes]] = []  # /script: (delay before, bytes) writes
        self.app = web.Application()
        r = self.app.router
        r.add_get("/script", self._script)
        r.add_get("/endless", self._endless)
        r.add_get("/broken", self._broken)
        r.add_get("/big", self._big)
        r.add_get("/short", self._short)  # HEAD too (aiohttp adds it)
        r.add_get("/status/{code}", self._status)
        r.add_get("/late", self._late)

    async def _prepare(self, request: web.Request, content_type: str = "text/event-stream") -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": content_type, "X-Local": "yes"})
        await resp.prepare(request)
        return resp

    async def _write(self, resp: web.StreamResponse, data: bytes) -> None:
        self.pending_since = asyncio.get_running_loop().time()
        await resp.write(data)
        self.pending_since = None
        self.written += len(data)

    async def _script(self, request: web.Request) -> web.StreamResponse:
        resp = await self._prepare(request)
        for delay, data in self.script:
            if delay:
                await asyncio.sleep(delay)
            await self._write(resp, data)
        await resp.write_eof()
        return resp

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        resp = await self._prepare(request, "application/octet-stream")
        try:
            while True:
                await self._write(resp, b"x" * 16384)
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise

    async def _broken(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "10000"})
        await resp.prepare(request)
        await self._write(resp, b"y" * 1000)
        await asyncio.sleep(0.1)
        assert request.transport is not None
        request.transport.abort()  # the app dies mid-body
        return resp

    async def _big(self, request: web.Request) -> web.StreamResponse:
        resp = await self._prepare(request, "application/octet-stream")
        body = pattern(int(request.query["n"]))
        for start in range(0, len(body), 1 << 20):
            await self._write(resp, body[start:start + (1 << 20)])
        await resp.write_eof()
        return resp


    SHORT = gzip.compress(b'{"ok": true, "items": [1, 2, 3]}')

    async def _short(self, request: web.Request) -> web.Response:
        """A short JSON answer, complete at once, with what byte-exactness is about: repeated headers,
        cookies, an encoding the agent must not undo."""
        resp = web.Response(body=self.SHORT, headers={"Content-Type": "application/json",
                                                      "Content-Encoding": "gzip"})
        resp.headers.add("X-Multi", "one")
        resp.headers.add("X-Multi", "two")
        resp.set_cookie("a", "1")
        resp.set_cookie("b", "2")
        return resp

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), headers={"ETag": '"v1"'})

    async def _late(self, request: web.Request) -> web.StreamResponse:
        """A short JSON body whose end comes 300 ms after its first bytes (an app still working)."""
        resp = await self._prepare(request, "application/json")
        await self._write(resp, b'{"first": ')
        await asyncio.sleep(0.3)
        await self._write(resp, b'"then the rest"}')
        await resp.write_eof()
        return resp


class FakeEdge:
    """The edge's side: every frame decoded and kept; reads (acks) in order when ``reading``."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.streamer: Streamer | None = None
        self.reading = True
        self.read: dict[str, int] = {}

    async def send(self, frame: str) -> bool:
        assert len(frame.encode("utf-8")) <= AGENT_MESSAGE_MAX
        message = protocol.decode(frame)
        assert isinstance(message, (protocol.HttpResponseHead, protocol.HttpResponseChunk, protocol.HttpResponseEnd))
        self.frames.append(message)
        if self.reading:
            self.ack_through(message.request_id, max(self.seqs(message.request_id)))
        return True

    def seqs(self, request_id: str) -> list[int]:
        return [f.seq for f in self.frames if f.request_id == request_id]

    def ack_through(self, request_id: str, read_seq: int) -> None:
        seen = set(self.seqs(request_id))
        read = self.read.get(request_id, -1)
        while read + 1 in seen and read + 1 <= read_seq:
            read += 1
        self.read[request_id] = read
        assert self.streamer is not None
        self.streamer.on_ack(protocol.StreamAck(request_id, read))

    def first_copies(self, request_id: str) -> list[Frame]:
        out: dict[int, Frame] = {}
        for f in self.frames:
            if f.request_id == request_id:
                out.setdefault(f.seq, f)
        return [out[s] for s in sorted(out)]

    def chunks(self, request_id: str) -> list[protocol.HttpResponseChunk]:
        return [f for f in self.first_copies(request_id) if isinstance(f, protocol.HttpResponseChunk)]


Setup = Callable[..., Awaitable[tuple[Streamer, FakeEdge, StreamApp]]]


@pytest.fixture
async def setup(aiohttp_server: Callable[..., Awaitable[Any]]):
    sessions: list[Any] = []

    async def make(max_streams: int = 8, history: History | None = None,
                   events: list[object] | None = None) -> tuple[Streamer, FakeEdge, StreamApp]:
        app = StreamApp()
        server = await aiohttp_server(app.app, host="127.0.0.1")
        local, remote = local_session(8), remote_session()
        sessions.extend([local, remote])
        fwd = Forwarder(local=local, remote=remote, host="127.0.0.1", port=server.port, request_timeout=30.0,
                        observer=history.record if history is not None else None)  # as ttf.tunnel wires them
        live = history.open_live if history is not None else None
        streamer = Streamer(fwd, StreamSlots(max_streams), live=live,
                            emit=events.append if events is not None else None)
        edge = FakeEdge()
        edge.streamer = streamer
        return streamer, edge, app

    yield make
    for s in sessions:
        await s.close()


def stream_request(request_id: str, uri: str, window: int = 16, form: dict[str, Any] | None = None,
                   time_left_ms: int = 20_000, method: str = "GET") -> protocol.HttpRequest:
    offer: dict[str, Any] = {"window": window} | ({"segment_form": form} if form else {})
    return protocol.HttpRequest(request_id=request_id, method=method, uri=uri, headers={"Host": ["t.example"]},
                                time_left_ms=time_left_ms, stream=offer)


def start(streamer: Streamer, edge: FakeEdge, req: protocol.HttpRequest) -> asyncio.Task[Any]:
    assert streamer.admit(req.request_id)
    return asyncio.create_task(streamer.serve(req, edge.send, None))


def inline_body(edge: FakeEdge, request_id: str) -> bytes:
    return b"".join(protocol.b64decode(c.body) for c in edge.chunks(request_id))


async def test_head_then_coalesced_chunks_then_end(setup: Setup) -> None:
    events: list[object] = []
    streamer, edge, app = await setup(events=events)
    # ten writes 2 ms apart (each reaches the agent on its own), then one 300 ms later
    app.script = [(0.002, b"data: tok%d\n\n" % i) for i in range(10)] + [(0.3, b"data: last\n\n")]
    result = await asyncio.wait_for(start(streamer, edge, stream_request("r1", "/script")), 10)
    frames = edge.first_copies("r1")
    assert [f.seq for f in frames] == list(range(len(frames)))  # consecutive, head first
    head, end = frames[0], frames[-1]
    assert isinstance(head, protocol.HttpResponseHead) and head.status_code == 200
    assert head.headers["Content-Type"] == ["text/event-stream"] and head.headers["X-Local"] == ["yes"]
    assert isinstance(end, protocol.HttpResponseEnd) and end.error is None
    expected = b"".join(data for _, data in app.script)
    assert inline_body(edge, "r1") == expected and end.bytes == len(expected)
    chunks = [protocol.b64decode(c.body) for c in edge.chunks("r1")]
    # the ten writes within ~20 ms become a few frames (usually one or two; without coalescing, ten);
    # the write 300 ms later is its own chunk
    assert len(chunks) <= 6 and chunks[-1] == b"data: last\n\n"
    assert result.frame is None and result.event.streamed and result.event.bytes_out == len(expected)
    assert [type(e) for e in events] == [StreamStarted]


async def test_a_big_write_is_split_into_chunks_of_at_most_22_kib(setup: Setup) -> None:
    streamer, edge, app = await setup()
    body = pattern(100_000)
    app.script = [(0, body)]
    await asyncio.wait_for(start(streamer, edge, stream_request("r1", "/script")), 10)
    sizes = [len(protocol.b64decode(c.body)) for c in edge.chunks("r1")]
    assert all(0 < s <= STREAM_CHUNK_MAX for s in sizes) and STREAM_CHUNK_MAX in sizes
    assert len(sizes) >= math.ceil(len(body) / STREAM_CHUNK_MAX)
    assert inline_body(edge, "r1") == body  # byte-exact, no segment without a segment form


async def test_a_full_window_stops_reading_the_local_body_until_the_edge_reads(setup: Setup) -> None:
    streamer, edge, app = await setup()
    edge.reading = False
    task = start(streamer, edge, stream_request("r1", "/endless", window=4))
    loop = asyncio.get_running_loop()
    # the app's writes stall: its socket is full because the agent stopped reading
    await wait_until(lambda: app.pending_since is not None and loop.time() - app.pending_since > 0.5,
                     timeout=30, what="the local app's write blocks")
    assert sorted(set(edge.seqs("r1"))) == [0, 1, 2, 3]  # the window: head + 3 chunks, nothing more
    stalled_at = app.written
    assert stalled_at < 64 * 1024 * 1024  # what the sockets hold, not the whole (endless) body
    edge.reading = True
    edge.ack_through("r1", 3)  # the edge read them: the window opens, the app writes again
    await wait_until(lambda: app.written > stalled_at + 1024 * 1024 and max(edge.seqs("r1")) > 8,
                     timeout=10, what="the body flows again")
    streamer.on_cancel(protocol.StreamCancel("r1", "gave_up"))
    await asyncio.wait_for(task, 5)


async def test_a_frame_not_read_is_resent_after_2_s_and_an_ack_ends_it(setup: Setup) -> None:
    streamer, edge, app = await setup()
    edge.reading = False
    app.script = [(0, b"hello")]
    task = start(streamer, edge, stream_request("r1", "/script"))
    await wait_until(lambda: len(set(edge.seqs("r1"))) == 3, timeout=5, what="head, chunk and end")
    first_round = len(edge.frames)
    await wait_until(lambda: edge.seqs("r1").count(0) == 2, timeout=5, what="the head resent")
    resent = edge.frames[first_round:]
    assert [protocol.encode(f) for f in resent][:3] == [protocol.encode(f) for f in edge.frames[:3]]
    assert not task.done()  # it waits for the edge to read its end
    edge.ack_through("r1", 2)
    result = await asyncio.wait_for(task, 5)
    assert result.event.error is None and streamer.active == {}


async def test_a_frame_is_not_resent_sooner_than_the_sockets_learnt_delay(setup: Setup) -> None:
    """The socket's acks took ~1 s (RetransmitTimer: 3 s): an unread head waits 3 s, not the fixed 2 s."""
    streamer, edge, app = await setup()
    edge.reading = False
    app.script = [(0, b"hello")]
    timer = RetransmitTimer()
    timer.sample(1.0)
    assert timer.rto == pytest.approx(3.0)
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []
    send = edge.send

    async def timed(frame: str) -> bool:
        if protocol.decode(frame).seq == 0:
            sent_at.append(loop.time())
        return await send(frame)

    req = stream_request("r1", "/script")
    assert streamer.admit(req.request_id)
    task = asyncio.create_task(streamer.serve(req, timed, None, timer=timer))
    await wait_until(lambda: len(sent_at) == 2, timeout=6, what="the head resent")
    assert sent_at[1] - sent_at[0] >= 2.9
    edge.ack_through("r1", 2)
    await asyncio.wait_for(task, 5)


async def test_stream_cancel_stops_the_local_request_at_once(setup: Setup) -> None:
    streamer, edge, app = await setup()
    task = start(streamer, edge, stream_request("r1", "/endless"))
    await wait_until(lambda: len(edge.chunks("r1")) >= 3, timeout=10, what="chunks flowing")
    streamer.on_cancel(protocol.StreamCancel("r1", "max_stream_seconds"))
    sent = len(edge.frames)
    await wait_until(app.disconnected.is_set, timeout=5, what="the local app sees its connection closed")
    result = await asyncio.wait_for(task, 5)
    assert result.frame is None and result.event.error == "cancelled:max_stream_seconds"
    assert len(edge.frames) == sent  # nothing more for that id, not even an end
    assert not any(isinstance(f, protocol.HttpResponseEnd) for f in edge.frames)
    assert streamer.slots.active == 0


async def test_max_streams_refuses_past_the_cap_and_frees_the_slot_when_a_stream_ends(setup: Setup) -> None:
    streamer, edge, app = await setup(max_streams=1)
    task = start(streamer, edge, stream_request("r1", "/endless"))
    assert not streamer.admit("r2")
    busy = protocol.decode(streamer.busy_frame(stream_request("r2", "/endless")))
    assert isinstance(busy, protocol.Error) and busy.code == "tunnel_busy"
    streamer.on_cancel(protocol.StreamCancel("r1", "gave_up"))
    await asyncio.wait_for(task, 5)
    assert streamer.admit("r2")


async def test_the_local_body_breaking_mid_way_ends_with_an_error(setup: Setup) -> None:
    streamer, edge, app = await setup()
    result = await asyncio.wait_for(start(streamer, edge, stream_request("r1", "/broken")), 10)
    end = edge.first_copies("r1")[-1]
    assert isinstance(end, protocol.HttpResponseEnd) and end.error == "local_service_error"
    assert end.bytes == 1000 and inline_body(edge, "r1") == b"y" * 1000
    assert result.frame is None and result.event.error == "local_service_error"


async def test_a_failure_before_the_head_is_an_error_frame(setup: Setup) -> None:
    streamer, edge, app = await setup()
    streamer.forwarder.port = 1  # nothing listens there
    result = await asyncio.wait_for(start(streamer, edge, stream_request("r1", "/script")), 10)
    assert edge.frames == []
    error = protocol.decode(result.frame or "")
    assert isinstance(error, protocol.Error) and error.code == "local_service_unavailable"
    assert result.event.error == "local_service_unavailable" and not result.event.streamed


async def test_a_backlog_goes_as_segments_through_the_segment_form(setup: Setup, gateway) -> None:
    streamer, edge, app = await setup()
    n = 3 * 1024 * 1024 + 12345
    form = gateway.upload_form("ignored")  # its key field is replaced by resp/<id>/<seq>
    await asyncio.wait_for(start(streamer, edge, stream_request("r1", f"/big?n={n}", form=form)), 30)
    frames = edge.first_copies("r1")
    body = bytearray()
    segments = 0
    for f in frames[1:-1]:
        assert isinstance(f, protocol.HttpResponseChunk)
        if f.segment is not None:
            segments += 1
            data = gateway.uploads[f"r1/{f.seq}"]  # uploaded under resp/r1/<seq>
            assert f.segment == f"resp/r1/{f.seq}" and f.size == len(data) <= STREAM_SEGMENT_MAX
            assert f.sha256 == hashlib.sha256(data).hexdigest() and len(data) >= BULK_MIN
            body += data
        else:
            body += protocol.b64decode(f.body)
    assert bytes(body) == pattern(n)
    assert segments >= 1 and all(parts[-1] == "file" for parts in gateway.form_parts)
    end = frames[-1]
    assert isinstance(end, protocol.HttpResponseEnd) and end.bytes == n and end.error is None


async def test_the_inspector_sees_a_stream_as_it_arrives_and_keeps_at_most_its_cap(setup: Setup) -> None:
    history = History(limit=10, cap=4096)
    updates: list[dict[str, Any]] = []
    history.listen(lambda kind, data: updates.append(data["entry"]) if kind == "update" else None)
    streamer, edge, app = await setup(history=history)
    app.script = [(0, b"data: one\n\n"), (0.4, b"data: two\n\n"), (0.4, b"z" * 10_000)]
    task = start(streamer, edge, stream_request("r1", "/script"))
    await wait_until(lambda: any(u["status"] == 200 and u["streaming"] and u["response_size"] >= 11 for u in updates),
                     timeout=5, what="a live update with the first event")
    live = history.newest_first()[0]
    assert live.streaming and live.response.data.startswith(b"data: one\n\n")
    await asyncio.wait_for(task, 10)
    done = history.newest_first()[0]
    assert not done.streaming and done.streamed and done.status == 200
    assert done.response.size == 22 + 10_000 and len(done.response.data) == 4096 and done.response.truncated
    assert done.summary()["streamed"] is True


# ---- whole when short (ttf.whole) -------------------------------------------------------------

def whole_answer(result: Any) -> protocol.HttpResponse:
    answer = protocol.decode(result.frame or "")
    assert isinstance(answer, protocol.HttpResponse), answer
    return answer


async def test_a_short_complete_answer_goes_whole_as_one_http_response(setup: Setup, monkeypatch) -> None:
    """Offered a stream, a short JSON answer complete at once is one http_response (not head, chunk,
    end), with the very status, headers and bytes the streamed path and the buffered path deliver."""
    events: list[object] = []
    history = History(limit=10)
    streamer, edge, app = await setup(events=events, history=history)
    result = await asyncio.wait_for(start(streamer, edge, stream_request("r1", "/short")), 10)
    assert edge.frames == []  # no head, no chunk, no end
    answer = whole_answer(result)
    assert answer.request_id == "r1" and answer.status_code == 200 and not answer.body_uploaded
    assert protocol.b64decode(answer.body) == StreamApp.SHORT  # still gzip: the app's bytes
    assert answer.headers["X-Multi"] == ["one", "two"] and answer.headers["Content-Encoding"] == ["gzip"]
    assert len(answer.headers["Set-Cookie"]) == 2
    assert answer.headers["Content-Length"] == [str(len(StreamApp.SHORT))]
    assert not result.event.streamed and result.event.error is None
    assert result.event.status == 200 and result.event.bytes_out == len(StreamApp.SHORT)
    assert events == [] and streamer.slots.active == 0 and streamer.active == {}
    entry = history.newest_first()[0]  # the inspector keeps a plain entry, as for the buffered path
    assert not entry.streamed and not entry.streaming and entry.response.data == StreamApp.SHORT
    # the buffered path (no offer) sends the same frame, request id and timing aside
    buffered = protocol.decode((await streamer.forwarder.handle(
        protocol.HttpRequest(request_id="r1", method="GET", uri="/short", headers={"Host": ["t.example"]},
                             time_left_ms=20_000))).frame)
    assert isinstance(buffered, protocol.HttpResponse)
    assert (buffered.status_code, buffered.headers, buffered.body) == (answer.status_code, answer.headers, answer.body)

    # ... and the streamed path (forced) the same head and bytes
    async def never_whole(content: Any, headers: Any, wait_s: float = 0.0) -> whole.Early:
        return whole.Early(b"", False)
    monkeypatch.setattr(whole, "read_early", never_whole)
    await asyncio.wait_for(start(streamer, edge, stream_request("r2", "/short")), 10)
    head = edge.first_copies("r2")[0]
    assert isinstance(head, protocol.HttpResponseHead)
    assert (head.status_code, head.headers) == (answer.status_code, answer.headers)
    assert inline_body(edge, "r2") == StreamApp.SHORT


@pytest.mark.parametrize("method,uri,status", [("HEAD", "/short", 200), ("GET", "/status/204", 204),
                                               ("GET", "/status/304", 304)])
async def test_an_answer_without_a_body_goes_whole(setup: Setup, method: str, uri: str, status: int) -> None:
    streamer, edge, app = await setup()
    result = await asyncio.wait_for(start(streamer, edge, stream_request("r1", uri, method=method)), 10)
    answer = whole_answer(result)
    assert edge.frames == [] and answer.status_code == status and answer.body == ""
    if method == "HEAD":  # the length the GET would have: the edge passes it on HEAD
        assert answer.headers["Content-Length"] == [str(len(StreamApp.SHORT))]
    else:
        assert answer.headers["ETag"] == ['"v1"']


@pytest.mark.parametrize("case", ["slow", "big", "event-stream"])
async def test_a_slow_big_or_event_stream_answer_still_streams(setup: Setup, case: str) -> None:
    """Not complete within the window (slow), more than one message holds (big), or open-ended by its
    type even when short and complete (an event stream): head, chunks, end, byte-exact."""
    streamer, edge, app = await setup()
    uri, expected = {"slow": ("/late", b'{"first": "then the rest"}'),
                     "big": ("/big?n=30000", pattern(30_000)),
                     "event-stream": ("/script", b"data: x\n\n")}[case]
    app.script = [(0, b"data: x\n\n")]
    result = await asyncio.wait_for(start(streamer, edge, stream_request("r1", uri)), 10)
    assert result.frame is None and result.event.streamed
    frames = edge.first_copies("r1")
    assert isinstance(frames[0], protocol.HttpResponseHead) and isinstance(frames[-1], protocol.HttpResponseEnd)
    assert inline_body(edge, "r1") == expected and frames[-1].bytes == len(expected)
    if case == "slow":  # what arrived before the window closed went out at once, the rest later
        assert [protocol.b64decode(c.body) for c in edge.chunks("r1")] == [b'{"first": ', b'"then the rest"}']


async def test_an_event_stream_is_never_held_back() -> None:
    """text/event-stream and the other open-ended types stream without reading a byte first."""
    for media in ("text/event-stream; charset=utf-8", "application/x-ndjson", "multipart/x-mixed-replace"):
        assert not whole.may_go_whole({"Content-Type": [media]})
    assert not whole.may_go_whole({"Content-Type": ["application/json"],
                                   "Content-Length": [str(whole.WHOLE_READ_MAX + 1)]})
    assert whole.may_go_whole({"Content-Type": ["application/json"], "Content-Length": ["100"]})
    assert whole.may_go_whole({})


# ---- through the session (the fake gateway of conftest) ---------------------------------------

async def established(gateway, port: int, running, **config: Any):
    gateway.speaks = ("ack", "stream")
    h = running(make_config(gateway, port, **config))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    return h, gateway.conns[0]


async def test_the_session_streams_past_max_streams_answers_tunnel_busy(gateway, local_app, running) -> None:
    app, port = local_app
    h, conn = await established(gateway, port, running, max_streams=1)
    assert conn.headers["X-Tunnel-Capabilities"] == "ack,stream,ws"
    await conn.request_frame("s1", "GET", "/hold", stream={"window": 16}, time_left_ms=20_000)
    await wait_until(lambda: app.arrived == 1, what="the first stream at the local app")
    await conn.request_frame("s2", "GET", "/hold", stream={"window": 16}, time_left_ms=20_000)
    busy = await conn.next_reply()
    assert busy["type"] == "error" and busy["request_id"] == "s2" and busy["code"] == "tunnel_busy"
    app.release.set()
    # /hold's answer is short and complete: it goes whole (ttf.whole), but it held a stream slot
    # while its local request ran, since nobody knew
    await wait_until(lambda: any(m.get("request_id") == "s1" for m in conn.received), what="the first answer")
    first = next(m for m in conn.received if m.get("request_id") == "s1")
    assert first["type"] == "http_response" and first["seq"] == 0 and first["status_code"] == 200
    await conn.send({"type": "ack", "request_id": "s1", "seq": 0})
    await conn.request_frame("s3", "GET", "/hold", stream={"window": 16}, time_left_ms=20_000)
    await wait_until(lambda: any(m.get("request_id") == "s3" for m in conn.received), what="the third answer")
    third = next(m for m in conn.received if m.get("request_id") == "s3")
    assert third["type"] == "http_response"  # the slot was free again: not tunnel_busy
    await conn.send({"type": "ack", "request_id": "s3", "seq": 0})


async def test_the_session_sends_a_short_offered_answer_whole_as_the_buffered_path(gateway, local_app,
                                                                                  running) -> None:
    app, port = local_app
    h, conn = await established(gateway, port, running)
    await conn.request_frame("o1", "GET", "/echo", stream={"window": 16}, time_left_ms=20_000)
    offered = await conn.next_reply()
    await conn.request_frame("w1", "GET", "/echo", time_left_ms=20_000)
    buffered = await conn.next_reply()
    assert offered["type"] == buffered["type"] == "http_response" and offered["seq"] == 0
    assert offered["headers"]["X-Multi"] == ["one", "two"] and "X-Secret-Hop" not in offered["headers"]
    assert [offered[k] for k in ("status_code", "headers", "body")] == [buffered[k] for k in ("status_code", "headers", "body")]
    assert not any(str(m.get("type", "")).startswith("http_response_") for m in conn.received)


async def test_a_request_without_stream_is_answered_whole_as_before(gateway, local_app, running) -> None:
    app, port = local_app
    h, conn = await established(gateway, port, running)
    await conn.request_frame("w1", "GET", "/echo", time_left_ms=20_000)
    reply = await conn.next_reply()
    assert reply["type"] == "http_response" and reply["status_code"] == 200 and reply["seq"] == 0
    assert not any(str(m.get("type", "")).startswith("http_response_") for m in conn.received)


# ---- the option and the events ----------------------------------------------------------------

def test_max_streams_from_the_command_line_the_environment_and_a_config_file(tmp_path) -> None:
    from ttf.config import ConfigError, parse_config
    from ttf.configfile import load

    assert parse_config(["-e", "wss://x.example/prod"], env={}, cwd=tmp_path).max_streams == 8
    assert parse_config(["-e", "wss://x.example/prod", "--max-streams", "3"], env={}, cwd=tmp_path).max_streams == 3
    assert parse_config(["-e", "wss://x.example/prod"], env={"TTF_MAX_STREAMS": "5"}, cwd=tmp_path).max_streams == 5
    with pytest.raises(ConfigError, match="max-streams|max_streams"):
        parse_config(["-e", "wss://x.example/prod", "--max-streams", "0"], env={}, cwd=tmp_path)
    (tmp_path / "ttf.toml").write_text('endpoint = "wss://x.example/prod"\nmax-streams = 2\n'
                                       '[tunnels.web]\nport = 3000\n[tunnels.api]\nport = 8000\nmax-streams = 4\n')
    plan = load(["--config", str(tmp_path / "ttf.toml")], env={}, cwd=tmp_path)
    assert sorted(c.max_streams for c in plan.tunnels) == [2, 4]


def test_the_json_lines_of_a_stream_and_a_whole_answer() -> None:
    from ttf.events import RequestDone, to_json
    from ttf.render import format_line

    whole = RequestDone("GET", "/x", 200, 5, 0, 10)
    assert "streamed" not in to_json(whole)  # a whole answer's line is what it always was
    streamed = RequestDone("GET", "/sse", 200, 5000, 0, 1234, streamed=True)
    assert to_json(streamed)["streamed"] is True
    assert to_json(StreamStarted("GET", "/sse", 200)) == {"event": "stream_started", "method": "GET", "path": "/sse",
                                                          "status": 200}
    assert format_line(StreamStarted("GET", "/sse", 200), 0).endswith("GET /sse 200 streaming")
    assert format_line(streamed, 0).endswith("out=1234 streamed")


def test_the_dashboard_counts_streams_going_out() -> None:
    from rich.console import Console

    from ttf.events import RequestDone
    from ttf.render import Dashboard, render_stats

    def stats(state: Dashboard) -> str:
        console = Console(record=True, width=120)
        console.print(render_stats(state))
        return console.export_text()

    state = Dashboard("wss://x", "127.0.0.1:3000", 0.0)
    assert "streaming" not in stats(state)  # no column until a stream happens
    state.apply(StreamStarted("GET", "/sse", 200), 1.0)
    assert state.streaming == 1 and "streaming" in stats(state)
    state.apply(RequestDone("GET", "/sse", 200, 5000, 0, 1234, streamed=True), 2.0)
    assert state.streaming == 0 and state.total == 1


async def test_an_agent_stopping_mid_stream_ends_the_answer_with_an_error(setup: Setup) -> None:
    streamer, edge, app = await setup()
    task = start(streamer, edge, stream_request("r1", "/endless"))
    await wait_until(lambda: len(edge.chunks("r1")) >= 2, timeout=10, what="chunks flowing")
    task.cancel()  # what the session does to its requests when it drains or closes
    with pytest.raises(asyncio.CancelledError):
        await task
    end = edge.frames[-1]
    assert isinstance(end, protocol.HttpResponseEnd) and end.error == "local_service_unavailable"
    assert end.seq == max(edge.seqs("r1")) and end.bytes >= len(inline_body(edge, "r1"))
    await wait_until(app.disconnected.is_set, timeout=5, what="the local request closed")
    assert streamer.slots.active == 0 and streamer.active == {}
