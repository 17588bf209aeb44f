"""Streamed answers (`stream`, issue 23): the local app's body goes to the tunnel as it is produced.

The wire contract is shared/README.md "The chunk channel" (and protocol.py's frame classes):
``http_response_head`` (seq 0) when the local status line and headers arrive, then
``http_response_chunk`` frames (what the app wrote within COALESCE_S, at most STREAM_CHUNK_MAX raw
bytes each) or bulk-lane segments (a backlog of BULK_MIN bytes or more, uploaded with the
request's ``segment_form`` as ``resp/<id>/<seq>``, up to STREAM_SEGMENT_MAX), and last
``http_response_end`` (the bytes sent, an error code when the local body broke).

Bounds (nothing here buffers without bound):
* at most ``window`` frames un-read by the edge (seq > the last ``stream_ack`` read_seq) and at most
  STREAM_SEGMENTS_UNREAD segments; with the window full the local body is not read, so TCP pushes
  back on the local app. Held per stream: the un-read frames' copies (window x 22 KiB of base64)
  plus at most one segment being gathered or uploaded (8 MiB).
* a frame not read after RESEND_S is sent again (then 2x, at most RESEND_MAX_S, and never sooner than
  the socket's learnt resend delay, ``chunks.RetransmitTimer``; timed from when the frame was written)
  while the request's time lasts (``time_left_ms``); the local call lasts at most that long too.
* ``stream_cancel`` stops the local request at once (its connection is closed) and nothing more is sent.
* ``max_streams`` (StreamSlots, shared by a tunnel's sockets) caps the streamed answers in flight;
  past it the request is answered ``error``/``tunnel_busy`` at once.

Not every offered stream streams: a short answer complete within WHOLE_WAIT_S of its head goes
whole, one ``http_response`` (ttf.whole has the rule; shared/README.md "Whole when short" the why).
serve() returns that frame for the session to send, as it returns the ``error`` frame of a failure
before the head (bad request, local service down, timeout before the headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

import aiohttp

from httptunnel import protocol
from httptunnel.chunks import RetransmitTimer, Sender
from httptunnel.protocol import (
    STREAM_CHUNK_MAX, STREAM_SEGMENT_MAX, STREAM_SEGMENTS_UNREAD, Headers, HttpRequest, segment_key,
)

from ttf.events import RequestDone, Sink, StreamStarted
from ttf import whole
from ttf.forward import Exchange, Failure, Forwarder, error_frame, request_path, response_headers

log = logging.getLogger("ttf")


COALESCE_S = 0.020  # what the local app writes within this goes out as one chunk
BULK_MIN = 256 * 1024  # a backlog this big goes as a segment (when the edge gave a segment form)
SEGMENT_GATHER_S = 1.0  # a segment is sent after this long even if it is not full (a slow backlog)
# One read of the local body takes at most this: aiohttp (3.10+) raises its read buffer's high-water
# mark to twice the size asked for, so asking for a whole segment would let it buffer 16 MiB ahead.
READ_MAX = 64 * 1024
WINDOW_MAX = 64  # the most un-read frames the agent keeps, whatever the edge offers
RESEND_S = 2.0  # a frame not read after this is sent again (the contract's 2 s) ...
RESEND_MAX_S = 8.0  # ... then after 4 s, 8 s: a stalled reader is not flooded
END_ON_STOP_S = 1.0  # the agent stopping mid-stream: how long it tries to send the end (with an error)

Send = Callable[[str], Awaitable[bool]]
Ready = Callable[[], Awaitable[None]]  # until the socket may send a frame without waiting (ttf.pacing)


class Live(Protocol):
    """Who watches one streamed answer as it arrives (the request inspector)."""

    def head(self, status: int, headers: Headers) -> None: ...
    def body(self, data: bytes) -> None: ...
    def done(self, duration_ms: int, error: str | None, detail: str | None) -> None: ...


# (started_at wall clock, method, uri, request headers, request body) -> a watcher
LiveFactory = Callable[[float, str, str, Headers, bytes], Live]


@dataclass(frozen=True)
class Offer:
    """What ``http_request.stream`` offers (protocol.py checked its shape)."""

    window: int
    segment_form: dict[str, Any] | None

    @classmethod
    def of(cls, req: HttpRequest) -> Offer | None:
        if req.stream is None:
            return None
        return cls(max(1, min(int(req.stream["window"]), WINDOW_MAX)), req.stream.get("segment_form"))


class StreamSlots:
    """Streamed answers in flight, per tunnel (every socket of it): at most ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max_streams must be >= 1")
        self.limit = limit
        self.active = 0

    def take(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)


