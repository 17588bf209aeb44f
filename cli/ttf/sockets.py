"""Caller WebSockets on the agent's side (issue 24; shared/README.md "Caller WebSockets").

Each caller socket is its own local WebSocket to the app (aiohttp client): the handshake carries
the caller's path, query, cookies and headers, and the subprotocols the caller offered; the app's
choice goes back in ``ws_opened``. Then:

* caller -> app: ``ws_message`` frames arrive numbered but in any order (concurrent Lambdas);
  a ``chunks.Receiver`` puts them back in order (``REORDER_WINDOW`` ahead at most; a gap that
  stays ``GAP_SKIP_S`` is a lost invocation: skipped, logged) and one writer sends them to the app.
* app -> caller: stop-and-wait (``chunks.Sender(window=1)``), each ``ws_message`` carrying
  everything the app wrote meanwhile (at most ``BATCH_MESSAGES`` / ``BATCH_BYTES``); resent until ``ws_ack`` or
  ``RESEND_FOR_S``. What waits is bounded per socket (``QUEUE_MESSAGES`` / ``QUEUE_BYTES``): when
  full, the app's socket is not read until a batch leaves (TCP pushes back on the app).
* closes: the caller's code reaches the app (1005/1006/1015 cannot be sent: 1000/1001 instead);
  the app's close is sent on after what it wrote was delivered (at most ``CLOSE_DRAIN_S``), and the
  caller sees 1000 (AWS's DeleteConnection). A binary message from the app, one too big for a
  frame, or a full queue ends both sides.
* at most ``SocketCap.limit`` per tunnel (``--max-websockets``), over all its sockets (a renewal's
  old and new one together; past it: ``ws_refused`` 429 ``tunnel_busy``).
* caller -> app waits bounded per socket too: ``TO_APP_MESSAGES`` / ``TO_APP_BYTES`` (held out of
  order included); past either, both sides close with 1008.
* when the tunnel's socket to API Gateway ends, every local socket is closed with 1012 (the
  caller sockets were bound to that connection). While that socket still carries frames (a
  renewal retiring it, ttf stopping) each caller's socket is ended too (``ws_close``: the caller
  sees 1000 at once); after an unexpected drop the server ends it at the caller's next frame or
  its idle timeout (cli/README.md "Caller WebSockets").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Awaitable, Callable

import aiohttp
from multidict import CIMultiDict

from httptunnel import protocol
from httptunnel.chunks import Receiver, Sender
from httptunnel.limits import AGENT_MESSAGE_MAX
from httptunnel.protocol import Headers

from ttf.socketlog import TO_APP, TO_CALLER, InjectRefused, Injected, SocketLog, SocketRecord

log = logging.getLogger("ttf")

MAX_SOCKETS = 64  # open caller sockets per tunnel socket
QUEUE_MESSAGES = 4096  # app -> caller messages waiting per socket ...
QUEUE_BYTES = 1024 * 1024  # ... and their bytes: past either, the app's socket is not read (TCP pushes back)
TO_APP_MESSAGES = 1024  # caller -> app messages waiting for a slow app per socket ...
TO_APP_BYTES = 8 * 1024 * 1024  # ... and their UTF-8 bytes, those held out of order included
REORDER_WINDOW = 1024  # caller frames held ahead of a missing one
GAP_SKIP_S = 5.0  # a missing caller frame waited for this long is skipped
BATCH_BYTES = AGENT_MESSAGE_MAX - 1024  # the texts of one ws_message (room for the envelope) ...
BATCH_MESSAGES = 32  # ... and how many: the response Lambda posts them one by one within its 15 s
RESEND_FOR_S = 30.0  # an unacknowledged batch is resent this long, then the socket ends
CLOSE_DRAIN_S = 5.0  # what the app wrote before closing gets this long to reach the caller
OPEN_TIMEOUT_S = 15.0  # the local handshake (bounded by the caller's time_left_ms too)
RESERVED = {1005: 1000, 1006: 1001, 1015: 1001}  # codes that are never sent on the wire (RFC 6455 7.4.1)

Send = Callable[[str], Awaitable[bool]]
LocalHeaders = Callable[[Headers], "CIMultiDict[str]"]


def text_bytes(text: str) -> int:
    """What one text costs inside a ws_message frame (JSON-escaped UTF-8)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) + 1


