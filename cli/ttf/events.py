"""What the agent reports to the outside (terminal, log lines, JSON lines).

Each event is a frozen dataclass; `to_json()` gives the `--json` line's object, whose
"event" key and field names are a contract (the e2e tests wait for `tunnel_established`).
With a config file every tunnel's events carry its name in `tunnel` (the agent tags them);
the command line's one tunnel leaves it None, and its JSON lines have no "tunnel" key.

Events carry strings that came from the network (request paths, methods, close reasons, URLs
the server sent). They are data: every sink shows them as plain text, never as markup, and
with control characters escaped (`escape_controls`), so a request path cannot move the
cursor, retitle the terminal, hide text or plant a link. JSON lines escape them by JSON rules.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, ClassVar, Union

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text
# (bidi embeddings/overrides/isolates, line/paragraph separators).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str, keep: str = "") -> str:
    """`text` with each control character shown as `\\xNN` / `\\uNNNN` (those in `keep` left as they are)."""
    def visible(match: re.Match[str]) -> str:
        ch = match.group()
        if ch in keep:
            return ch
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return _CONTROLS.sub(visible, text)


@dataclass(frozen=True)
class Connected:
    endpoint: str
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "connected"


@dataclass(frozen=True)
class TunnelEstablished:
    tunnel_id: str
    public_url: str
    subdomain_url: str | None
    path_based_url: str | None
    connection_id: str
    renewed: bool = False
    inspector_url: str | None = None  # the request inspector, when it runs
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "tunnel_established"


@dataclass(frozen=True)
class RequestDone:
    method: str
    path: str
    status: int
    duration_ms: int
    bytes_in: int
    bytes_out: int
    error: str | None = None  # the error code sent instead of a response (streamed: the end's, or cancelled:<reason>)
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    streamed: bool = False  # the answer went out as a stream (JSON: the key is there only when true)
    event: ClassVar[str] = "request"


@dataclass(frozen=True)
class StreamStarted:
    """A streamed answer's head went out (status and headers); its `request` event follows when it ends."""

    method: str
    path: str
    status: int
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "stream_started"


@dataclass(frozen=True)
class RequestDenied:
    """The edge refused requests (a request_denied notice; ``count`` > 1 when the edge rate-limited
    its notices and counted the others into this one)."""

    method: str
    path: str
    status: int
    reason: str  # the x-tunnel-error code: ip_denied, basic_auth_required, webhook_signature_invalid
    count: int = 1
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "request_denied"


@dataclass(frozen=True)
class PolicyActive:
    """The edge policy a tunnel sends at every connect, one rule per line, secrets masked."""

    rules: tuple[str, ...]
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "policy"


@dataclass(frozen=True)
class Disconnected:
    reason: str
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "disconnected"


@dataclass(frozen=True)
class Reconnecting:
    delay_s: float
    attempt: int
    reason: str
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "reconnecting"


@dataclass(frozen=True)
class Notice:
    """A human-readable message (warnings, shutdown progress)."""

    level: str
    message: str
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "notice"


@dataclass(frozen=True)
class LocalService:
    """Whether the tunnel's local service takes connections: probed at start, after a request
    could not reach it, and again until it does (probe.LocalProbe). Only changes are reported."""

    up: bool
    target: str  # host:port
    detail: str | None = None  # why it is down ("connection refused")
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "local_service"


@dataclass(frozen=True)
class TunnelFailed:
    """A config file's tunnel gave up (retrying cannot help); the others go on."""

    reason: str
    tunnel: str | None = None
    event: ClassVar[str] = "tunnel_failed"


Event = Union[Connected, TunnelEstablished, RequestDone, RequestDenied, PolicyActive, Disconnected, Reconnecting,
              Notice, TunnelFailed, LocalService, StreamStarted]
Sink = Callable[[Event], None]


def tagged(sink: Sink, tunnel: str | None) -> Sink:
    """The sink, with every event marked as this tunnel's (None: unchanged)."""
    if tunnel is None:
        return sink

    def emit(event: Event) -> None:
        sink(replace(event, tunnel=tunnel))
    return emit


def to_json(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"event": event.event}
    data.update(asdict(event))
    if data["tunnel"] is None:
        del data["tunnel"]  # the command line's one tunnel: the lines are what they always were
    if isinstance(event, RequestDone) and not event.streamed:
        del data["streamed"]  # a whole answer's line is what it always was
    if isinstance(event, Reconnecting):
        data["delay_s"] = round(event.delay_s, 3)
    if isinstance(event, PolicyActive):
        data["rules"] = list(event.rules)
    return data
