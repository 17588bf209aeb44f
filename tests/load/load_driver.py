"""Callers for the load and fault suite: checksummed echo bodies and status checks, every outcome kept."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from scripts.bench.load import Target

# HTTP integration timeout (30 s) + a margin for the emulator and this client on 2 shared cores.
REQUEST_DEADLINE_S = 35.0
BODY_SIZES = (0, 512, 1024, 4096, 16_384, 40_000, 100_000)  # 40 KB: agent->S3; 100 KB: caller->S3
BODY_WEIGHTS = (10, 25, 25, 20, 12, 5, 3)
STATUS_CODES = (200, 201, 204, 301, 404, 418, 500, 503)
# After a gateway error a caller waits this long before its next call, as a client retrying would:
# while an agent is down its 404s take a millisecond, and 20 callers calling again at once made
# ~1,000 req/s, past the suite's own stage throttle (429s, CI run of 2026-12-07), a flood of the
# test's own making rather than the fault under test. 20 callers then make at most 400 req/s.
ERROR_PAUSE_S = 0.05


@dataclass(frozen=True)
class Outcome:
    kind: str  # ok | error_status | wrong_status | corrupted | lost
    tunnel: str
    what: str  # "echo 4096" / "status 404"
    status: int | None
    started: float  # monotonic
    seconds: float
    detail: str = ""


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self) -> Counter:
        return Counter(o.kind for o in self.outcomes)

    def bad(self, kinds=("wrong_status", "corrupted", "lost")) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind in kinds]

    def slowest(self) -> float:
        return max((o.seconds for o in self.outcomes), default=0.0)

    def statuses(self) -> Counter:
        return Counter(o.status for o in self.outcomes)


async def one_call(s: aiohttp.ClientSession, target: Target, rng: random.Random, allowed_errors: frozenset[int],
                   tally: Tally) -> str:
    """One call, its outcome appended to ``tally``; returns the outcome's kind."""
    started = time.monotonic()
    if rng.random() < 0.8:
        size = rng.choices(BODY_SIZES, BODY_WEIGHTS)[0]
        body = rng.randbytes(size)
        what, expected_status, method, path = f"echo {size}", 200, "POST", "/echo"
        expected_body: bytes | None = body
    else:
        code = rng.choice(STATUS_CODES)
        body = b""
        what, expected_status, method, path = f"status {code}", code, "GET", f"/status/{code}"
        expected_body = b"" if code in (204, 304) else f"status {code}".encode()
    status: int | None = None
    try:
        async with s.request(method, target.url(path), data=body if method == "POST" else None,
                             headers={**target.headers, "Content-Type": "application/octet-stream"},
                             allow_redirects=False) as resp:
            status = resp.status
            got = await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        tally.outcomes.append(Outcome("lost", target.name, what, None, started, time.monotonic() - started,
                                      f"{type(exc).__name__}: {exc}"[:200]))
        return "lost"
    seconds = time.monotonic() - started
    if status == expected_status:
        if expected_body is not None and hashlib.sha256(got).digest() != hashlib.sha256(expected_body).digest():
            if status in allowed_errors and method == "GET":
                # the gateway's own error with the same code the service would have sent (404, 503)
                kind, detail = "error_status", got[:120].decode(errors="replace")
            else:
                kind, detail = "corrupted", (f"{len(got)} bytes back for {len(expected_body)}: "
                                             f"{got[:120].decode(errors='replace')}")
        else:
            kind, detail = "ok", ""
    elif status in allowed_errors:
        kind, detail = "error_status", got[:120].decode(errors="replace")
    else:
        kind, detail = "wrong_status", f"expected {expected_status}: {got[:120].decode(errors='replace')}"
    tally.outcomes.append(Outcome(kind, target.name, what, status, started, seconds, detail))
    return kind


async def callers(targets: list[Target], per_target: int, duration_s: float, tally: Tally,
                  allowed_errors: frozenset[int] = frozenset(), seed: int = 1,
                  stop: asyncio.Event | None = None) -> None:
    """per_target concurrent callers on each target, each calling in a loop until duration_s (or stop)."""
    end = time.monotonic() + duration_s
    connector = aiohttp.TCPConnector(limit=len(targets) * per_target + 8)
    timeout = aiohttp.ClientTimeout(total=REQUEST_DEADLINE_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as s:

        async def caller(target: Target, n: int) -> None:
            rng = random.Random(seed * 100_003 + n)
            while time.monotonic() < end and not (stop and stop.is_set()):
                if await one_call(s, target, rng, allowed_errors, tally) == "error_status":
                    await asyncio.sleep(ERROR_PAUSE_S)  # a client's pause before it calls again

        await asyncio.gather(*(caller(t, i * 1000 + j) for i, t in enumerate(targets) for j in range(per_target)))
