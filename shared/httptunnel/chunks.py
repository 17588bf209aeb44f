"""Acknowledged, ordered delivery as two pure state machines (channel v2, shared/README.md).

No I/O and no clock: the drivers (the agent's session, the Lambdas) pass ``now`` in and do the
sending. Standard library only.

* :class:`Sender` numbers messages 0, 1, 2 ..., keeps at most ``window`` of them unacknowledged,
  says what to (re)send when (after ``rto``, doubling up to ``rto_max``) and gives up on a message
  whose deadline has passed.
* :class:`Receiver` takes messages in any order, drops duplicates, hands them out in order and
  says the cumulative acknowledgement (every number <= it has arrived).
* :class:`RetransmitTimer` learns the first resend's delay from the acks that come back
  (RFC 6298), so a busy edge whose acks take seconds is not flooded with resends.

An answer today is one message (seq 0) per request; a streamed answer is many; a caller socket
is the same machine with ``window=1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

RTO_S = 1.0  # first resend after this long without an ack (RFC 6298's initial and least RTO)
RTO_MAX_S = 4.0
RTO_CEILING_S = 8.0  # the learnt first delay never exceeds this: 3 tries still fit the caller's 25 s


@dataclass
class _Out(Generic[T]):
    seq: int
    payload: T
    deadline: float  # give up after this (the caller's time is over)
    last_sent: float | None = None  # None: never sent (due at once)
    attempts: int = 0


@dataclass
class RetransmitTimer:
    """The first resend's delay, learnt from round trips (RFC 6298, section 2; Karn's rule in 3).

    Measured without it, on the load suite's saturated 2-core stack (10 tunnels x 50 callers):
    acks took seconds, every answer was resent about three times after 1 s, 2 s, 4 s (2,840
    resends for 884 answers), each resend one more response invocation, and throughput fell to a
    third (26 req/s, 38 answers past the 30 s deadline; 83 req/s before acks). With it, and with
    ``Sender(timer=...)`` reading it for every pending resend: 755 resends for 3,255 answers,
    48 req/s, none past the deadline (``pytest -m load tests/load -k sustained``, 2026-12-07).

    Here the delay follows the measured round trip: ``sample`` takes the time from an answer's
    first copy to its ack (only for answers sent once: a resent answer's ack cannot say which copy
    it answers), and ``backoff`` doubles the delay when a timer runs out before any ack (until the
    next sample). Between ``floor`` and ``ceiling``."""
    floor: float = RTO_S
    ceiling: float = RTO_CEILING_S
    srtt: float | None = None
    rttvar: float = 0.0
    rto: float = RTO_S

    def sample(self, rtt: float) -> None:
        rtt = max(0.0, rtt)
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = self._bounded(self.srtt + 4 * self.rttvar)

    def backoff(self) -> None:
        """A timer ran out: double the delay, but past RTO_MAX_S only as far as the measured round
        trip goes. A lost message (a throttled frame: the edge is fast, the copy is gone) is not a
        slow edge, and resends every 8 s would let its caller's 25 s run out (3 tries)."""
        measured = self.srtt + 4 * self.rttvar if self.srtt is not None else self.floor
        self.rto = self._bounded(min(self.rto * 2, max(RTO_MAX_S, measured)))

    def _bounded(self, rto: float) -> float:
        return min(self.ceiling, max(self.floor, rto))


@dataclass(frozen=True)
class Send(Generic[T]):
    """One message to put on the wire now: its number, what it carries, and which attempt (0 = first)."""
    seq: int
    payload: T
    attempt: int


