"""Output: the dashboard state, pure renderers, plain log lines and JSON lines.

(Over 300 lines: the dashboard's state, its renderers and the two sinks share one event model;
each function is small and tested through Console(record=True).)

Nothing here does I/O except the two small sinks at the bottom; renderers take the state
and the current time and return rich renderables (tested through Console(record=True)).
Dashboard is one tunnel's state (the whole screen for the command line's tunnel); with a config
file, MultiDashboard keeps one Dashboard per tunnel (a row each) and the latest requests of all
of them, with a tunnel column and a filter (select(): keys 1-9 one tunnel, 0 all, t the next).
Every string that is not our own goes through `plain()` (a rich Text, so never markup, with
control characters escaped); log lines escape control characters too.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Sequence, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ttf._version import __version__
from ttf.events import (
    Connected, Disconnected, Event, LocalService, Notice, PolicyActive, Reconnecting, RequestDenied, RequestDone,
    StreamStarted, TunnelEstablished, TunnelFailed, escape_controls, to_json,
)
from ttf.socketlog import TO_APP, TO_CALLER, SocketLog, SocketRecord

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
STATUS_STYLE = {"1xx": "white", "2xx": "green", "3xx": "cyan", "4xx": "yellow", "5xx": "bold red"}
RECENT_ROWS = 15
LATENCY_WINDOW = 2000
NOTICE_TTL = 60.0  # seconds "Last event" stays on screen while the tunnel is online
COMPACT_BELOW = 30  # terminal rows: below this the header folds (uptime on the status line, no id/endpoint)
PATH_MIN = 12  # the path column keeps this much (or half the room) before an error code grows into it
CELL_MAX = 20  # in the request list, a longer method or tunnel name (never a real one) is cut: "…"
WIDE = 100  # columns: from here a config file's tunnel lines also show bytes in and out
SOCKET_ROWS = 5  # caller WebSocket sessions listed (open ones first, then the latest closed)


@dataclass(frozen=True)
class RequestRow:
    at: float  # wall clock
    method: str
    path: str
    status: int
    duration_ms: int
    bytes_out: int
    error: str | None = None
    tunnel: str | None = None


@dataclass
class Dashboard:
    endpoint: str
    local_target: str
    started_at: float  # wall clock
    status: str = "connecting"
    status_since: float = 0.0
    tunnel: TunnelEstablished | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_CLASSES, 0))
    total: int = 0
    latencies_ms: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    bytes_in: int = 0
    bytes_out: int = 0
    reconnects: int = 0
    recent: deque[RequestRow] = field(default_factory=lambda: deque(maxlen=RECENT_ROWS))
    notice: str | None = None
    notice_at: float | None = None  # when (None: for as long as the process runs)
    failed: str | None = None  # why the tunnel gave up (config file: the others go on)
    captured: Callable[[], int] | None = None  # how many requests the inspector holds now
    policy: tuple[str, ...] = ()  # the edge policy's rules, secrets masked
    denied: dict[str, int] = field(default_factory=dict)  # x-tunnel-error code -> requests the edge refused
    local: LocalService | None = None  # the local service's last known state (None: not probed yet)
    streaming: int = 0  # streamed answers going out now (stream_started, not yet their request event)
    streamed: int = 0  # streamed answers since start (the stats show the streams column once there is one)
    socket_log: SocketLog | None = None  # caller WebSocket sessions (shown once there is one)

    def say(self, message: str, now: float | None) -> None:
        """The "Last event" line; it fades after NOTICE_TTL while the tunnel is online."""
        self.notice, self.notice_at = message, now

    def local_down(self) -> bool:
        return self.local is not None and not self.local.up

    def apply(self, event: Event, now: float) -> None:
        if isinstance(event, StreamStarted):
            self.streaming += 1
            self.streamed += 1
        if isinstance(event, RequestDone):
            if event.streamed:
                self.streaming = max(0, self.streaming - 1)
            self.total += 1
            cls = status_class(event.status)
            if cls in self.counts:
                self.counts[cls] += 1
            self.latencies_ms.append(event.duration_ms)
            self.bytes_in += event.bytes_in
            self.bytes_out += event.bytes_out
            self.recent.appendleft(RequestRow(now, event.method, event.path, event.status, event.duration_ms,
                                              event.bytes_out, event.error, event.tunnel))
        elif isinstance(event, RequestDenied):
            self.denied[event.reason] = self.denied.get(event.reason, 0) + event.count
            self.recent.appendleft(RequestRow(now, event.method, event.path, event.status, 0, 0,
                                              f"denied at the edge: {event.reason}", event.tunnel))
        elif isinstance(event, PolicyActive):
            self.policy = event.rules
        elif isinstance(event, Connected):
            self._set_status("connected, waiting for the tunnel", now)
        elif isinstance(event, TunnelEstablished):
            self.tunnel = event
            self._set_status("online", now)
            if event.renewed:
                self.say("connection renewed", now)
        elif isinstance(event, Disconnected):
            self._set_status("offline", now)
            self.say(f"disconnected: {event.reason}", now)
        elif isinstance(event, Reconnecting):
            self.reconnects += 1
            self._set_status(f"reconnecting in {event.delay_s:.1f} s", now)
            self.say(event.reason, now)
        elif isinstance(event, Notice):
            self.say(event.message, now)
        elif isinstance(event, LocalService):
            self.local = event
        elif isinstance(event, TunnelFailed):
            self.failed = event.reason
            self._set_status("failed", now)

    def _set_status(self, status: str, now: float) -> None:
        self.status = status
        self.status_since = now


def plain(text: object, style: str = "") -> Text:
    """A value shown as itself: rich never reads markup in a Text, and controls are escaped."""
    return Text(escape_controls(str(text)), style=style)


@dataclass
class MultiDashboard:
    """A config file's tunnels: one Dashboard each (in file order), and the latest requests of all."""

    started_at: float  # wall clock
    rows: dict[str, Dashboard]
    source: str | None = None  # the config file
    inspector_url: str | None = None
    notice: str | None = None  # the process's own messages (the inspector, warnings)
    recent: deque[RequestRow] = field(default_factory=lambda: deque(maxlen=RECENT_ROWS))
    only: str | None = None  # show the latest requests of this tunnel only
    captured: Callable[[], int] | None = None  # how many requests the inspector holds now
    notice_at: float | None = None  # when the notice came (None: for as long as the process runs)
    socket_log: SocketLog | None = None  # caller WebSocket sessions of every tunnel (shown once there is one)

    def say(self, message: str, now: float | None) -> None:
        self.notice, self.notice_at = message, now

    @classmethod
    def of(cls, tunnels: Sequence[tuple[str, str, str]], started_at: float, source: str | None = None
           ) -> MultiDashboard:
        """tunnels: (name, endpoint, local target) in file order."""
        rows = {name: Dashboard(endpoint=endpoint, local_target=target, started_at=started_at)
                for name, endpoint, target in tunnels}
        return cls(started_at=started_at, rows=rows, source=source)

    def apply(self, event: Event, now: float) -> None:
        row = self.rows.get(event.tunnel) if event.tunnel is not None else None
        if isinstance(event, TunnelEstablished) and event.inspector_url:
            self.inspector_url = event.inspector_url
        if row is None:
            if isinstance(event, Notice):
                self.say(event.message, now)
            return
        row.apply(event, now)
        if isinstance(event, (RequestDone, RequestDenied)):
            self.recent.appendleft(row.recent[0])

    def select(self, key: str) -> None:
        """A key from the terminal: 1-9 that tunnel's requests, 0 (or a) all, t (or Tab) the next one."""
        names = list(self.rows)
        if key in {"0", "a"}:
            self.only = None
        elif key.isdigit() and 1 <= int(key) <= len(names):
            self.only = names[int(key) - 1]
        elif key in {"t", "\t"}:
            at = names.index(self.only) + 1 if self.only in names else 0
            self.only = names[at] if at < len(names) else None

    def requests(self) -> list[RequestRow]:
        return list(self.rows[self.only].recent if self.only in self.rows else self.recent)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "5xx"


