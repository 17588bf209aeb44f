"""Callers for the load and fault suite: checksummed echo bodies and status checks, every outcome kept;
caller WebSockets whose every echo is checked, in order, byte for byte (issue 24 item 7)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from scripts.bench.load import Target
from scripts.bench.sockets import WARM_WITHIN_S, warm_socket

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


async def paced_gets(target: Target, callers_n: int, per_s: float, tally: Tally, stop: asyncio.Event) -> None:
    """Steady ``GET /status/200`` at ``per_s`` requests per second in all (``callers_n`` callers, each
    starting on its own schedule, so a slow answer delays only its caller) until ``stop``; every
    outcome in ``tally`` ("ok" only for a 200 with the service's exact body)."""
    if callers_n < 1 or per_s <= 0:
        raise ValueError("paced_gets needs callers_n >= 1 and per_s > 0")
    interval = callers_n / per_s
    expected = b"status 200"
    timeout = aiohttp.ClientTimeout(total=REQUEST_DEADLINE_S)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=callers_n + 2), timeout=timeout,
                                     auto_decompress=False) as s:

        async def caller(n: int) -> None:
            next_at = time.monotonic() + n * interval / callers_n
            while True:
                try:  # wait for the next slot, or for the end of the phase
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
                    return
                except asyncio.TimeoutError:
                    pass
                next_at += interval
                started = time.monotonic()
                try:
                    async with s.get(target.url("/status/200"), headers=target.headers,
                                     allow_redirects=False) as resp:
                        status, got = resp.status, await resp.read()
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    tally.outcomes.append(Outcome("lost", target.name, "GET /status/200", None, started,
                                                  time.monotonic() - started, f"{type(exc).__name__}: {exc}"[:200]))
                    continue
                seconds = time.monotonic() - started
                if status != 200:
                    kind = "wrong_status"
                elif got != expected:
                    kind = "corrupted"
                else:
                    kind = "ok"
                tally.outcomes.append(Outcome(kind, target.name, "GET /status/200", status, started, seconds,
                                              "" if kind == "ok" else got[:120].decode(errors="replace")))

        await asyncio.gather(*(caller(n) for n in range(callers_n)))


# Non-ASCII text in every other message: 2-, 3- and 4-byte UTF-8 sequences, combining marks.
UTF8_TAILS = ("café crème", "naïve ✓ — “quotes”", "日本語のテキスト", "emoji 🚀🎉👩‍💻", "Ωμέγα ∑∞", "e\u0301 combining")


def socket_messages(socket: int, n: int) -> list[str]:
    """The ``n`` distinct messages caller socket ``socket`` sends, numbered (so a misordering or a
    message from another socket shows in the comparison)."""
    return [f"socket {socket:02d} message {j:03d}" + (f" {UTF8_TAILS[(socket + j) % len(UTF8_TAILS)]}" if j % 2 else "")
            for j in range(n)]


@dataclass(frozen=True)
class SocketPlan:
    """How many caller sockets, how many messages each, and how fast: each socket sends its messages
    in bursts of ``burst`` (back to back, without waiting for echoes) every ``period_s``, the sockets'
    bursts spread evenly over the period, so all sockets together send ``messages_per_s``."""

    sockets: int
    messages: int
    burst: int
    messages_per_s: float
    opens_per_s: float
    echo_timeout_s: float = 30.0
    linger_s: float = 1.0  # after the last echo, a further message within this is a duplicate

    def __post_init__(self) -> None:
        if self.sockets < 1 or self.messages < 1 or not 1 <= self.burst <= self.messages:
            raise ValueError(f"bad socket plan {self}")
        if self.messages_per_s <= 0 or self.opens_per_s <= 0:
            raise ValueError(f"bad socket plan {self}")

    @property
    def period_s(self) -> float:
        return self.sockets * self.burst / self.messages_per_s


