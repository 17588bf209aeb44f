"""disconnect ($disconnect): remove the connection row and write the audit line. Idempotent.

API Gateway ignores the answer; the row may already be gone (cleanup, a 410 seen by forward,
TTL), which is logged as ``no_row``.
"""

from __future__ import annotations

from typing import Any

from . import events, log, store


def disconnect(event: Any) -> dict[str, Any]:
    ws = events.parse_ws_event(event)
    gone = store.delete_connection(ws.connection_id)  # DeleteItem of a missing key succeeds: idempotent
    log.info("disconnected", connection_id=ws.connection_id)
    # The audit trail: one always-on line per $disconnect (same fields as connect's), no extra AWS call.
    log.audit("tunnel audit", event="disconnect", outcome="disconnected" if gone else "no_row", status=200,
              connection_id=ws.connection_id, tunnel_id=gone.tunnel_id if gone else None,
              sub=gone.subject if gone else None, source_ip=ws.source_ip, reason=None)
    return events.ws_response(200)
