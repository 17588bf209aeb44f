"""exchange: from a routed request to the agent's answer - the tunnel's connection (and the
Referer fallback), the edge policy, the bare-prefix redirect, the post, the wait, giving up.

Both edges tell this part of the story the same way: ``forward`` (HTTP API, buffered) and
``forward_stream`` (function URL, streamed) differ only in how long they wait (``wait_s``) and
in how they write the answer to the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from . import events, gate, names, policy, protocol, routing, store, stream_holds, to_agent, tunnels, waiting
from .replies import GONE, NOT_FOUND, TIMEOUT, ForwardResult, fail


@dataclass(frozen=True)
class Exchanged:
    """The agent's answer (or its error row) and what the answer to the caller needs."""
    request_id: str
    route: routing.Route
    conn: store.Connection
    answer: store.Answer
    rules: policy.Policy | None


def _connection(req: events.HttpEvent, route: routing.Route,
                target: str) -> tuple[store.Connection, routing.Route, str] | None:
    """The tunnel's connection; in path mode, failing that, the Referer's tunnel (single-tenant
    deployments only: ``gate.referer_route``), with the route and target it implies."""
    conn = tunnels.connection_for(route.tunnel_id)
    if conn is None and route.mode == routing.PATH:
        by_referer = gate.referer_route(req)
        conn = tunnels.connection_for(by_referer.tunnel_id) if by_referer else None
        if conn and by_referer:
            route, target = by_referer, gate.request_target(req, by_referer.path)
    return (conn, route, target) if conn is not None else None


def exchange(req: events.HttpEvent, route: routing.Route, target: str, fields: dict[str, Any],
             wait_s: float, recheck: bool = True, stream: bool = False,
             on_long: Callable[[], bool] | None = None) -> Exchanged | ForwardResult:
    """Post the request to the tunnel's agent and wait up to ``wait_s`` for its answer; the
    refusal, the 502/504 of an agent that is gone or silent, or the answer. ``fields`` gathers
    what the caller's log line says about the request. A tunnel that reconnected with another
    edge policy meanwhile (``tunnels.Unsent``) gets the request checked against that policy, once,
    by the same deadline (``recheck``). ``stream`` (the streaming edge): offer a streamed answer to
    an agent that agreed ``stream``; its answer is then the head (status ``streaming``). The
    tunnel's fairness ceilings come first (``gate.admit``). ``on_long``: ``waiting.wait_for_answer``'s
    hook for a wait past ``waiting.HOLD_AFTER_S``; refused, the slot is given up and the caller gets
    429 ``tunnel_rate_limited`` (``stream_holds``)."""
    refused = gate.admit(route.tunnel_id) if recheck else None
    if refused is not None:
        return refused
    try:
        return _exchange(req, route, target, fields, wait_s, recheck, stream, on_long)
    finally:
        if recheck:
            gate.release(route.tunnel_id)


def _exchange(req: events.HttpEvent, route: routing.Route, target: str, fields: dict[str, Any],
              wait_s: float, recheck: bool, stream: bool,
              on_long: Callable[[], bool] | None) -> Exchanged | ForwardResult:
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
    deadline = time.monotonic() + wait_s
    ids: dict[str, str] = {}  # connection id -> the request id posted to it (ids are bound to their connection)

    def frame_for(c: store.Connection) -> str:
        ids[c.connection_id] = request_id = to_agent.new_request_id(c.connection_id, long_lived=stream)
        fields.update(request_id=request_id)
        acks = to_agent.take_acks(c.connection_id) if protocol.CAP_ACK in c.capabilities else None
        offer = to_agent.stream_offer(request_id) if stream and protocol.CAP_STREAM in c.capabilities else None
        return to_agent.request_message(request_id, req, route, target, int((time.time() + wait_s) * 1000),
                                        max(0, int((deadline - time.monotonic()) * 1000)), rules, acks, offer)
    posted = tunnels.post(route, conn, frame_for)
    if isinstance(posted, tunnels.Unsent) and recheck:
        return exchange(req, route, target, fields, max(0.0, deadline - time.monotonic()), recheck=False,
                        stream=stream, on_long=on_long)
    if posted is None or isinstance(posted, tunnels.Unsent):
        return fail(502, GONE, "agent connection is gone")
    conn, request_id = posted, ids[posted.connection_id]
    fields.update(connection_id=conn.connection_id)
    posted_at = time.monotonic()
    answer = waiting.wait_for_answer(request_id, conn.connection_id, deadline,
                                     waiting.first_poll_delay(route.tunnel_id), on_long)
    if not isinstance(answer, str):
        waiting.record_answer_time(route.tunnel_id, time.monotonic() - posted_at)
        if protocol.CAP_ACK in conn.capabilities and answer.status != names.STATUS_STREAMING:
            to_agent.answer_read(conn.connection_id, request_id)  # a stream's frames are acked by stream_ack
    if isinstance(answer, str):
        if answer == GONE:
            tunnels.forget_connection(route.tunnel_id, conn.connection_id)
        message = {TIMEOUT: "no answer from the agent within the deadline", waiting.REFUSED: stream_holds.REFUSED}.get(
            answer, "agent disconnected")
        context = store.RequestContext(tunnel_id=route.tunnel_id, method=req.method, path=route.path,
                                       created_at=created_at, request_bytes=len(req.body))
        answer = waiting.give_up(request_id, conn.connection_id, answer, message, context) or answer
    if answer == waiting.REFUSED:
        return stream_holds.refused(1)
    if isinstance(answer, str):
        return fail(504 if answer == TIMEOUT else 502, answer, message)
    return Exchanged(request_id, route, conn, answer, rules)
