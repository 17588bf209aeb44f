"""forward: public HTTP API request -> agent -> answer (HTTP API payload format 2.0).

(Over 300 lines: the one Lambda on every caller's path, and each step of it is a contract of its
own - proxy headers, the edge policy hook, the post with its 410 retry, the learned poll, big
bodies both ways and the answer's header fidelity; splitting them would scatter one request.)

Header fidelity (what changes on the way):
* to the agent: API Gateway gives repeated request headers already comma-joined, so each
  header reaches the agent as ONE value exactly as API Gateway gave it; the ``cookies`` array
  becomes one ``cookie`` header joined with "; ". Hop-by-hop headers (and those named in
  ``Connection``), ``Host`` and ``Content-Length`` are dropped (the agent sets its own).
  Proxy headers belong to the edge (``agent_headers``): whatever the caller sent in
  ``PROXY_HEADERS`` is dropped and ``Forwarded``, ``X-Real-IP``, ``X-Forwarded-Host/-Port/
  -Proto`` and, in path mode, ``X-Forwarded-Prefix: /<id>`` are set from the event's
  requestContext (source IP, domain name) and the deployment's scheme. ``X-Forwarded-For``
  keeps the caller's chain with the source IP API Gateway saw as its LAST entry. ``Host`` is
  then set to the public host the caller used (domain name, with the port when not the
  scheme's default): the agent passes it on with ``--keep-host``.
* to the caller: each ``Set-Cookie`` value goes out separately (payload 2.0 ``cookies``);
  other repeated headers are joined with ", " (2.0 has no multiValueHeaders); hop-by-hop
  headers are dropped, and Content-Length too (API Gateway sets the length) except on HEAD,
  whose empty body cannot say it.
* errors the agent reports reach the caller as a fixed sentence per code (``PUBLIC_MESSAGES``):
  the agent's own message (local addresses, errno) stays in its log and inspector.

Request target: API Gateway hands over the path percent-DECODED (``%2F`` is ``/`` by then,
and the path was cut at a decoded ``?``); ``routing.request_target`` re-encodes what cannot stand
literally in a path, so the local service gets a valid target that decodes to that path; the
query goes on byte for byte. A target that cannot be built that way is refused with 400
``invalid_request``: never a 500, never a silently different URL.

Waiting: strongly consistent GetItem of the answer row keyed by (request id, the connection
the request was posted to), with the backoff of ``next_poll_delay``; every second the
connection row is checked (gone -> 502 agent_gone). forward writes nothing on the way: the
response Lambda writes the answer once and TTL removes it. On timeout/agent gone forward
writes the error row itself, conditionally on the slot being empty (so a late answer is
refused, and an answer that won the race is returned instead).

What a warm instance remembers (each one ``TTLMap``: bounded, least recently used evicted
first, thread-safe): ``CONNECTIONS``, a tunnel's newest connection for ``CONNECTION_CACHE_S``
and an unknown tunnel as absent for ``ABSENT_CACHE_S`` (a 410 on the post drops the entry and
asks the Query once more, so a reconnect never costs the caller an error); ``ANSWER_TIMES``,
each tunnel's recent answer times (the first poll's wait); ``POLICIES``, each distinct stored
policy parsed once; ``DENIED_BUDGETS``, the per-connection token bucket of request_denied notices.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from . import bodies, config, events, limits, log, management, names, policy, protocol, rewrite, routing, store
from .protocol import Headers, ProtocolError
from .ttlmap import MISSING, TTLMap

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
POLL_START_S = 0.005
POLL_CAP_S = 0.05
POLL_FRACTION = 0.2
POLL_MAX_S = 0.5
# The first poll waits for a fraction of the tunnel's recent answer times (learned per warm
# instance): reads before the earliest possible answer are wasted (see shared/README.md).
FIRST_POLL_FRACTION = 0.7
FIRST_POLL_MAX_S = 0.1
ANSWER_TIMES_KEPT = 16  # per tunnel
ANSWER_TIMES_MIN = 3  # fewer samples: poll at once
ALIVE_CHECK_S = 1.0
CONNECTION_CACHE_S = 5.0  # a warm instance reuses a tunnel's connection row this long
ABSENT_CACHE_S = 1.0  # an unknown tunnel is answered 404 from memory at most this long
CACHE_MAX = 1024  # tunnels (connections) remembered per instance and map (least recently used dropped first)
POLICY_CACHE_MAX = 64  # distinct parsed policies remembered per instance
RETRY_POST_S = 0.5
MESSAGE_HEADROOM = 4 * limits.KB
RESULT_HEADROOM = 16 * limits.KB

GONE = "agent_gone"
TIMEOUT = "timeout"

# What a caller is told for each error the agent reports; nothing of the agent's message.
PUBLIC_MESSAGES: dict[str, str] = {
    "invalid_request": "the tunnel agent refused the request as invalid",
    "timeout": "the tunnel's local service did not answer in time",
    "local_service_unavailable": "the tunnel's local service is not reachable",
    "local_service_error": "the tunnel's local service closed the connection without a complete answer",
    "internal_error": "the tunnel agent could not answer this request",
    "tunnel_busy": "the tunnel is busy: too many requests are waiting for its local service",
}
NOT_FOUND = ("tunnel not found: no live tunnel answers at this address. Path URLs look like "
             "/<tunnel-id>/ followed by the page's path, tunnel-id being the 12 characters ttf printed; "
             "a page opened without the slash after the id resolves its relative links outside the tunnel.")


@dataclass(frozen=True)
class ForwardResult:
    """What forward answers: the payload 2.0 result, with the status and error code its log line carries."""
    result: dict[str, Any]
    status: int
    error_code: str | None = None


def fail(status: int, code: str, message: str) -> ForwardResult:
    return ForwardResult(events.error_response(status, code, message), status, code)


# Request headers that tell an app who called and under which URL. Trusted-proxy middleware
# (Werkzeug ProxyFix, Express "trust proxy", Spring ForwardedHeaderFilter, Rails, ASP.NET)
# builds URLs and client addresses from them, so a caller must never choose them: forward drops
# every one the caller sent and sets the standard ones itself (see agent_headers).
PROXY_HEADERS = frozenset({
    "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto",
    "x-forwarded-prefix", "x-forwarded-ssl", "x-forwarded-scheme", "x-url-scheme", "front-end-https",
    "x-forwarded-server", "x-original-host", "x-host", "x-original-url", "x-rewrite-url",
    "client-ip", "x-client-ip", "true-client-ip", "x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip",
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


def caller_headers(headers: Headers, method: str = "GET") -> Headers:
    return protocol.strip_hop_by_hop(headers, also=() if method == "HEAD" else ("content-length",))


def _request_message(request_id: str, req: events.HttpEvent, route: routing.Route, uri: str,
                     deadline_ms: int, time_left_ms: int, rules: policy.Policy | None = None) -> str:
    upload = bodies.response_upload_form(request_id) if bodies.enabled() else None
    headers = agent_headers(req, route)
    if rules:
        policy.apply_rules(headers, rules.request_remove, rules.request_add)
    common: dict[str, Any] = dict(
        request_id=request_id, method=req.method, uri=uri, headers=headers,
        timestamp=int(time.time() * 1000), body_size=len(req.body), response_upload=upload,
        deadline_ms=deadline_ms, time_left_ms=time_left_ms)
    if len(req.body) <= limits.INLINE_REQUEST_BODY_MAX:
        frame = protocol.encode(protocol.HttpRequest(body=protocol.b64encode(req.body), **common))
        if len(frame.encode("utf-8")) <= limits.WS_MESSAGE_MAX - MESSAGE_HEADROOM or not bodies.enabled():
            return frame
    body_url = bodies.put_request_body(request_id, req.body)
    return protocol.encode(protocol.HttpRequest(
        body="", body_url=body_url, body_sha256=hashlib.sha256(req.body).hexdigest(), **common))


def next_poll_delay(delay: float, waited_s: float) -> float:
    """Backoff x1.5 from 5 ms to 50 ms; past 250 ms, at most 20 % of the time already waited
    (capped at 0.5 s). A quick answer is picked up within ~50 ms; a slow one (a 10 s webhook
    handler) costs ~30 reads instead of ~200, for at most ~20 % extra latency. Under load, the
    many waiting invocations stop competing with the answers for DynamoDB."""
    ceiling = min(max(POLL_CAP_S, POLL_FRACTION * waited_s), POLL_MAX_S)
    return min(delay * 1.5, ceiling)


ANSWER_TIMES: TTLMap[str, tuple[float, ...]] = TTLMap(CACHE_MAX)  # tunnel id -> recent post -> answer seconds


def first_poll_delay(tunnel_id: str) -> float:
    """How long to wait before the first read: a fraction of the tunnel's median answer time."""
    seen = sorted(ANSWER_TIMES.get(tunnel_id, ()))
    if len(seen) < ANSWER_TIMES_MIN:
        return 0.0
    return min(FIRST_POLL_MAX_S, FIRST_POLL_FRACTION * seen[len(seen) // 2])


def record_answer_time(tunnel_id: str, seconds: float) -> None:
    """Keep the tunnel's last ``ANSWER_TIMES_KEPT`` post -> answer times."""
    ANSWER_TIMES.update(tunnel_id, lambda kept: (*(kept or ())[1 - ANSWER_TIMES_KEPT:], seconds))


def wait_for_answer(request_id: str, connection_id: str, deadline: float,
                    first_poll_s: float = 0.0) -> store.Answer | str:
    """Poll the answer row (strongly consistent) until answered, the agent is gone, or the deadline.
    The first read waits ``first_poll_s`` (bounded by the deadline), then the backoff runs."""
    delay = POLL_START_S
    started = time.monotonic()
    next_alive_check = started + ALIVE_CHECK_S
    if first_poll_s > 0:
        time.sleep(min(first_poll_s, max(0.0, deadline - started)))
    while True:
        answer = store.get_answer(request_id, connection_id)
        if answer is not None:
            return answer
        now = time.monotonic()
        if now >= deadline:
            return TIMEOUT
        if now >= next_alive_check:
            if not store.connection_exists(connection_id):
                return store.get_answer(request_id, connection_id) or GONE
            next_alive_check = now + ALIVE_CHECK_S
        time.sleep(min(delay, max(0.0, deadline - now)))  # poll backoff, bounded by the deadline
        delay = next_poll_delay(delay, time.monotonic() - started)


def _give_up(request_id: str, connection_id: str, code: str, message: str,
             context: store.RequestContext) -> store.Answer | None:
    """Write the error row in the answer slot (the record of a timed-out request); if the agent
    answered meanwhile, return that answer instead."""
    answer = store.Answer(status=names.STATUS_ERROR, error_code=code, error_message=message)
    if store.put_answer(request_id, connection_id, answer, context):
        return None
    return store.get_answer(request_id, connection_id)


def _parse_headers(text: str) -> Headers:
    try:
        data = json.loads(text)
        return protocol._headers(data) if isinstance(data, dict) else {}
    except (ValueError, ProtocolError):
        return {}


def _response_body(request_id: str, answer: store.Answer) -> bytes | bodies.Stored | ForwardResult:
    """The answer's body: inline bytes, or the one S3 version forward read and checked."""
    if not answer.body_uploaded:
        return protocol.b64decode(answer.body_b64)
    if not bodies.enabled():
        return fail(502, "internal_error", "agent uploaded a body but no body bucket is configured")
    try:
        stored = bodies.get_response_body(request_id)
    except bodies.BodyTooLarge:
        return fail(502, "response_too_large", "response body exceeds the 10 MB limit")
    except bodies.BodyMissing:
        return fail(502, "internal_error", "agent said it uploaded the body but it is missing")
    except bodies.NotVersioned:
        log.error("body bucket is not versioned: an uploaded body cannot be pinned", request_id=request_id)
        return fail(502, "internal_error", "uploaded response bodies are not available (bucket configuration)")
    if answer.body_sha256 and hashlib.sha256(stored.body).hexdigest() != answer.body_sha256.lower():
        return fail(502, "internal_error", "uploaded response body does not match its checksum")
    return stored


def _first(headers: Headers, name: str) -> str:
    values = protocol.header_lookup(headers, name)
    return values[0] if values else ""


def build_answer(request_id: str, req: events.HttpEvent, route: routing.Route, answer: store.Answer,
                 rewrite_paths: bool = True, rules: policy.Policy | None = None,
                 rewrite_json: bool = False) -> ForwardResult:
    """The caller's response. In path mode root-relative links are rewritten unless the agent
    connected with rewriting off (``rewrite_paths``): then every byte is the local service's.
    JSON bodies are rewritten only when the agent asked (``ttf --rewrite-json``)."""
    if answer.status == names.STATUS_ERROR:
        code = answer.error_code if answer.error_code in PUBLIC_MESSAGES else "internal_error"
        return fail(protocol.ERROR_STATUS.get(code, 502), code, PUBLIC_MESSAGES[code])
    loaded = _response_body(request_id, answer)
    if isinstance(loaded, ForwardResult):
        return loaded
    body, version = (loaded.body, loaded.version_id) if isinstance(loaded, bodies.Stored) else (loaded, None)
    headers = rewrite.scope_cookies(caller_headers(_parse_headers(answer.headers_json), req.method))
    if rules:
        policy.apply_rules(headers, rules.response_remove, rules.response_add)
    if route.prefix and rewrite_paths:
        rewritten = rewrite.rewrite_body(body, _first(headers, "content-type"), _first(headers, "content-encoding"),
                                         route.prefix, json=rewrite_json)
        headers = rewrite.rewrite_headers(headers, route.prefix)
        if rewritten != body:
            version = None  # forward stores what it changed itself
        body = rewritten
    fits = limits.LAMBDA_PAYLOAD_MAX - RESULT_HEADROOM
    result = events.http_response(answer.status_code, headers, body)
    if events.result_size(result) <= fits:
        return ForwardResult(result, answer.status_code)
    if not result["isBase64Encoded"]:  # escaped non-ASCII text can be smaller as base64
        result = events.http_response(answer.status_code, headers, body, force_base64=True)
        if events.result_size(result) <= fits:
            return ForwardResult(result, answer.status_code)
    if answer.status_code == 200 and req.method in ("GET", "HEAD") and bodies.enabled():
        return _redirect_to_s3(request_id, headers, body, version)
    return fail(502, "response_too_large", "response is too large to return through API Gateway")


def _redirect_to_s3(request_id: str, headers: Headers, body: bytes, version: str | None) -> ForwardResult:
    """307 to the object version forward checked (or stored itself): never to whatever the
    agent's upload form might put under the key later."""
    if version is None:
        try:
            version = bodies.put_response_body(request_id, body)
        except bodies.NotVersioned:
            log.error("body bucket is not versioned: the redirect cannot be pinned", request_id=request_id)
            return fail(502, "internal_error", "response too large and the body bucket is misconfigured")
    url = bodies.response_download_url(request_id, version, _first(headers, "content-type") or None)
    result = events.http_response(307, {"location": [url], "x-tunnel-body": ["s3"], "cache-control": ["no-store"]},
                                 b"")
    return ForwardResult(result, 307)


def _route(req: events.HttpEvent) -> tuple[routing.Route, str] | ForwardResult:
    """The tunnel and the request target for the agent, or the refusal."""
    if not _TOKEN_RE.fullmatch(req.method):
        return fail(400, "invalid_request", "invalid method")
    route = routing.resolve(req.domain_name, req.raw_path, config.tunnel_domain())
    if route is None and config.path_routing():
        route = _referer_route(req)
    if route is None or (route.mode == routing.PATH and not config.path_routing()):
        return fail(404, "tunnel_not_found", NOT_FOUND)
    try:
        target = routing.request_target(route.path, req.raw_query)
    except ValueError:
        return fail(400, "invalid_request", "the request path cannot be forwarded as a valid URL")
    if len(req.body) > limits.BODY_MAX:
        return fail(413, "payload_too_large", "request body exceeds the 10 MB limit")
    if len(req.body) > limits.INLINE_REQUEST_BODY_MAX and not bodies.enabled():
        return fail(413, "payload_too_large", "request body too large (no body bucket configured)")
    return route, target


def _referer_route(req: events.HttpEvent) -> routing.Route | None:
    """Single-tenant deployments only (``PATH_REFERER_ROUTING``): a request whose first segment is
    no live tunnel goes, path unchanged, to the tunnel of the same-origin page that made it
    (``Referer: <origin>/<id>/...``), so a page's root-relative ``fetch('/api/x')`` works."""
    if not config.path_referer_routing():
        return None
    referer = urlsplit(req.headers.get("referer", ""))
    if referer.netloc.lower() != (req.headers.get("host") or req.domain_name).lower():
        return None
    segment = referer.path[1:].split("/", 1)[0]
    if not routing.is_routable(segment) or req.raw_path.startswith(f"/{segment}/"):
        return None
    return routing.Route(tunnel_id=segment, mode=routing.PATH, path=req.raw_path, prefix="/" + segment)


def _bare_prefix(req: events.HttpEvent, route: routing.Route) -> ForwardResult | None:
    """``GET``/``HEAD /<id>`` -> 308 ``/<id>/`` (query kept): relative links on the page would
    otherwise resolve outside the tunnel. The target always ends in ``/``, so it never loops."""
    if route.mode != routing.PATH or req.raw_path != route.prefix or req.method not in ("GET", "HEAD"):
        return None
    location = route.prefix + routing.request_target("/", req.raw_query)
    result = events.http_response(308, {"location": [location], "cache-control": ["no-store"]}, b"")
    return ForwardResult(result, 308)


def _alive(connection_id: str, endpoint: str) -> bool:
    """GET @connections: only a 410 there proves the socket is gone (any other failure: assume alive)."""
    try:
        return management.connection_alive(connection_id, endpoint)
    except ClientError as exc:
        log.warning("liveness check failed", connection_id=connection_id, error=type(exc).__name__)
        return True


# tunnel id -> its newest connection row (None: no such tunnel). The whole ``store.Connection``
# is kept (everything forward reads per request, the edge policy included): a hit costs no AWS call.
CONNECTIONS: TTLMap[str, store.Connection | None] = TTLMap(CACHE_MAX)


def connection_for(tunnel_id: str) -> store.Connection | None:
    """The tunnel's newest connection: remembered, or asked of the GSI and remembered."""
    found = CONNECTIONS.get(tunnel_id, MISSING)
    if found is not MISSING:
        return found
    conn = store.newest_connection_for_tunnel(tunnel_id)
    CONNECTIONS.put(tunnel_id, conn, ttl_s=CONNECTION_CACHE_S if conn is not None else ABSENT_CACHE_S)
    return conn


def forget_connection(tunnel_id: str, connection_id: str) -> None:
    """Forget the tunnel's remembered connection, if it is still ``connection_id``."""
    CONNECTIONS.pop(tunnel_id, only_if=lambda conn: conn is not None and conn.connection_id == connection_id)


def _send(conn: store.Connection, frame: str) -> bool:
    """Post the request to the agent. A 410 on the post removes the connection row only when
    GET @connections agrees the socket is gone; a live socket gets the post retried briefly.
    (Deleting a live agent's row would leave its tunnel answering 404 until it reconnects.)"""
    endpoint = management.management_endpoint(conn.domain_name, conn.stage)
    try:
        management.post_to_connection(conn.connection_id, frame, endpoint)
        return True
    except management.Gone:
        pass
    if not _alive(conn.connection_id, endpoint):
        store.delete_connection(conn.connection_id)
        log.info("stale connection removed", connection_id=conn.connection_id, tunnel_id=conn.tunnel_id)
        return False
    try:
        management.post_with_retry(conn.connection_id, frame, endpoint, budget_s=RETRY_POST_S)
        return True
    except (management.Gone, ClientError) as exc:
        log.warning("post refused by a live connection", connection_id=conn.connection_id, error=type(exc).__name__)
        return False


# --------------------------------------------------------------------------- edge policy

DENIED_BURST = 5  # request_denied notices one instance may send a connection at once ...
DENIED_PER_S = 1.0  # ... and then per second; the others are counted into the next notice


@dataclass(frozen=True)
class DeniedBudget:
    """A connection's token bucket of request_denied notices, in this instance."""
    tokens: float  # notices that may go at once
    at: float  # monotonic time ``tokens`` was counted
    held_back: int  # denials not told yet: the next notice counts them
    notice: int  # the latest denial's notice: its ``count``, 0 when held back


DENIED_BUDGETS: TTLMap[str, DeniedBudget] = TTLMap(CACHE_MAX)  # connection id -> its bucket


def _denied_notice_count(connection_id: str) -> int:
    """Spend a token for one denial: the ``count`` of the notice to send now, 0 when held back."""
    now = time.monotonic()

    def spend(budget: DeniedBudget | None) -> DeniedBudget:
        if budget is None:
            tokens, held_back = float(DENIED_BURST), 0
        else:
            tokens = min(float(DENIED_BURST), budget.tokens + (now - budget.at) * DENIED_PER_S)
            held_back = budget.held_back
        if tokens < 1.0:
            return DeniedBudget(tokens, now, held_back + 1, 0)
        return DeniedBudget(tokens - 1.0, now, 0, held_back + 1)

    return DENIED_BUDGETS.update(connection_id, spend).notice


def _tell_agent_denied(conn: store.Connection, req: events.HttpEvent, target: str, denial: policy.Denial) -> None:
    """A request_denied notice, rate-limited per forward instance and connection (token bucket).
    A held-back denial is counted into the next notice's ``count``; N instances under a flood
    send at most N x (burst + rate) notices. Best effort: a failed post changes nothing."""
    count = _denied_notice_count(conn.connection_id)
    if not count:
        return
    headers = {k: [v] for k, v in req.headers.items() if k not in ("authorization", "cookie")}
    frame = protocol.encode(protocol.RequestDenied(
        method=req.method, uri=target, status=denial.status,
        reason=denial.code, headers=headers, timestamp=int(time.time() * 1000), count=count))
    try:
        management.post_to_connection(conn.connection_id, frame, management.management_endpoint(conn.domain_name, conn.stage))
    except (management.Gone, ClientError) as exc:
        log.info("request_denied notice not delivered", connection_id=conn.connection_id, error=type(exc).__name__)


POLICIES: TTLMap[str, policy.Policy] = TTLMap(POLICY_CACHE_MAX)  # a row's policy JSON -> parsed


def parsed_policy(raw: str) -> policy.Policy:
    """The parsed policy of a connection row (a warm instance parses each distinct string once).
    A stored string connect accepted always parses; should one not, PolicyError propagates."""
    parsed = POLICIES.get(raw)
    if parsed is None:
        parsed = policy.parse(raw)
        POLICIES.put(raw, parsed)
    return parsed


def _edge_policy(req: events.HttpEvent, target: str, conn: store.Connection) -> policy.Policy | ForwardResult | None:
    """THE policy hook: the tunnel's rules (None = open) or the denial the caller gets."""
    if not conn.policy:
        return None
    try:
        rules = parsed_policy(conn.policy)
    except policy.PolicyError:  # connect stores only what parses; refuse rather than run open
        return fail(502, "internal_error", "the tunnel's stored policy is unreadable")
    denial = policy.check(rules, conn.policy, req.source_ip, req.headers, req.body)
    if denial is None:
        return rules
    _tell_agent_denied(conn, req, target, denial)
    result = events.error_response(denial.status, denial.code, denial.message)
    result["headers"].update(denial.headers)
    return ForwardResult(result, denial.status, denial.code)


def _post(route: routing.Route, conn: store.Connection, frame: str) -> store.Connection | None:
    """Post to the tunnel's (cached) connection; a refused post drops the cached entry and goes
    once more through the Query (a reconnected agent has a new row by then). Returns the
    connection that took the request, None when none did."""
    if _send(conn, frame):
        return conn
    forget_connection(route.tunnel_id, conn.connection_id)
    fresh = connection_for(route.tunnel_id)
    if fresh is None or fresh.connection_id == conn.connection_id:
        return None
    return fresh if _send(fresh, frame) else None


def _exchange(req: events.HttpEvent, route: routing.Route, target: str, fields: dict[str, Any]) -> ForwardResult:
    conn = connection_for(route.tunnel_id)
    if conn is None and route.mode == routing.PATH:
        by_referer = _referer_route(req)
        conn = connection_for(by_referer.tunnel_id) if by_referer else None
        if conn and by_referer:
            route, target = by_referer, routing.request_target(by_referer.path, req.raw_query)
    if conn is None:
        return fail(404, "tunnel_not_found", NOT_FOUND)
    rules = _edge_policy(req, target, conn)
    if isinstance(rules, ForwardResult):
        return rules
    redirect = _bare_prefix(req, route)
    if redirect is not None:
        return redirect
    request_id = uuid.uuid4().hex
    created_at = int(time.time() * 1000)
    fields.update(request_id=request_id, connection_id=conn.connection_id, path=route.path[:256],
                  created_at=created_at)
    wait_s = config.forward_wait_seconds()
    deadline = time.monotonic() + wait_s
    frame = _request_message(request_id, req, route, target, int((time.time() + wait_s) * 1000),
                             max(0, int((deadline - time.monotonic()) * 1000)), rules)
    posted = _post(route, conn, frame)
    if posted is None:
        return fail(502, GONE, "agent connection is gone")
    conn = posted
    fields.update(connection_id=conn.connection_id)
    posted_at = time.monotonic()
    answer = wait_for_answer(request_id, conn.connection_id, deadline, first_poll_delay(route.tunnel_id))
    if not isinstance(answer, str):
        record_answer_time(route.tunnel_id, time.monotonic() - posted_at)
    if isinstance(answer, str):
        if answer == GONE:
            forget_connection(route.tunnel_id, conn.connection_id)
        message = "no answer from the agent within the deadline" if answer == TIMEOUT else "agent disconnected"
        context = store.RequestContext(tunnel_id=route.tunnel_id, method=req.method, path=route.path,
                                       created_at=created_at, request_bytes=len(req.body))
        answer = _give_up(request_id, conn.connection_id, answer, message, context) or answer
    if isinstance(answer, str):
        return fail(504 if answer == TIMEOUT else 502, answer, message)
    return build_answer(request_id, req, route, answer, conn.rewrite, rules, conn.rewrite_json)


def forward(event: Any) -> dict[str, Any]:
    started = time.monotonic()
    calls_before = store.calls()
    fields: dict[str, Any] = {}
    try:
        req = events.parse_http_event(event)
    except events.BadEvent as exc:
        outcome = fail(400, "invalid_request", f"invalid request: {exc}")
    else:
        routed = _route(req)
        tunnel_id = None if isinstance(routed, ForwardResult) else routed[0].tunnel_id
        fields.update(method=req.method, tunnel_id=tunnel_id, request_bytes=len(req.body))
        outcome = routed if isinstance(routed, ForwardResult) else _exchange(req, *routed, fields)
    # One line per request. The observability module's metric filter counts `error_code` from
    # it; a 5xx is logged at WARNING so the counts survive LOG_LEVEL=WARNING.
    log.emit(logging.WARNING if outcome.status >= 500 else logging.INFO, "forwarded",
             status=outcome.status, error_code=outcome.error_code,
             duration_ms=int((time.monotonic() - started) * 1000),
             dynamodb_calls=store.calls() - calls_before, **fields)
    return outcome.result