def percentile(values: list[int], pct: float) -> int | None:
    """Nearest-rank percentile; None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def status_text(state: Dashboard) -> Text:
    """The tunnel's state, and whether its local service takes connections ("online · local service down")."""
    style = "green" if state.status == "online" else "bold red" if state.failed else "yellow"
    text = plain(state.status, style)
    if state.local_down() and state.local is not None:
        text.append(" · local service down", style="bold red")
        if state.local.detail:
            text.append(f" ({escape_controls(state.local.detail)})", style="red")
    return text


def _notice(state: Dashboard | MultiDashboard, now: float, online: bool) -> str | None:
    """The last event, until it is NOTICE_TTL old while all is well (it stays while something is wrong)."""
    if not state.notice:
        return None
    if online and state.notice_at is not None and now - state.notice_at > NOTICE_TTL:
        return None
    return state.notice


def render_header(state: Dashboard, now: float, compact: bool = False) -> Table:
    """compact: uptime on the status line, no tunnel id and endpoint, the policy on one line."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    status = status_text(state)
    if compact:
        status.append(f"  up {human_duration(now - state.started_at)}", style="dim")
    grid.add_row("Status", status)
    if not compact:
        grid.add_row("Uptime", human_duration(now - state.started_at))
    tunnel = state.tunnel
    if tunnel is not None:
        if not compact:
            grid.add_row("Tunnel id", plain(tunnel.tunnel_id))
        grid.add_row("Forwarding", plain(f"{tunnel.public_url} -> http://{state.local_target}"))
        for label, url in (("Subdomain URL", tunnel.subdomain_url), ("Path URL", tunnel.path_based_url)):
            if url and url != tunnel.public_url:
                grid.add_row(label, plain(url))
        if tunnel.inspector_url:
            count = f" ({state.captured()} captured)" if state.captured is not None else ""
            grid.add_row("Inspector", plain(tunnel.inspector_url + count))
    else:
        grid.add_row("Local target", plain(f"http://{state.local_target}"))
    if not compact:
        grid.add_row("Endpoint", plain(state.endpoint))
    if state.policy:
        rules = "; ".join(state.policy) if compact else "\n".join(state.policy)
        grid.add_row("Edge policy", Text(escape_controls(rules, keep="\n")))
    if state.denied:
        grid.add_row("Denied", plain(", ".join(f"{reason} {n}" for reason, n in sorted(state.denied.items()))))
    notice = _notice(state, now, state.status == "online" and not state.local_down())
    if notice:
        grid.add_row("Last event", plain(notice, "dim"))
    return grid


def render_stats(state: Dashboard) -> Table:
    """Totals; p50/p90 are the local app's times (the caller also waited for the edge and the network)."""
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False)
    streams = ("streaming",) if state.streamed else ()  # the column appears with the first streamed answer
    for name in ("requests", *STATUS_CLASSES, "app p50", "app p90", "in", "out", "reconnects", *streams):
        table.add_column(name, justify="right", header_style="bold", no_wrap=True)
    latencies = list(state.latencies_ms)
    p50, p90 = percentile(latencies, 50), percentile(latencies, 90)
    table.add_row(
        str(state.total),
        *(Text(str(state.counts[c]), style=STATUS_STYLE[c] if state.counts[c] else "dim") for c in STATUS_CLASSES),
        "-" if p50 is None else f"{p50} ms",
        "-" if p90 is None else f"{p90} ms",
        human_bytes(state.bytes_in),
        human_bytes(state.bytes_out),
        str(state.reconnects),
        *((str(state.streaming),) if streams else ()),
    )
    return table


