"""The inspector's memory: the latest exchanges with the local service, bounded in count and bytes.

Each body is kept up to `cap` bytes (the rest is cut and the entry marked truncated: the
inspector's copy only, the forwarded body is never touched), and the whole history stays
under `budget` bytes of bodies and headers (oldest entries go first), so memory is bounded
whatever passes through. Listeners (the server-sent events) hear of every change.

A streamed answer (ttf.streaming) is an entry from its head on (`open_live`): its status and
headers at once, then its body as it arrives - the first `cap` bytes kept, the size counting
everything - with an "update" to the listeners at most every LIVE_UPDATE_S, and a last one when
it ends. A live entry costs at most `cap` bytes plus its headers, like any other.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from httptunnel.protocol import Headers, b64encode, header_lookup

from ttf.forward import Exchange

BODY_CAP = 1024 * 1024
DEFAULT_BUDGET = 16 * 1024 * 1024
LIMIT_MAX = 100_000
SOURCES = ("tunnel", "replay", "edited", "imported", "denied")
LIVE_UPDATE_S = 0.25  # a streamed answer's entry is refreshed (and its listeners told) at most this often

log = logging.getLogger("ttf")

Listener = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Body:
    data: bytes  # at most the cap
    size: int  # the real size

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


EMPTY = Body(b"", 0)


def capture(body: bytes, cap: int = BODY_CAP, size: int | None = None) -> Body:
    """Keep the first `cap` bytes (no copy when the body fits); `size` when it is known to be more."""
    real = len(body) if size is None else max(size, len(body))
    return Body(body if len(body) <= cap else body[:cap], real)


def headers_size(headers: Headers) -> int:
    return sum(len(name) + sum(len(v) for v in values) for name, values in headers.items())


@dataclass(frozen=True)
class Entry:
    id: int
    at: float  # wall clock, when the request started
    method: str
    uri: str
    request_headers: Headers
    request: Body
    status: int
    response_headers: Headers
    response: Body
    duration_ms: int
    error: str | None = None  # the error code answered instead of a response (or the denial's reason)
    replay_of: int | None = None  # the entry this one replays (edited or not)
    source: str = "tunnel"  # one of SOURCES
    # the tunnel it came through: a config file's tunnel's name, else the tunnel id
    tunnel: str | None = None
    error_detail: str | None = None  # why the local call failed (local addresses, errno): here only
    streamed: bool = False  # the answer went out as a stream (ttf.streaming)
    streaming: bool = False  # ... and is still arriving: the body and size grow, duration_ms so far

    @property
    def cost(self) -> int:
        """Roughly the bytes this entry keeps alive."""
        return (len(self.request.data) + len(self.response.data) + headers_size(self.request_headers)
                + headers_size(self.response_headers) + len(self.uri) + 256)

    @property
    def host(self) -> str:
        found = header_lookup(self.request_headers, "host")
        return found[0] if found else ""

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "time": round(self.at, 3), "method": self.method, "uri": self.uri, "host": self.host,
            "status": self.status, "duration_ms": self.duration_ms, "error": self.error,
            "error_detail": self.error_detail, "replay_of": self.replay_of, "source": self.source, "tunnel": self.tunnel,
            "request_size": self.request.size, "request_truncated": self.request.truncated,
            "response_size": self.response.size, "response_truncated": self.response.truncated,
            "streamed": self.streamed, "streaming": self.streaming,
        }

    def detail(self) -> dict[str, Any]:
        return self.summary() | {
            "request_headers": self.request_headers,
            "request_body": b64encode(self.request.data),
            "response_headers": self.response_headers,
            "response_body": b64encode(self.response.data),
        }


@dataclass(frozen=True)
class Filter:
    """What the list shows; every field optional. `text` looks in header lines and bodies."""

    methods: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()  # "2xx".."5xx", "error", "denied"
    path: str = ""
    text: str = ""
    since: float | None = None
    until: float | None = None
    sources: frozenset[str] = frozenset()
    tunnel: str = ""
    _needle: bytes = field(default=b"", init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_needle", self.text.lower().encode("utf-8"))

    def __call__(self, entry: Entry) -> bool:
        if self.methods and entry.method.upper() not in self.methods:
            return False
        if self.statuses and not self.statuses & status_tags(entry):
            return False
        if self.path and self.path.lower() not in entry.uri.lower():
            return False
        if self.since is not None and entry.at < self.since:
            return False
        if self.until is not None and entry.at > self.until:
            return False
        if self.sources and entry.source not in self.sources:
            return False
        if self.tunnel and entry.tunnel != self.tunnel:
            return False
        return not self._needle or self._text_matches(entry)

    def _text_matches(self, entry: Entry) -> bool:
        needle = self._needle
        for headers in (entry.request_headers, entry.response_headers):
            for name, values in headers.items():
                if any(needle in f"{name}: {value}".lower().encode("utf-8") for value in values):
                    return True
        return needle in entry.request.data.lower() or needle in entry.response.data.lower()


def status_tags(entry: Entry) -> set[str]:
    tags = {f"{entry.status // 100}xx"} if 100 <= entry.status <= 599 else set()
    if entry.source == "denied":
        tags.add("denied")
    elif entry.error:
        tags.add("error")
    return tags


class History:
    """The latest `limit` entries within `budget` bytes; ids count up from 1 and are never reused."""

    def __init__(self, limit: int, budget: int = DEFAULT_BUDGET, cap: int = BODY_CAP) -> None:
        self.limit = limit
        self.budget = budget
        self.cap = cap
        self.bytes = 0
        self.tunnel: str | None = None  # the one tunnel's id, stamped on its new entries (kept current by
        # the inspector); a config file's tunnels pass their name to record() / record_denied()
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._next_id = 1
        self._listeners: list[Listener] = []

    def __len__(self) -> int:
        return len(self._entries)

    # ---- listeners ---------------------------------------------------------------------
    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hear ("entry", {summary, evicted}), ("cleared", {}), ("settings", {...}); returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _tell(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:  # a broken viewer must never cost the tunnel a request
                log.exception("inspector listener failed")

    # ---- recording ---------------------------------------------------------------------
    def record(self, exchange: Exchange, replay_of: int | None = None, source: str | None = None,
               tunnel: str | None = None) -> Entry:
        entry = Entry(
            id=0, at=exchange.started_at, method=exchange.method, uri=exchange.uri,
            request_headers=exchange.request_headers, request=capture(exchange.request_body, self.cap),
            status=exchange.status, response_headers=exchange.response_headers,
            response=capture(exchange.response_body, self.cap), duration_ms=exchange.duration_ms,
            error=exchange.error, error_detail=exchange.error_detail, replay_of=replay_of,
            source=source or ("replay" if replay_of is not None else "tunnel"), tunnel=tunnel or self.tunnel,
        )
        return self.add(entry)

    def record_denied(self, at: float, method: str, uri: str, headers: Headers, status: int, reason: str,
                      tunnel: str | None = None) -> Entry:
        """A request the edge refused for this tunnel (it never reached the local service)."""
        return self.add(Entry(id=0, at=at, method=method, uri=uri, request_headers=headers, request=EMPTY,
                              status=status, response_headers={}, response=EMPTY, duration_ms=0, error=reason,
                              source="denied", tunnel=tunnel or self.tunnel))

    def open_live(self, started_at: float, method: str, uri: str, request_headers: Headers, request_body: bytes,
                  tunnel: str | None = None) -> LiveEntry:
        """A streamed answer's entry, shown while it arrives (see the module docstring)."""
        entry = self.add(Entry(id=0, at=started_at, method=method, uri=uri, request_headers=request_headers,
                               request=capture(request_body, self.cap), status=0, response_headers={},
                               response=EMPTY, duration_ms=0, streamed=True, streaming=True,
                               tunnel=tunnel or self.tunnel))
        return LiveEntry(self, entry.id, started_at)

    def update(self, entry_id: int, **changes: Any) -> Entry | None:
        """Change a kept entry (a live one as it arrives) and tell the listeners ("update"); None once evicted."""
        old = self._entries.get(entry_id)
        if old is None:
            return None
        new = replace(old, **changes)
        self._entries[entry_id] = new
        self.bytes += new.cost - old.cost
        self._tell("update", {"entry": new.summary(), "evicted": self._evict(), "count": len(self)})
        return new if entry_id in self._entries else None

    def add(self, entry: Entry) -> Entry:
        """Store an entry under the next id (the id it carries is ignored)."""
        entry = replace(entry, id=self._next_id)
        self._next_id += 1
        self._entries[entry.id] = entry
        self.bytes += entry.cost
        self._tell("entry", {"entry": entry.summary(), "evicted": self._evict(), "count": len(self)})
        return entry

    def _evict(self) -> list[int]:
        gone: list[int] = []
        while len(self._entries) > 1 and (len(self._entries) > self.limit or self.bytes > self.budget):
            _, oldest = self._entries.popitem(last=False)
            self.bytes -= oldest.cost
            gone.append(oldest.id)
        return gone

    def set_limit(self, limit: int) -> list[int]:
        if not 1 <= limit <= LIMIT_MAX:
            raise ValueError(f"history size must be 1..{LIMIT_MAX}, got {limit}")
        self.limit = limit
        gone = self._evict()
        self._tell("settings", {"limit": limit, "evicted": gone, "count": len(self)})
        return gone

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
        self._tell("cleared", {"count": 0})

    # ---- reading -----------------------------------------------------------------------
    def get(self, entry_id: int) -> Entry | None:
        return self._entries.get(entry_id)

    def newest_first(self) -> list[Entry]:
        return list(reversed(self._entries.values()))

    def select(self, keep: Callable[[Entry], bool]) -> list[Entry]:
        return [e for e in reversed(self._entries.values()) if keep(e)]

    def many(self, ids: Iterable[int]) -> list[Entry]:
        return [e for e in (self._entries.get(i) for i in ids) if e is not None]