@dataclass(frozen=True)
class StreamResult:
    """What serve() made of one request: a whole answer for the session to send (ack and resend as
    any whole answer): the ``http_response`` of a short, complete answer (ttf.whole) or the ``error``
    of a failure before the head; else None (the frames went out); and the event to report."""

    frame: str | None
    event: RequestDone


@dataclass
class _Outgoing:
    """One streamed answer's frames: numbered, windowed, resent until read (or its time is over)."""

    request_id: str
    window: int
    deadline: float  # loop time
    send: Send
    ready: Ready | None = None  # the socket's pacer: the next piece is cut once a frame may go out
    timer: RetransmitTimer | None = None  # the socket's learnt resend delay (ttf.session): no resend sooner
    sender: Sender[str] = field(init=False)
    read_seq: int = -1
    segments: list[int] = field(default_factory=list)  # seqs of segment notices not yet read
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: str | None = None
    resent: int = 0

    def __post_init__(self) -> None:
        self.sender = Sender(window=self.window, rto=RESEND_S, rto_max=RESEND_MAX_S, timer=self.timer,
                             confirm_writes=True)

    @property
    def next_seq(self) -> int:
        return self.sender.next_seq

    @property
    def unread(self) -> int:
        """Frames offered that the edge has not read."""
        return self.sender.next_seq - 1 - self.read_seq

    def offer(self, frame: protocol.StreamFrame, segment: bool = False) -> None:
        assert frame.seq == self.sender.next_seq
        self.sender.offer(protocol.encode(frame), self.deadline)
        if segment:
            self.segments.append(frame.seq)
        self.changed.set()

    def ack(self, read_seq: int) -> None:
        if read_seq <= self.read_seq:
            return
        self.read_seq = min(read_seq, self.sender.next_seq - 1)
        self.sender.ack(self.read_seq)
        self.segments = [s for s in self.segments if s > self.read_seq]
        self.changed.set()

    async def room(self, segment: bool = False) -> None:
        """Wait until one more frame (a segment, with ``segment``) may be offered."""
        while self.unread >= self.window or (segment and len(self.segments) >= STREAM_SEGMENTS_UNREAD):
            self.changed.clear()
            await self.changed.wait()

    async def transmit(self, finished: asyncio.Event) -> None:
        """Send what the window admits, resend what stays un-read; ends when everything offered was read
        after ``finished``, or at the deadline, or on cancel."""
        loop = asyncio.get_running_loop()
        while self.cancelled is None:
            self.changed.clear()
            for due in self.sender.due(loop.time()):
                if due.attempt:
                    self.resent += 1
                    log.debug("resending frame %d of %s (attempt %d)", due.seq, self.request_id, due.attempt + 1)
                await self.send(due.payload)
                self.sender.written(due.seq, loop.time())  # the pacer may have held it: its timer starts now
            if self.sender.expired:
                log.warning("stream %s: the edge did not read %d frame(s) before its time was over",
                            self.request_id, len(self.sender.expired))
                return
            if finished.is_set() and self.sender.done:
                return
            wake = self.sender.next_wakeup()
            try:
                async with asyncio.timeout_at(min(wake, self.deadline) if wake is not None else self.deadline):
                    await self.changed.wait()
            except TimeoutError:
                if loop.time() >= self.deadline and wake is None:
                    return


