"""fairness: one tunnel, or one agent socket, cannot take the others' share (issue 29).

Per tunnel (forward and forward_stream, through ``gate.admit``): a request rate (token bucket,
``TUNNEL_RATE_LIMIT`` per second, ``TUNNEL_BURST_LIMIT`` at once) and requests in flight
(``TUNNEL_MAX_IN_FLIGHT``). Past either, 429 ``tunnel_rate_limited`` with ``Retry-After``, decided
before any DynamoDB read: a flood of one tunnel's URL costs an invocation of a few milliseconds,
never a hold of 25 s. The operator sets the ceilings (Terraform ``tunnel_rate_limit``,
``tunnel_burst_limit``, ``tunnel_max_in_flight``; 0 = off); a tunnel's own policy (``lim``:
``{"rps": r, "burst": b, "inflight": n}``, parsed by ``policy``) can only lower them (``effective``), so a noisy tenant
cannot opt out.

Caller WebSockets (issue 24): a caller's ``$connect`` is one request to its tunnel (caller_connect
goes through ``gate.admit`` too), and caller messages spend a per-tunnel budget
(``caller_message_flooding``, ``CALLER_MESSAGE_RATE_LIMIT``/``_BURST_LIMIT``): the socket whose
message goes over it is closed.

Per agent socket (the response Lambda, through ``message_flood``): ``AGENT_MESSAGE_RATE_LIMIT``
messages per second, ``AGENT_MESSAGE_BURST_LIMIT`` at once; a socket past it is closed
(DELETE @connections). The agent may reconnect, within the ``$connect`` throttle and its token.

The counts are **per warm instance**, not shared: N instances of forward admit up to N times a
tunnel's share (N x (burst + rate x t) requests in t seconds), and on AWS an instance serves one
request at a time, so the in-flight ceiling binds only within one instance (the local emulator runs
many invocations in one process, where it binds as a whole). A shared count would be a
conditional UpdateItem per request and another at its end (2 WRU, $1.25 per million
requests: more than the whole 1-write-per-request budget), so it is not done here; on the function
URL edge, where one request holds a whole execution environment for up to ``max_stream_seconds``,
``stream_holds`` pays it to count a tunnel's open requests across environments. The bound that holds
whatever N is the API's stage throttle (``http_throttling_rate_limit``) or, on the function URL
edge, ``forward_reserved_concurrency``; these limits keep one tunnel from using that share alone
while N stays small (forward's instances grow with its concurrency: N <= rate x duration).

A layer module: the limiter itself is stdlib; ``socket_flooding`` closes a socket through ``management``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import config, log, management
from .ttlmap import TTLMap

TUNNELS_MAX = 4096  # tunnels one instance remembers (least recently used evicted)
CONNECTIONS_MAX = 4096


def refilled(tokens: float, at: float, now: float, burst: float, per_s: float) -> float:
    """A token bucket's tokens at ``now``: what it held at ``at`` plus ``per_s`` a second, capped at
    ``burst`` (every budget of the layer refills this way: per tunnel, per socket, and gate's
    denied-notice and basic-auth budgets)."""
    return min(float(burst), tokens + (now - at) * per_s)


def bucket_size(rate: float, burst: float) -> float:
    """A bucket's size: ``burst``, or without one the rate (at least 1 token)."""
    return burst if burst > 0 else max(1.0, rate)


@dataclass(frozen=True)
class Limits:
    """Per-tunnel limits; 0 in a field = no limit of that kind."""
    rate: float = 0.0  # requests per second
    burst: float = 0.0  # requests at once (bucket size); 0 with a rate = the rate, at least 1
    in_flight: int = 0

    def bucket(self) -> float:
        return bucket_size(self.rate, self.burst)


OFF = Limits()


def tenant(limits: tuple[float, float, int]) -> Limits:
    """A policy's ``lim`` (``policy.Policy.limits``) as Limits."""
    return Limits(float(limits[0]), float(limits[1]), int(limits[2]))


def _lower(operator: float, tenant: float) -> float:
    """The lower of two limits where 0 means none."""
    if operator <= 0:
        return tenant
    if tenant <= 0:
        return operator
    return min(operator, tenant)


def effective(operator: Limits, tenant: Limits | None) -> Limits:
    """What applies: each field the lower of the operator's ceiling and the tenant's own choice."""
    if tenant is None:
        return operator
    return Limits(_lower(operator.rate, tenant.rate), _lower(operator.burst, tenant.burst),
                  int(_lower(operator.in_flight, tenant.in_flight)))


@dataclass(frozen=True)
class Refusal:
    retry_after_s: int  # whole seconds, at least 1
    why: str  # "rate" | "in_flight"


@dataclass(frozen=True)
class _Bucket:
    tokens: float
    at: float