@dataclass
class Sender(Generic[T]):
    """A message is resent ``rto`` after its first copy, then after 2x, 4x ... at most ``rto_max``.
    With a ``timer``, no resend comes sooner than its current delay, read when each resend falls
    due: a connection whose acks turn slow postpones every pending resend, not only the next
    message's (TCP has one timer per connection, RFC 6298 5.5), and the timer's own backoff stands
    in for the doubling instead of compounding with it."""
    window: int = 8
    rto: float = RTO_S
    rto_max: float = RTO_MAX_S
    timer: RetransmitTimer | None = None
    # True: the caller reports when each copy reaches the wire (``written``), and a copy's timer does
    # not run before that (a paced socket may hold a copy back for longer than the resend delay)
    confirm_writes: bool = False
    next_seq: int = 0
    _waiting: list[_Out[T]] = field(default_factory=list)  # numbered, beyond the window
    _inflight: dict[int, _Out[T]] = field(default_factory=dict)  # sent, not yet acknowledged
    expired: list[int] = field(default_factory=list)  # numbers given up on (deadline passed)

    def __post_init__(self) -> None:
        if self.window < 1 or self.rto <= 0 or self.rto_max < self.rto:
            raise ValueError("window >= 1 and 0 < rto <= rto_max")

    def offer(self, payload: T, deadline: float) -> int:
        """Queue a message; returns its number. It is sent by the next ``due()`` the window allows."""
        seq = self.next_seq
        self.next_seq += 1
        self._waiting.append(_Out(seq, payload, deadline))
        return seq

    def ack(self, seq: int) -> int:
        """Cumulative: every message numbered <= seq arrived. Returns how many that newly settles."""
        settled = [s for s in self._inflight if s <= seq]
        for s in settled:
            del self._inflight[s]
        return len(settled)

    def due(self, now: float) -> list[Send[T]]:
        """What to send at ``now``: messages the window now admits, and resends whose timer ran out.
        Messages past their deadline are dropped (listed in ``expired``)."""
        for s, out in list(self._inflight.items()):
            if now >= out.deadline:
                del self._inflight[s]
                self.expired.append(s)
        while self._waiting and len(self._inflight) < self.window:
            out = self._waiting.pop(0)
            if now >= out.deadline:
                self.expired.append(out.seq)
                continue
            self._inflight[out.seq] = out
        sends: list[Send[T]] = []
        for out in sorted(self._inflight.values(), key=lambda o: o.seq):
            if now >= self._next_at(out):
                sends.append(Send(out.seq, out.payload, out.attempts))
                out.attempts += 1
                out.last_sent = math.inf if self.confirm_writes else now
        return sends

    def written(self, seq: int, at: float) -> None:
        """The copy ``due()`` handed out for ``seq`` reached the wire at ``at`` (a paced socket may hold
        it back a while): its resend timer runs from then, not from when it was handed out."""
        out = self._inflight.get(seq)
        if out is not None and out.last_sent is not None:
            out.last_sent = at

    def _next_at(self, out: _Out[T]) -> float:
        """When ``out`` is (re)sent: at once if never sent, else its last copy + rto x 2^(copies-1)
        (at most rto_max), or the timer's delay if that is longer."""
        if out.last_sent is None:
            return 0.0
        doubled = min(self.rto * (1 << min(out.attempts - 1, 16)), self.rto_max)
        return out.last_sent + max(doubled, self.timer.rto if self.timer is not None else 0.0)

    def next_wakeup(self) -> float | None:
        """The earliest ``now`` at which ``due()`` has something to do (None: nothing outstanding)."""
        times = [min(self._next_at(o), o.deadline) for o in self._inflight.values()]
        if self._waiting and len(self._inflight) < self.window:
            times.append(0.0)
        return min(times) if times else None

    @property
    def done(self) -> bool:
        """Nothing waiting and nothing unacknowledged."""
        return not self._waiting and not self._inflight

    @property
    def unacked(self) -> int:
        return len(self._inflight)


@dataclass
class Receiver(Generic[T]):
    """Put messages back in order. ``window`` bounds how far ahead of the next expected number a
    message may be (beyond: refused, the sender resends it later); None = unbounded."""
    window: int | None = None
    next_seq: int = 0  # the first number not yet handed out
    _held: dict[int, T] = field(default_factory=dict)
    fin_seq: int | None = None

    def accept(self, seq: int, payload: T, fin: bool = False) -> bool:
        """True when the message is new and kept; False for a duplicate or one beyond the window."""
        if seq < self.next_seq or seq in self._held or seq < 0:
            return False
        if self.window is not None and seq >= self.next_seq + self.window:
            return False
        if self.fin_seq is not None and seq > self.fin_seq:
            return False
        self._held[seq] = payload
        if fin:
            self.fin_seq = seq
        return True

    def ready(self) -> list[T]:
        """The messages that can be handed out now, in order (each exactly once)."""
        out: list[T] = []
        while self.next_seq in self._held:
            out.append(self._held.pop(self.next_seq))
            self.next_seq += 1
        return out

    @property
    def cumulative_ack(self) -> int:
        """Every number <= this has arrived and been handed out (-1: none yet)."""
        return self.next_seq - 1

    @property
    def complete(self) -> bool:
        """The last message (``fin``) and everything before it have been handed out."""
        return self.fin_seq is not None and self.next_seq > self.fin_seq
