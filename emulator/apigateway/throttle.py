"""API Gateway's throttles, as token buckets: per route of a stage, per account, and the
account's new WebSocket connections.

What AWS does (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html):
"API Gateway throttles requests to your API using the token bucket algorithm, where a token counts
for a request"; account-level limits per Region (10,000 requests/s, burst 5,000: the quotas page,
https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html) apply across all APIs; a
stage's default route throttling applies to every route of the stage, and route-level settings
override it for one route. WebSocket APIs throttle the same way per route, messages included, and the
account also has "New connections per second: 500" (quotas page, WebSocket APIs).

Modelled as: one bucket per (API, stage, route) holding ``burst`` tokens, refilled at ``rate`` per
second, starting full; a request takes one token from its route's bucket and one from the account's,
and is refused when either is empty (a refused request takes nothing). The routes' limits are the
stage's own Terraform values, read back from the stage (``DefaultRouteSettings``/``RouteSettings``,
see :func:`emulator.mock_aws.discover.read_throttles`). *No source found* for the burst of the 500
new connections a second (a burst of 500 here) or for whether a request refused by the account
bucket still spends a route token (it does not, here).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

# Account-level quotas per Region (quotas page above); adjustable on AWS, fixed here.
ACCOUNT_RATE = 10_000.0
ACCOUNT_BURST = 5_000.0
NEW_CONNECTIONS_PER_S = 500.0


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float  # bucket size


@dataclass(frozen=True)
class StageThrottles:
    """A stage's throttling as Terraform set it: the default of every route, and per-route overrides."""

    default: Limit | None = None
    routes: tuple[tuple[str, Limit], ...] = ()

    def limit(self, route_key: str) -> Limit | None:
        return next((limit for key, limit in self.routes if key == route_key), self.default)


class TokenBucket:
    def __init__(self, limit: Limit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.tokens = float(limit.burst)
        self.at = clock()

    def available(self) -> float:
        now = self.clock()
        self.tokens = min(float(self.limit.burst), self.tokens + (now - self.at) * self.limit.rate)
        self.at = now
        return self.tokens

    def take(self) -> None:
        self.tokens -= 1.0


@dataclass
class Throttler:
    """Every bucket of one emulated account. Thread-safe (the gateway runs on one loop, tests in threads)."""

    enabled: bool = True
    clock: Callable[[], float] = time.monotonic
    account: Limit = Limit(ACCOUNT_RATE, ACCOUNT_BURST)
    new_connections: Limit = Limit(NEW_CONNECTIONS_PER_S, NEW_CONNECTIONS_PER_S)
    stages: dict[str, StageThrottles] = field(default_factory=dict)  # api id -> its stage's throttles
    refused: dict[str, int] = field(default_factory=dict)  # "<api id> <route>" (or "account", "new_connections") -> count
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, api_id: str, throttles: StageThrottles) -> None:
        with self._lock:
            self.stages[api_id] = throttles
            for key in [k for k in self._buckets if k.startswith(api_id + " ")]:
                del self._buckets[key]

    def _bucket(self, key: str, limit: Limit) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.limit != limit:
            bucket = self._buckets[key] = TokenBucket(limit, self.clock)
        return bucket

    def allow(self, api_id: str, route_key: str, *, new_connection: bool = False) -> bool:
        """Take a token for one request (or message) on this route; False: API Gateway's 429."""
        if not self.enabled:
            return True
        with self._lock:
            buckets = [("account", self._bucket("account", self.account))]
            if new_connection:
                buckets.append(("new_connections", self._bucket("new_connections", self.new_connections)))
            limit = self.stages.get(api_id, StageThrottles()).limit(route_key)
            if limit is not None:
                key = f"{api_id} {route_key}"
                buckets.append((key, self._bucket(key, limit)))
            for name, bucket in buckets:
                if bucket.available() < 1.0:
                    self.refused[name] = self.refused.get(name, 0) + 1
                    return False
            for _, bucket in buckets:
                bucket.take()
            return True

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {"enabled": self.enabled, "refused": dict(self.refused),
                    "stages": {api: {"default": t.default and [t.default.rate, t.default.burst],
                                     "routes": {k: [v.rate, v.burst] for k, v in t.routes}}
                               for api, t in self.stages.items()}}


def stage_throttles(stage: dict[str, object]) -> StageThrottles:
    """A GetStage answer (botocore's shape) -> its throttles; a setting without both numbers is no limit."""
    def limit(settings: object) -> Limit | None:
        if not isinstance(settings, dict):
            return None
        rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
        if rate is None or burst is None:
            return None
        return Limit(float(rate), float(burst))

    routes = stage.get("RouteSettings") or {}
    assert isinstance(routes, dict)
    overrides = tuple((key, found) for key, value in sorted(routes.items()) if (found := limit(value)) is not None)
    return StageThrottles(limit(stage.get("DefaultRouteSettings")), overrides)
