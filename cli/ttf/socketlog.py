"""Caller WebSocket sessions as the inspector and the dashboard show them (issue 24 item 4).

One SocketRecord per caller socket ttf served (ttf.sockets feeds it through small hooks) or
refused: its path, subprotocol, handshake headers, when it opened and closed, the close code and
who closed it (the caller, the app, or ttf itself), how many messages and UTF-8 bytes passed each
way, and the last messages each way. Everything is bounded whatever passes through:

* per session, each way: the last ``LAST_MESSAGES`` messages, each cut at ``MESSAGE_KEEP`` bytes
  (its size counts all of it), all of them within ``WAY_BUDGET`` bytes (oldest go first);
  the handshake headers at most ``HEADERS_KEEP`` bytes;
* open sessions are as many as the sockets ttf holds (ttf.sockets caps them per tunnel socket);
* closed and refused sessions: the last ``CLOSED_MAX``, within ``CLOSED_BUDGET`` bytes.

Listeners (the inspector's server-sent events) hear ("socket", {"socket": summary, ...}) when a
session opens or closes at once, and of its messages at most every ``UPDATE_S`` (a last update
follows the last message). The inspector sends a text into an open session through the record's
``Injector`` (the ttf.sockets LocalSocket); what it sent is listed, marked ``injected``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from httptunnel.protocol import Headers

log = logging.getLogger("ttf")

LAST_MESSAGES = 50  # kept per session, each way
MESSAGE_KEEP = 4096  # bytes of one message's text kept (UTF-8; `size` counts all of it)
WAY_BUDGET = 64 * 1024  # kept text per session, each way
HEADERS_KEEP = 16 * 1024  # handshake headers kept per session
CLOSED_MAX = 100  # closed and refused sessions kept ...
CLOSED_BUDGET = 4 * 1024 * 1024  # ... within this many bytes (oldest go first)
UPDATE_S = 0.25  # listeners hear of a session's messages at most this often
PREVIEW_CHARS = 120  # the last message in a summary (the list and the dashboard)

TO_APP, TO_CALLER = "to_app", "to_caller"
WAYS = (TO_APP, TO_CALLER)
# who ended a session: the caller (its code reached the app), the app (the caller saw 1000: AWS's
# DeleteConnection), ttf (a binary or too-big message, a full queue, no acknowledgement, the tunnel's
# socket reconnected)
CLOSED_BY = ("caller", "app", "ttf")

Listener = Callable[[str, dict[str, Any]], None]


class InjectRefused(Exception):
    """The text was not sent into the session: `status` (HTTP) and a sentence that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Injected(str):
    """A text the inspector sent (ttf.sockets queues it like any other, and the record marks it)."""


class Injector(Protocol):
    def inject(self, text: str, to_caller: bool) -> None:
        """Queue `text` toward the caller (else the app); InjectRefused when it cannot be."""


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def cut(text: str, limit: int) -> str:
    """The first `limit` UTF-8 bytes of `text`, never half a character."""
    raw = text.encode("utf-8", "surrogatepass")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


@dataclass(frozen=True)
class Message:
    n: int  # its place in the session, both ways counted
    at: float  # wall clock
    direction: str  # TO_APP or TO_CALLER
    text: str  # at most MESSAGE_KEEP bytes of it
    size: int  # its UTF-8 bytes, all of them
    injected: bool = False  # sent by the inspector, not by the caller or the app

    @property
    def kept(self) -> int:
        return utf8_size(self.text)

    @property
    def truncated(self) -> bool:
        return self.kept < self.size

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "time": round(self.at, 3), "direction": self.direction, "text": self.text,
                "size": self.size, "truncated": self.truncated, "injected": self.injected}


def _headers_kept(headers: Headers) -> tuple[Headers, bool]:
    kept: Headers = {}
    used = 0
    for name, values in headers.items():
        for value in values:
            used += len(name) + len(value) + 4
            if used > HEADERS_KEEP:
                return kept, True
            kept.setdefault(name, []).append(value)
    return kept, False


