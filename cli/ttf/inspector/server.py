"""The inspector's HTTP side: the page (package data files) and the JSON API it and scripts use.

(Over 300 lines: one aiohttp handler per API route listed below, each short; the logic they call
lives in history, edit, diff, har, curl and security.)

API (all JSON; errors are {"error": ...} with a 4xx status):
  GET    /api/status                         tunnel (id, URLs, state, local_service), history (count, limit, bytes, budget);
                                             tunnels: a config file's tunnels, each named, the same fields
  GET    /api/events                         server-sent events: hello, entry, cleared, settings, status, resync
  GET    /api/requests?method=&status=&path=&text=&since=&until=&source=&tunnel=&limit=
                                             newest first (by start time), no bodies; total = how many match
  DELETE /api/requests                       clear the history
  GET    /api/requests/{id}                  one entry, bodies base64, + how the page lays them out, and
                                             sent_host: the Host the local service received (None: the captured one)
  GET    /api/requests/{id}/body/{request|response}   the captured bytes, as a download
  GET    /api/requests/{id}/curl?target=local|public  copy as curl / HTTPie
  GET    /api/requests/{id}/diff?against={id}         response diff (default: the entry it replays)
  POST   /api/requests/{id}/replay           {"request": {edits}, "count": N}, both optional; sent to the
                                             local service of the tunnel the entry came through
  GET    /api/har?ids=1,2 (or the list's filters)     HAR 1.2 export
  POST   /api/har                            HAR 1.2 import (all or nothing)
  GET|PUT /api/settings                      {"history_limit": N}
  GET    /api/sockets                        caller WebSocket sessions, newest first (ttf.socketlog summaries)
  GET    /api/sockets/{id}                   one session + its handshake headers and last messages each way
  POST   /api/sockets/{id}/send              {"text": "...", "to": "caller"|"app"}: into an open session
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from httptunnel.protocol import Headers

from ttf.events import Connected, Disconnected, LocalService, Reconnecting, TunnelEstablished, TunnelFailed
from ttf.forward import Exchange
from ttf.inspector import curl, har
from ttf.inspector.diff import diff
from ttf.inspector.edit import EditError, Request, edited, idempotent
from ttf.inspector.history import LIMIT_MAX, SOURCES, Entry, Filter, History
from ttf.inspector.security import Guard, add_headers, error, host_port
from ttf.inspector.stream import Streams
from ttf.inspector.views import body_view
from ttf.socketlog import InjectRefused, SocketLog, SocketRecord, utf8_size

SHUTDOWN_TIMEOUT = 2.0
REPLAY_MAX = 100  # one "replay N times" poke
REPLAY_PARALLEL = 4
SEND_MAX = 128 * 1024  # a text the inspector sends into a session (API Gateway's message limit); toward
# the caller ttf.sockets allows what one ws_message frame carries (~30 KB)
LIST_MAX = 5000
JSON_MAX = 16 * 1024 * 1024  # an edited request: a 10 MB body in base64 and its headers
STATIC = {"index.html": "text/html", "app.js": "text/javascript", "views.js": "text/javascript",
          "app.css": "text/css", "icon.svg": "image/svg+xml"}

# (the entry's tunnel, method, uri, headers, body) -> the exchange with that tunnel's local service
Replayer = Callable[[str | None, str, str, Headers, bytes], Awaitable[Exchange]]


class ReplayRefused(Exception):
    """The replay cannot be sent (the entry's tunnel is not one this ttf runs): a 409 saying why."""


@dataclass(frozen=True)
class Local:
    """Where a config file's tunnel forwards to (curl's local target)."""

    target: str  # host:port
    keep_host: bool = False


def _fresh_status() -> dict[str, Any]:
    return {"state": "starting", "since": time.time(), "tunnel_id": None, "public_url": None,
            "subdomain_url": None, "path_based_url": None, "reason": None,
            "local_service": None, "local_detail": None}  # local_service: "down", "up" (after down), None


def _static_files() -> dict[str, bytes]:
    folder = resources.files("ttf.inspector").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in STATIC}