class LiveEntry:
    """The history's side of one streamed answer (ttf.streaming.Live): head, body pieces, done."""

    def __init__(self, history: History, entry_id: int, started_at: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.history = history
        self.id = entry_id
        self.started_at = started_at
        self.clock = clock
        self.kept = bytearray()  # at most history.cap
        self._kept = b""  # the same, as the entry holds it (rebuilt only when it grew)
        self.size = 0
        self._told_at = clock()

    def head(self, status: int, headers: Headers) -> None:
        self.history.update(self.id, status=status, response_headers=headers)

    def body(self, data: bytes) -> None:
        room = self.history.cap - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.size += len(data)
        now = self.clock()
        if now - self._told_at >= LIVE_UPDATE_S:
            self._told_at = now
            self._flush(streaming=True)

    def done(self, duration_ms: int, error: str | None, detail: str | None) -> None:
        self._flush(streaming=False, duration_ms=duration_ms, error=error, error_detail=detail)

    def _flush(self, streaming: bool, **changes: Any) -> None:
        if "duration_ms" not in changes:
            changes["duration_ms"] = int((time.time() - self.started_at) * 1000)
        if len(self._kept) != len(self.kept):
            self._kept = bytes(self.kept)
        self.history.update(self.id, response=Body(self._kept, self.size), streaming=streaming, **changes)
