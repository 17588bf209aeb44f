"""relay: the streaming edge's reading side of a streamed answer (issue 23, shared/README.md
"The chunk channel"). ``exchange`` found the answer's head (the answer row, status ``streaming``);
this module reads frames 1, 2, ... in order from the answers table and writes them to the caller's
stream as they come.

* **Head first.** The caller's headers are shaped as for a whole answer (``to_caller.caller_head``:
  the checks, the tunnel's response rules, hop-by-hop headers, cookie scoping, path-mode
  Location/Set-Cookie rewriting) and written at once, so the caller sees the status before the body.
  A body that path-mode rewriting changes (HTML, CSS, JSON with ``--rewrite-json``, uncompressed) is
  gathered whole first (up to ``BODY_MAX``) and rewritten as today: rewriting needs the whole text.
* **In order.** ``Reader.next_frame`` asks for ``seq = next`` only (a strongly consistent GetItem);
  a gap waits for the missing frame, since ``$default`` invocations store frames concurrently. The
  poll schedule is ``waiting.next_stream_poll``: 20 ms after a frame, x1.5 to 100 ms while busy,
  to 250 ms after 5 s of silence. Every second without a frame, the connection row is checked.
* **Bulk lane.** A segment notice names ``resp/<request id>/<seq>``: its current version is read
  (size checked before, SHA-256 after: nothing unchecked reaches the caller), written, then that
  version is deleted. At most one segment (8 MiB) is held at a time.
* **Acks and deletes.** After writing, forward acknowledges what it read with one cumulative
  ``stream_ack`` per 8 frames or per second, whichever first, and deletes the frames read since the
  last ack in one BatchWriteItem (TTL is only the backstop).
* **Bounded.** The stream ends at the request's deadline (``max_stream_seconds``, and never past
  what the function's timeout leaves): the agent gets ``stream_cancel`` and stops its local
  request. An SSE stream (``text/event-stream``) then ends cleanly, so ``EventSource`` reconnects
  with ``Last-Event-ID``; any other body is cut (the Runtime API's error trailers), so a client
  can tell a truncated download from a whole one. An ``http_response_end`` with an ``error``, a
  byte count that differs from what was relayed, a bad segment, or an agent that went away cut
  the body the same way.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Callable

from . import bodies, events, limits, log, protocol, store, to_caller, tunnels, waiting
from .exchange import Exchanged
from .replies import GONE, PUBLIC_MESSAGES, TIMEOUT, fail

ACK_EVERY_FRAMES = 8
ACK_EVERY_S = 1.0
GATHER_MAX = limits.BODY_MAX  # a body path-mode rewriting changes is gathered whole, up to this
CAP = "max_stream_seconds"
GONE_MESSAGE = "agent disconnected"


def _public(code: str) -> str:
    return PUBLIC_MESSAGES.get(code, PUBLIC_MESSAGES["internal_error"])


@dataclass(frozen=True)
class Relayed:
    """How a streamed answer ended, for the caller's log line."""
    status: int
    error_code: str | None
    bytes: int
    frames: int


class BrokenFrame(Exception):
    """A frame whose bytes cannot be relayed (a segment missing, of another size or checksum)."""


