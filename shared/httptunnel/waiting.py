"""waiting: from the post to the answer - the poll schedule, the learned first poll, and giving up.

Strongly consistent GetItem of the answer row keyed by (request id, the connection the request was
posted to), with the backoff of ``next_poll_delay``; every second the connection row is checked
(gone -> agent_gone). forward writes nothing on the way: the response Lambda writes the answer
once and TTL removes it. On timeout/agent gone forward writes the error row itself
(``give_up``), conditionally on the slot being empty (so a late answer is refused, and an answer
that won the race is returned instead).

A warm instance remembers ``ANSWER_TIMES``: each tunnel's recent answer times (the first poll's wait).
"""

from __future__ import annotations

import time
from typing import Callable

from . import names, store
from .replies import GONE, TIMEOUT
from .tunnels import CACHE_MAX
from .ttlmap import TTLMap

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
# What forward still does after the wait, at most: read a 10 MB body from S3, check its SHA-256,
# base64 it and return it. The wait ends early enough to leave this much of the invocation's
# own time (the defaults: 29 s timeout - 25 s wait).
ANSWER_RESERVE_S = 4.0
# A wait still open this long calls its ``on_long`` hook once (forward_stream takes its lease then:
# stream_holds); the hook's False ends the wait with ``REFUSED``. A quarter second: a quick answer
# (the bench's, most webhooks') never reaches it, and a flood that slows a tunnel's answers (its
# agent paced by its socket's message budget answers in ~0.5 s) is counted from its first slow
# request in each environment (README "Fair under flood": at 1 s it was never counted).
HOLD_AFTER_S = 0.25
REFUSED = "tunnel_rate_limited"


def wait_seconds(configured: float, remaining_ms: int | None) -> float:
    """How long forward may wait for the agent: the configured wait, shortened so at least
    ``ANSWER_RESERVE_S`` of the invocation's remaining time (Lambda's context) is left. Without it
    a function timeout under wait + reserve, or a big answer arriving at the last moment, ran the
    function past its timeout: the caller got API Gateway's 500 instead of the tunnel's 504."""
    if remaining_ms is None:
        return configured
    return max(0.0, min(configured, remaining_ms / 1000 - ANSWER_RESERVE_S))


def next_poll_delay(delay: float, waited_s: float) -> float:
    """Backoff x1.5 from 5 ms to 50 ms; past 250 ms, at most 20 % of the time already waited
    (capped at 0.5 s). A quick answer is picked up within ~50 ms; a slow one (a 10 s webhook
    handler) costs ~30 reads instead of ~200, for at most ~20 % extra latency. Under load, the
    many waiting invocations stop competing with the answers for DynamoDB."""
    ceiling = min(max(POLL_CAP_S, POLL_FRACTION * waited_s), POLL_MAX_S)
    return min(delay * 1.5, ceiling)


# A streamed answer's frames (issue 23, shared/README.md "The chunk channel"): after each frame the
# next read comes 20 ms later, the wait growing x1.5 to 100 ms while the stream is busy (its last
# frame under 5 s ago), then to 250 ms.
STREAM_POLL_FIRST_S = 0.02
STREAM_POLL_BUSY_S = 0.1
STREAM_POLL_IDLE_S = 0.25
STREAM_BUSY_S = 5.0


def next_stream_poll(delay: float, since_frame_s: float) -> float:
    """The wait before the next read of a stream's next frame, after waiting ``delay`` last time
    (0: a frame was just read), ``since_frame_s`` after the last frame arrived."""
    if delay <= 0:
        return STREAM_POLL_FIRST_S
    return min(delay * 1.5, STREAM_POLL_BUSY_S if since_frame_s < STREAM_BUSY_S else STREAM_POLL_IDLE_S)


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
                    first_poll_s: float = 0.0, on_long: Callable[[], bool] | None = None) -> store.Answer | str:
    """Poll the answer row (strongly consistent) until answered, the agent is gone, or the deadline.
    The first read waits ``first_poll_s`` (bounded by the deadline), then the backoff runs. A wait
    still open ``HOLD_AFTER_S`` after it began calls ``on_long`` once; its False ends the wait with
    ``REFUSED`` (the caller gives up on the slot as on a timeout)."""
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
        if on_long is not None and now - started >= HOLD_AFTER_S:
            hook, on_long = on_long, None
            if not hook():
                return REFUSED
        if now >= next_alive_check:
            if not store.connection_exists(connection_id):
                return store.get_answer(request_id, connection_id) or GONE
            next_alive_check = now + ALIVE_CHECK_S
        time.sleep(min(delay, max(0.0, deadline - now)))  # poll backoff, bounded by the deadline
        delay = next_poll_delay(delay, time.monotonic() - started)


def give_up(request_id: str, connection_id: str, code: str, message: str,
            context: store.RequestContext) -> store.Answer | None:
    """Write the error row in the answer slot (the record of a timed-out request); if the agent
    answered meanwhile, return that answer instead."""
    answer = store.Answer(status=names.STATUS_ERROR, error_code=code, error_message=message)
    if store.put_answer(request_id, connection_id, answer, context):
        return None
    return store.get_answer(request_id, connection_id)