class Streamer:
    """Serves the streamed answers of one tunnel (all its sockets): acks and cancels are routed by request id."""

    def __init__(self, forwarder: Forwarder, slots: StreamSlots, live: LiveFactory | None = None,
                 emit: Sink | None = None) -> None:
        self.forwarder = forwarder
        self.slots = slots
        self.live = live  # the inspector's live view of each streamed answer
        self.emit = emit  # stream_started events (the session reports the request when it is done)
        self.active: dict[str, _Outgoing] = {}
        self._pumps: dict[str, asyncio.Task[Any]] = {}
        self._admitted: set[str] = set()
        self._early_cancels: dict[str, str] = {}  # cancelled before serve() began

    def admit(self, request_id: str) -> bool:
        """Take a stream slot for this request (False: ``max_streams`` are in flight, answer tunnel_busy).
        It is given back by release(): when its local request ends, or when its task ends anyhow."""
        if request_id in self._admitted:
            return True
        if not self.slots.take():
            return False
        self._admitted.add(request_id)
        return True

    def release(self, request_id: str) -> None:
        """Give the request's slot back (idempotent; nothing for a request that holds none)."""
        self._early_cancels.pop(request_id, None)
        if request_id in self._admitted:
            self._admitted.discard(request_id)
            self.slots.release()

    def busy_frame(self, req: HttpRequest) -> str:
        return error_frame(req.request_id, "tunnel_busy", f"the agent already streams {self.slots.active} answers")

    def on_ack(self, ack: protocol.StreamAck) -> None:
        out = self.active.get(ack.request_id)
        if out is not None:
            out.ack(ack.read_seq)

    def on_cancel(self, cancel: protocol.StreamCancel) -> None:
        out = self.active.get(cancel.request_id)
        if out is None:
            if cancel.request_id in self._admitted:  # admitted, not started yet (waiting for a local slot)
                self._early_cancels[cancel.request_id] = cancel.reason
            return
        log.info("stream %s cancelled by the edge (%s): stopping the local request", cancel.request_id, cancel.reason)
        out.cancelled = cancel.reason
        out.changed.set()
        pump = self._pumps.get(cancel.request_id)
        if pump is not None:
            pump.cancel()

    async def serve(self, req: HttpRequest, send: Send, deadline: float | None,
                    ready: Ready | None = None, timer: RetransmitTimer | None = None) -> StreamResult:
        """Stream one answer. The slot admit() took is released when the local request ends (the last
        frames' resends, bounded by the request's time, do not hold it). ``deadline``: loop time."""
        try:
            return await self._serve(req, send, deadline, ready, timer)
        finally:
            self.release(req.request_id)

    async def _serve(self, req: HttpRequest, send: Send, deadline: float | None, ready: Ready | None,
                     timer: RetransmitTimer | None) -> StreamResult:
        offer = Offer.of(req)
        assert offer is not None
        fwd = self.forwarder
        loop = asyncio.get_running_loop()
        limit = fwd.local_limit(req)
        started, started_at = fwd.clock(), fwd.wall()
        end_at = loop.time() + limit if deadline is None else min(deadline, loop.time() + limit)
        out = _Outgoing(req.request_id, offer.window, end_at, send, ready, timer)
        out.cancelled = self._early_cancels.pop(req.request_id, None)
        if out.cancelled is not None:  # the edge gave up before the local request started
            # 499: the caller went away first (nginx's "client closed request"); nothing reached the edge
            return StreamResult(None, RequestDone(req.method, request_path(req.uri), 499, 0, 0, 0,
                                                  error=f"cancelled:{out.cancelled}", streamed=True))
        finished = asyncio.Event()
        run = _Run(fwd, req, offer, out, started, self.emit)
        self.active[req.request_id] = out
        transmitter = asyncio.create_task(out.transmit(finished))
        pump = asyncio.create_task(run.pump(end_at, self.live, started_at))
        self._pumps[req.request_id] = pump
        try:
            try:
                await pump
            except asyncio.CancelledError:
                if out.cancelled is None:  # the agent is stopping (not the edge's cancel)
                    if run.status:  # the head went out: the edge learns at once that the body ends here
                        end = protocol.HttpResponseEnd(req.request_id, out.next_seq, run.sent, "local_service_unavailable")
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(send(protocol.encode(end)), END_ON_STOP_S)
                    raise
            self.release(req.request_id)
            if run.whole is not None:  # short and complete: one http_response, as on the buffered edge
                transmitter.cancel()
                return StreamResult(run.whole, run.event(fwd.clock() - started, None, streamed=False))
            if run.failure is not None and run.status == 0:  # before the head: today's error frame
                transmitter.cancel()
                failure = run.failure
                return StreamResult(error_frame(req.request_id, failure.code, failure.message),
                                    run.event(fwd.clock() - started, failure.code, streamed=False))
            finished.set()
            out.changed.set()
            await transmitter  # until the edge read everything, or the time is over, or a cancel
            error = f"cancelled:{out.cancelled}" if out.cancelled else (run.failure.code if run.failure else None)
            return StreamResult(None, run.event(fwd.clock() - started, error, streamed=True))
        finally:
            transmitter.cancel()
            pump.cancel()
            await asyncio.gather(transmitter, pump, return_exceptions=True)
            self.active.pop(req.request_id, None)
            self._pumps.pop(req.request_id, None)