def wire_code(code: int) -> int:
    if code in RESERVED:
        return RESERVED[code]
    return code if code == 1000 or 1001 <= code <= 1014 or 3000 <= code <= 4999 else 1000


class SocketCap:
    """Caller sockets open or opening, per tunnel: over every tunnel socket it holds (``CallerSockets``
    each; a renewal overlaps the old and the new one), at most ``limit``."""

    def __init__(self, limit: int = MAX_SOCKETS) -> None:
        if limit < 1:
            raise ValueError("max_websockets must be >= 1")
        self.limit = limit
        self.members: set[CallerSockets] = set()

    @property
    def count(self) -> int:
        return sum(m.count for m in self.members)


class CallerSockets:
    """The caller sockets one tunnel socket serves."""

    def __init__(self, send: Send, http: aiohttp.ClientSession, base: str, local_headers: LocalHeaders,
                 max_sockets: int = MAX_SOCKETS, cap: SocketCap | None = None, record: SocketLog | None = None,
                 tunnel: str | None = None) -> None:
        self.send = send
        self.http = http
        self.base = base.rstrip("/")  # ws://127.0.0.1:3000
        self.local_headers = local_headers
        self.cap = cap if cap is not None else SocketCap(max_sockets)  # the tunnel's, shared
        self.cap.members.add(self)
        self.sockets: dict[str, LocalSocket] = {}
        self.opening: dict[str, asyncio.Task[None]] = {}
        self.closed = False
        self.record, self.tunnel = record, tunnel  # the sessions the inspector and the dashboard show (ttf.socketlog)

    def handle(self, message: protocol.Message) -> bool:
        """Take a ws frame from the server; False for anything else."""
        if isinstance(message, protocol.WsOpen):
            self._start_open(message)
        elif isinstance(message, protocol.WsMessage):
            sock = self.sockets.get(message.socket_id)
            if sock is None:
                self._spawn_send(protocol.WsClose(message.socket_id, 1011, "no such socket on the agent"))
            else:
                sock.from_caller(message.seq, message.data)
        elif isinstance(message, protocol.WsAck):
            sock = self.sockets.get(message.socket_id)
            if sock is not None:
                sock.acked(message.seq)
        elif isinstance(message, protocol.WsClose):
            opening = self.opening.pop(message.socket_id, None)
            if opening is not None:
                opening.cancel()
            sock = self.sockets.get(message.socket_id)
            if sock is not None:
                sock.caller_closed(message.code, message.reason)
        else:
            return False
        return True

    @property
    def count(self) -> int:
        return len(self.sockets) + len(self.opening)

    async def close_all(self, code: int = 1012, reason: str = "the tunnel reconnects") -> None:
        """The tunnel's socket ends: close every local socket with ``code``, and ask the server to end
        each caller's socket (``ws_close``; only reaches it while the tunnel socket still carries
        frames: a retiring or stopping one, not a dropped one)."""
        self.closed = True
        for task in list(self.opening.values()):
            task.cancel()
        await asyncio.gather(*self.opening.values(), return_exceptions=True)
        open_now = [s for s in self.sockets.values() if not s.ending]
        await asyncio.gather(*(self.send(protocol.encode(protocol.WsClose(s.socket_id, code, reason)))
                               for s in open_now), return_exceptions=True)
        await asyncio.gather(*(s.abort(code, reason) for s in list(self.sockets.values())), return_exceptions=True)
        self.cap.members.discard(self)

    # ---- opening ------------------------------------------------------------------------
    def _start_open(self, msg: protocol.WsOpen) -> None:
        held = self.cap.count
        if self.closed or held >= self.cap.limit or msg.socket_id in self.sockets:
            log.warning("refused a caller WebSocket to %s: %d sockets open (--max-websockets %d)", msg.uri, held,
                        self.cap.limit)
            self._refused(msg, 429, "tunnel_busy", "the cap of open WebSockets")
            self._spawn_send(protocol.WsRefused(msg.request_id, msg.socket_id, 429, "tunnel_busy",
                                                f"the agent already holds {held} WebSockets"))
            return
        task = asyncio.create_task(self._open(msg))
        self.opening[msg.socket_id] = task
        task.add_done_callback(lambda _t: self.opening.pop(msg.socket_id, None) if self.opening.get(msg.socket_id) is _t
                               else None)

    async def _open(self, msg: protocol.WsOpen) -> None:
        headers = self.local_headers(msg.headers)
        offered = [p.strip() for v in headers.popall("Sec-WebSocket-Protocol", []) for p in v.split(",") if p.strip()]
        wait = OPEN_TIMEOUT_S if msg.time_left_ms is None else max(0.1, min(OPEN_TIMEOUT_S, msg.time_left_ms / 1000))
        try:
            async with asyncio.timeout(wait):
                ws = await self.http.ws_connect(self.base + msg.uri, headers=headers, protocols=offered,
                                                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                                                autoping=True, autoclose=False, compress=0, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            status = exc.status if 400 <= exc.status <= 599 else 502
            log.info("the local app refused a WebSocket to %s (%d)", msg.uri, exc.status)
            self._refused(msg, status, "local_service_error", f"the app answered {exc.status}")
            await self.send(protocol.encode(protocol.WsRefused(msg.request_id, msg.socket_id, status,
                                                               "local_service_error", f"the app answered {exc.status}")))
            return
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.info("could not open a WebSocket to the local app (%s): %r", msg.uri, exc)
            self._refused(msg, 503, "local_service_unavailable", "local app unreachable")
            await self.send(protocol.encode(protocol.WsRefused(msg.request_id, msg.socket_id, 503,
                                                               "local_service_unavailable", "local app unreachable")))
            return
        if self.closed:
            await ws.close(code=1012)
            return
        sock = LocalSocket(self, msg.socket_id, ws)
        if self.record is not None:
            sock.record = self.record.opened(msg.socket_id, msg.uri, msg.headers, ws.protocol, sock, self.tunnel)
        self.sockets[msg.socket_id] = sock  # before ws_opened: an app that speaks first is queued already
        self.opening.pop(msg.socket_id, None)  # counted once: open now, no longer opening
        sock.start()
        log.info("caller WebSocket %s open to %s (protocol %s)", msg.socket_id, msg.uri, ws.protocol or "none")
        await self.send(protocol.encode(protocol.WsOpened(msg.request_id, msg.socket_id, ws.protocol)))

    def _refused(self, msg: protocol.WsOpen, status: int, code: str, why: str) -> None:
        if self.record is not None:
            self.record.refused(msg.socket_id, msg.uri, msg.headers, status, code, why, self.tunnel)

    def forget(self, socket_id: str) -> None:
        self.sockets.pop(socket_id, None)

    def _spawn_send(self, message: protocol.Message) -> None:
        task = asyncio.ensure_future(self.send(protocol.encode(message)))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


class LocalSocket:
    """One caller socket and its local WebSocket."""

    def __init__(self, owner: CallerSockets, socket_id: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.owner = owner
        self.socket_id = socket_id
        self.ws = ws
        self.receiver: Receiver[list[str]] = Receiver(window=REORDER_WINDOW)
        self.held: set[int] = set()
        self.gap_since: float | None = None
        self.sender: Sender[list[str]] = Sender(window=1)
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.to_app: asyncio.Queue[str] = asyncio.Queue()
        self.held_bytes: dict[int, int] = {}  # seq -> bytes of a caller frame held out of order
        self.to_app_bytes = 0  # bytes in ``to_app``
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()  # the pump took a batch: room in ``pending`` again
        self.ending = False
        self.tasks: list[asyncio.Task[None]] = []
        self.messages_in = self.messages_out = 0
        self.record: SocketRecord | None = None  # the inspector's record of this session

    def inject(self, text: str, to_caller: bool) -> None:
        """The inspector sends a text into this session, queued like the app's (or the caller's) own."""
        if self.ending:
            raise InjectRefused(409, "the session is closing: nothing was sent")
        if not to_caller:
            if self.to_app.qsize() >= TO_APP_MESSAGES:
                raise InjectRefused(503, "the local app reads too slowly: its queue is full, nothing was sent")
            self.to_app.put_nowait(text)
            return
        size = text_bytes(text)
        if size > BATCH_BYTES:
            raise InjectRefused(413, f"a message toward the caller is at most {BATCH_BYTES} bytes (JSON-escaped)")
        if len(self.pending) >= QUEUE_MESSAGES or self.pending_bytes + size > QUEUE_BYTES:
            raise InjectRefused(503, "the queue toward the caller is full: nothing was sent")
        self.pending.append(text)
        self.pending_bytes += size
        self.wake.set()

    def _ended(self, code: int, reason: str, by: str) -> None:
        if self.record is not None:
            self.record.closed(code, reason, by)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._read_app()), asyncio.create_task(self._pump()),
                      asyncio.create_task(self._write_app())]

    # ---- caller -> app ------------------------------------------------------------------
    def from_caller(self, seq: int, data: list[str]) -> None:
        if self.ending:
            return
        if seq >= self.receiver.next_seq + REORDER_WINDOW:
            self._end_both(1008, "too many caller messages out of order")
            return
        if self.receiver.accept(seq, data):
            self.held.add(seq)
            self.held_bytes[seq] = sum(len(t.encode("utf-8")) for t in data)
        self._deliver()

    def _deliver(self) -> None:
        before = self.receiver.next_seq
        for batch in self.receiver.ready():
            for text in batch:
                self.to_app.put_nowait(text)
                self.to_app_bytes += len(text.encode("utf-8"))
        self.held = {s for s in self.held if s >= self.receiver.next_seq}
        self.held_bytes = {s: n for s, n in self.held_bytes.items() if s in self.held}
        loop = asyncio.get_running_loop()
        if not self.held:
            self.gap_since = None
        elif self.gap_since is None or self.receiver.next_seq != before:
            self.gap_since = loop.time()
            self.wake.set()
        if self.to_app.qsize() > TO_APP_MESSAGES or self.to_app_bytes + sum(self.held_bytes.values()) > TO_APP_BYTES:
            self._end_both(1008, "the local app reads too slowly")

    def _skip_gap(self) -> None:
        missing = list(range(self.receiver.next_seq, min(self.held)))
        log.warning("caller WebSocket %s: message(s) %s never arrived within %g s: skipped", self.socket_id,
                    missing, GAP_SKIP_S)
        self.receiver.next_seq = min(self.held)
        self.gap_since = None
        self._deliver()

    async def _write_app(self) -> None:
        while True:
            text = await self.to_app.get()
            self.to_app_bytes -= len(text.encode("utf-8"))
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                return
            self.messages_in += 1
            if self.record is not None:
                self.record.message(TO_APP, text, injected=isinstance(text, Injected))

    # ---- app -> caller ------------------------------------------------------------------
    async def _read_app(self) -> None:
        code, reason = 1000, ""
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                # the app's code and reason go to the caller, and the answering close echoes its code
                # (RFC 6455 5.5.1; aiohttp's autoclose answered 1000, so the app saw its 4403 come back as 1000)
                code, reason = int(msg.data) or 1000, str(msg.extra or "")  # 0: a close without a code
                with contextlib.suppress(Exception):
                    await self.ws.close(code=wire_code(code))
                break
            if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                break
            if msg.type == aiohttp.WSMsgType.TEXT:
                size = text_bytes(msg.data)
                if size > BATCH_BYTES:
                    log.warning("caller WebSocket %s: the app sent %d bytes in one message (at most %d pass)",
                                self.socket_id, size, BATCH_BYTES)
                    self._end_both(1009, "message too big for the tunnel")
                    return
                while self.pending and (len(self.pending) >= QUEUE_MESSAGES
                                        or self.pending_bytes + size > QUEUE_BYTES):
                    self.drained.clear()  # full: stop reading the app until the pump takes a batch
                    await self.drained.wait()
                    if self.ending:
                        return
                self.pending.append(msg.data)
                self.pending_bytes += size
                if self.record is not None:
                    self.record.message(TO_CALLER, msg.data)
                self.wake.set()
            elif msg.type == aiohttp.WSMsgType.BINARY:
                log.warning("caller WebSocket %s: the app sent a binary message (callers get text only)", self.socket_id)
                self._end_both(1003, "binary messages do not pass the tunnel")
                return
            elif msg.type == aiohttp.WSMsgType.ERROR:
                code, reason = 1011, "local socket error"
                break
        if self.ws.close_code is not None and not reason:
            code = self.ws.close_code
        await self._app_closed(code, reason)

    async def _app_closed(self, code: int, reason: str) -> None:
        """The app ended its socket: what it wrote first reaches the caller (bounded), then the close."""
        if self.ending:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + CLOSE_DRAIN_S
        while (self.pending or not self.sender.done) and loop.time() < until and not self.ending:
            self.wake.set()
            await asyncio.sleep(0.02)  # bounded by CLOSE_DRAIN_S: the pump sends and the acks arrive meanwhile
        if self.ending:
            return
        self.ending = True
        self._ended(code, reason, "app")
        await self.owner.send(protocol.encode(protocol.WsClose(self.socket_id, code, reason[:123])))
        await self._finish()

    def acked(self, seq: int) -> None:
        self.sender.ack(seq)
        self.wake.set()

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.ending:
            now = loop.time()
            if self.gap_since is not None and now - self.gap_since >= GAP_SKIP_S and self.held:
                self._skip_gap()
            if self.sender.done and self.pending:
                batch: list[str] = []
                size = 0
                while self.pending and size + text_bytes(self.pending[0]) <= BATCH_BYTES \
                        and len(batch) < BATCH_MESSAGES:
                    text = self.pending.pop(0)
                    size += text_bytes(text)
                    batch.append(text)
                self.pending_bytes -= size
                self.drained.set()
                self.sender.offer(batch, now + RESEND_FOR_S)
            for send in self.sender.due(now):
                if send.attempt:
                    log.info("caller WebSocket %s: resending message %d (attempt %d)", self.socket_id, send.seq,
                             send.attempt + 1)
                self.messages_out += len(send.payload) if not send.attempt else 0
                await self.owner.send(protocol.encode(protocol.WsMessage(self.socket_id, send.seq, send.payload)))
            if self.sender.expired:
                log.warning("caller WebSocket %s: no acknowledgement for %g s: closed", self.socket_id, RESEND_FOR_S)
                self._end_both(1011, "the caller could not be reached")
                return
            self.wake.clear()
            wakeups = [w for w in (self.sender.next_wakeup(),
                                   self.gap_since + GAP_SKIP_S if self.gap_since is not None else None) if w is not None]
            try:
                async with asyncio.timeout_at(min(wakeups) if wakeups else None):
                    await self.wake.wait()
            except TimeoutError:
                pass

    # ---- endings ------------------------------------------------------------------------
    def caller_closed(self, code: int, reason: str) -> None:
        """The caller's socket ended: its code goes to the app."""
        if self.ending:
            return
        self.ending = True
        self._ended(code, reason, "caller")
        log.info("caller WebSocket %s closed by the caller (%d)", self.socket_id, code)
        task = asyncio.create_task(self._close_local(wire_code(code), reason))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _close_local(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            while not self.to_app.empty() and not self.ws.closed:  # what the caller sent before closing, first
                text = self.to_app.get_nowait()
                await self.ws.send_str(text)
                if self.record is not None:
                    self.record.message(TO_APP, text, injected=isinstance(text, Injected))
            await self.ws.close(code=code, message=reason.encode("utf-8")[:123])
        await self._finish()

    def _end_both(self, code: int, reason: str) -> None:
        if self.ending:
            return
        self.ending = True
        self._ended(code, reason, "ttf")
        task = asyncio.create_task(self._end(code, reason))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _end(self, code: int, reason: str) -> None:
        await self.owner.send(protocol.encode(protocol.WsClose(self.socket_id, code, reason)))
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason.encode("utf-8")[:123])
        await self._finish()

    async def abort(self, code: int, reason: str) -> None:
        self.ending = True
        self._ended(code, reason, "ttf")
        self.drained.set()
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=reason.encode("utf-8")[:123])
        await self._finish()

    async def _finish(self) -> None:
        self.owner.forget(self.socket_id)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()
