"""Public HTTP API route: send the request down the agent's WebSocket and wait for its answer."""

from httptunnel import apigw, forwarding, log


def handler(event, context):
    try:
        return forwarding.forward(event)
    except Exception as exc:  # outer edge: a clear 502, never a traceback to the caller
        log.error("forward failed", status=502, error_code="internal_error",  # counted like a "forwarded" 502
                  error=type(exc).__name__, detail=str(exc)[:300])
        return apigw.error_response(502, "internal_error", "internal error")
