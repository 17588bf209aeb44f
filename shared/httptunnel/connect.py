"""connect ($connect): authenticate, pick or reclaim a tunnel id, store the connection row.

Connect answers (the agent sees the status as the WebSocket handshake result):
200 connected; 400 malformed request (bad X-Tunnel-Id / name / reclaim token, an id without a
reclaim token, an X-Tunnel-Policy that is too big, malformed or names an unknown provider);
401 auth required and token missing/invalid; 403 named subdomain not granted by
the token (or auth disabled); 409 the tunnel id / name is not yours (held by someone else, or
no reservation exists for that id); 500 configuration error. Nothing is stored unless 200.

Reclaim tokens are made by the agent (>= 256 bits from the OS CSPRNG) and presented at every
connect; only their sha256 is stored, in the reservation row. The connection row carries no
secret in plain text (the policy's webhook secrets are sealed with KMS: ``httptunnel.sealed``;
500 when KMS refuses), and connection_established carries no token.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from . import auth, config, events, log, policy, protocol, routing, sealed, store

NEW_ID_ATTEMPTS = 5
# What `secrets.token_urlsafe(32)` makes (43 chars = 256 bits) up to a generous bound; the
# alphabet keeps it a plain header value.
RECLAIM_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43,128}")


@dataclass(frozen=True)
class Admission:
    """connect's decision: admit (200, how, the tunnel id) or refuse (status, why)."""
    status: int
    reason: str
    tunnel_id: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _pick(ws: events.WsEvent, name: str) -> str:
    header = {"id": "x-tunnel-id", "token": "x-tunnel-reclaim-token", "sub": "x-tunnel-subdomain",
              "rewrite": "x-tunnel-rewrite"}[name]
    query = {"id": "tunnel_id", "token": "reclaim_token", "sub": "subdomain", "rewrite": "rewrite"}[name]
    return (ws.headers.get(header) or ws.query.get(query) or "").strip()


REWRITE_ON = frozenset({"", "on", "true", "1", "yes"})
REWRITE_OFF = frozenset({"off", "false", "0", "no"})


REWRITE_JSON = "json"


def _rewrite_wanted(ws: events.WsEvent) -> str | None:
    """``X-Tunnel-Rewrite: off`` (or ``?rewrite=off``): answers pass through path mode untouched;
    ``json``: JSON bodies are rewritten too (``ttf --rewrite-json``). Returns "on", "off" or
    "json"; None when the value is none of those."""
    value = _pick(ws, "rewrite").lower()
    if value in REWRITE_ON:
        return "on"
    if value in REWRITE_OFF:
        return "off"
    if value == REWRITE_JSON:
        return REWRITE_JSON
    return None


def _policy(ws: events.WsEvent) -> str | None | Admission:
    """The X-Tunnel-Policy header (never the query string: it can hold webhook secrets) ->
    canonical JSON for the row; None when absent or empty; a 400 Admission when unusable."""
    value = ws.headers.get(policy.HEADER.lower(), "").strip()
    if not value:
        return None
    try:
        parsed = policy.from_header(value)
    except policy.PolicyError as exc:
        return Admission(400, f"invalid policy: {exc}")
    return parsed.to_json() if parsed else None


def _capabilities(ws: events.WsEvent) -> tuple[str, ...] | Admission:
    """``X-Tunnel-Capabilities`` (or ``?capabilities=``) -> what both sides speak; 400 when malformed.
    None announced (every agent before channel v2): () and today's protocol."""
    value = ws.headers.get(protocol.CAPABILITIES_HEADER.lower()) or ws.query.get("capabilities") or ""
    try:
        return protocol.agreed_capabilities(protocol.parse_capabilities(value))
    except protocol.ProtocolError as exc:
        return Admission(400, f"invalid {protocol.CAPABILITIES_HEADER}: {exc}")


def _authenticate(ws: events.WsEvent) -> auth.Identity | None | Admission:
    if not config.require_auth():
        return None
    auth.check_configured()
    try:
        return auth.verify(auth.bearer_token(ws.headers, ws.query))
    except auth.Unauthorized as exc:
        return Admission(401, f"unauthorized: {exc}")


def _claim_named(name: str, identity: auth.Identity | None) -> Admission:
    if identity is None:
        return Admission(403, "named subdomains need REQUIRE_AUTH=true and a token that lists them")
    if not routing.is_valid_name(name):
        return Admission(400, "invalid subdomain name (3-32 of [a-z0-9-], not shaped like a generated id)")
    if name not in auth.allowed_subdomains(identity):
        return Admission(403, "token does not grant this subdomain")
    if not store.claim_name(name, identity.subject):
        return Admission(409, "subdomain is reserved by another owner")
    return Admission(200, "named", name)


