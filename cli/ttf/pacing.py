"""Pacing: one socket's frames stay inside the message budget the server advertises.

The response Lambda closes an agent socket that sends more than its budget (``fairness.socket_flooding``:
AGENT_MESSAGE_RATE_LIMIT a second, AGENT_MESSAGE_BURST_LIMIT at once), and says what that budget is
in ``connection_established.limits`` (``{"messages_per_s": r, "messages_burst": b}``). A busy tunnel
or a fast stream (a chunk every COALESCE_S, up to --max-streams at once) can go past it, so every
frame the session sends takes a token first (``Pacer.take``); a stream waits for one before it cuts
its next piece (``Pacer.ready``), so its bytes keep coalescing into fewer, bigger chunks meanwhile.

The pacer runs at MARGIN of the advertised rate and burst, because the server counts arrivals, not
sends: frames that a network or gateway stall held back reach it together. With 80 % the server's
bucket keeps 0.2 x burst spare, which absorbs a stall of 0.25 x burst / rate (0.5 s at the defaults
30/s, 60) before the arrivals overrun it; it also covers the ``ready`` sent before the limits were
known. A server that advertises nothing (older ones, or the budget off) gets no pacing.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Awaitable, Callable

MARGIN = 0.8  # of the advertised rate and burst (see above)
EPSILON = 1e-9  # a token short by less than this is whole (float rounding of the refill)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


class Pacer:
    """An asyncio token bucket: ``rate`` tokens a second, at most ``burst`` held (it starts full).

    Waiters are served in order (one lock); each waits once for the moment its token is due (a
    deadline computed from the bucket), not in a polling loop."""

    def __init__(self, rate: float, burst: float, clock: Clock | None = None, sleep: Sleep | None = None) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"a pacer needs a rate > 0, got {rate!r}")
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"a pacer needs a burst >= 1, got {burst!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        self._tokens = burst
        self._at = self._clock()
        self._turn = asyncio.Lock()  # FIFO: the first to wait gets the next token
        self.waited = 0  # takes and readies that had to wait for a token

    def tokens(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    async def _until_token(self) -> None:
        """Wait (holding the turn) until a whole token is there."""
        waited = False
        while (short := 1.0 - self.tokens()) > EPSILON:
            waited = True
            await self._sleep(short / self.rate)  # to the moment the bucket holds one token (then checked again)
        self.waited += waited

    async def take(self) -> None:
        """Wait for a token and spend it (the caller then sends one frame)."""
        async with self._turn:
            await self._until_token()
            self._tokens -= 1.0

    async def ready(self) -> None:
        """Wait until a frame sent now would not wait: nobody queued before us and a token free.
        Spends nothing (the frame's own send takes the token). Yields first, so that a sender just
        woken takes its token before we look."""
        await asyncio.sleep(0)
        async with self._turn:
            await self._until_token()


def advertised(limits: dict[str, Any] | None) -> Pacer | None:
    """The pacer for a socket whose server advertised ``limits`` (None: no budget, no pacing).
    protocol.decode checked the shape (``messages_per_s`` > 0, ``messages_burst`` >= 1)."""
    if not limits:
        return None
    rate = float(limits["messages_per_s"])
    burst = float(limits.get("messages_burst") or max(1.0, rate))
    return Pacer(rate * MARGIN, max(1.0, burst * MARGIN))