@dataclass
class SocketRun:
    """One caller socket: what it sent and what came back, with the times (monotonic)."""

    index: int
    sent: list[str]
    sent_at: list[float] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    error: str = ""

    def in_order(self) -> bool:
        return not self.error and self.received == self.sent

    def round_trips_ms(self) -> list[float]:
        """Send to echo, for the echoes that are the message sent at that position."""
        return [(got_at - sent_at) * 1000 for sent, got, sent_at, got_at  # the echoes received so far
                in zip(self.sent, self.received, self.sent_at, self.received_at, strict=False) if sent == got]

    def describe(self) -> str:
        if self.error:
            return f"socket {self.index}: {self.error} ({len(self.received)} of {len(self.sent)} echoes)"
        for k, (sent, got) in enumerate(zip(self.sent, self.received, strict=False)):
            if sent != got:
                return f"socket {self.index}: echo {k} is {got!r}, sent {sent!r}"
        return f"socket {self.index}: {len(self.received)} echoes for {len(self.sent)} sent"


async def _exchange(ws: aiohttp.ClientWebSocketResponse, run: SocketRun, plan: SocketPlan, start: float) -> None:
    first_at = start + run.index * plan.period_s / plan.sockets
    bursts = range(0, len(run.sent), plan.burst)
    deadline = first_at + (len(bursts) - 1) * plan.period_s + plan.echo_timeout_s

    async def send() -> None:
        for b, first in enumerate(bursts):
            await asyncio.sleep(max(0.0, first_at + b * plan.period_s - time.monotonic()))  # its slot
            for text in run.sent[first:first + plan.burst]:
                run.sent_at.append(time.monotonic())
                await ws.send_str(text)

    async def receive() -> None:
        while len(run.received) < len(run.sent):
            try:
                msg = await ws.receive(timeout=max(0.05, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                run.error = f"no echo {len(run.received)} within {plan.echo_timeout_s:g} s of the last burst"
                return
            if msg.type != aiohttp.WSMsgType.TEXT:
                run.error = f"{msg.type.name} ({msg.data!r}, {msg.extra!r}) instead of echo {len(run.received)}"
                return
            run.received.append(msg.data)
            run.received_at.append(time.monotonic())
        try:
            msg = await ws.receive(timeout=plan.linger_s)
        except asyncio.TimeoutError:
            return
        run.error = f"{msg.type.name} {str(msg.data)[:80]!r} after all {len(run.sent)} echoes"

    sender = asyncio.create_task(send())
    try:
        await receive()
    finally:
        if not sender.done():
            sender.cancel()
        try:
            await sender
        except asyncio.CancelledError:
            pass
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            run.error = run.error or f"send failed: {type(exc).__name__}: {exc}"[:200]


async def caller_sockets(url: str, host: str, plan: SocketPlan) -> list[SocketRun]:
    """``plan.sockets`` caller sockets on ``url`` (``Host: host`` names the tunnel), opened at
    ``plan.opens_per_s`` once one socket has echoed a message (the stack's caller_message is warm),
    then each exchanging its messages per ``plan``; every socket closed before returning."""
    runs = [SocketRun(i, socket_messages(i, plan.messages)) for i in range(plan.sockets)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        warm = await warm_socket(session, url, host, WARM_WITHIN_S)
        await warm.close()
        opened_at = time.monotonic()

        async def open_one(run: SocketRun) -> aiohttp.ClientWebSocketResponse | None:
            await asyncio.sleep(max(0.0, opened_at + run.index / plan.opens_per_s - time.monotonic()))  # its slot
            try:
                return await session.ws_connect(url, headers={"Host": host},
                                                timeout=aiohttp.ClientWSTimeout(ws_close=10))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                run.error = f"not opened: {type(exc).__name__}: {exc}"[:200]
                return None

        sockets = await asyncio.gather(*(open_one(run) for run in runs))
        try:
            start = time.monotonic()
            await asyncio.gather(*(_exchange(ws, run, plan, start) for ws, run in zip(sockets, runs, strict=True) if ws))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets if ws), return_exceptions=True)
    return runs
