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

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ttf._version import __version__
from ttf.events import (
    Connected, Disconnected, Event, Notice, PolicyActive, Reconnecting, RequestDenied, RequestDone, TunnelEstablished,
    TunnelFailed, escape_controls, to_json,
)

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
STATUS_STYLE = {"1xx": "white", "2xx": "green", "3xx": "cyan", "4xx": "yellow", "5xx": "bold red"}
RECENT_ROWS = 15
LATENCY_WINDOW = 2000


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
    failed: str | None = None  # why the tunnel gave up (config file: the others go on)
    captured: Callable[[], int] | None = None  # how many requests the inspector holds now
    policy: tuple[str, ...] = ()  # the edge policy's rules, secrets masked
    denied: dict[str, int] = field(default_factory=dict)  # x-tunnel-error code -> requests the edge refused

    def apply(self, event: Event, now: float) -> None:
        if isinstance(event, RequestDone):
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
            self.notice = "connection renewed" if event.renewed else self.notice
        elif isinstance(event, Disconnected):
            self._set_status("offline", now)
            self.notice = f"disconnected: {event.reason}"
        elif isinstance(event, Reconnecting):
            self.reconnects += 1
            self._set_status(f"reconnecting in {event.delay_s:.1f} s", now)
            self.notice = event.reason
        elif isinstance(event, Notice):
            self.notice = event.message
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
                self.notice = event.message
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


def render_header(state: Dashboard, now: float) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    style = "green" if state.status == "online" else "yellow"
    grid.add_row("Status", plain(state.status, style))
    grid.add_row("Uptime", human_duration(now - state.started_at))
    tunnel = state.tunnel
    if tunnel is not None:
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
    grid.add_row("Endpoint", plain(state.endpoint))
    if state.policy:
        grid.add_row("Edge policy", Text(escape_controls("\n".join(state.policy), keep="\n")))
    if state.denied:
        grid.add_row("Denied", plain(", ".join(f"{reason} {n}" for reason, n in sorted(state.denied.items()))))
    if state.notice:
        grid.add_row("Last event", plain(state.notice, "dim"))
    return grid


def render_stats(state: Dashboard) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False)
    for name in ("requests", *STATUS_CLASSES, "p50", "p90", "in", "out", "reconnects"):
        table.add_column(name, justify="right", header_style="bold")
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
    )
    return table


def render_requests(state: Dashboard | MultiDashboard) -> Table:
    several = isinstance(state, MultiDashboard)
    table = Table(box=None, padding=(0, 2), show_edge=False, expand=False)
    table.add_column("time", style="dim", no_wrap=True)
    if several:
        table.add_column("tunnel", style="bold", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("path", overflow="ellipsis", no_wrap=True, max_width=60)
    table.add_column("status", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    for row in state.requests() if isinstance(state, MultiDashboard) else state.recent:
        status = Text(str(row.status), style=STATUS_STYLE.get(status_class(row.status), "white"))
        if row.error:
            status.append(f" {escape_controls(row.error)}", style="dim")
        table.add_row(
            datetime.fromtimestamp(row.at).strftime("%H:%M:%S"),
            *([plain(row.tunnel or "")] if several else []),
            plain(row.method),
            plain(row.path),
            status,
            f"{row.duration_ms} ms",
            human_bytes(row.bytes_out),
        )
    return table


def render_tunnels(state: MultiDashboard) -> Table:
    """One block per tunnel: its status, URL and local target; its traffic; why it is not online."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", justify="right", no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for number, (name, row) in enumerate(state.rows.items(), 1):
        style = "green" if row.status == "online" else "bold red" if row.failed else "yellow"
        text = plain(row.status, style)
        if row.tunnel is not None:
            text.append(f"  {escape_controls(row.tunnel.public_url)}")
        text.append(f" -> http://{escape_controls(row.local_target)}", style="dim")
        p50 = percentile(list(row.latencies_ms), 50)
        text.append(f"\n{row.total} requests")
        for cls in STATUS_CLASSES:
            text.append(f"  {cls} ", style="dim")
            text.append(str(row.counts[cls]), style=STATUS_STYLE[cls] if row.counts[cls] else "dim")
        text.append(f"  p50 {'-' if p50 is None else f'{p50} ms'}  in {human_bytes(row.bytes_in)}  "
                    f"out {human_bytes(row.bytes_out)}  reconnects {row.reconnects}", style="dim")
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


def render_multi(state: MultiDashboard, now: float) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    online = sum(row.status == "online" for row in state.rows.values())
    grid.add_row("Tunnels", plain(f"{online} of {len(state.rows)} online" + (f" ({state.source})" if state.source else "")))
    grid.add_row("Uptime", human_duration(now - state.started_at))
    if state.inspector_url:
        count = f" ({state.captured()} captured)" if state.captured is not None else ""
        grid.add_row("Inspector", plain(state.inspector_url + count))
    if state.notice:
        grid.add_row("Last event", plain(state.notice, "dim"))
    title = Text("Latest requests", style="bold")
    title.append(f" via {escape_controls(state.only)}" if state.only else " (all tunnels)")
    title.append(f"   keys: 1-{min(9, len(state.rows))} one tunnel, 0 all, t next", style="dim")
    requests = state.requests()
    body = Group(
        grid, Text(""), render_tunnels(state), Text(""), title,
        render_requests(state) if requests else Text("  none yet", style="dim"),
    )
    return Panel(body, title=f"ttf {__version__}", subtitle="Ctrl-C to quit", border_style="blue")


def render_dashboard(state: Dashboard | MultiDashboard, now: float) -> Panel:
    if isinstance(state, MultiDashboard):
        return render_multi(state, now)
    body = Group(
        render_header(state, now),
        Text(""),
        render_stats(state),
        Text(""),
        Text("Latest requests", style="bold"),
        render_requests(state) if state.recent else Text("  none yet", style="dim"),
    )
    return Panel(body, title=f"ttf {__version__}", subtitle="Ctrl-C to quit", border_style="blue")


def format_line(event: Event, now: float) -> str:
    """One plain log line (stdout is not a terminal); a config file's tunnel's lines say [name]."""
    stamp = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")
    if event.tunnel is not None:
        stamp += f" [{event.tunnel}]"
    if isinstance(event, RequestDone):
        text = (f"{event.method} {event.path} {event.status} {event.duration_ms} ms "
                f"in={event.bytes_in} out={event.bytes_out}")
        if event.error:
            text += f" error={event.error}"
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
