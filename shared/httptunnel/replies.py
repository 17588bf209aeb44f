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
    "timeout": "the tunnel's local service did not answer in time",
    "local_service_unavailable": "the tunnel's local service is not reachable",
    "local_service_error": "the tunnel's local service closed the connection without a complete answer",
    "internal_error": "the tunnel agent could not answer this request",
    "tunnel_busy": "the tunnel is busy: too many requests are waiting for its local service",
}
NOT_FOUND = ("tunnel not found: no live tunnel answers at this address. Path URLs look like "
             "/<tunnel-id>/ followed by the page's path, tunnel-id being the 12 characters ttf printed; "
             "a page opened without the slash after the id resolves its relative links outside the tunnel.")


@dataclass(frozen=True)
class ForwardResult:
    """What forward answers: the payload 2.0 result, with the status and error code its log line carries."""
    result: dict[str, Any]
    status: int
    error_code: str | None = None


def fail(status: int, code: str, message: str) -> ForwardResult:
    return ForwardResult(events.error_response(status, code, message), status, code)

