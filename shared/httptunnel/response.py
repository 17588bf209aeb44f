"""$default: messages from the agent (ready, ping, http_response, error, streamed answer frames).

Never raises for anything the agent sends: malformed or unknown frames are logged and
dropped, the connection kept (the handler always answers 200).

Channel v2 (shared/README.md): an answer is stored only when its request id verifies for this
connection (``request_ids``; refused without a write otherwise, logged at most once a minute per
connection), and an answer that carries ``seq`` is acknowledged (``ack``) when it asks for it or
was already stored (a resend).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from . import (config, events, fairness, id_keys, limits, log, management, names, protocol, request_ids, store,
               stream_frames)
from .protocol import ProtocolError
from .ttlmap import TTLMap

REFUSAL_LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class _Refusals:
    """Answers refused on one connection since its last log line, and when that line was written."""
    logged_at: float
    since: int


# connection id -> refusals (one warm instance; bounded, least recently used evicted first)
REFUSALS: TTLMap[str, _Refusals] = TTLMap(1024)


def public_urls(tunnel_id: str) -> tuple[str, str | None, str | None]:
    """(public_url, path_based_url, subdomain_url). public_url is the subdomain URL when configured;
    there is no path_based_url when path routing is off (PATH_ROUTING=false needs a template).
    The path URL ends in ``/``: a page at ``/<id>`` would resolve its relative links outside the tunnel."""
    template = config.subdomain_url_template()
    sub_url = template.replace("{tunnel_id}", tunnel_id) if template else None
    path_url = f"{config.public_http_url()}/{tunnel_id}/" if config.path_routing() or not sub_url else None
    return (sub_url or path_url or ""), path_url, sub_url


def _budget() -> dict[str, float] | None:
    """This socket's message budget as advertised in connection_established (issue 29; None when it
    is off): the bucket ``fairness.socket_flooding`` counts with, so the agent can pace below it."""
    rate, burst = config.agent_message_budget()
    if rate <= 0:
        return None
    return {"messages_per_s": rate, "messages_burst": fairness.bucket_size(rate, burst)}


def _on_ready(ws: events.WsEvent) -> str:
    conn = store.get_connection(ws.connection_id)
    if conn is None:
        log.warning("ready from unknown connection", connection_id=ws.connection_id)
        return "unknown_connection"
    public_url, path_url, sub_url = public_urls(conn.tunnel_id)
    message = protocol.ConnectionEstablished(
        connection_id=ws.connection_id, tunnel_id=conn.tunnel_id, public_url=public_url,
        subdomain_url=sub_url, path_based_url=path_url, subdomain=conn.subdomain,
        capabilities=list(conn.capabilities) or None, limits=_budget())
    endpoint = management.management_endpoint(conn.domain_name or ws.domain_name, conn.stage or ws.stage)
    management.post_with_retry(ws.connection_id, protocol.encode(message), endpoint)
    log.info("connection established", connection_id=ws.connection_id, tunnel_id=conn.tunnel_id)
    return "established"


def _on_ping(ws: events.WsEvent) -> str:
    endpoint = management.management_endpoint(ws.domain_name, ws.stage)
    if not store.connection_exists(ws.connection_id):
        # Orphaned socket: its row is gone (removed after a failed post, by cleanup or by TTL),
        # so no request can reach it. Close it; the agent reconnects and reclaims its tunnel id.
        log.warning("ping from a connection without a row: closing it", connection_id=ws.connection_id)
        management.close_connection(ws.connection_id, endpoint)
        return "closed_orphan"
    management.post_to_connection(ws.connection_id, protocol.encode(protocol.Pong()), endpoint)
    return "pong"


def _answer_from_response(msg: protocol.HttpResponse) -> store.Answer:
    bad = store.bad_status(msg.status_code)
    if bad is not None:
        return bad
    size = msg.body_size or 0
    if not msg.body_uploaded:
        try:
            size = len(protocol.b64decode(msg.body))
        except ProtocolError:
            return store.broken_answer("agent sent a body that is not valid base64")
    return store.Answer(
        status=names.STATUS_COMPLETED, status_code=msg.status_code,
        headers_json=json.dumps(msg.headers, separators=(",", ":")),
        body_b64="" if msg.body_uploaded else msg.body, body_uploaded=msg.body_uploaded,
        body_sha256=msg.body_sha256, response_bytes=size, processing_time_ms=max(0, msg.processing_time_ms))


def _answer_from_error(msg: protocol.Error) -> store.Answer:
    return store.Answer(status=names.STATUS_ERROR, error_code=protocol.known_error(msg.code), error_message=msg.message)


def _refuse(ws: events.WsEvent, reason: str) -> str:
    """An answer for a request this connection was never sent: no write, no post. Logged the first
    time per connection, then at most once a minute with the count refused since."""
    now = time.monotonic()
    before = REFUSALS.get(ws.connection_id)
    if before is None or now - before.logged_at >= REFUSAL_LOG_EVERY_S:
        log.warning("answer refused: the request id was not issued to this connection", connection_id=ws.connection_id,
                    reason=reason, refused=1 + (before.since if before else 0))
        REFUSALS.put(ws.connection_id, _Refusals(now, 0))
    else:
        REFUSALS.put(ws.connection_id, _Refusals(before.logged_at, before.since + 1))
    return "refused"


def _unverifiable(ws: events.WsEvent, request_id: str) -> str | None:
    """Why this connection may not answer ``request_id`` (None: it may)."""
    if not store.valid_request_id(request_id):
        return "shape"
    try:
        keys = id_keys.current()
    except config.ConfigError as exc:
        log.error("request id keys unavailable: refusing answers", error=str(exc))
        return "no_key"
    if keys is None:  # a deployment without a key: ids are uuid4, checked only by their key (see Who may answer)
        return None
    return request_ids.check(keys, request_id, ws.connection_id, int(time.time() * 1000))


def _ack(ws: events.WsEvent, request_id: str, seq: int) -> None:
    endpoint = management.management_endpoint(ws.domain_name, ws.stage)
    try:
        management.post_to_connection(ws.connection_id, protocol.encode(protocol.Ack(request_id, seq)), endpoint)
    except management.Gone:
        log.info("ack not delivered: connection gone", connection_id=ws.connection_id, request_id=request_id)


def _store_answer(ws: events.WsEvent, msg: protocol.HttpResponse | protocol.Error | protocol.WsOpened | protocol.WsRefused,
                  answer: store.Answer) -> str:
    """One conditional PutItem keyed by (request id, this connection), after the id was checked
    for this connection: a second answer to the same request is refused by the condition."""
    request_id = msg.request_id
    why = _unverifiable(ws, request_id)
    if why is not None:
        return _refuse(ws, why)
    seq, ack = getattr(msg, "seq", None), getattr(msg, "ack", False)  # ws_opened/ws_refused carry neither
    if seq is not None and ack and store.answer_exists(request_id, ws.connection_id):
        # A resend (first copies ask for no posted ack) whose first copy got through: a read, not a
        # refused write, proves it; the agent may stop resending.
        log.info("answer already stored: acknowledged again", request_id=request_id, connection_id=ws.connection_id)
        _ack(ws, request_id, seq)
        return "duplicate"
    stored = store.put_answer(request_id, ws.connection_id, answer)
    if stored:
        log.info("answer stored", request_id=request_id, connection_id=ws.connection_id, status=answer.status,
                 status_code=answer.status_code, error_code=answer.error_code, seq=seq)
    else:
        log.warning("answer rejected: this connection already answered, or forward gave up on the request",
                    request_id=request_id, connection_id=ws.connection_id, seq=seq)
    if seq is not None and (ack or not stored):
        # Already there (a resend whose first copy got through, or forward gave up): either way
        # nobody wants another copy, so the agent may stop resending.
        _ack(ws, request_id, seq)
    return "stored" if stored else "rejected"


def _inline_too_big(ws: events.WsEvent, msg: protocol.HttpResponse) -> bool:
    """ttf sends at most AGENT_MESSAGE_MAX inline (API Gateway takes up to 128 KB in frames)."""
    return not msg.body_uploaded and limits.inline_too_big(ws.body)


def handle(event: Any) -> dict[str, Any]:
    ws = events.parse_ws_event(event)
    if fairness.socket_flooding(ws.connection_id, ws.domain_name, ws.stage):  # issue 29: over its budget, closed
        return events.ws_response(200)
    try:
        msg = protocol.decode(ws.body)
    except ProtocolError as exc:
        log.warning("dropped malformed message", connection_id=ws.connection_id, error=str(exc)[:200])
        return events.ws_response(200)
    if isinstance(msg, protocol.Ready):
        result = _on_ready(ws)
    elif isinstance(msg, protocol.Ping):
        result = _on_ping(ws)
    elif isinstance(msg, protocol.HttpResponse):
        answer = _answer_from_response(msg) if not _inline_too_big(ws, msg) else store.broken_answer(
            f"inline answer over {limits.AGENT_INLINE_ANSWER_MAX} bytes (bigger bodies go through S3)")
        result = _store_answer(ws, msg, answer)
    elif isinstance(msg, protocol.Error):
        result = _store_answer(ws, msg, _answer_from_error(msg))
    elif isinstance(msg, (protocol.HttpResponseHead, protocol.HttpResponseChunk, protocol.HttpResponseEnd)):
        why = _unverifiable(ws, msg.request_id)  # streamed answers (issue 23): stream_frames stores each frame
        result = _refuse(ws, why) if why is not None else stream_frames.store_frame(ws, msg)
    elif isinstance(msg, (protocol.WsOpened, protocol.WsRefused, protocol.WsMessage, protocol.WsClose)):
        # caller sockets (issue 24). Imported here: caller_ws brings gate, policy, tunnels and webhooks,
        # ~21 ms of every response cold start that a tunnel without caller sockets never needs
        from . import caller_ws
        if isinstance(msg, (protocol.WsOpened, protocol.WsRefused)):
            result = _store_answer(ws, msg, caller_ws.open_answer(msg))
        else:
            result = caller_ws.on_agent_message(ws, msg)
    else:
        log.warning("dropped unexpected message type", connection_id=ws.connection_id, type=msg.type)
        result = "ignored"
    log.debug("message handled", connection_id=ws.connection_id, type=msg.type, result=result)
    return events.ws_response(200)
