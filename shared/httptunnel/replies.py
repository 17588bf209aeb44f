"""replies: what forward answers - ``ForwardResult`` (the payload 2.0 result with the status and
error code its log line carries), ``fail``, and the public sentences a caller is told.

Errors the agent reports reach the caller as a fixed sentence per code (``PUBLIC_MESSAGES``): the
agent's own message (local addresses, errno) stays in its log and inspector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import events

GONE = "agent_gone"
TIMEOUT = "timeout"

# What a caller is told for each error the agent reports; nothing of the agent's message.
PUBLIC_MESSAGES: dict[str, str] = {
    "invalid_request": "the tunnel agent refused the request as invalid",
    # forward's wait and the agent's local call both run ~25 s: whichever fires first, the caller
    # reads this one sentence (nothing came back within the deadline; usually a slow local app)
    "timeout": "no answer through the tunnel within the deadline: its local service did not answer in time",
    "local_service_unavailable": "the tunnel's local service is not reachable",
    "local_service_error": "the tunnel's local service closed the connection without a complete answer",
    "internal_error": "the tunnel agent could not answer this request",
    "tunnel_busy": "the tunnel is busy: too many requests are waiting for its local service",
}
NOT_FOUND = ("tunnel not found: no live tunnel answers at this address. Path URLs look like "
             "/<tunnel-id>/ followed by the page's path, tunnel-id being the 12 characters ttf printed. "
             "If a page served through a path URL made this request, it used a root-relative URL "
             "(one starting with /), which leaves the /<tunnel-id>/ prefix out: use the subdomain URL, "
             "or relative URLs in the page.")
WEBSOCKET_REFUSED = ("WebSocket connections do not pass through the tunnel yet: this request asked for an "
                     "upgrade, and only plain HTTP requests reach the local service")


@dataclass(frozen=True)
class ForwardResult:
    """What forward answers: the payload 2.0 result, with the status and error code its log line carries."""
    result: dict[str, Any]
    status: int
    error_code: str | None = None


def fail(status: int, code: str, message: str) -> ForwardResult:
    """A refusal. A timeout reads the same whichever timer fired (one deadline, one message)."""
    if code == TIMEOUT:
        message = PUBLIC_MESSAGES[TIMEOUT]
    return ForwardResult(events.error_response(status, code, message), status, code)

