"""The request inspector: the last N requests, a small JSON API, replay, and one HTML page.

History keeps the latest `limit` exchanges with the local service. Each body is kept up to
BODY_CAP bytes (the rest is cut and the entry marked truncated: the inspector's copy only,
the forwarded body is never touched), and the whole history stays under `budget` bytes of
bodies and headers (oldest entries go first), so memory is bounded whatever passes through.

The server (aiohttp) serves:
  GET  /                          the page (self-contained: no external assets)
  GET  /api/requests              newest first, no bodies
  GET  /api/requests/{id}         one entry, bodies base64
  POST /api/requests/{id}/replay  send it to the local service again; the new entry
                                  (replay_of = id); 409 when a captured body was truncated
Captured requests come from the internet and hold secrets (Authorization, cookies), so:
* on a loopback address, requests whose Host is not that address are refused (DNS rebinding);
* bound to any other address, every request needs the token `ttf` prints at start (the
  inspector URL carries it as `?token=`; the page sends it back as `X-Inspector-Token`);
  anything else is 401;
* a POST from another origin is refused (a web page cannot trigger replays);
* every answer says `X-Frame-Options: DENY` and `frame-ancestors 'none'`: no page can frame
  the inspector and click Replay through it.
The page shows every captured string as text (never HTML), with control characters escaped.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from httptunnel.protocol import Headers, b64encode

from ttf.forward import Exchange

BODY_CAP = 1024 * 1024
TOKEN_HEADER = "X-Inspector-Token"
DEFAULT_BUDGET = 16 * 1024 * 1024
SHUTDOWN_TIMEOUT = 2.0

Replayer = Callable[[str, str, Headers, bytes], Awaitable[Exchange]]


@dataclass(frozen=True)
class Body:
    data: bytes  # at most BODY_CAP bytes
    size: int  # the real size

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


def capture(body: bytes, cap: int = BODY_CAP) -> Body:
    """Keep the first `cap` bytes (no copy when the body fits)."""
    return Body(body if len(body) <= cap else body[:cap], len(body))


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
    error: str | None = None
    replay_of: int | None = None

    @property
    def cost(self) -> int:
        """Roughly the bytes this entry keeps alive."""
        return (len(self.request.data) + len(self.response.data) + headers_size(self.request_headers)
                + headers_size(self.response_headers) + len(self.uri) + 256)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "time": round(self.at, 3), "method": self.method, "uri": self.uri,
            "status": self.status, "duration_ms": self.duration_ms, "error": self.error,
            "replay_of": self.replay_of,
            "request_size": self.request.size, "request_truncated": self.request.truncated,
            "response_size": self.response.size, "response_truncated": self.response.truncated,
        }

    def detail(self) -> dict[str, Any]:
        return self.summary() | {
            "request_headers": self.request_headers,
            "request_body": b64encode(self.request.data),
            "response_headers": self.response_headers,
            "response_body": b64encode(self.response.data),
        }


class History:
    """The latest `limit` entries within `budget` bytes; ids count up from 1."""

    def __init__(self, limit: int, budget: int = DEFAULT_BUDGET, cap: int = BODY_CAP) -> None:
        self.limit = limit
        self.budget = budget
        self.cap = cap
        self.bytes = 0
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, exchange: Exchange, replay_of: int | None = None) -> Entry:
        entry = Entry(
            id=self._next_id, at=exchange.started_at, method=exchange.method, uri=exchange.uri,
            request_headers=exchange.request_headers, request=capture(exchange.request_body, self.cap),
            status=exchange.status, response_headers=exchange.response_headers,
            response=capture(exchange.response_body, self.cap), duration_ms=exchange.duration_ms,
            error=exchange.error, replay_of=replay_of,
        )
        self._next_id += 1
        self._entries[entry.id] = entry
        self.bytes += entry.cost
        while len(self._entries) > 1 and (len(self._entries) > self.limit or self.bytes > self.budget):
            _, oldest = self._entries.popitem(last=False)
            self.bytes -= oldest.cost
        return entry

    def get(self, entry_id: int) -> Entry | None:
        return self._entries.get(entry_id)

    def newest_first(self) -> list[Entry]:
        return list(reversed(self._entries.values()))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Inspector:
    """The HTTP side: start() binds (OSError when the port is taken), stop() closes."""

    def __init__(self, history: History, replayer: Replayer) -> None:
        self.history = history
        self.replayer = replayer
        self.url: str | None = None
        self.token: str | None = None  # set when bound off loopback; part of self.url
        self._allowed_hosts: frozenset[str] | None = None
        self._runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._frame_guard, self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/requests", self._list)
        app.router.add_get("/api/requests/{id}", self._detail)
        app.router.add_post("/api/requests/{id}/replay", self._replay)
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
        bound_port = runner.addresses[0][1]
        self.url = f"http://{_host_port(host, bound_port)}"
        if _is_loopback(host):
            names = {host, "localhost", "127.0.0.1", "::1"}
            self._allowed_hosts = frozenset(_host_port(name, bound_port) for name in names)
        else:
            self.token = secrets.token_urlsafe(24)
            self.url += f"/?token={self.token}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- handlers ------------------------------------------------------------------
    @web.middleware
    async def _frame_guard(self, request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        response = await handler(request)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        if self._allowed_hosts is not None and request.host.lower() not in self._allowed_hosts:
            return _error(403, "this Host is not the inspector's address")
        if self.token is not None:
            given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _error(401, "the inspector needs the token ttf printed at start (?token=...)")
        origin = request.headers.get("Origin")
        if request.method != "GET" and origin is not None and origin.lower() != f"http://{request.host.lower()}":
            return _error(403, "requests from another origin are refused")
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": [e.summary() for e in self.history.newest_first()]})

    async def _detail(self, request: web.Request) -> web.Response:
        entry = self._lookup(request)
        if entry is None:
            return _error(404, "no such request (unknown id, or no longer in the history)")
        return web.json_response(entry.detail())

    async def _replay(self, request: web.Request) -> web.Response:
        entry = self._lookup(request)
        if entry is None:
            return _error(404, "no such request (unknown id, or no longer in the history)")
        if entry.request.truncated:
            return _error(409, f"the captured request body was truncated ({entry.request.size} bytes, "
                               f"{len(entry.request.data)} kept): it cannot be replayed exactly")
        exchange = await self.replayer(entry.method, entry.uri, entry.request_headers, entry.request.data)
        return web.json_response(self.history.record(exchange, replay_of=entry.id).detail())

    def _lookup(self, request: web.Request) -> Entry | None:
        raw = request.match_info["id"]
        return self.history.get(int(raw)) if raw.isdigit() and len(raw) < 19 else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ttf inspector</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;color:#222}
header{background:#1f3b63;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
main{display:flex;height:calc(100vh - 40px)}
#list{width:50%;overflow:auto;border-right:1px solid #ddd}
#detail{width:50%;overflow:auto;padding:8px 16px}
table{border-collapse:collapse;width:100%}
td,th{padding:4px 8px;text-align:left;border-bottom:1px solid #eee;white-space:nowrap}
td.uri{max-width:320px;overflow:hidden;text-overflow:ellipsis}
tr.sel{background:#e8f0fe} tr:hover{background:#f5f5f5;cursor:pointer}
.s2{color:#1a7f37}.s3{color:#0969da}.s4{color:#9a6700}.s5{color:#cf222e;font-weight:bold}
pre{background:#f6f8fa;padding:8px;white-space:pre-wrap;word-break:break-all}
button{cursor:pointer} .dim{color:#777}
</style></head><body>
<header><b>ttf inspector</b><span id="count" class="dim"></span>
<label><input type="checkbox" id="live" checked> live</label></header>
<main><div id="list"><table><thead><tr><th>time</th><th>method</th><th>uri</th><th>status</th>
<th>duration</th><th></th></tr></thead><tbody id="rows"></tbody></table></div>
<div id="detail" class="dim">Select a request.</div></main>
<script>
"use strict";
let selected = null;
// Off loopback the inspector URL carries ?token=; every API call sends it back.
const TOKEN = new URLSearchParams(location.search).get("token");
const AUTH = TOKEN ? {"X-Inspector-Token": TOKEN} : {};
// Captured strings are data: shown as text, with control and bidi characters made visible.
const CONTROLS = /[\\u0000-\\u001f\\u007f-\\u009f\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]/g;
function visible(text, keep) {
  return String(text).replace(CONTROLS, ch => (keep && keep.includes(ch)) ? ch :
    "\\\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
}
function el(tag, text, cls, keep) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = visible(text, keep);
  if (cls) e.className = cls;
  return e;
}
function statusClass(s) { return "s" + String(s).charAt(0); }
function bodyText(b64, size, truncated) {
  if (!size) return "(empty)";
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  let text;
  try { text = new TextDecoder("utf-8", {fatal: true}).decode(bytes); }
  catch (e) { text = "(binary, " + size + " bytes)"; }
  return truncated ? text + "\\n... truncated: " + size + " bytes in all" : text;
}
function headerBlock(h) {
  const lines = [];
  for (const name of Object.keys(h)) for (const v of h[name]) lines.push(name + ": " + v);
  return lines.join("\\n") || "(none)";
}
async function replay(id) {
  const r = await fetch("/api/requests/" + id + "/replay", {method: "POST", headers: AUTH});
  const data = await r.json();
  if (!r.ok) { alert(data.error); return; }
  selected = data.id;
  await refresh();
}
async function show(id) {
  selected = id;
  const r = await fetch("/api/requests/" + id, {headers: AUTH});
  const box = document.getElementById("detail");
  box.replaceChildren();
  box.className = "";
  if (!r.ok) { box.append(el("p", (await r.json()).error, "dim")); return; }
  const d = await r.json();
  const title = el("h3", d.method + " " + d.uri);
  const again = el("button", "Replay");
  again.onclick = () => replay(d.id);
  box.append(title, el("p", "status " + d.status + (d.error ? " (" + d.error + ")" : "") + " \\u00b7 " +
    d.duration_ms + " ms" + (d.replay_of ? " \\u00b7 replay of #" + d.replay_of : "")), again);
  box.append(el("h4", "Request headers"), el("pre", headerBlock(d.request_headers), "", "\\n"));
  const keep = "\\n\\t\\r";  // bodies keep their line structure
  box.append(el("h4", "Request body"),
    el("pre", bodyText(d.request_body, d.request_size, d.request_truncated), "", keep));
  box.append(el("h4", "Response headers"), el("pre", headerBlock(d.response_headers), "", "\\n"));
  box.append(el("h4", "Response body"),
    el("pre", bodyText(d.response_body, d.response_size, d.response_truncated), "", keep));
  await refresh(false);
}
async function refresh(reshow = true) {
  const r = await fetch("/api/requests", {headers: AUTH});
  const list = (await r.json()).requests;
  document.getElementById("count").textContent = list.length + " request(s)";
  const rows = document.getElementById("rows");
  rows.replaceChildren();
  for (const e of list) {
    const tr = el("tr", undefined, e.id === selected ? "sel" : "");
    tr.append(el("td", new Date(e.time * 1000).toLocaleTimeString()), el("td", e.method),
      el("td", e.uri, "uri"), el("td", e.status + (e.replay_of ? " \\u21ba" : ""), statusClass(e.status)),
      el("td", e.duration_ms + " ms"));
    const cell = el("td");
    const b = el("button", "Replay");
    b.onclick = ev => { ev.stopPropagation(); replay(e.id); };
    cell.append(b);
    tr.append(cell);
    tr.onclick = () => show(e.id);
    rows.append(tr);
  }
  if (reshow && selected !== null) await show(selected);
}
refresh();
setInterval(() => { if (document.getElementById("live").checked) refresh(false); }, 2000);
</script></body></html>
"""
