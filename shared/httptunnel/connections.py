"""$connect and $disconnect: authenticate, pick or reclaim a tunnel id, store/remove the row.

Connect answers (the agent sees the status as the WebSocket handshake result):
200 connected; 400 malformed request (bad X-Tunnel-Id / name, id without a reclaim token);
401 auth required and token missing/invalid; 403 named subdomain not granted by the token
(or auth disabled); 409 the tunnel id / name is held by someone else; 500 configuration error.
Nothing is stored unless the answer is 200.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from . import apigw, auth, config, log, routing, store

NEW_ID_ATTEMPTS = 5


@dataclass(frozen=True)
class Outcome:
    status: int
    reason: str
    tunnel_id: str | None = None
    token: str = ""  # the reclaim token the agent will be given


def reclaim_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _pick(ws: apigw.WsEvent, name: str) -> str:
    header = {"id": "x-tunnel-id", "token": "x-tunnel-reclaim-token", "sub": "x-tunnel-subdomain",
              "rewrite": "x-tunnel-rewrite"}[name]
    query = {"id": "tunnel_id", "token": "reclaim_token", "sub": "subdomain", "rewrite": "rewrite"}[name]
    return (ws.headers.get(header) or ws.query.get(query) or "").strip()


REWRITE_ON = frozenset({"", "on", "true", "1", "yes"})
REWRITE_OFF = frozenset({"off", "false", "0", "no"})


def _rewrite_wanted(ws: apigw.WsEvent) -> bool | None:
    """``X-Tunnel-Rewrite: off`` (or ``?rewrite=off``): answers pass through path mode untouched.
    None when the value is neither on nor off."""
    value = _pick(ws, "rewrite").lower()
    if value in REWRITE_ON:
        return True
    if value in REWRITE_OFF:
        return False
    return None


def _authenticate(ws: apigw.WsEvent) -> auth.Identity | None | Outcome:
    if not config.require_auth():
        return None
    auth.check_configured()
    try:
        return auth.verify(auth.bearer_token(ws.headers, ws.query))
    except auth.Unauthorized as exc:
        return Outcome(401, f"unauthorized: {exc}")


def _claim_named(name: str, token: str, identity: auth.Identity | None) -> Outcome:
    if identity is None:
        return Outcome(403, "named subdomains need REQUIRE_AUTH=true and a token that lists them")
    if not routing.is_valid_name(name):
        return Outcome(400, "invalid subdomain name")
    if name not in auth.allowed_subdomains(identity):
        return Outcome(403, "token does not grant this subdomain")
    presented = reclaim_hash(token) if token else None
    token = token or secrets.token_urlsafe(32)
    if not store.claim_reservation(name, reclaim_hash(token), identity.subject,
                                   match_hash=presented, match_sub=identity.subject):
        return Outcome(409, "subdomain is reserved by another owner")
    return Outcome(200, "named", name, token)


def _reclaim(tunnel_id: str, token: str, identity: auth.Identity | None) -> Outcome:
    if not routing.is_tunnel_id(tunnel_id):
        return Outcome(400, "invalid tunnel id")
    if not token:
        return Outcome(400, "X-Tunnel-Id needs X-Tunnel-Reclaim-Token")
    owner = identity.subject if identity else None
    if not store.claim_reservation(tunnel_id, reclaim_hash(token), owner, match_hash=reclaim_hash(token)):
        return Outcome(409, "tunnel id is held by someone else")
    return Outcome(200, "reclaimed", tunnel_id, token)


def _new_id(identity: auth.Identity | None) -> Outcome:
    owner = identity.subject if identity else None
    token = secrets.token_urlsafe(32)
    for _ in range(NEW_ID_ATTEMPTS):
        tunnel_id = routing.new_tunnel_id()
        if store.claim_reservation(tunnel_id, reclaim_hash(token), owner):
            return Outcome(200, "new", tunnel_id, token)
    return Outcome(500, "could not allocate a tunnel id")


def connect(event: Any) -> dict[str, Any]:
    ws = apigw.parse_ws_event(event)
    try:
        identity = _authenticate(ws)
    except config.ConfigError as exc:
        log.error("connect rejected: configuration error", connection_id=ws.connection_id, error=str(exc))
        return apigw.ws_response(500, "server misconfigured")
    if isinstance(identity, Outcome):
        log.warning("connect rejected", connection_id=ws.connection_id, status=401, reason=identity.reason)
        return apigw.ws_response(401, "unauthorized")
    token = _pick(ws, "token")
    name, wanted_id = _pick(ws, "sub").lower(), _pick(ws, "id").lower()
    rewrite = _rewrite_wanted(ws)
    if rewrite is None:
        outcome = Outcome(400, "X-Tunnel-Rewrite must be on or off")
    elif name:
        outcome = _claim_named(name, token, identity)
    elif wanted_id:
        outcome = _reclaim(wanted_id, token, identity)
    else:
        outcome = _new_id(identity)
    if outcome.status != 200 or outcome.tunnel_id is None:
        log.warning("connect rejected", connection_id=ws.connection_id, status=outcome.status, reason=outcome.reason)
        return apigw.ws_response(outcome.status, outcome.reason)
    store.put_connection(store.Connection(
        connection_id=ws.connection_id, tunnel_id=outcome.tunnel_id, connected_at=int(time.time() * 1000),
        domain_name=ws.domain_name, stage=ws.stage, subject=identity.subject if identity else None,
        reclaim_token=outcome.token, subdomain=outcome.tunnel_id if outcome.reason == "named" else None,
        rewrite=bool(rewrite)))
    log.info("connected", connection_id=ws.connection_id, tunnel_id=outcome.tunnel_id, how=outcome.reason,
             subject=identity.subject if identity else None, rewrite=bool(rewrite))
    return apigw.ws_response(200)


def disconnect(event: Any) -> dict[str, Any]:
    ws = apigw.parse_ws_event(event)
    store.delete_connection(ws.connection_id)  # DeleteItem of a missing key succeeds: idempotent
    log.info("disconnected", connection_id=ws.connection_id)
    return apigw.ws_response(200)
