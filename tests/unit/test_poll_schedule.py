"""forward's poll schedule: quick answers picked up fast, slow ones polled sparsely."""

from __future__ import annotations

import pytest

from httptunnel import replies, waiting


def schedule(total_s: float) -> list[float]:
    """Poll times (s since the post) over a wait of total_s, as wait_for_answer sleeps them."""
    t, delay, polls = 0.0, waiting.POLL_START_S, [0.0]
    while True:
        t += delay
        if t > total_s:
            return polls
        polls.append(t)
        delay = waiting.next_poll_delay(delay, t)


def test_first_polls_back_off_from_5_ms_to_the_50_ms_cap():
    times = schedule(0.3)
    gaps = [round(b - a, 4) for a, b in zip(times, times[1:], strict=False)]
    assert gaps[:4] == [0.005, 0.0075, 0.0112, 0.0169]
    assert max(gaps) == pytest.approx(waiting.POLL_CAP_S)


def test_a_slow_answer_waits_at_most_about_twenty_percent_longer():
    times = schedule(25.0)
    for a, b in zip(times, times[1:], strict=False):
        assert b - a <= max(waiting.POLL_CAP_S, 0.2 * a) + 1e-9
        assert b - a <= waiting.POLL_MAX_S + 1e-9


@pytest.mark.parametrize("wait_s, max_polls", [(1.0, 20), (10.0, 40), (25.0, 70)])
def test_long_waits_cost_few_reads(wait_s, max_polls):
    # with a flat 50 ms cap a 10 s wait would cost ~200 reads and a 25 s one ~500
    assert len(schedule(wait_s)) <= max_polls


def test_first_poll_waits_for_a_fraction_of_the_tunnels_recent_answer_times():
    waiting.ANSWER_TIMES.clear()
    assert waiting.first_poll_delay("t") == 0.0  # nothing learned: poll at once
    for seconds in (0.020, 0.030, 0.040):
        waiting.record_answer_time("t", seconds)
    assert waiting.first_poll_delay("t") == pytest.approx(waiting.FIRST_POLL_FRACTION * 0.030)
    assert waiting.first_poll_delay("other") == 0.0  # per tunnel
    for _ in range(waiting.ANSWER_TIMES_KEPT):
        waiting.record_answer_time("slow", 9.0)  # a slow service never delays the first read past the cap
    assert waiting.first_poll_delay("slow") == waiting.FIRST_POLL_MAX_S
    assert len(waiting.ANSWER_TIMES.get("slow", ())) == waiting.ANSWER_TIMES_KEPT  # only the latest are kept
    waiting.ANSWER_TIMES.clear()


def test_first_poll_never_outlasts_the_deadline(monkeypatch):
    import time
    reads = []
    monkeypatch.setattr(waiting.store, "get_answer", lambda rid, cid: reads.append(time.monotonic()))
    monkeypatch.setattr(waiting.store, "connection_exists", lambda cid: True)
    started = time.monotonic()
    assert waiting.wait_for_answer("r", "c", started + 0.02, first_poll_s=5.0) == replies.TIMEOUT
    assert time.monotonic() - started < 0.5 and reads
