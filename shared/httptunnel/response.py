"""$default: messages from the agent (ready, ping, http_response, error).

Never raises for anything the agent sends: malformed or unknown frames are logged and
dropped, the connection kept (the handler always answers 200).
"""

from __future__ import annotations

import json
from typing import Any

from . import config, events, log, management, names, protocol, store
from .protocol import ProtocolError


def public_urls(tunnel_id: str) -> tuple[str, str | None, str | None]:
    """(public_url, path_based_url, subdomain_url). public_url is the subdomain URL when configured;
    there is no path_based_url when path routing is off (PATH_ROUTING=false needs a template).
    The path URL ends in ``/``: a page at ``/<id>`` would resolve its relative links outside the tunnel."""
    template = config.subdomain_url_template()
    sub_url = template.replace("{tunnel_id}", tunnel_id) if template else None
    path_url = f"{config.public_http_url()}/{tunnel_id}/" if config.path_routing() or not sub_url else None
    return (sub_url or path_url or ""), path_url, sub_url


def _on_ready(ws: events.WsEvent) -> str:
    conn = store.get_connection(ws.connection_id)
    if conn is None:
        log.warning("ready from unknown connection", connection_id=ws.connection_id)
        return "unknown_connection"
    public_url, path_url, sub_url = public_urls(conn.tunnel_id)
    message = protocol.ConnectionEstablished(
        connection_id=ws.connection_id, tunnel_id=conn.tunnel_id, public_url=public_url,
        subdomain_url=sub_url, path_based_url=path_url, subdomain=conn.subdomain)
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
    if not 100 <= msg.status_code <= 599:
        return store.Answer(status=names.STATUS_ERROR, error_code="internal_error",
                            error_message=f"agent sent invalid status code {msg.status_code}")
    size = msg.body_size or 0
    if not msg.body_uploaded:
        try:
            size = len(protocol.b64decode(msg.body))
        except ProtocolError:
            return store.Answer(status=names.STATUS_ERROR, error_code="internal_error",
                                error_message="agent sent a body that is not valid base64")
    return store.Answer(
        status=names.STATUS_COMPLETED, status_code=msg.status_code,
        headers_json=json.dumps(msg.headers, separators=(",", ":")),
        body_b64="" if msg.body_uploaded else msg.body, body_uploaded=msg.body_uploaded,
        body_sha256=msg.body_sha256, response_bytes=size, processing_time_ms=max(0, msg.processing_time_ms))


def _answer_from_error(msg: protocol.Error) -> store.Answer:
    code = msg.code if msg.code in protocol.ERROR_STATUS else "internal_error"
    return store.Answer(status=names.STATUS_ERROR, error_code=code, error_message=msg.message)


def _store_answer(ws: events.WsEvent, request_id: str, answer: store.Answer) -> str:
    """One conditional PutItem keyed by (request id, this connection): the connection that sends
    an answer is part of its key, so an answer to a request this socket never got lands where
    no forward looks, and a second answer to the same request is refused."""
    if not store.valid_request_id(request_id):
        log.warning("answer dropped: malformed request id", connection_id=ws.connection_id)
        return "rejected"
    if store.put_answer(request_id, ws.connection_id, answer):
        log.info("answer stored", request_id=request_id, connection_id=ws.connection_id, status=answer.status,
                 status_code=answer.status_code, error_code=answer.error_code)
        return "stored"
    log.warning("answer rejected: this connection already answered, or forward gave up on the request",
                request_id=request_id, connection_id=ws.connection_id)
    return "rejected"


def handle(event: Any) -> dict[str, Any]:
    ws = events.parse_ws_event(event)
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
        result = _store_answer(ws, msg.request_id, _answer_from_response(msg))
    elif isinstance(msg, protocol.Error):
        result = _store_answer(ws, msg.request_id, _answer_from_error(msg))
    else:
        log.warning("dropped unexpected message type", connection_id=ws.connection_id, type=msg.type)
        result = "ignored"
    log.debug("message handled", connection_id=ws.connection_id, type=msg.type, result=result)
    return events.ws_response(200)
