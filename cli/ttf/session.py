"""One established WebSocket: read frames, answer pings, keep a heartbeat, serve requests.

A TunnelSession starts serving as soon as it is made (requests can arrive before the caller
looks at it) and runs until its socket dies or close() is called. It knows nothing of
reconnecting, renewal or the saved URL: it is given the socket, the request handler, the
concurrency bound it shares with its tunnel's other sockets, where to report finished requests,
and the event after which new requests are refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Awaitable, Callable, Sequence

import aiohttp

from httptunnel import protocol
from httptunnel.chunks import RetransmitTimer, Sender
from httptunnel.limits import FORWARD_WAIT_S
from httptunnel.protocol import ConnectionEstablished, HttpRequest

from ttf.events import Sink, escape_controls
from ttf.forward import LocalAnswer, error_frame
from ttf.handshake import close_quietly
from ttf.pacing import Pacer, advertised
from ttf.shutdown import Stopped, unless
from ttf.sockets import CallerSockets
from ttf.streaming import Streamer

log = logging.getLogger("ttf")

PONG_TIMEOUT_MAX = 10.0

Handler = Callable[[HttpRequest], Awaitable[LocalAnswer]]
Answer = protocol.HttpResponse | protocol.Error


class TunnelSession:
    """One socket of one tunnel, from connection_established to close."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, info: ConnectionEstablished, *,
                 handle: Handler, slots: asyncio.Semaphore, emit: Sink, heartbeat_interval: float,
                 stopping: asyncio.Event, early: Sequence[HttpRequest] = (),
                 on_denied: Callable[[protocol.RequestDenied], None] | None = None,
                 queue_limit: int | None = None, streamer: Streamer | None = None,
                 sockets: Callable[[Callable[[str], Awaitable[bool]]], CallerSockets] | None = None) -> None:
        self.ws = ws
        self.info = info
        self.opened_at = time.monotonic()
        self._handle = handle
        self._slots = slots  # shared by every socket of the tunnel and the inspector's replays
        self._emit = emit
        self._heartbeat_interval = heartbeat_interval
        self._stopping = stopping  # once set, new requests get a quick error
        self._on_denied = on_denied  # the edge refused a request for this tunnel (the inspector lists it)
        # requests admitted at once (served + waiting for a slot); beyond it the agent answers tunnel_busy
        # at once instead of growing its memory and the local app's backlog without bound
        self._queue_limit = queue_limit
        self._accepting = True
        self.inflight: dict[asyncio.Task[None], str] = {}  # -> request id
        self._background: set[asyncio.Future[object]] = set()  # pongs and refusals, fire and forget
        self._send_lock = asyncio.Lock()
        # The server's message budget for this socket (connection_established.limits; None from older
        # servers): every frame takes a token first, so a busy tunnel or fast streams never get the
        # socket closed for flooding (ttf.pacing).
        self.pacer: Pacer | None = advertised(info.limits)
        self._rx = asyncio.Event()
        # Channel v2 `ack`, when the server agreed it: every answer is kept (one Sender per request)
        # and resent until the edge acknowledges it or the caller's time is over.
        self.acks = protocol.CAP_ACK in (info.capabilities or [])
        self._unacked: dict[str, Sender[Answer]] = {}
        self._first_sent: dict[str, float] = {}  # answers sent once and not yet acknowledged: when
        self.rto = RetransmitTimer()  # the first resend's delay, from the acks' round trips
        self._resend_wake = asyncio.Event()
        self._streamer = streamer  # streamed answers (`stream`): ttf.streaming; None serves every request whole
        self.gateway_refusals = 0  # API Gateway's own error frames (e.g. throttled messages)
        # caller WebSockets (`ws` agreed: ttf.sockets), bound to this socket: they end with it
        self.sockets = sockets(self.send) if sockets and protocol.CAP_WS in (info.capabilities or []) else None
        self.resent = 0
        # Requests the server routed here between $connect and connection_established: the
        # connection row exists from $connect on, so under traffic some arrive before we are told
        # we are established. They are ours to answer; dropping them left callers waiting 25 s.
        for req in early:
            self._start_request(req)
        self._task: asyncio.Task[str] = asyncio.get_running_loop().create_task(self._run())

    # ---- what the lifecycle uses ------------------------------------------------------
    async def ended(self) -> str:
        """Wait until the socket is gone; why. Cancelling this wait does not stop the session."""
        await asyncio.wait({self._task})
        if self._task.cancelled():
            return "cancelled"
        return self._task.result()

    @property
    def busy(self) -> int:
        return len(self.inflight)

    def stop_accepting(self) -> None:
        self._accepting = False

    async def drain(self, timeout: float, force: asyncio.Event | None = None) -> None:
        """Wait (up to timeout, or until force is set) for in-flight requests; cancel and answer the rest."""
        try:
            await unless(force or asyncio.Event(), self._all_answered(), timeout=timeout)
        except (Stopped, TimeoutError):
            pass
        leftovers = dict(self.inflight)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for request_id in leftovers.values():
            await self.answer(error_frame(request_id, "local_service_unavailable", "agent stopped before answering"))

    async def close(self) -> None:
        """Close the socket and stop everything this session started. Its caller sockets end first,
        while the socket still carries their ``ws_close`` (a retired or stopping socket)."""
        if self.sockets is not None:
            await self.sockets.close_all()
        await close_quietly(self.ws)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        for fut in list(self.inflight) + list(self._background):
            fut.cancel()

    async def send(self, frame: str) -> bool:
        if self.ws.closed:
            log.debug("dropping a frame: socket closed")
            return False
        try:
            if self.pacer is not None:
                await self.pacer.take()
            async with self._send_lock:
                await self.ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            log.debug("send failed: %r", exc)
            return False
        return True

    async def answer(self, frame: str, deadline: float | None = None) -> bool:
        """Send an answer (http_response or error). With `ack` agreed it is numbered, kept and resent
        until acknowledged or until ``deadline`` (loop time; default: the longest the edge waits)."""
        if not self.acks:
            return await self.send(frame)
        message = protocol.decode(frame)
        assert isinstance(message, (protocol.HttpResponse, protocol.Error))
        loop = asyncio.get_running_loop()
        sender: Sender[Answer] = Sender(window=1, timer=self.rto, confirm_writes=True)
        sender.offer(message, deadline if deadline is not None else loop.time() + FORWARD_WAIT_S)
        self._unacked[message.request_id] = sender
        return await self._send_due(message.request_id, sender, loop.time())

    async def _send_due(self, request_id: str, sender: Sender[Answer], now: float) -> bool:
        sent = True
        for send in sender.due(now):
            if send.attempt:
                if self._first_sent.pop(request_id, None) is not None:
                    self.rto.backoff()  # the first timer of this answer ran out: the edge is slower than we thought
                self.resent += 1
                log.info("resending the answer to %s (attempt %d): no ack yet", request_id, send.attempt + 1)
            # The first copy asks for no ack of its own: forward tells the agent in the next request it
            # posts here (``acks``), which costs nothing. A resend asks for one.
            frame = protocol.encode(dataclasses.replace(send.payload, seq=send.seq, ack=send.attempt > 0))
            sent = await self.send(frame) and sent
            # Timers run from when the frame is written: time spent waiting for the pacer's token
            # (ttf.pacing) is neither a lost copy nor the edge's round trip.
            written_at = asyncio.get_running_loop().time()
            sender.written(send.seq, written_at)
            if not send.attempt and request_id in self._unacked:
                self._first_sent[request_id] = written_at
        if sender.done:
            self._unacked.pop(request_id, None)
            self._first_sent.pop(request_id, None)
            if sender.expired:
                log.warning("gave up resending the answer to %s: its caller's time is over", request_id)
        self._resend_wake.set()
        return sent

    def _on_ack(self, ack: protocol.Ack) -> None:
        sender = self._unacked.get(ack.request_id)
        if sender is not None and sender.ack(ack.seq) and sender.done:
            del self._unacked[ack.request_id]
            first_sent = self._first_sent.pop(ack.request_id, None)
            if first_sent is not None:  # sent once: its round trip is a fair sample (Karn)
                self.rto.sample(asyncio.get_running_loop().time() - first_sent)

    async def _resend(self) -> str:
        """Resend unacknowledged answers when their timers run out (only with `ack` agreed)."""
        loop = asyncio.get_running_loop()
        while True:
            self._resend_wake.clear()
            wakeups = [w for s in self._unacked.values() if (w := s.next_wakeup()) is not None]
            try:
                async with asyncio.timeout_at(min(wakeups) if wakeups else None):
                    await self._resend_wake.wait()
                continue
            except TimeoutError:
                pass
            now = loop.time()
            for request_id, sender in list(self._unacked.items()):
                wake = sender.next_wakeup()
                if wake is not None and wake <= now:
                    await self._send_due(request_id, sender, now)

    # ---- the socket ---------------------------------------------------------------------
    async def _run(self) -> str:
        reader = asyncio.create_task(self._read())
        heartbeat = asyncio.create_task(self._heartbeat())
        resender = asyncio.create_task(self._resend())
        try:
            done, _ = await asyncio.wait({reader, heartbeat, resender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, heartbeat, resender):
                task.cancel()
            await asyncio.gather(reader, heartbeat, resender, return_exceptions=True)
        if self.sockets is not None:
            await self.sockets.close_all()
        first = done.pop()
        reason = first.result() if not first.cancelled() and first.exception() is None else repr(first.exception())
        await close_quietly(self.ws)
        for request in list(self.inflight):
            request.cancel()  # nobody can answer them any more: only this connection could
        return reason

    async def _read(self) -> str:
        async for msg in self.ws:
            self._rx.set()
            if msg.type == aiohttp.WSMsgType.TEXT:
                self._on_text(msg.data)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return f"socket error: {self.ws.exception()!r}"
            else:
                log.warning("ignoring a non-text frame (%s)", msg.type.name)
        code = self.ws.close_code
        return f"closed by server (code {code})" if code is not None else "connection lost"

    def _on_text(self, data: str) -> None:
        notice = protocol.gateway_notice(data)
        if notice is not None:
            # API Gateway refused one of our messages (throttled, or its integration failed). It
            # cannot be matched to a message: the acks decide what is resent.
            self.gateway_refusals += 1
            log.info("the gateway refused a message: %s", notice[:100])
            return
        try:
            message = protocol.decode(data)
        except protocol.ProtocolError as exc:
            log.warning("ignoring a frame from the server: %s", exc)
            return
        log.debug("<- %s %s", message.type, getattr(message, "request_id", ""))
        if isinstance(message, HttpRequest):
            for request_id in message.acks or ():  # answers the edge has read (piggybacked acks)
                self._on_ack(protocol.Ack(request_id, 0))
            self._start_request(message)
        elif isinstance(message, protocol.Ping):
            self._spawn(self.send(protocol.encode(protocol.Pong())))
        elif isinstance(message, protocol.Pong):
            return
        elif isinstance(message, protocol.Ack):
            self._on_ack(message)
        elif isinstance(message, protocol.RequestDenied):
            if self._on_denied is not None:
                self._on_denied(message)
        elif isinstance(message, protocol.StreamAck) and self._streamer is not None:
            self._streamer.on_ack(message)
        elif isinstance(message, protocol.StreamCancel) and self._streamer is not None:
            self._streamer.on_cancel(message)
        elif self.sockets is not None and self.sockets.handle(message):
            return
        else:
            log.warning("ignoring an unexpected %s frame", message.type)

    async def _heartbeat(self) -> str:
        interval = self._heartbeat_interval
        pong_timeout = min(PONG_TIMEOUT_MAX, interval / 2)
        while True:
            await asyncio.sleep(interval)
            self._rx.clear()
            if not await self.send(protocol.encode(protocol.Ping())):
                return "heartbeat could not be sent"
            try:
                async with asyncio.timeout(pong_timeout):
                    await self._rx.wait()
            except TimeoutError:
                return f"no answer to heartbeat within {pong_timeout:g} s"

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- requests -----------------------------------------------------------------------
    def _start_request(self, req: HttpRequest) -> None:
        """The one place a request is admitted: refused at once when shutting down or when the queue is full."""
        if not self._accepting or self._stopping.is_set():
            self._spawn(self.answer(error_frame(req.request_id, "local_service_unavailable", "agent is shutting down")))
            return
        if self._queue_limit is not None and len(self.inflight) >= self._queue_limit:
            log.warning("refused %s %s: %d requests already queued or in flight (tunnel_busy)",
                        req.method, escape_controls(req.uri), len(self.inflight))
            self._spawn(self.answer(error_frame(req.request_id, "tunnel_busy",
                                                f"the agent already holds {len(self.inflight)} requests")))
            return
        if req.stream is not None and self._streamer is not None and not self._streamer.admit(req.request_id):
            log.warning("refused %s %s: --max-streams answers already streaming (tunnel_busy)", req.method,
                        escape_controls(req.uri))
            self._spawn(self.answer(self._streamer.busy_frame(req)))
            return
        # The server says how long it still waits, in ms from now: a deadline on OUR clock, so a
        # laptop whose wall clock is off still works. Past it the caller already has its 504.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.time_left_ms / 1000 if req.time_left_ms is not None else None
        task = asyncio.create_task(self._serve(req, deadline))
        self.inflight[task] = req.request_id
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        request_id = self.inflight.pop(task, None)
        if self._streamer is not None and request_id is not None:
            self._streamer.release(request_id)  # a streamed request's slot, however its task ended
        if not task.cancelled() and task.exception() is not None:
            log.error("request handler failed: %r", task.exception())

    async def _serve(self, req: HttpRequest, deadline: float | None = None) -> None:
        try:
            async with asyncio.timeout_at(deadline):  # None: no deadline
                await self._slots.acquire()
        except TimeoutError:
            log.warning("dropped %s %s: its time ran out while it waited for a slot (the caller was answered 504)",
                        req.method, escape_controls(req.uri))
            return
        try:
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                log.warning("dropped %s %s: its time ran out before it could be served", req.method, escape_controls(req.uri))
                return
            try:
                if req.stream is not None and self._streamer is not None:  # admitted above: serve() releases it
                    streamed = await self._streamer.serve(req, self.send, deadline,
                                                         self.pacer.ready if self.pacer else None, self.rto)
                    if streamed.frame is not None:  # it failed before the head: a whole `error` answer
                        await self.answer(streamed.frame, deadline)
                    self._emit(streamed.event)
                    return
                answer = await self._handle(req)
            except Exception as exc:  # a bug must cost one request, not the tunnel
                log.exception("request %s failed", req.request_id)
                await self.answer(error_frame(req.request_id, "internal_error", f"agent error: {exc!r}"), deadline)
                return
        finally:
            self._slots.release()
        sent = await self.answer(answer.frame, deadline)
        log.debug("-> answer to %s (%d bytes, status %d)", req.request_id, len(answer.frame), answer.event.status)
        if not sent:
            log.warning("could not deliver the answer to %s %s: connection gone", req.method, req.uri)
        self._emit(answer.event)

    async def _all_answered(self) -> None:
        while self.inflight:
            await asyncio.wait(set(self.inflight))
