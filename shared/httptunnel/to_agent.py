"""to_agent: the request as the agent gets it - proxy headers set by the edge, the
``http_request`` frame (inline body, or through S3 when it does not fit one message).

Header fidelity on the way to the agent: API Gateway gives repeated request headers already
comma-joined, so each header reaches the agent as ONE value exactly as API Gateway gave it; the
``cookies`` array becomes one ``cookie`` header joined with "; ". Hop-by-hop headers (and those
named in ``Connection``), ``Host`` and ``Content-Length`` are dropped (the agent sets its own).
Proxy headers belong to the edge (``agent_headers``): whatever the caller sent in
``PROXY_HEADERS`` is dropped and ``Forwarded``, ``X-Real-IP``, ``X-Forwarded-Host/-Port/-Proto``
and, in path mode, ``X-Forwarded-Prefix: /<id>`` are set from the event's requestContext (source
IP, domain name) and the deployment's scheme. ``X-Forwarded-For`` keeps the caller's chain with
the source IP API Gateway saw as its LAST entry. ``Host`` is then set to the public host the
caller used (domain name, with the port when not the scheme's default): the agent passes it on
with ``--keep-host``.

Basic auth (``policy``) consumes the caller's ``Authorization``: the agent gets
``X-Forwarded-User: <user>`` instead, and the header itself only when the tunnel asked
(``ttf --basic-auth-forward``). A caller's own ``X-Forwarded-User`` (and its look-alikes) is
dropped with the other proxy headers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from . import bodies, config, events, id_keys, limits, policy, protocol, request_ids, routing
from .protocol import Headers
from .ttlmap import TTLMap

# Channel v2 `ack`, piggybacked: answers this warm instance has read, per connection, told to the
# agent in the next http_request posted to it (free: the frame is sent anyway). Kept briefly: after
# its resend timer (1 s) the agent asks for an ack of its own (shared/README.md "Acknowledged answers").
ACKS_KEPT_S = 2.0
ACKS_PER_FRAME = 32
ACKS: TTLMap[str, tuple[str, ...]] = TTLMap(1024, ACKS_KEPT_S)  # connection id -> request ids read

MESSAGE_HEADROOM = 4 * limits.KB

# Request headers that tell an app who called and under which URL. Trusted-proxy middleware
# (Werkzeug ProxyFix, Express "trust proxy", Spring ForwardedHeaderFilter, Rails, ASP.NET)
# builds URLs and client addresses from them, so a caller must never choose them: forward drops
# every one the caller sent and sets the standard ones itself (see agent_headers).
PROXY_HEADERS = frozenset({
    "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto",
    "x-forwarded-prefix", "x-forwarded-ssl", "x-forwarded-scheme", "x-url-scheme", "front-end-https",
    "x-forwarded-server", "x-original-host", "x-host", "x-original-url", "x-rewrite-url",
    "client-ip", "x-client-ip", "true-client-ip", "x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip",
    "x-forwarded-user", "x-remote-user", "remote-user", "x-auth-user",
})


def _public_origin() -> tuple[str, int]:
    """(scheme, port) callers used: https/443 on AWS (HTTP APIs serve HTTPS only), the local
    stack's from PUBLIC_HTTP_URL."""
    parts = urlsplit(config.public_http_url())
    scheme = parts.scheme if parts.scheme in ("http", "https") else "https"
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, port or (443 if scheme == "https" else 80)


def _forwarded_element(ip: str, host: str, scheme: str) -> str:
    """RFC 7239 ``for=...;host=...;proto=...`` (IPv6 and host:port quoted)."""
    node = f'"[{ip}]"' if ":" in ip else ip
    host_value = f'"{host}"' if ":" in host else host
    parts = [f"for={node}"] if ip else []
    if host:
        parts.append(f"host={host_value}")
    parts.append(f"proto={scheme}")
    return ";".join(parts)


