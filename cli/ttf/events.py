"""What the agent reports to the outside (terminal, log lines, JSON lines).

Each event is a frozen dataclass; `to_json()` gives the `--json` line's object, whose
"event" key and field names are a contract (the e2e tests wait for `tunnel_established`).
With a config file every tunnel's events carry its name in `tunnel` (the agent tags them);
the command line's one tunnel leaves it None, and its JSON lines have no "tunnel" key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, ClassVar, Union


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
    error: str | None = None  # the error code sent instead of a response
    tunnel: str | None = None  # which tunnel (config file); None for the process or the one tunnel
    event: ClassVar[str] = "request"


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
class TunnelFailed:
    """A config file's tunnel gave up (retrying cannot help); the others go on."""

    reason: str
    tunnel: str | None = None
    event: ClassVar[str] = "tunnel_failed"


Event = Union[Connected, TunnelEstablished, RequestDone, Disconnected, Reconnecting, Notice, TunnelFailed]
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
    if isinstance(event, Reconnecting):
        data["delay_s"] = round(event.delay_s, 3)
    return data