def _cut(text: Text, limit: int) -> Text:
    text.truncate(limit, overflow="ellipsis")
    return text


def render_requests(state: Dashboard | MultiDashboard, width: int | None = None, limit: int | None = None) -> Table:
    """The latest requests, newest first. Given a width, every column but the path is as wide as its
    widest cell, so time, method, status, duration and size are never cut: the path gives way first,
    then an error code beside its status (down to PATH_MIN for the path). `limit`: at most this many rows."""
    several = isinstance(state, MultiDashboard)
    rows = (state.requests() if isinstance(state, MultiDashboard) else list(state.recent))[:limit]
    cells: list[list[Text]] = []
    for row in rows:
        status = Text(str(row.status), style=STATUS_STYLE.get(status_class(row.status), "white"))
        if row.error:
            status.append(f" {escape_controls(row.error)}", style="dim")
        cells.append([
            Text(datetime.fromtimestamp(row.at).strftime("%H:%M:%S"), style="dim"),
            *([_cut(plain(row.tunnel or "", "bold"), CELL_MAX)] if several else []),
            _cut(plain(row.method), CELL_MAX), plain(row.path), status,
            Text(f"{row.duration_ms} ms"), Text(human_bytes(row.bytes_out)),
        ])
    heads = ["time", *(["tunnel"] if several else []), "method", "path", "status", "app time", "size"]
    path_at, status_at = heads.index("path"), heads.index("status")
    natural = [max([len(h)] + [c[i].cell_len for c in cells]) for i, h in enumerate(heads)]
    widths: list[int | None] = [None] * len(heads)
    if width is not None:
        widths = list(natural)
        code = max([len("status")] + [len(str(row.status)) for row in rows])
        room = width - 2 * (len(heads) - 1) - sum(w for i, w in enumerate(natural) if i not in (path_at, status_at))
        room -= code  # what is left for the path and the error codes
        path = min(natural[path_at], max(PATH_MIN, room // 2), max(room, 0))
        error = min(natural[status_at] - code, max(room - path, 0))
        widths[status_at] = code + error
        widths[path_at] = max(room - error, 0)
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False, expand=False)
    for i, head in enumerate(heads):
        right = head in {"status", "app time", "size"}
        table.add_column(head, justify="right" if right else "left", no_wrap=True, overflow="ellipsis",
                         width=widths[i], max_width=60 if (i == path_at and width is None) else None)
    for line in cells:
        table.add_row(*line)
    return table


def _tunnel_counts(row: Dashboard, width: int | None) -> Text:
    p50 = percentile(list(row.latencies_ms), 50)
    text = Text(f"{row.total} requests")
    for cls in STATUS_CLASSES:
        text.append(f"  {cls} ", style="dim")
        text.append(str(row.counts[cls]), style=STATUS_STYLE[cls] if row.counts[cls] else "dim")
    text.append(f"  app p50 {'-' if p50 is None else f'{p50} ms'}", style="dim")
    if width is None or width >= WIDE:
        text.append(f"  in {human_bytes(row.bytes_in)}  out {human_bytes(row.bytes_out)}", style="dim")
    if row.reconnects or width is None or width >= WIDE:
        text.append(f"  reconnects {row.reconnects}", style="dim")
    return text


def render_tunnels(state: MultiDashboard, width: int | None = None) -> Table:
    """One block per tunnel: its status (and its local service's), URL and local target; its traffic;
    why it is not online. Under WIDE columns the traffic line leaves out the bytes."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", justify="right", no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for number, (name, row) in enumerate(state.rows.items(), 1):
        text = status_text(row)
        if row.tunnel is not None:
            text.append(f"  {escape_controls(row.tunnel.public_url)}")
        text.append(f" -> http://{escape_controls(row.local_target)}", style="dim")
        text.append("\n")
        text.append_text(_tunnel_counts(row, width))
        if row.policy:
            text.append(f"\nedge policy: {'; '.join(row.policy)}", style="dim")
        if row.denied:
            text.append("\ndenied " + escape_controls(", ".join(f"{reason} {n}" for reason, n in
                                                              sorted(row.denied.items()))), style="yellow")
        why = row.failed or (row.notice if row.status != "online" else None)
        if why:
            text.append(f"\n{escape_controls(why)}", style="red" if row.failed else "yellow")
        grid.add_row(str(number), plain(name), text)
    return grid


def _socket_line(record: SocketRecord, now: float, several: bool) -> Text:
    """One session: #id [tunnel] path (protocol) age, messages and bytes each way, its state, the last message."""
    line = Text()
    line.append(f"#{record.id} ", style="dim")
    if several:
        line.append_text(_cut(plain(record.tunnel or "", "bold"), CELL_MAX))
        line.append(" ")
    line.append_text(plain(record.uri))
    if record.protocol:
        line.append(f" ({escape_controls(record.protocol)})", style="dim")
    if record.state == "open":
        line.append(f"  open {human_duration(now - record.opened_at)}", style="green")
    elif record.state == "refused":
        line.append(f"  refused {record.refused_status} {escape_controls(record.refused_code or '')}", style="yellow")
    else:
        line.append(f"  closed {record.close_code if record.close_code is not None else ''} by {record.closed_by}",
                    style="dim")
    if record.state != "refused":
        line.append(f"  in {record.count[TO_APP]} · {human_bytes(record.bytes[TO_APP])}"
                    f"  out {record.count[TO_CALLER]} · {human_bytes(record.bytes[TO_CALLER])}", style="dim")
    if record.last is not None:
        arrow = "→ app" if record.last.direction == TO_APP else "→ caller"
        line.append(f"  last {arrow} ", style="dim")
        line.append_text(plain(repr(record.last.text[:60])))
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


def render_sockets(log: SocketLog, now: float, tunnel: str | None = None, several: bool = False,
                   limit: int = SOCKET_ROWS) -> Group:
    """Caller WebSockets: the count open and closed, the messages and bytes each way, and a line per
    session (the open ones, oldest first, then the latest closed), `limit` lines at most."""
    kept = [r for r in log.newest_first() if tunnel is None or r.tunnel == tunnel]
    opened = [r for r in reversed(kept) if r.state == "open"]
    ended = [r for r in kept if r.state != "open"]
    title = Text()
    title.append("WebSockets", style="bold")
    title.append(f"  {len(opened)} open", style="green" if opened else "dim")
    title.append(f" · {len(ended)} closed", style="dim")
    for label, way in (("in", TO_APP), ("out", TO_CALLER)):
        count = sum(r.count[way] for r in kept)
        title.append(f" · {label} {count} message{'' if count == 1 else 's'} {human_bytes(sum(r.bytes[way] for r in kept))}",
                     style="dim")
    shown = (opened + ended)[:limit]
    lines: list[RenderableType] = [title, *(_socket_line(r, now, several) for r in shown)]
    if len(opened) + len(ended) > len(shown):
        lines.append(Text(f"  … {len(opened) + len(ended) - len(shown)} more in the inspector", style="dim"))
    return Group(*lines)


def _sockets_block(state: Dashboard | MultiDashboard, now: float) -> list[RenderableType]:
    """The WebSockets block, once there is a session to show (else nothing: the dashboard as before)."""
    log = state.socket_log
    if log is None or not len(log):
        return []
    if isinstance(state, MultiDashboard):
        return [Text(""), render_sockets(log, now, state.only, several=state.only is None)]
    return [Text(""), render_sockets(log, now)]


def _multi_top(state: MultiDashboard, now: float, width: int | None, compact: bool) -> list[RenderableType]:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    online = sum(row.status == "online" for row in state.rows.values())
    down = sum(row.status == "online" and row.local_down() for row in state.rows.values())
    tunnels = Text(escape_controls(f"{online} of {len(state.rows)} online"),
                   style="green" if online == len(state.rows) and not down else "yellow")
    if down:
        tunnels.append(f" · {down} local service{'s' if down > 1 else ''} down", style="bold red")
    if state.source:
        tunnels.append(f" ({escape_controls(state.source)})")
    if compact:
        tunnels.append(f"  up {human_duration(now - state.started_at)}", style="dim")
    grid.add_row("Tunnels", tunnels)
    if not compact:
        grid.add_row("Uptime", human_duration(now - state.started_at))
    if state.inspector_url:
        count = f" ({state.captured()} captured)" if state.captured is not None else ""
        grid.add_row("Inspector", plain(state.inspector_url + count))
    notice = _notice(state, now, online == len(state.rows) and not down)
    if notice:
        grid.add_row("Last event", plain(notice, "dim"))
    return [grid, Text(""), render_tunnels(state, width), *_sockets_block(state, now)]


def _multi_title(state: MultiDashboard) -> Text:
    title = Text("Latest requests", style="bold")
    title.append(f" via {escape_controls(state.only)}" if state.only else " (all tunnels)")
    title.append(f"   keys: 1-{min(9, len(state.rows))} one tunnel, 0 all, t next", style="dim")
    return title


def _panel(state: Dashboard | MultiDashboard, now: float, console: Console, options: ConsoleOptions) -> Panel:
    """The whole frame for the console's size. Given a height, the header folds (compact) below
    COMPACT_BELOW rows or when the full one would leave no room for requests, and only as many
    requests are listed as fit."""
    inner = max(options.max_width - 4, 10)  # the panel's borders and padding
    height = options.max_height
    listed = state.requests() if isinstance(state, MultiDashboard) else list(state.recent)
    title = _multi_title(state) if isinstance(state, MultiDashboard) else Text("Latest requests", style="bold")
    limit = 0
    top: list[RenderableType] = []
    for compact in ((False, True) if height >= COMPACT_BELOW else (True,)):
        if isinstance(state, MultiDashboard):
            top = _multi_top(state, now, inner, compact)
        else:
            top = [render_header(state, now, compact), Text(""), render_stats(state), *_sockets_block(state, now)]
        probe = title.copy()
        probe.append(_shown_note(len(listed), len(listed)))  # the title as long as it can get
        used = len(console.render_lines(Group(*top, Text(""), probe), options.update(width=inner, height=None),
                                        pad=False))
        limit = max(height - 2 - used - 1, 0)  # the borders, the column heads
        if limit >= min(len(listed), 5):
            break
    body: list[RenderableType] = [*top, Text("")]
    if not listed:
        body += [title, Text("  none yet", style="dim")]
    elif limit > 0:
        shown = min(limit, len(listed))
        if shown < len(listed):
            title.append(_shown_note(shown, len(listed)), style="dim")
        body += [title, render_requests(state, inner, shown)]
    return Panel(Group(*body), title=f"ttf {__version__}", subtitle="Ctrl-C to quit", border_style="blue")


def _shown_note(shown: int, of: int) -> str:
    return f"  (newest {shown} of {of})"


@dataclass
class DashboardView:
    """The dashboard, laid out for the console it is drawn on: its width and height (rich's Live gives
    the terminal's size), so the frame never runs past the bottom and no essential column is cut."""

    state: Dashboard | MultiDashboard
    now: float

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _panel(self.state, self.now, console, options)


def render_multi(state: MultiDashboard, now: float) -> DashboardView:
    return DashboardView(state, now)


def render_dashboard(state: Dashboard | MultiDashboard, now: float) -> DashboardView:
    return DashboardView(state, now)


def format_line(event: Event, now: float) -> str:
    """One plain log line (stdout is not a terminal); a config file's tunnel's lines say [name]."""
    stamp = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")
    if event.tunnel is not None:
        stamp += f" [{event.tunnel}]"
    if isinstance(event, RequestDone):
        text = (f"{event.method} {event.path} {event.status} {event.duration_ms} ms "
                f"in={event.bytes_in} out={event.bytes_out}")
        if event.streamed:
            text += " streamed"
        if event.error:
            text += f" error={event.error}"
    elif isinstance(event, StreamStarted):
        text = f"{event.method} {event.path} {event.status} streaming"
    elif isinstance(event, Connected):
        text = f"connected to {event.endpoint}"
    elif isinstance(event, TunnelEstablished):
        verb = "tunnel renewed" if event.renewed else "tunnel established"
        urls = " ".join(u for u in dict.fromkeys([event.public_url, event.subdomain_url, event.path_based_url]) if u)
        text = f"{verb}: {urls} (tunnel id {event.tunnel_id})"
    elif isinstance(event, Disconnected):
        text = f"disconnected: {event.reason}"
    elif isinstance(event, RequestDenied):
        text = f"{event.method} {event.path} {event.status} denied at the edge: {event.reason}"
        if event.count > 1:
            text += f" (x{event.count})"
    elif isinstance(event, PolicyActive):
        text = "edge policy: " + "; ".join(event.rules)
    elif isinstance(event, Reconnecting):
        text = f"reconnecting in {event.delay_s:.1f} s (attempt {event.attempt}): {event.reason}"
    elif isinstance(event, TunnelFailed):
        text = f"tunnel failed, the others go on: {event.reason}"
    elif isinstance(event, LocalService):
        text = f"local service http://{event.target} " + (
            "takes connections" if event.up else f"is down ({event.detail or 'not reachable'})")
    else:
        text = f"{event.level}: {event.message}"
    return f"{stamp} {escape_controls(text)}"


class JsonSink:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        data = to_json(event)
        data["ts"] = round(time.time(), 3)
        self.stream.write(json.dumps(data, separators=(",", ":")) + "\n")
        self.stream.flush()


class LineSink:
    def __init__(self, stream: TextIO, local_target: str | Mapping[str | None, str]) -> None:
        """local_target: the one tunnel's, or each config file tunnel's by name."""
        self.stream = stream
        self.targets: dict[str | None, str] = {None: local_target} if isinstance(local_target, str) \
            else dict(local_target)

    def __call__(self, event: Event) -> None:
        line = format_line(event, time.time())
        if isinstance(event, TunnelEstablished) and event.tunnel in self.targets:
            line += f" -> http://{self.targets[event.tunnel]}"
            if event.inspector_url:
                line += f" (inspector {escape_controls(event.inspector_url)})"
        self.stream.write(line + "\n")
        self.stream.flush()