def agent_headers(req: events.HttpEvent, route: routing.Route) -> Headers:
    out = protocol.strip_hop_by_hop({name: [value] for name, value in req.headers.items()},
                                    also=("host", "content-length", *PROXY_HEADERS))
    cookie_parts = [c for c in ([out.pop("cookie")[0]] if "cookie" in out else []) + list(req.cookies) if c]
    if cookie_parts:
        out["cookie"] = ["; ".join(cookie_parts)]
    try:
        source_ip = str(ipaddress.ip_address(req.source_ip))
    except ValueError:
        source_ip = ""
    # API Gateway appends the address it saw to the caller's X-Forwarded-For; everything before
    # that last entry is the caller's own claim. Append it here if the event does not end with it.
    # Without a valid source IP (never on AWS) the chain is dropped: its last entry would be the caller's.
    xff = req.headers.get("x-forwarded-for", "").strip()
    out.pop("x-forwarded-for", None)
    if source_ip:
        last = xff.rsplit(",", 1)[-1].strip() if xff else ""
        out["x-forwarded-for"] = [xff if last == source_ip else f"{xff}, {source_ip}" if xff else source_ip]
    scheme, port = _public_origin()
    host = req.domain_name
    default_port = port == (443 if scheme == "https" else 80)
    if source_ip:
        out["x-real-ip"] = [source_ip]
    out["x-forwarded-proto"] = [scheme]
    out["x-forwarded-port"] = [str(port)]
    if host:
        out["x-forwarded-host"] = [host]
    public_host = host if default_port or not host else f"{host}:{port}"
    out["forwarded"] = [_forwarded_element(source_ip, public_host, scheme)]
    if public_host:
        out["host"] = [public_host]  # the public host: ttf --keep-host sends it on as Host
    if route.prefix:
        out["x-forwarded-prefix"] = [route.prefix]
    return out

def new_request_id(connection_id: str, long_lived: bool = False) -> str:
    """A request id for a post to ``connection_id``: verifiable and bound to that connection
    (``request_ids``, channel v2) when the deployment has a key, else ``uuid4().hex``. The streaming
    edge's ids are ``long_lived`` (answers there may come minutes later)."""
    keys = id_keys.current()
    if keys is None:
        return uuid.uuid4().hex
    return request_ids.mint(keys, connection_id, int(time.time() * 1000), long_lived)


def answer_read(connection_id: str, request_id: str) -> None:
    """forward read this answer: tell the agent with the next request posted to its connection."""
    ACKS.update(connection_id, lambda ids: ((ids or ()) + (request_id,))[-ACKS_PER_FRAME:])


def take_acks(connection_id: str) -> list[str] | None:
    """The answers to acknowledge in a frame for ``connection_id`` (each told once), None if none."""
    taken: list[str] = []

    def keep(ids: tuple[str, ...]) -> bool:  # runs under the map's lock: read and forget at once
        taken.extend(ids)
        return True
    ACKS.pop(connection_id, only_if=keep)
    return taken or None


def stream_offer(request_id: str) -> dict[str, Any]:
    """``http_request.stream`` (issue 23): the window, and the bulk lane's upload form when there is a bucket."""
    offer: dict[str, Any] = {"window": protocol.STREAM_WINDOW}
    if bodies.enabled():
        offer["segment_form"] = bodies.segment_form(request_id)
    return offer


def policy_headers(headers: Headers, rules: policy.Policy | None) -> Headers:
    """What the edge policy does to the headers the app gets (in place; returned): basic auth consumed
    (the app gets ``x-forwarded-user``), then the header rules. Requests and caller sockets alike."""
    if rules and rules.users:
        consumed = headers.get("authorization", [""])[0]
        if not rules.forward_authorization:  # basic auth consumed it: the local service gets the user
            headers.pop("authorization", None)
        user = policy.basic_user(consumed)
        if user is not None:
            headers["x-forwarded-user"] = [user]
    if rules:
        policy.apply_rules(headers, rules.request_remove, rules.request_add)
    return headers


def request_message(request_id: str, req: events.HttpEvent, route: routing.Route, uri: str,
                    deadline_ms: int, time_left_ms: int, rules: policy.Policy | None = None,
                    acks: list[str] | None = None, stream: dict[str, Any] | None = None) -> str:
    upload = bodies.response_upload_form(request_id) if bodies.enabled() else None
    headers = policy_headers(agent_headers(req, route), rules)
    common: dict[str, Any] = dict(
        request_id=request_id, method=req.method, uri=uri, headers=headers,
        timestamp=int(time.time() * 1000), body_size=len(req.body), response_upload=upload,
        deadline_ms=deadline_ms, time_left_ms=time_left_ms, acks=acks, stream=stream)
    if len(req.body) <= limits.INLINE_REQUEST_BODY_MAX:
        frame = protocol.encode(protocol.HttpRequest(body=protocol.b64encode(req.body), **common))
        if len(frame.encode("utf-8")) <= limits.WS_MESSAGE_MAX - MESSAGE_HEADROOM or not bodies.enabled():
            return frame
    body_url = bodies.put_request_body(request_id, req.body)
    return protocol.encode(protocol.HttpRequest(
        body="", body_url=body_url, body_sha256=hashlib.sha256(req.body).hexdigest(), **common))