class Reader:
    """Frames 1, 2, ... of one streamed answer, in order; acknowledges and deletes what was read."""

    def __init__(self, request_id: str, conn: store.Connection, deadline: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.request_id = request_id
        self.conn = conn
        self.deadline = deadline
        self._clock, self._sleep = clock, sleep
        self.next_seq = 1
        self.read_seq = 0  # the head (seq 0) is read
        self.acked = -1
        self.unacked_since = clock()
        self.last_frame = self.unacked_since
        self.unread_deletes: list[int] = []
        self.acks_sent = 0
        self.cancelled: str | None = None  # the reason told to the agent
        self.ended = False  # the end frame was read, or the agent is gone: nothing to cancel

    def next_frame(self) -> store.Frame | str:
        """The next frame, or why there is none: ``CAP`` (the deadline) or ``GONE`` (the agent's socket)."""
        delay = 0.0
        next_alive = self.last_frame + waiting.ALIVE_CHECK_S
        while True:
            frame = store.get_frame(self.request_id, self.conn.connection_id, self.next_seq)
            now = self._clock()
            if frame is not None:
                if self.acked >= self.read_seq:
                    self.unacked_since = now
                self.next_seq, self.read_seq, self.last_frame = frame.seq + 1, frame.seq, now
                self.unread_deletes.append(frame.seq)
                return frame
            self.written()  # a second without a new frame still acks what was read
            if now >= self.deadline:
                return CAP
            if now >= next_alive:
                if not store.connection_exists(self.conn.connection_id):
                    return GONE
                next_alive = now + waiting.ALIVE_CHECK_S
            delay = waiting.next_stream_poll(delay, now - self.last_frame)
            self._sleep(min(delay, max(0.0, self.deadline - now)))  # the poll schedule, bounded by the deadline

    def written(self, force: bool = False) -> None:
        """Everything read so far reached the caller: ack it when 8 frames or 1 s are due (or ``force``)."""
        due = self.read_seq - self.acked
        if due <= 0 or not (force or due >= ACK_EVERY_FRAMES or self._clock() - self.unacked_since >= ACK_EVERY_S):
            return
        tunnels.tell(self.conn, protocol.encode(protocol.StreamAck(self.request_id, self.read_seq)))
        self.acks_sent += 1
        self.acked, self.unacked_since = self.read_seq, self._clock()
        self._delete_read()

    def finish(self, end: store.Frame, relayed: int) -> str | None:
        """The end frame was read: acknowledge everything now, and say how the body ended (None:
        whole; else the error code, the agent's or ``internal_error`` when the byte counts differ)."""
        self.written(force=True)
        self.ended = True
        return end.error or (None if end.total == relayed else "internal_error")

    def cancel(self, reason: str) -> None:
        """Stop the agent's local request (it sends nothing more for this id); once."""
        if self.cancelled is None:
            self.cancelled = reason
            tunnels.tell(self.conn, protocol.encode(protocol.StreamCancel(self.request_id, reason)))
        self._delete_read()

    def _delete_read(self) -> None:
        seqs, self.unread_deletes = self.unread_deletes, []
        if seqs and store.delete_frames(self.request_id, self.conn.connection_id, seqs):
            log.info("stream frames left to TTL", request_id=self.request_id)

    def payload(self, frame: store.Frame) -> bytes:
        """A frame's body bytes: inline, or its segment read from S3 (checked), then deleted there."""
        if frame.segment is None:
            return frame.body
        if frame.segment != protocol.segment_key(self.request_id, frame.seq) or not bodies.enabled():
            raise BrokenFrame("segment key or bucket")
        try:
            stored = bodies.get_segment(frame.segment, frame.size)
        except (bodies.BodyMissing, bodies.SegmentMismatch, bodies.NotVersioned) as exc:
            raise BrokenFrame(type(exc).__name__) from None
        if hashlib.sha256(stored.body).hexdigest() != (frame.sha256 or "").lower():
            raise BrokenFrame("segment checksum")
        bodies.delete_segment(frame.segment, stored.version_id)
        return stored.body


def relay(context: to_caller.StreamOpener, done: Exchanged, req: events.HttpEvent, deadline: float) -> Relayed:
    """Write the streamed answer whose head ``done`` holds to the caller's stream, until its end,
    the deadline, or a failure. Whatever happens, the agent is told when forward stops early."""
    reader = Reader(done.request_id, done.conn, deadline)
    try:
        return _relay(context, done, req, reader)
    finally:
        if reader.cancelled is None and not reader.ended:
            reader.cancel("error")  # an exception on the way (the caller's stream broke): the agent stops


def _relay(context: to_caller.StreamOpener, done: Exchanged, req: events.HttpEvent, reader: Reader) -> Relayed:
    headers = to_caller.caller_head(req, done.route, done.answer.headers_json, done.conn.rewrite, done.rules)
    if not isinstance(headers, dict):
        reader.cancel("error")
        to_caller.stream_result(context, headers.result)
        return Relayed(headers.status, headers.error_code, 0, 0)
    status = done.answer.status_code
    if to_caller.rewrites_body(headers, done.route, done.conn.rewrite, done.conn.rewrite_json):
        return _gathered(context, done, status, headers, reader)
    stream = to_caller.open_head(context, status, headers)
    sse = protocol.media_type(headers) == "text/event-stream"
    sent = frames = 0
    while True:
        frame = reader.next_frame()
        if isinstance(frame, str):
            if frame == CAP:
                reader.cancel(CAP)
                if sse:  # EventSource reconnects with Last-Event-ID
                    stream.close()
                    return Relayed(status, None, sent, frames)
                stream.fail(TIMEOUT, "the stream reached max_stream_seconds")
                return Relayed(status, TIMEOUT, sent, frames)
            stream.fail(GONE, GONE_MESSAGE)
            reader.ended = True
            return Relayed(status, GONE, sent, frames)
        frames += 1
        if frame.end:
            code = reader.finish(frame, sent)
            if code is None:
                stream.close()
            else:
                log.warning("streamed answer broke mid-body", request_id=done.request_id, error_code=code,
                            bytes=sent, announced=frame.total)
                stream.fail(code, _public(code))
            return Relayed(status, code, sent, frames)
        try:
            data = reader.payload(frame)
        except BrokenFrame as exc:
            log.warning("stream segment refused", request_id=done.request_id, seq=frame.seq, reason=str(exc))
            reader.cancel("error")
            stream.fail("internal_error", PUBLIC_MESSAGES["internal_error"])
            return Relayed(status, "internal_error", sent, frames)
        to_caller.write_pieces(stream, data)
        sent += len(data)
        reader.written()


def _gathered(context: to_caller.StreamOpener, done: Exchanged, status: int, headers: protocol.Headers,
              reader: Reader) -> Relayed:
    """A body path-mode rewriting changes: gathered whole (as the buffered edge does), rewritten, sent."""
    parts: list[bytes] = []
    size = frames = 0
    while True:
        frame = reader.next_frame()
        if isinstance(frame, str):
            reader.cancel(CAP if frame == CAP else "error")
            outcome = fail(504, TIMEOUT, "") if frame == CAP else fail(502, GONE, GONE_MESSAGE)
            break
        frames += 1
        if frame.end:
            broke = reader.finish(frame, size)
            if broke is not None:
                outcome = fail(protocol.ERROR_STATUS.get(broke, 502), broke, _public(broke))
                break
            body = to_caller.rewrite_body(headers, b"".join(parts), done.route.prefix, done.conn.rewrite_json)
            to_caller.stream_answer(context, status, headers, body)
            return Relayed(status, None, len(body), frames)
        try:
            data = reader.payload(frame)
        except BrokenFrame:
            reader.cancel("error")
            outcome = fail(502, "internal_error", PUBLIC_MESSAGES["internal_error"])
            break
        size += len(data)
        if size > GATHER_MAX:
            reader.cancel("error")
            outcome = fail(502, "response_too_large", "a rewritten answer is gathered whole, up to 10 MB")
            break
        parts.append(data)
        reader.written()
    to_caller.stream_result(context, outcome.result)
    return Relayed(outcome.status, outcome.error_code, 0, frames)