class SocketRecord:
    """One caller socket: what the list and the detail show. Its log is told of every change."""

    def __init__(self, owner: SocketLog, record_id: int, socket_id: str, uri: str, headers: Headers,
                 tunnel: str | None, at: float) -> None:
        self.owner = owner
        self.id = record_id
        self.socket_id = socket_id
        self.uri = uri
        self.headers, self.headers_truncated = _headers_kept(headers)
        self.tunnel = tunnel
        self.opened_at = at
        self.protocol: str | None = None
        self.state = "open"  # open, closed, refused
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by: str | None = None
        self.refused_status: int | None = None  # a refused handshake: the status the caller got ...
        self.refused_code: str | None = None  # ... and its x-tunnel-error
        self.count = dict.fromkeys(WAYS, 0)
        self.bytes = dict.fromkeys(WAYS, 0)
        self.kept: dict[str, deque[Message]] = {way: deque() for way in WAYS}
        self.kept_bytes = dict.fromkeys(WAYS, 0)
        self.last: Message | None = None
        self.injector: Injector | None = None  # while open
        self._n = 0

    @property
    def cost(self) -> int:
        """Roughly the bytes this record keeps alive."""
        heads = sum(len(k) + sum(len(v) + 4 for v in vs) for k, vs in self.headers.items())
        return 512 + len(self.uri) + heads + sum(self.kept_bytes.values()) + 96 * sum(map(len, self.kept.values()))

    # ---- what ttf.sockets reports ----------------------------------------------------------
    def message(self, direction: str, text: str, injected: bool = False) -> Message:
        size = utf8_size(text)
        self._n += 1
        kept = Message(self._n, time.time(), direction, cut(text, MESSAGE_KEEP), size, injected)
        self.count[direction] += 1
        self.bytes[direction] += size
        way = self.kept[direction]
        way.append(kept)
        self.kept_bytes[direction] += kept.kept
        while len(way) > LAST_MESSAGES or (self.kept_bytes[direction] > WAY_BUDGET and len(way) > 1):
            self.kept_bytes[direction] -= way.popleft().kept
        self.last = kept
        self.owner._changed(self, urgent=False)
        return kept

    def closed(self, code: int | None, reason: str, by: str) -> None:
        """The first ending counts (a close that follows it is the same session ending)."""
        if self.state != "open":
            return
        self.state = "closed"
        self.closed_at = time.time()
        self.close_code, self.close_reason, self.closed_by = code, reason, by
        self.injector = None
        self.owner._closed(self)

    # ---- what the inspector shows ----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        last = self.last
        return {
            "id": self.id, "socket_id": self.socket_id, "tunnel": self.tunnel, "uri": self.uri,
            "protocol": self.protocol, "state": self.state, "opened_at": round(self.opened_at, 3),
            "closed_at": None if self.closed_at is None else round(self.closed_at, 3),
            "close_code": self.close_code, "close_reason": self.close_reason, "closed_by": self.closed_by,
            "refused_status": self.refused_status, "refused_code": self.refused_code,
            "messages": dict(self.count), "bytes": dict(self.bytes),
            "last": None if last is None else {"direction": last.direction, "time": round(last.at, 3),
                                                "text": last.text[:PREVIEW_CHARS], "size": last.size,
                                                "injected": last.injected},
        }

    def detail(self) -> dict[str, Any]:
        kept = sorted((m for way in self.kept.values() for m in way), key=lambda m: m.n)
        return self.summary() | {
            "headers": self.headers, "headers_truncated": self.headers_truncated,
            "kept": [m.to_json() for m in kept],
            # how many of each way's messages are no longer kept (only the last ones are)
            "dropped": {way: self.count[way] - len(self.kept[way]) for way in WAYS},
            "limits": {"last_messages": LAST_MESSAGES, "message_keep": MESSAGE_KEEP, "way_budget": WAY_BUDGET},
        }