class Inspector:
    """start() binds (OSError when the port is taken), stop() closes; observe() hears the agent's events."""

    def __init__(self, history: History, replayer: Replayer, local_target: str = "127.0.0.1:3000",
                 keep_host: bool = False, named: Mapping[str, Local] | None = None,
                 socket_log: SocketLog | None = None) -> None:
        """named: a config file's tunnels (their entries carry the name); empty for one tunnel.
        socket_log: the caller WebSocket sessions (the agent's; an empty one when not given)."""
        self.history = history
        self.socket_log = socket_log if socket_log is not None else SocketLog()
        self.replayer = replayer
        self.local_target = local_target
        self.keep_host = keep_host
        self.named = dict(named or {})
        self.named_status: dict[str, dict[str, Any]] = {name: _fresh_status() for name in self.named}
        self.url: str | None = None  # what to open (with ?token= when bound off loopback)
        self.base_url: str | None = None
        self.guard = Guard()
        self.streams = Streams()
        # the header's tunnel: the one tunnel, or a config file's first (the same dict as its named_status)
        first = list(self.named_status.values())[:1]
        self.tunnel: dict[str, Any] = first[0] if first else _fresh_status()
        self._files = _static_files()
        self._runner: web.AppRunner | None = None
        self._unlisten: Callable[[], None] | None = None
        self._unlisten_sockets: Callable[[], None] | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard.middleware], client_max_size=har.HAR_MAX + 1024 * 1024)
        app.on_response_prepare.append(add_headers)
        r = app.router
        r.add_get("/", self._page)
        r.add_get("/static/{name}", self._static)
        r.add_get("/api/status", self._status)
        r.add_get("/api/events", self._events)
        r.add_get("/api/requests", self._list)
        r.add_delete("/api/requests", self._clear)
        r.add_get("/api/requests/{id}", self._detail)
        r.add_get("/api/requests/{id}/body/{which}", self._body)
        r.add_get("/api/requests/{id}/curl", self._curl)
        r.add_get("/api/requests/{id}/diff", self._diff)
        r.add_post("/api/requests/{id}/replay", self._replay)
        r.add_get("/api/har", self._har_export)
        r.add_post("/api/har", self._har_import)
        r.add_get("/api/sockets", self._sockets)
        r.add_get("/api/sockets/{id}", self._socket)
        r.add_post("/api/sockets/{id}/send", self._socket_send)
        r.add_get("/api/settings", self._settings)
        r.add_put("/api/settings", self._settings)
        return app

    async def start(self, host: str, port: int) -> str:
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0][1]
        self.guard.bind(host, bound)
        self.base_url = f"http://{host_port(host, bound)}"
        self.url = self.base_url + (f"/?token={self.guard.token}" if self.guard.token else "")
        self._unlisten = self.history.listen(self.streams.broadcast)
        self._unlisten_sockets = self.socket_log.listen(self.streams.broadcast)
        return self.url

    async def stop(self) -> None:
        for unlisten in (self._unlisten, self._unlisten_sockets):
            if unlisten is not None:
                unlisten()
        self.streams.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def observe(self, event: object) -> None:
        """The agent's events: the header shows each tunnel's id, URLs and state."""
        now = time.time()
        name = getattr(event, "tunnel", None)
        tunnel = self.named_status.get(name, self.tunnel) if name is not None else self.tunnel
        if isinstance(event, Connected):
            tunnel.update(state="connecting", since=now, reason=None)
        elif isinstance(event, TunnelEstablished):
            tunnel.update(state="online", since=now, reason=None, tunnel_id=event.tunnel_id,
                          public_url=event.public_url, subdomain_url=event.subdomain_url,
                          path_based_url=event.path_based_url)
            if name is None:
                self.history.tunnel = self.socket_log.tunnel = event.tunnel_id
        elif isinstance(event, Disconnected):
            tunnel.update(state="offline", since=now, reason=event.reason)
        elif isinstance(event, Reconnecting):
            tunnel.update(state="reconnecting", since=now, reason=event.reason)
        elif isinstance(event, TunnelFailed):
            tunnel.update(state="failed", since=now, reason=event.reason)
        elif isinstance(event, LocalService):
            tunnel.update(local_service="up" if event.up else "down", local_detail=event.detail)
        else:
            return
        self.streams.broadcast("status", self.status())

    def status(self) -> dict[str, Any]:
        h = self.history
        tunnels = [{"name": name, "local_target": self.named[name].target, **status}
                   for name, status in self.named_status.items()]
        return {"tunnel": dict(self.tunnel), "tunnels": tunnels,
                "local_target": tunnels[0]["local_target"] if tunnels else self.local_target,
                "inspector_url": self.base_url,
                "history": {"count": len(h), "limit": h.limit, "limit_max": LIMIT_MAX, "bytes": h.bytes,
                            "budget": h.budget, "body_cap": h.cap},
                "sockets": {"open": self.socket_log.open_count, "count": len(self.socket_log)},
                "replay_max": REPLAY_MAX, "protected": self.guard.token is not None}

    # ---- page and status ---------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._files["index.html"], content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            return error(404, "no such file")
        return web.Response(body=self._files[name], content_type=STATIC[name],
                            charset=None if name.endswith(".svg") else "utf-8")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await self.streams.serve(request, self.status())

    async def _settings(self, request: web.Request) -> web.Response:
        if request.method == "PUT":
            data = await _json(request, 4096)
            if isinstance(data, web.Response):
                return data
            limit = data.get("history_limit") if isinstance(data, dict) else None
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= LIMIT_MAX:
                return error(400, f"history_limit must be a whole number 1..{LIMIT_MAX}", field="history_limit")
            self.history.set_limit(limit)
        return web.json_response({"history_limit": self.history.limit, "limit_max": LIMIT_MAX})

    # ---- the list ----------------------------------------------------------------------
    async def _list(self, request: web.Request) -> web.Response:
        try:
            keep, limit = _filter(request.query)
        except ValueError as exc:
            return error(400, str(exc))
        found = newest_first(self.history.select(keep))
        return web.json_response({"requests": [e.summary() for e in found[:limit]], "total": len(found),
                                  "count": len(self.history), "limit": self.history.limit,
                                  "bytes": self.history.bytes})

    async def _clear(self, request: web.Request) -> web.Response:
        count = len(self.history)
        self.history.clear()
        return web.json_response({"cleared": count})

    # ---- one entry ---------------------------------------------------------------------
    async def _detail(self, request: web.Request) -> web.Response:
        entry = self._lookup(request.match_info["id"])
        if entry is None:
            return _gone()
        replays = [e.id for e in self.history.select(lambda e: e.replay_of == entry.id)]
        local = self._local_of(entry)
        return web.json_response(entry.detail() | {
            # the Host the local service got (ttf points it at the local target unless --keep-host)
            "sent_host": None if local.keep_host or entry.source == "denied" else local.target,
            "request_view": body_view(entry.request.data, entry.request_headers, entry.request.truncated),
            "response_view": body_view(entry.response.data, entry.response_headers, entry.response.truncated),
            "idempotent": idempotent(entry.method), "replays": replays})

    async def _body(self, request: web.Request) -> web.Response:
        entry = self._lookup(request.match_info["id"])
        which = request.match_info["which"]
        if entry is None or which not in {"request", "response"}:
            return _gone()
        body = entry.request if which == "request" else entry.response
        name = f"body-{entry.id}.bin" if which == "request" else f"response-{entry.id}.bin"
        # never the captured Content-Type: a captured HTML answer must not run on the inspector's origin
        return web.Response(body=body.data, content_type="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'"})

    async def _curl(self, request: web.Request) -> web.Response:
        entry = self._lookup(request.match_info["id"])
        if entry is None:
            return _gone()
        kind = request.query.get("target", "local")
        local = self._local_of(entry)
        if kind == "local":
            target = curl.Target(f"http://{local.target}", "local", local.keep_host)
        elif kind == "public":
            public = self._status_of(entry).get("public_url")
            if not public:
                return error(409, "the public URL is not known yet (the tunnel is not established)")
            target = curl.Target(str(public).rstrip("/"), "public")
        else:
            return error(400, "target must be local or public", field="target")
        return web.json_response(curl.commands(entry, target))

    async def _diff(self, request: web.Request) -> web.Response:
        entry = self._lookup(request.match_info["id"])
        if entry is None:
            return _gone()
        raw = request.query.get("against")
        other = self._lookup(raw) if raw is not None else (
            self.history.get(entry.replay_of) if entry.replay_of is not None else None)
        if other is None:
            return error(404 if raw is not None or entry.replay_of is not None else 400,
                         "nothing to compare with: give ?against=<id> (the original is gone, or this is no replay)")
        return web.json_response(diff(other, entry))

    # ---- replay ------------------------------------------------------------------------
    async def _replay(self, request: web.Request) -> web.Response:
        entry = self._lookup(request.match_info["id"])
        if entry is None:
            return _gone()
        data = await _json(request, JSON_MAX, empty={})
        if isinstance(data, web.Response):
            return data
        if not isinstance(data, dict) or set(data) - {"request", "count"}:
            return error(400, 'the body must be {"request": {...}, "count": N} (both optional)', field="body")
        count = data.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= REPLAY_MAX:
            return error(400, f"count must be a whole number 1..{REPLAY_MAX}", field="count")
        original = Request(entry.method, entry.uri, entry.request_headers, entry.request.data)
        try:
            req = edited(original, data["request"]) if "request" in data else original
        except EditError as exc:
            return web.json_response(exc.payload(), status=400)
        if entry.request.truncated and req.body is entry.request.data:
            return error(409, f"the captured request body was truncated ({entry.request.size} bytes, "
                              f"{len(entry.request.data)} kept): it cannot be replayed exactly; send a new body")
        source = "edited" if "request" in data else "replay"
        try:
            entries = await self._send(req, count, entry, source)
        except ReplayRefused as exc:
            return error(409, str(exc))
        durations = sorted(e.duration_ms for e in entries)
        statuses: dict[str, int] = {}
        for e in entries:
            statuses[str(e.status)] = statuses.get(str(e.status), 0) + 1
        return web.json_response(entries[0].detail() | {
            "replays": [e.summary() for e in entries], "statuses": statuses,
            "durations_ms": {"min": durations[0], "median": durations[len(durations) // 2], "max": durations[-1]}})

    async def _send(self, req: Request, count: int, of: Entry, source: str) -> list[Entry]:
        gate = asyncio.Semaphore(REPLAY_PARALLEL)

        async def one() -> Entry:
            async with gate:
                exchange = await self.replayer(of.tunnel, req.method, req.uri, req.headers, req.body)
            return self.history.record(exchange, replay_of=of.id, source=source, tunnel=of.tunnel)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    # ---- caller WebSocket sessions -----------------------------------------------------
    async def _sockets(self, request: web.Request) -> web.Response:
        log = self.socket_log
        return web.json_response({"sockets": [r.summary() for r in log.newest_first()], "open": log.open_count,
                                  "count": len(log), "totals": log.totals(), "bytes": log.bytes})

    async def _socket(self, request: web.Request) -> web.Response:
        record = self._socket_of(request.match_info["id"])
        if record is None:
            return _no_socket()
        return web.json_response(record.detail())

    async def _socket_send(self, request: web.Request) -> web.Response:
        """A text into an open session: toward the caller (default: test a client) or the app."""
        record = self._socket_of(request.match_info["id"])
        if record is None:
            return _no_socket()
        data = await _json(request, 8 * SEND_MAX)
        if isinstance(data, web.Response):
            return data
        if not isinstance(data, dict):
            return error(400, 'the body must be {"text": "...", "to": "caller" or "app"}', field="body")
        extra = sorted(set(data) - {"text", "to"})
        if extra:
            return error(400, f"unknown field {extra[0]!r}", field=extra[0])
        text, to = data.get("text"), data.get("to", "caller")
        if not isinstance(text, str):
            return error(400, "text must be a string (WebSocket text messages only)", field="text")
        if to not in ("caller", "app"):
            return error(400, "to must be caller or app", field="to")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            return error(400, "text is not valid Unicode (a lone surrogate): a text message must be UTF-8",
                         field="text")
        if size > SEND_MAX:
            return error(413, f"text is {size} bytes: at most {SEND_MAX} are sent", field="text")
        try:
            self.socket_log.send(record.id, text, to)
        except InjectRefused as exc:
            return error(exc.status, str(exc))
        return web.json_response({"sent": {"to": to, "size": utf8_size(text)}, "socket": record.summary()})

    def _socket_of(self, raw: str) -> SocketRecord | None:
        return self.socket_log.get(int(raw)) if raw.isdigit() and len(raw) < 19 else None

    # ---- HAR ---------------------------------------------------------------------------
    async def _har_export(self, request: web.Request) -> web.Response:
        try:
            if "ids" in request.query:
                ids = [int(i) for i in request.query["ids"].split(",") if i.strip()]
                entries = self.history.many(ids)
            else:
                keep, limit = _filter(request.query)
                entries = self.history.select(keep)[:limit]
        except ValueError as exc:
            return error(400, f"bad selection: {exc}")
        def base(entry: Entry) -> str:  # each entry's own tunnel's public URL
            local = self.named.get(entry.tunnel or "", Local(self.local_target)).target
            return str(self._status_of(entry).get("public_url") or f"http://{local}")

        body = json.dumps(har.export(newest_first(entries)[::-1], base), indent=1).encode("utf-8")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return web.Response(body=body, content_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="ttf-{stamp}.har"'})

    async def _har_import(self, request: web.Request) -> web.Response:
        raw = await _read(request, har.HAR_MAX)
        if raw is None:
            return error(413, f"the HAR file is larger than {har.HAR_MAX} bytes: nothing was imported")
        try:
            entries = har.parse(raw, self.history.cap, self.history.limit)
        except har.HarError as exc:
            return error(400, f"{exc}: nothing was imported")
        added = [self.history.add(e) for e in entries]
        return web.json_response({"imported": len(added), "ids": [e.id for e in added]})

    def _local_of(self, entry: Entry) -> Local:
        """Where the tunnel an entry came through forwards to (the one tunnel's without a config file)."""
        return self.named.get(entry.tunnel or "", Local(self.local_target, self.keep_host))

    def _status_of(self, entry: Entry) -> dict[str, Any]:
        """The status of the tunnel an entry came through (the one tunnel's without a config file)."""
        return self.named_status.get(entry.tunnel or "", self.tunnel)

    def _lookup(self, raw: str) -> Entry | None:
        return self.history.get(int(raw)) if raw.isdigit() and len(raw) < 19 else None


def newest_first(entries: list[Entry]) -> list[Entry]:
    """By the time each request started, newest first (ids break ties): imported entries, whose ids
    are new but whose times are not, fall into their place instead of on top."""
    return sorted(entries, key=lambda e: (e.at, e.id), reverse=True)


def _no_socket() -> web.Response:
    return error(404, "no such WebSocket session (unknown id, or no longer kept)")


def _gone() -> web.Response:
    return error(404, "no such request (unknown id, or no longer in the history)")


async def _read(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it is over `limit` (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _json(request: web.Request, limit: int, empty: Any = None) -> Any:
    raw = await _read(request, limit)
    if raw is None:
        return error(413, f"the request body is larger than {limit} bytes")
    if not raw.strip() and empty is not None:
        return empty
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return error(400, "the request body is not JSON", field="body")


def _filter(query: Any) -> tuple[Filter, int]:
    """The list's filters from the query string; ValueError names the bad one."""
    def number(name: str) -> float | None:
        raw = query.get(name, "")
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a unix time in seconds") from None

    def words(name: str) -> frozenset[str]:
        return frozenset(w.strip() for w in query.get(name, "").split(",") if w.strip())

    statuses = words("status")
    bad = statuses - {"1xx", "2xx", "3xx", "4xx", "5xx", "error", "denied"}
    if bad:
        raise ValueError(f"status must be 2xx, 3xx, 4xx, 5xx, error or denied, not {sorted(bad)[0]!r}")
    sources = words("source")
    if sources - set(SOURCES):
        raise ValueError(f"source must be one of {', '.join(SOURCES)}")
    raw_limit = query.get("limit", "500")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_MAX:
        raise ValueError(f"limit must be 1..{LIST_MAX}")
    keep = Filter(methods=frozenset(m.upper() for m in words("method")), statuses=statuses,
                  path=query.get("path", ""), text=query.get("text", ""), since=number("since"),
                  until=number("until"), sources=sources, tunnel=query.get("tunnel", ""))
    return keep, int(raw_limit)
