"""gate: what is decided before anything reaches the agent - the route (tunnel id and request
target, the Referer fallback of single-tenant deployments, the bare-prefix redirect) and the
tunnel's edge policy (with the rate-limited request_denied notice to the agent).

Request target: API Gateway hands over the path percent-DECODED (``%2F`` is ``/`` by then, and
the path was cut at a decoded ``?``); ``routing.request_target`` re-encodes what cannot stand
literally in a path, so the local service gets a valid target that decodes to that path; the
query goes on byte for byte. A function URL hands it over as the caller sent it
(``req.path_encoded``): ``routing.encoded_request_target`` keeps it so. A target that cannot be
built that way is refused with 400 ``invalid_request``: never a 500, never a silently different URL.

A warm instance remembers ``POLICIES`` (each distinct stored policy parsed once),
``DENIED_BUDGETS`` (the per-connection token bucket of request_denied notices) and
``AUTH_FAILURES`` (the per (tunnel, source IP) token bucket of failed basic-auth attempts: 10 at
once, then 10 a minute; past it, 429 ``basic_auth_throttled`` without running scrypt).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from . import bodies, config, events, fairness, limits, log, management, policy, protocol, routing, store
from .replies import NOT_FOUND, WEBSOCKET_REFUSED, ForwardResult, fail
from .tunnels import CACHE_MAX
from .ttlmap import TTLMap

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
POLICY_CACHE_MAX = 64  # distinct parsed policies remembered per instance


def route(req: events.HttpEvent) -> tuple[routing.Route, str] | ForwardResult:
    """The tunnel and the request target for the agent, or the refusal."""
    if not _TOKEN_RE.fullmatch(req.method):
        return fail(400, "invalid_request", "invalid method")
    route = routing.resolve(req.domain_name, req.raw_path, config.tunnel_domain())
    if route is None and config.path_routing():
        route = referer_route(req)
    if route is None or (route.mode == routing.PATH and not config.path_routing()):
        return fail(404, "tunnel_not_found", NOT_FOUND)
    if websocket_upgrade(req):  # passed on, it would reach the app as a plain GET (and its 400 the browser)
        return fail(501, "websocket_unsupported", WEBSOCKET_REFUSED)
    try:
        target = request_target(req, route.path)
    except ValueError:
        return fail(400, "invalid_request", "the request path cannot be forwarded as a valid URL")
    if len(req.body) > limits.BODY_MAX:
        return fail(413, "payload_too_large", "request body exceeds the 10 MB limit")
    if len(req.body) > limits.INLINE_REQUEST_BODY_MAX and not bodies.enabled():
        return fail(413, "payload_too_large", "request body too large (no body bucket configured)")
    return route, target


def request_target(req: events.HttpEvent, path: str) -> str:
    """The target for the agent, by the event's source: re-encoded from an HTTP API's decoded
    path, kept as sent from a function URL's (``req.path_encoded``). ValueError if none can be built."""
    if req.path_encoded:
        return routing.encoded_request_target(path, req.raw_query)
    return routing.request_target(path, req.raw_query)


def websocket_upgrade(req: events.HttpEvent) -> bool:
    """A WebSocket handshake (RFC 6455: ``Upgrade: websocket``, ``Sec-WebSocket-Key``): a proxy in
    front may drop the hop-by-hop Upgrade, so either one marks it."""
    upgrade = req.headers.get("upgrade", "").lower()
    return "websocket" in upgrade or "sec-websocket-key" in req.headers


def referer_route(req: events.HttpEvent) -> routing.Route | None:
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


def bare_prefix(req: events.HttpEvent, route: routing.Route) -> ForwardResult | None:
    """``GET``/``HEAD /<id>`` -> 308 ``/<id>/`` (query kept): relative links on the page would
    otherwise resolve outside the tunnel. The target always ends in ``/``, so it never loops."""
    if route.mode != routing.PATH or req.raw_path != route.prefix or req.method not in ("GET", "HEAD"):
        return None
    location = route.prefix + routing.request_target("/", req.raw_query)
    result = events.http_response(308, {"location": [location], "cache-control": ["no-store"]}, b"")
    return ForwardResult(result, 308)


# --------------------------------------------------------------------------- edge policy

DENIED_BURST = 5  # request_denied notices one instance may send a connection at once ...
DENIED_PER_S = 1.0  # ... and then per second; the others are counted into the next notice