class SocketLog:
    """Every caller socket of one ttf process (all its tunnels); ids count up from 1, never reused."""

    def __init__(self, closed_max: int = CLOSED_MAX, budget: int = CLOSED_BUDGET,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.closed_max = closed_max
        self.budget = budget
        self.clock = clock
        self.tunnel: str | None = None  # the one tunnel's id (kept current by the inspector), like History's
        self._records: OrderedDict[int, SocketRecord] = OrderedDict()
        self._ended: OrderedDict[int, SocketRecord] = OrderedDict()  # closed and refused, oldest first
        self._ended_bytes = 0
        self._next_id = 1
        self._listeners: list[Listener] = []
        self._told_at: dict[int, float] = {}
        self._pending: dict[int, asyncio.TimerHandle] = {}

    # ---- what ttf.sockets reports ----------------------------------------------------------
    def opened(self, socket_id: str, uri: str, headers: Headers, protocol: str | None, injector: Injector | None,
               tunnel: str | None = None) -> SocketRecord:
        record = self._new(socket_id, uri, headers, tunnel)
        record.protocol, record.injector = protocol, injector
        self._tell(record)
        return record

    def refused(self, socket_id: str, uri: str, headers: Headers, status: int, code: str, reason: str,
                tunnel: str | None = None) -> SocketRecord:
        """A handshake ttf answered ws_refused (the app refused it, is down, or the cap was reached)."""
        record = self._new(socket_id, uri, headers, tunnel)
        record.state = "refused"
        record.closed_at = record.opened_at
        record.refused_status, record.refused_code, record.close_reason = status, code, reason
        self._closed(record)
        return record

    def _new(self, socket_id: str, uri: str, headers: Headers, tunnel: str | None) -> SocketRecord:
        record = SocketRecord(self, self._next_id, socket_id, uri, headers, tunnel or self.tunnel, time.time())
        self._next_id += 1
        self._records[record.id] = record
        return record

    # ---- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    @property
    def open_count(self) -> int:
        return len(self._records) - len(self._ended)

    @property
    def bytes(self) -> int:
        return sum(r.cost for r in self._records.values())

    def get(self, record_id: int) -> SocketRecord | None:
        return self._records.get(record_id)

    def newest_first(self) -> list[SocketRecord]:
        return list(reversed(self._records.values()))

    def open_sessions(self) -> list[SocketRecord]:
        """Oldest first."""
        return [r for r in self._records.values() if r.state == "open"]

    def totals(self) -> dict[str, int]:
        """Over the sessions kept: open, closed (refused included), messages and bytes each way."""
        kept = self._records.values()
        return {"open": self.open_count, "ended": len(self._ended),
                **{f"messages_{w}": sum(r.count[w] for r in kept) for w in WAYS},
                **{f"bytes_{w}": sum(r.bytes[w] for r in kept) for w in WAYS}}

    # ---- the inspector's message -----------------------------------------------------------
    def send(self, record_id: int, text: str, to: str) -> None:
        """Send `text` into an open session toward the caller or the app; InjectRefused says why not."""
        record = self._records.get(record_id)
        if record is None:
            raise InjectRefused(404, "no such WebSocket session (unknown id, or no longer kept)")
        if to not in ("caller", "app"):
            raise InjectRefused(400, "to must be caller or app")
        injector = record.injector
        if record.state != "open" or injector is None:
            raise InjectRefused(409, f"WebSocket session #{record.id} is {_ended_how(record)}: nothing was sent")
        injector.inject(Injected(text), to_caller=to == "caller")
        if to == "caller":  # toward the app it is recorded when written to the app (ttf.sockets), as the caller's are
            record.message(TO_CALLER, text, injected=True)

    # ---- listeners -------------------------------------------------------------------------
    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _closed(self, record: SocketRecord) -> None:
        self._ended[record.id] = record
        self._ended_bytes += record.cost
        evicted = []
        while self._ended and (len(self._ended) > self.closed_max or self._ended_bytes > self.budget):
            _, oldest = self._ended.popitem(last=False)
            self._ended_bytes -= oldest.cost
            self._records.pop(oldest.id, None)
            self._forget(oldest.id)
            evicted.append(oldest.id)
        self._tell(record, evicted)

    def _changed(self, record: SocketRecord, urgent: bool) -> None:
        """A message: listeners hear of it at once, or at most UPDATE_S after the last time they did."""
        if record.state != "open":
            return
        now = self.clock()
        wait = self._told_at.get(record.id, -UPDATE_S) + UPDATE_S - now
        if urgent or wait <= 0:
            self._tell(record)
        elif record.id not in self._pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a unit test's direct call): tell now
                self._tell(record)
                return
            self._pending[record.id] = loop.call_later(wait, self._flush, record.id)

    def _flush(self, record_id: int) -> None:
        self._pending.pop(record_id, None)
        record = self._records.get(record_id)
        if record is not None:
            self._tell(record)

    def _forget(self, record_id: int) -> None:
        self._told_at.pop(record_id, None)
        timer = self._pending.pop(record_id, None)
        if timer is not None:
            timer.cancel()

    def _tell(self, record: SocketRecord, evicted: list[int] | None = None) -> None:
        self._told_at[record.id] = self.clock()
        if record.state != "open":
            self._forget(record.id)
        if not self._listeners:  # no inspector page: nothing to build
            return
        data = {"socket": record.summary(), "evicted": evicted or [], "open": self.open_count, "count": len(self)}
        for listener in list(self._listeners):
            try:
                listener("socket", data)
            except Exception:  # a broken viewer must never cost a socket its messages
                log.exception("WebSocket session listener failed")


def _ended_how(record: SocketRecord) -> str:
    if record.state == "refused":
        return f"a refused handshake ({record.refused_status} {record.refused_code})"
    who = {"caller": "the caller", "app": "the app", "ttf": "ttf"}.get(record.closed_by or "", "")
    code = f" with {record.close_code}" if record.close_code is not None else ""
    return f"closed (by {who}{code})" if who else "closed"
