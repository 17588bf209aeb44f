"""Output: the dashboard state, pure renderers, plain log lines and JSON lines.

Nothing here does I/O except the two small sinks at the bottom; renderers take the state
and the current time and return rich renderables (tested through Console(record=True)).
Every string that is not our own goes through `plain()` (a rich Text, so never markup, with
control characters escaped); log lines escape control characters too.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, TextIO

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ttf._version import __version__
from ttf.events import (
    Connected, Disconnected, Event, Notice, Reconnecting, RequestDone, TunnelEstablished, escape_controls, to_json,
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
    captured: Callable[[], int] | None = None  # how many requests the inspector holds now

    def apply(self, event: Event, now: float) -> None:
        if isinstance(event, RequestDone):
            self.total += 1
            cls = status_class(event.status)
            if cls in self.counts:
                self.counts[cls] += 1
            self.latencies_ms.append(event.duration_ms)
            self.bytes_in += event.bytes_in
            self.bytes_out += event.bytes_out
            self.recent.appendleft(
                RequestRow(now, event.method, event.path, event.status, event.duration_ms, event.bytes_out, event.error)
            )
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

    def _set_status(self, status: str, now: float) -> None:
        self.status = status
        self.status_since = now


def plain(text: object, style: str = "") -> Text:
    """A value shown as itself: rich never reads markup in a Text, and controls are escaped."""
    return Text(escape_controls(str(text)), style=style)


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


def render_requests(state: Dashboard) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False, expand=False)
    table.add_column("time", style="dim", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("path", overflow="ellipsis", no_wrap=True, max_width=60)
    table.add_column("status", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    for row in state.recent:
        status = Text(str(row.status), style=STATUS_STYLE.get(status_class(row.status), "white"))
        if row.error:
            status.append(f" {escape_controls(row.error)}", style="dim")
        table.add_row(
            datetime.fromtimestamp(row.at).strftime("%H:%M:%S"),
            plain(row.method),
            plain(row.path),
            status,
            f"{row.duration_ms} ms",
            human_bytes(row.bytes_out),
        )
    return table


def render_dashboard(state: Dashboard, now: float) -> Panel:
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
    """One plain log line (stdout is not a terminal)."""
    stamp = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")
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
    elif isinstance(event, Reconnecting):
        text = f"reconnecting in {event.delay_s:.1f} s (attempt {event.attempt}): {event.reason}"
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
    def __init__(self, stream: TextIO, local_target: str) -> None:
        self.stream = stream
        self.local_target = local_target

    def __call__(self, event: Event) -> None:
        line = format_line(event, time.time())
        if isinstance(event, TunnelEstablished):
            line += f" -> http://{self.local_target}"
            if event.inspector_url:
                line += f" (inspector {escape_controls(event.inspector_url)})"
        self.stream.write(line + "\n")
        self.stream.flush()