refilled = fairness.refilled  # one token-bucket refill for every budget of the layer


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
            tokens = refilled(budget.tokens, budget.at, now, DENIED_BURST, DENIED_PER_S)
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


AUTH_FAILURE_BURST = 10  # failed basic-auth attempts one (tunnel, source IP) may make at once ...
AUTH_FAILURE_PER_S = 10 / 60  # ... and then per second (10 a minute), in each warm instance


@dataclass(frozen=True)
class FailureBudget:
    tokens: float  # failed attempts that may still come at once
    at: float  # monotonic time ``tokens`` was counted


# (tunnel id, source IP) -> its budget of failed basic-auth attempts, in this instance
AUTH_FAILURES: TTLMap[tuple[str, str], FailureBudget] = TTLMap(CACHE_MAX)


def _refilled(budget: FailureBudget | None, now: float) -> float:
    if budget is None:
        return float(AUTH_FAILURE_BURST)
    return refilled(budget.tokens, budget.at, now, AUTH_FAILURE_BURST, AUTH_FAILURE_PER_S)


def auth_throttled_for(key: tuple[str, str]) -> float:
    """Seconds until this caller may try a password again (0: it may now)."""
    tokens = _refilled(AUTH_FAILURES.get(key), time.monotonic())
    return 0.0 if tokens >= 1.0 else (1.0 - tokens) / AUTH_FAILURE_PER_S


def spend_auth_failure(key: tuple[str, str]) -> None:
    now = time.monotonic()
    AUTH_FAILURES.update(key, lambda budget: FailureBudget(max(0.0, _refilled(budget, now) - 1.0), now),
                         ttl_s=AUTH_FAILURE_BURST / AUTH_FAILURE_PER_S)


POLICIES: TTLMap[str, policy.Policy] = TTLMap(POLICY_CACHE_MAX)  # a row's policy JSON -> parsed


def parsed_policy(raw: str) -> policy.Policy:
    """The parsed policy of a connection row (a warm instance parses each distinct string once).
    A stored string connect accepted always parses; should one not, PolicyError propagates."""
    parsed = POLICIES.get(raw)
    if parsed is None:
        parsed = policy.parse(raw)
        POLICIES.put(raw, parsed)
    return parsed


def edge_policy(req: events.HttpEvent, target: str, conn: store.Connection) -> policy.Policy | ForwardResult | None:
    """THE policy hook: the tunnel's rules (None = open) or the denial the caller gets."""
    if not conn.policy:
        fairness.TUNNELS.learn(conn.tunnel_id, None)
        return None
    try:
        rules = parsed_policy(conn.policy)
    except policy.PolicyError:  # connect stores only what parses; refuse rather than run open
        return fail(502, "internal_error", "the tunnel's stored policy is unreadable")
    fairness.TUNNELS.learn(conn.tunnel_id, fairness.tenant(rules.limits))  # its own lower limits, for what follows
    key = (conn.tunnel_id, req.source_ip)
    attempt = bool(rules.users and req.headers.get("authorization"))
    denial = policy.check(rules, conn.policy, req.source_ip, req.headers, req.body, tunnel_id=conn.tunnel_id,
                          throttled_s=auth_throttled_for(key) if attempt else 0.0)
    if denial is None:
        return rules
    if attempt and denial.code == policy.AUTH_REQUIRED:
        spend_auth_failure(key)
    _tell_agent_denied(conn, req, target, denial)
    result = events.error_response(denial.status, denial.code, denial.message)
    result["headers"].update(denial.headers)
    return ForwardResult(result, denial.status, denial.code)



# --------------------------------------------------------------------------- fairness (issue 29)

def admit(tunnel_id: str) -> ForwardResult | None:
    """THE fairness hook: the tunnel's rate and in-flight ceilings (``fairness``), before any read.
    None: admitted, and ``release(tunnel_id)`` must follow; else the 429 the caller gets."""
    rate, burst, in_flight = config.tunnel_limits()
    refusal = fairness.TUNNELS.admit(tunnel_id, fairness.Limits(rate, burst, in_flight))
    if refusal is None:
        return None
    refused = fail(429, "tunnel_rate_limited", "this tunnel is receiving more requests than its limit allows")
    refused.result["headers"]["retry-after"] = str(refusal.retry_after_s)
    return refused


def release(tunnel_id: str) -> None:
    fairness.TUNNELS.release(tunnel_id)