class _Run:
    """The local side of one streamed answer: call the app, read its body as the window allows."""

    def __init__(self, fwd: Forwarder, req: HttpRequest, offer: Offer, out: _Outgoing, started: float,
                 emit: Sink | None) -> None:
        self.fwd = fwd
        self.emit = emit
        self.req = req
        self.offer = offer
        self.out = out
        self.started = started
        self.status = 0
        self.sent = 0  # body bytes offered to the edge
        self.request_bytes = 0
        self.failure: Failure | None = None
        self.watch: Live | None = None
        self._open_watch: Callable[[], Live] | None = None
        self.whole: str | None = None  # the http_response frame, when the answer went whole (ttf.whole)

    def event(self, elapsed: float, error: str | None, streamed: bool) -> RequestDone:
        status = self.status or protocol.ERROR_STATUS.get(error or "", 502)
        return RequestDone(method=self.req.method, path=request_path(self.req.uri), status=status,
                           duration_ms=int(elapsed * 1000), bytes_in=self.request_bytes, bytes_out=self.sent,
                           error=error, streamed=streamed)

    async def pump(self, end_at: float, live: LiveFactory | None, started_at: float) -> None:
        fwd, req = self.fwd, self.req
        body = b""
        try:
            try:
                uri, body = await fwd.prepare(req)
                self.request_bytes = len(body)
                if live is not None:  # the inspector's entry: opened once the answer streams (or fails)
                    self._open_watch = functools.partial(live, started_at, req.method, req.uri, req.headers, body)
                async with asyncio.timeout_at(end_at):
                    async with fwd.open_local(req.method, uri, req.headers, body) as resp:
                        try:
                            headers = fwd.public_locations(req.headers, response_headers(resp.raw_headers))
                            early = await whole.read_early(resp.content, headers)
                            if early.complete and self._whole(resp.status, headers, early.data, started_at, body):
                                return
                            self._head(resp.status, headers)
                            if early.data:
                                await self.out.room()
                                self._chunks(early.data)
                                self._watched(early.data)
                            await self._body(resp.content)
                        except BaseException:
                            resp.close()  # the local app sees its connection closed at once
                            raise
            except Failure as failure:
                self.failure = failure
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                self.failure = fwd.local_failure(exc, fwd.local_limit(req))
            except asyncio.CancelledError:
                watch = self._watch() if self.whole is None else None
                if watch is not None:
                    watch.done(self._elapsed_ms(), f"cancelled:{self.out.cancelled or 'agent'}", None)
                    self.watch = None
                raise
            if self.failure is not None:
                log.warning("%s %s (streamed): %s (%s)", req.method, request_path(req.uri)[:200], self.failure.code,
                            self.failure.detail)
            if self.status and self.whole is None:  # the head went out: the end says how it went
                error = self.failure.code if self.failure is not None else None
                self.out.offer(protocol.HttpResponseEnd(req.request_id, self.out.next_seq, self.sent, error))
        finally:
            watch = self._watch() if self.whole is None else None
            if watch is not None:
                broke = self.failure
                watch.done(self._elapsed_ms(), broke.code if broke else None, broke.detail if broke else None)
                self.watch = None

    def _elapsed_ms(self) -> int:
        return int((self.fwd.clock() - self.started) * 1000)

    def _watch(self) -> Live | None:
        """The inspector's live entry, opened on first use (a whole answer gets a plain entry instead)."""
        if self.watch is None and self._open_watch is not None:
            self.watch, self._open_watch = _guarded(self._open_watch()), None
        return self.watch

    def _watched(self, data: bytes) -> None:
        if self.watch is not None:
            self.watch.body(data)

    def _whole(self, status: int, headers: Headers, data: bytes, started_at: float, request_body: bytes) -> bool:
        """The answer is short and complete: one ``http_response`` (ttf.whole), if it fits one agent message."""
        elapsed_ms = self._elapsed_ms()
        frame = whole.whole_frame(self.req.request_id, status, headers, data, elapsed_ms)
        if frame is None:
            return False
        self.status, self.whole, self.sent = status, frame, len(data)
        self._open_watch = None
        # the inspector records it as the buffered path does (Forwarder.handle): a plain entry, not streamed
        self.fwd._observe(Exchange(started_at, self.req.method, self.req.uri, self.req.headers, request_body, status,
                                  headers, data, elapsed_ms))
        return True

    def _head(self, status: int, headers: Headers) -> None:
        self.status = status
        self.out.offer(protocol.HttpResponseHead(self.req.request_id, 0, status, headers, self._elapsed_ms()))
        watch = self._watch()
        if watch is not None:
            watch.head(status, headers)
        if self.emit is not None:
            self.emit(StreamStarted(self.req.method, request_path(self.req.uri), status))

    async def _body(self, content: aiohttp.StreamReader) -> None:
        segments_allowed = self.offer.segment_form is not None
        while True:
            await self.out.room()
            if self.out.ready is not None:  # paced: the body keeps arriving meanwhile, so the piece grows
                await self.out.ready()
            may_segment = segments_allowed and len(self.out.segments) < STREAM_SEGMENTS_UNREAD
            data, eof = await gather(content, self.out.window - self.out.unread, may_segment)
            if data:
                if may_segment and len(data) >= BULK_MIN:
                    await self._segment(data)
                else:
                    self._chunks(data)
                self._watched(data)
            if eof:
                return

    def _chunks(self, data: bytes) -> None:
        for start in range(0, len(data), STREAM_CHUNK_MAX):
            piece = data[start:start + STREAM_CHUNK_MAX]
            self.out.offer(protocol.HttpResponseChunk(self.req.request_id, self.out.next_seq,
                                                      body=protocol.b64encode(piece)))
            self.sent += len(piece)

    async def _segment(self, data: bytes) -> None:
        await self.out.room(segment=True)
        assert self.offer.segment_form is not None
        seq = self.out.next_seq
        key = segment_key(self.req.request_id, seq)
        form = self.offer.segment_form
        await self.fwd.upload_form({"url": form["url"], "fields": {**form["fields"], "key": key}}, data)
        self.out.offer(protocol.HttpResponseChunk(self.req.request_id, seq, segment=key, size=len(data),
                                                  sha256=hashlib.sha256(data).hexdigest()), segment=True)
        self.sent += len(data)