class TunnelLimiter:
    """One instance's per-tunnel counts (thread-safe: the emulator runs invocations in threads)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.buckets: TTLMap[str, _Bucket] = TTLMap(TUNNELS_MAX)
        self.tenant: TTLMap[str, Limits] = TTLMap(TUNNELS_MAX)  # the tunnel's own lower limits, as last seen
        self.in_flight: dict[str, int] = {}
        self.lock = threading.Lock()

    def learn(self, tunnel_id: str, tenant: Limits | None) -> None:
        """Remember the tunnel's own limits (read with its connection) for its next requests."""
        if tenant is None or tenant == OFF:
            self.tenant.pop(tunnel_id)
        else:
            self.tenant.put(tunnel_id, tenant)

    def admit(self, tunnel_id: str, operator: Limits) -> Refusal | None:
        """Count one request in (None) or refuse it. An admitted request must be ``release``d."""
        limits = effective(operator, self.tenant.get(tunnel_id))
        if limits.rate <= 0 and limits.in_flight <= 0:
            with self.lock:
                self.in_flight[tunnel_id] = self.in_flight.get(tunnel_id, 0) + 1
            return None
        now = self.clock()
        with self.lock:
            held = self.in_flight.get(tunnel_id, 0)
            if limits.in_flight > 0 and held >= limits.in_flight:
                return Refusal(1, "in_flight")
            if limits.rate > 0:
                size = limits.bucket()
                before = self.buckets.get(tunnel_id)
                tokens = size if before is None else refilled(before.tokens, before.at, now, size, limits.rate)
                if tokens < 1.0:
                    self.buckets.put(tunnel_id, _Bucket(tokens, now))
                    return Refusal(max(1, math.ceil((1.0 - tokens) / limits.rate)), "rate")
                self.buckets.put(tunnel_id, _Bucket(tokens - 1.0, now))
            self.in_flight[tunnel_id] = held + 1
            return None

    def release(self, tunnel_id: str) -> None:
        with self.lock:
            left = self.in_flight.get(tunnel_id, 0) - 1
            if left > 0:
                self.in_flight[tunnel_id] = left
            else:
                self.in_flight.pop(tunnel_id, None)


TUNNELS = TunnelLimiter()


class MessageBudget:
    """One instance's per-connection budget of agent messages (token bucket)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.buckets: TTLMap[str, _Bucket] = TTLMap(CONNECTIONS_MAX)

    def spend(self, connection_id: str, rate: float, burst: float) -> bool:
        """Take one message's token; False: the socket is over its budget (rate <= 0: no budget)."""
        if rate <= 0:
            return True
        size = bucket_size(rate, burst)
        now = self.clock()

        def take(before: _Bucket | None) -> _Bucket:
            tokens = size if before is None else refilled(before.tokens, before.at, now, size, rate)
            return _Bucket(max(-1.0, tokens - 1.0), now)  # an overdrawn socket owes at most one token

        return self.buckets.update(connection_id, take).tokens >= 0.0


MESSAGES = MessageBudget()
CALLER_MESSAGES = MessageBudget()  # keyed by tunnel id: caller WebSocket messages (issue 24)

CLOSED: TTLMap[str, bool] = TTLMap(CONNECTIONS_MAX, ttl_s=60.0)  # sockets this instance closed for flooding


def socket_flooding(connection_id: str, domain_name: str, stage: str) -> bool:
    """THE per-socket hook of the response Lambda: True when this message is over the socket's
    budget (``AGENT_MESSAGE_RATE_LIMIT``/``_BURST_LIMIT``); the socket is then closed (once) and the
    message dropped. N warm instances: a socket gets at most N x (burst + rate x t) messages handled."""
    rate, burst = config.agent_message_budget()
    if MESSAGES.spend(connection_id, rate, burst):
        return False
    if CLOSED.get(connection_id) is None:
        CLOSED.put(connection_id, True)
        log.warning("agent socket over its message budget: closing it", connection_id=connection_id,
                    rate=rate, burst=burst)
        try:
            management.close_connection(connection_id, management.management_endpoint(domain_name, stage))
        except Exception as exc:  # noqa: BLE001 - best effort: the message is dropped either way
            log.info("flooding socket not closed", connection_id=connection_id, error=type(exc).__name__)
    return True


def caller_message_flooding(tunnel_id: str) -> bool:
    """THE per-tunnel hook of caller_message: True when this caller message is over its tunnel's
    budget (``CALLER_MESSAGE_RATE_LIMIT``/``_BURST_LIMIT``, all the tunnel's caller sockets
    together); ``caller_ws.over_message_budget`` then closes the socket that sent it. N warm
    instances: a tunnel gets at most N x (burst + rate x t) caller messages passed in t seconds."""
    rate, burst = config.caller_message_budget()
    return not CALLER_MESSAGES.spend(tunnel_id, rate, burst)
