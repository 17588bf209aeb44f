"""forward_stream: function URL request -> agent -> answer, written to the response stream.

The same story as ``forward``, told by the same stages: route and policy (``gate``), the post
and the wait (``exchange``), the answer (``to_caller``), or a refusal (``replies``). Three things
differ, all from the edge: the event is a function URL's (the path as the caller sent it:
``events.parse_function_url_event``); the wait lasts until ``MAX_STREAM_SECONDS`` or until the
function has just the time left to answer (``waiting.wait_seconds``), instead of an HTTP API's
25 s; and the answer goes out through ``context.open_stream`` (head, then the body in
pieces), so a body too big for a 6 MB result needs no 307. An agent that agreed ``stream`` is
offered a streamed answer, which ``relay`` writes to the caller as its frames arrive; any other
answer (an older agent's) is written whole (shared/README.md "The chunk channel").
With CloudFront in front (a domain), ``edge_origin`` first makes the event the viewer's request
(the tunnel's host, the viewer's address) when the secret origin header matches, and refuses a
direct call to the function URL with 403 ``edge_bypass``. Each request holds an execution
environment while it lasts, so the tunnel's open requests are counted across environments
(``stream_holds``: a lease taken lazily - once the wait for the agent passes
``waiting.HOLD_AFTER_S``, at a streamed answer's head, or before the post for a tunnel this
environment saw need one lately - and given back after the answer is written or
relayed, so a quick tunnel's buffered answer costs no write).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from . import (
    config, edge_origin, events, exchange, gate, log, names, relay, routing, store, stream_holds, to_caller, waiting,
)
from .replies import TIMEOUT, ForwardResult, fail


class StreamContext(to_caller.StreamOpener, Protocol):
    """The Lambda context of a streaming function (``runtime_api.Context``)."""
    def get_remaining_time_in_millis(self) -> int: ...


def wait_seconds(context: StreamContext) -> float:
    """How long this invocation may wait for the agent: ``max_stream_seconds``, and never so long
    that the function's timeout cuts the answer (``waiting.wait_seconds`` keeps the time to write it)."""
    return waiting.wait_seconds(config.max_stream_seconds(), context.get_remaining_time_in_millis())


def _answer(req: events.HttpEvent, route: routing.Route, target: str, fields: dict[str, Any],
            context: StreamContext, lease: stream_holds.Lazy) -> to_caller.Answer | ForwardResult | relay.Relayed:
    wait_s = wait_seconds(context)
    if wait_s <= 0:
        return fail(504, TIMEOUT, "no time left to wait for the agent")
    deadline = time.monotonic() + wait_s
    if not lease.take_early():  # this environment expects the request to count (found full: no post, no write)
        return lease.refusal or stream_holds.refused(1)
    done = exchange.exchange(req, route, target, fields, wait_s, stream=True, on_long=lease.take)
    if isinstance(done, ForwardResult):  # refused by the lease: its own 429 (the tunnel's or its token's limit)
        return lease.refusal if lease.refusal is not None and done.status == 429 else done
    if done.answer.status == names.STATUS_STREAMING:  # the head: relay writes the body as it comes
        if not lease.take():  # the tunnel's open requests, across environments: full
            relay.Reader(done.request_id, done.conn, deadline).cancel("gave_up")
            return lease.refusal or stream_holds.refused(1)
        return relay.relay(context, done, req, deadline)
    return to_caller.caller_answer(done.request_id, req, done.route, done.answer, done.conn.rewrite,
                                   done.rules, done.conn.rewrite_json)


def _outcome(event: Any, fields: dict[str, Any], context: StreamContext,
             lease: stream_holds.Lazy) -> to_caller.Answer | ForwardResult | relay.Relayed:
    try:
        parsed = events.parse_function_url_event(event)
    except events.BadEvent as exc:
        return fail(400, "invalid_request", f"invalid request: {exc}")
    req = edge_origin.viewer_request(parsed)  # the viewer's host and address when CloudFront fronts the URL
    if isinstance(req, ForwardResult):
        return req
    routed = gate.route(req)
    tunnel_id = None if isinstance(routed, ForwardResult) else routed[0].tunnel_id
    fields.update(method=req.method, tunnel_id=tunnel_id, request_bytes=len(req.body))
    if isinstance(routed, ForwardResult):
        return routed
    lease.tunnel_id = routed[0].tunnel_id
    return _answer(req, *routed, fields, context, lease)


def forward_stream(event: Any, context: StreamContext) -> None:
    started = time.monotonic()
    calls_before = store.calls()
    fields: dict[str, Any] = {}
    lease = stream_holds.Lazy()  # the request's lease: its tunnel once routed, held only if it lasts
    try:
        outcome = _outcome(event, fields, context, lease)
        if isinstance(outcome, ForwardResult):
            to_caller.stream_result(context, outcome.result)
            status, error_code = outcome.status, outcome.error_code
        elif isinstance(outcome, relay.Relayed):  # already written, frame by frame
            status, error_code = outcome.status, outcome.error_code
            fields.update(response_bytes=outcome.bytes, frames=outcome.frames)
        else:
            to_caller.stream_answer(context, outcome.status, outcome.headers, outcome.body)
            status, error_code = outcome.status, None
    finally:  # after the stream is closed: the caller does not wait for the give-back
        lease.give_back()
    # One line per request, as forward's (the same metric filter reads both functions' logs).
    log.emit(logging.WARNING if status >= 500 else logging.INFO, "forwarded", status=status,
             error_code=error_code, duration_ms=int((time.monotonic() - started) * 1000),
             dynamodb_calls=store.calls() - calls_before, edge="function_url", **fields)