async def gather(content: aiohttp.StreamReader, room: int, may_segment: bool) -> tuple[bytes, bool]:
    """The next piece of the local body: what arrives within COALESCE_S of its first byte, up to ``room``
    chunks; with ``may_segment``, a backlog that reaches BULK_MIN keeps being read (while it keeps
    coming, up to SEGMENT_GATHER_S) up to STREAM_SEGMENT_MAX. Returns (bytes, the body ended)."""
    loop = asyncio.get_running_loop()
    chunk_cap = max(1, room) * STREAM_CHUNK_MAX
    cap = max(chunk_cap, BULK_MIN) if may_segment else chunk_cap
    first = await content.read(min(cap, READ_MAX))
    if not first:
        return b"", True
    pieces = [first]  # joined once at the end: a growing bytearray would copy a segment several times
    size = len(first)
    coalesce_end = loop.time() + COALESCE_S
    bulk_end: float | None = None  # set once the backlog reached BULK_MIN: a segment is being gathered
    while True:
        if bulk_end is None and may_segment and size >= BULK_MIN:
            bulk_end = loop.time() + SEGMENT_GATHER_S
            cap = STREAM_SEGMENT_MAX
        if size >= cap:
            break
        now = loop.time()
        until = min(coalesce_end, bulk_end) if bulk_end is not None else coalesce_end
        if now >= until:
            break
        try:
            async with asyncio.timeout(until - now):
                piece = await content.read(min(cap - size, READ_MAX))
        except TimeoutError:
            break
        if not piece:
            return b"".join(pieces), True
        pieces.append(piece)
        size += len(piece)
        if bulk_end is not None:
            coalesce_end = loop.time() + COALESCE_S  # a backlog: keep reading while it keeps coming
    return b"".join(pieces), content.at_eof()


class _Guarded:
    """A watcher that can never cost a request its answer."""

    def __init__(self, inner: Live) -> None:
        self.inner = inner

    def head(self, status: int, headers: Headers) -> None:
        self._call(self.inner.head, status, headers)

    def body(self, data: bytes) -> None:
        self._call(self.inner.body, data)

    def done(self, duration_ms: int, error: str | None, detail: str | None) -> None:
        self._call(self.inner.done, duration_ms, error, detail)

    @staticmethod
    def _call(fn: Callable[..., object], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("request inspector failed")


def _guarded(live: Live) -> Live:
    return _Guarded(live)

