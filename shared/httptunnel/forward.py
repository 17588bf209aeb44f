"""forward: public HTTP API request -> agent -> answer (HTTP API payload format 2.0).

The story of one request, each stage in its own module:
  route and policy (``gate``) -> the tunnel's connection and the post (``tunnels``, with the
  frame from ``to_agent``) -> the wait (``waiting``) -> the answer (``to_caller``), or a refusal
  (``replies``). Every stage returns a value or the ``ForwardResult`` the caller gets.
forward writes nothing on the way: the response Lambda writes the answer once and TTL removes it
(only a timed-out request's error row is written here, by ``waiting.give_up``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import config, events, gate, log, protocol, routing, store, to_agent, to_caller, tunnels, waiting
from .replies import GONE, NOT_FOUND, TIMEOUT, ForwardResult, fail


def _connection(req: events.HttpEvent, route: routing.Route,
                target: str) -> tuple[store.Connection, routing.Route, str] | None:
    """The tunnel's connection; in path mode, failing that, the Referer's tunnel (single-tenant
    deployments only: ``gate.referer_route``), with the route and target it implies."""
    conn = tunnels.connection_for(route.tunnel_id)
    if conn is None and route.mode == routing.PATH:
        by_referer = gate.referer_route(req)
        conn = tunnels.connection_for(by_referer.tunnel_id) if by_referer else None
        if conn and by_referer:
            route, target = by_referer, routing.request_target(by_referer.path, req.raw_query)
    return (conn, route, target) if conn is not None else None


def _exchange(req: events.HttpEvent, route: routing.Route, target: str, fields: dict[str, Any],
              remaining_ms: int | None = None, recheck: bool = True) -> ForwardResult:
    found = _connection(req, route, target)
    if found is None:
        return fail(404, "tunnel_not_found", NOT_FOUND)
    conn, route, target = found
    rules = gate.edge_policy(req, target, conn)
    if isinstance(rules, ForwardResult):
        return rules
    redirect = gate.bare_prefix(req, route)
    if redirect is not None:
        return redirect
    created_at = int(time.time() * 1000)
    fields.update(connection_id=conn.connection_id, path=route.path[:256], created_at=created_at)
    wait_s = waiting.wait_seconds(config.forward_wait_seconds(), remaining_ms)
    deadline = time.monotonic() + wait_s
    ids: dict[str, str] = {}  # connection id -> the request id posted to it (ids are bound to their connection)

    def frame_for(c: store.Connection) -> str:
        ids[c.connection_id] = request_id = to_agent.new_request_id(c.connection_id)
        fields.update(request_id=request_id)
        acks = to_agent.take_acks(c.connection_id) if protocol.CAP_ACK in c.capabilities else None
        return to_agent.request_message(request_id, req, route, target, int((time.time() + wait_s) * 1000),
                                        max(0, int((deadline - time.monotonic()) * 1000)), rules, acks)
    posted = tunnels.post(route, conn, frame_for)
    if isinstance(posted, tunnels.Unsent) and recheck:  # reconnected with another policy: check that one,
        left_ms = int((deadline - time.monotonic() + waiting.ANSWER_RESERVE_S) * 1000)  # by the same deadline
        return _exchange(req, route, target, fields, left_ms, recheck=False)
    if posted is None or isinstance(posted, tunnels.Unsent):
        return fail(502, GONE, "agent connection is gone")
    conn, request_id = posted, ids[posted.connection_id]
    fields.update(connection_id=conn.connection_id)
    posted_at = time.monotonic()
    answer = waiting.wait_for_answer(request_id, conn.connection_id, deadline,
                                     waiting.first_poll_delay(route.tunnel_id))
    if not isinstance(answer, str):
        waiting.record_answer_time(route.tunnel_id, time.monotonic() - posted_at)
        if protocol.CAP_ACK in conn.capabilities:
            to_agent.answer_read(conn.connection_id, request_id)
    if isinstance(answer, str):
        if answer == GONE:
            tunnels.forget_connection(route.tunnel_id, conn.connection_id)
        message = "no answer from the agent within the deadline" if answer == TIMEOUT else "agent disconnected"
        context = store.RequestContext(tunnel_id=route.tunnel_id, method=req.method, path=route.path,
                                       created_at=created_at, request_bytes=len(req.body))
        answer = waiting.give_up(request_id, conn.connection_id, answer, message, context) or answer
    if isinstance(answer, str):
        return fail(504 if answer == TIMEOUT else 502, answer, message)
    return to_caller.build_answer(request_id, req, route, answer, conn.rewrite, rules, conn.rewrite_json)


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
        outcome = routed if isinstance(routed, ForwardResult) else _exchange(req, *routed, fields, remaining_ms)
    # One line per request. The observability module's metric filter counts `error_code` from
    # it; a 5xx is logged at WARNING so the counts survive LOG_LEVEL=WARNING.
    log.emit(logging.WARNING if outcome.status >= 500 else logging.INFO, "forwarded",
             status=outcome.status, error_code=outcome.error_code,
             duration_ms=int((time.monotonic() - started) * 1000),
             dynamodb_calls=store.calls() - calls_before, **fields)
    return outcome.result
