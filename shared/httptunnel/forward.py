"""forward: public HTTP API request -> agent -> answer (HTTP API payload format 2.0).

The story of one request, each stage in its own module:
  route and policy (``gate``) -> the tunnel's connection and the post (``tunnels``, with the
  frame from ``to_agent``) -> the wait (``waiting``), these three told by ``exchange`` for both
  edges -> the answer (``to_caller``), or a refusal (``replies``). ``forward_stream`` tells the
  same story on the function URL edge. Every stage returns a value or the ``ForwardResult`` the
  caller gets.
forward writes nothing on the way: the response Lambda writes the answer once and TTL removes it
(only a timed-out request's error row is written here, by ``waiting.give_up``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import config, events, exchange, gate, log, routing, store, to_caller, waiting
from .replies import ForwardResult, fail


def _answer(req: events.HttpEvent, route: routing.Route, target: str, fields: dict[str, Any],
            remaining_ms: int | None = None) -> ForwardResult:
    """Wait for the agent as long as an HTTP API allows (``FORWARD_WAIT_SECONDS``, 25 s, less what
    the invocation needs to answer: ``waiting.wait_seconds``), then the whole answer as one
    payload 2.0 result (a 307 to S3 for what does not fit)."""
    wait_s = waiting.wait_seconds(config.forward_wait_seconds(), remaining_ms)
    done = exchange.exchange(req, route, target, fields, wait_s)
    if isinstance(done, ForwardResult):
        return done
    return to_caller.build_answer(done.request_id, req, done.route, done.answer, done.conn.rewrite, done.rules,
                                  done.conn.rewrite_json)


def forward(event: Any, context: Any = None) -> dict[str, Any]:
    """``context``: the Lambda context; its remaining time bounds the wait (``waiting.wait_seconds``)."""
    started = time.monotonic()
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    remaining_ms = int(remaining()) if callable(remaining) else None
    calls_before = store.calls()
    fields: dict[str, Any] = {}
    try:
        req = events.parse_http_event(event)
    except events.BadEvent as exc:
        outcome = fail(400, "invalid_request", f"invalid request: {exc}")
    else:
        routed = gate.route(req)
        tunnel_id = None if isinstance(routed, ForwardResult) else routed[0].tunnel_id
        fields.update(method=req.method, tunnel_id=tunnel_id, request_bytes=len(req.body))
        outcome = routed if isinstance(routed, ForwardResult) else _answer(req, *routed, fields, remaining_ms)
    # One line per request. The observability module's metric filter counts `error_code` from
    # it; a 5xx is logged at WARNING so the counts survive LOG_LEVEL=WARNING.
    log.emit(logging.WARNING if outcome.status >= 500 else logging.INFO, "forwarded",
             status=outcome.status, error_code=outcome.error_code,
             duration_ms=int((time.monotonic() - started) * 1000),
             dynamodb_calls=store.calls() - calls_before, **fields)
    return outcome.result