def _reclaim(tunnel_id: str, token: str, identity: auth.Identity | None) -> Admission:
    if not routing.is_tunnel_id(tunnel_id):
        return Admission(400, "invalid tunnel id")
    if not token:
        return Admission(400, "X-Tunnel-Id needs X-Tunnel-Reclaim-Token")
    owner = identity.subject if identity else None
    if not store.reclaim_id(tunnel_id, token_hash(token), owner):
        # One answer for "no reservation", "another token" and "another owner": no probing.
        return Admission(409, "tunnel id is not reserved for this reclaim token")
    return Admission(200, "reclaimed", tunnel_id)


def _new_id(token: str, identity: auth.Identity | None) -> Admission:
    owner = identity.subject if identity else None
    hashed = token_hash(token) if token else None  # no token (an older agent): the id cannot be reclaimed
    for _ in range(NEW_ID_ATTEMPTS):
        tunnel_id = routing.new_tunnel_id()
        if store.take_new_id(tunnel_id, hashed, owner):
            return Admission(200, "new", tunnel_id)
    return Admission(500, "could not allocate a tunnel id")


def _audit(ws: events.WsEvent, outcome: str, status: int, tunnel_id: str | None, subject: str | None,
           reason: str | None = None) -> None:
    """The audit trail: one always-on line per $connect (disconnect writes its own), no extra AWS call."""
    log.audit("tunnel audit", event="connect", outcome=outcome, status=status, connection_id=ws.connection_id,
              tunnel_id=tunnel_id, sub=subject, source_ip=ws.source_ip, reason=reason)


def connect(event: Any) -> dict[str, Any]:
    ws = events.parse_ws_event(event)
    wanted = (_pick(ws, "sub") or _pick(ws, "id")).lower()[:64] or None  # audit only: what was asked for
    try:
        identity = _authenticate(ws)
    except config.ConfigError as exc:
        log.error("connect rejected: configuration error", connection_id=ws.connection_id, error=str(exc))
        _audit(ws, "rejected", 500, wanted, None, "server misconfigured")
        return events.ws_response(500, "server misconfigured")
    if isinstance(identity, Admission):
        log.warning("connect rejected", connection_id=ws.connection_id, status=401, reason=identity.reason)
        _audit(ws, "rejected", 401, wanted, None, identity.reason)
        return events.ws_response(401, "unauthorized")
    token = _pick(ws, "token")
    name, wanted_id = _pick(ws, "sub").lower(), _pick(ws, "id").lower()
    rewrite = _rewrite_wanted(ws)
    edge_policy = _policy(ws)
    capabilities = _capabilities(ws)
    if rewrite is None:
        admission = Admission(400, "X-Tunnel-Rewrite must be on, off or json")
    elif isinstance(edge_policy, Admission):
        admission = edge_policy
    elif isinstance(capabilities, Admission):
        admission = capabilities
    elif token and not RECLAIM_TOKEN_RE.fullmatch(token):
        admission = Admission(400, "X-Tunnel-Reclaim-Token must be 43-128 chars of [A-Za-z0-9_-]")
    elif name:
        admission = _claim_named(name, identity)
    elif wanted_id:
        admission = _reclaim(wanted_id, token, identity)
    else:
        admission = _new_id(token, identity)
    subject = identity.subject if identity else None
    if admission.status != 200 or admission.tunnel_id is None:
        log.warning("connect rejected", connection_id=ws.connection_id, status=admission.status, reason=admission.reason)
        _audit(ws, "rejected", admission.status, wanted, subject, admission.reason)
        return events.ws_response(admission.status, admission.reason)
    try:  # the webhook secrets go on the row only as KMS ciphertext (httptunnel.sealed)
        stored_policy, sealed_hooks = sealed.seal(edge_policy if isinstance(edge_policy, str) else None,
                                                  admission.tunnel_id, ws.connection_id)
    except sealed.SealError as exc:
        log.error("connect rejected: the policy's secrets could not be sealed", connection_id=ws.connection_id,
                  error=str(exc))
        _audit(ws, "rejected", 500, admission.tunnel_id, subject, "secrets could not be sealed")
        return events.ws_response(500, "server misconfigured")
    store.put_connection(store.Connection(
        connection_id=ws.connection_id, tunnel_id=admission.tunnel_id, connected_at=int(time.time() * 1000),
        domain_name=ws.domain_name, stage=ws.stage, subject=identity.subject if identity else None,
        subdomain=admission.tunnel_id if admission.reason == "named" else None,
        rewrite=rewrite != "off", rewrite_json=rewrite == REWRITE_JSON,
        policy=stored_policy, sealed_hooks=sealed_hooks,
        capabilities=capabilities if isinstance(capabilities, tuple) else (),
        secret_version=auth.secret_version() if identity is not None and identity.alg in auth.HS_ALGS else None))
    log.info("connected", connection_id=ws.connection_id, tunnel_id=admission.tunnel_id, how=admission.reason,
             subject=subject, rewrite=rewrite,
             policy=bool(edge_policy),  # whether one is in force, never its content
             capabilities=",".join(capabilities) if isinstance(capabilities, tuple) else None)
    _audit(ws, admission.reason, 200, admission.tunnel_id, subject)
    return events.ws_response(200)
