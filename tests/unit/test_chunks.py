"""chunks.Sender / chunks.Receiver: ordered, acknowledged delivery over a channel that permutes,
duplicates and drops (the agents' $default route under throttling, concurrent invocations)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from httptunnel.chunks import RTO_CEILING_S, RTO_MAX_S, RTO_S, Receiver, RetransmitTimer, Sender


def test_the_resend_timer_doubles_up_to_its_cap_and_stops_at_the_deadline() -> None:
    sender: Sender[str] = Sender(window=1, rto=1.0, rto_max=4.0)
    seq = sender.offer("answer", deadline=20.0)
    assert [(s.seq, s.attempt) for s in sender.due(0.0)] == [(seq, 0)]
    assert sender.due(0.99) == []
    assert sender.next_wakeup() == 1.0
    sent_at = [t for t in (1.0, 2.9, 3.0, 6.9, 7.0, 11.0, 15.0, 19.0) if sender.due(t)]
    assert sent_at == [1.0, 3.0, 7.0, 11.0, 15.0, 19.0]  # 1, 2, 4, 4, 4 ... (cap)
    assert sender.due(20.0) == [] and sender.expired == [seq] and sender.done


def test_the_retransmit_timer_learns_the_round_trip() -> None:
    timer = RetransmitTimer()
    assert timer.rto == RTO_S  # nothing measured yet: RFC 6298's 1 s
    timer.sample(2.0)
    assert timer.rto == pytest.approx(2.0 + 4 * 1.0)  # first sample: SRTT = R, RTTVAR = R/2
    for _ in range(40):
        timer.sample(0.2)  # the edge got fast again: the delay comes back down to the floor
    assert timer.rto == RTO_S
    for _ in range(40):
        timer.sample(3.0)  # a saturated edge whose acks take 3 s: no resend before they can come
    assert 3.0 < timer.rto < 4.0


def test_the_retransmit_timer_backs_off_to_4_s_unless_round_trips_were_longer() -> None:
    timer = RetransmitTimer()
    delays = []
    for _ in range(4):
        timer.backoff()  # lost copies on a fast edge (throttled frames): at most the old 4 s
        delays.append(timer.rto)
    assert delays == [2.0, RTO_MAX_S, RTO_MAX_S, RTO_MAX_S]
    timer.sample(0.1)
    assert timer.rto == RTO_S
    slow = RetransmitTimer()
    slow.sample(3.0)  # a slow edge (3 + 4 x 1.5, at the ceiling): measured, so it stays there
    slow.backoff()
    assert slow.rto == RTO_CEILING_S


def test_a_slower_timer_postpones_resends_already_scheduled() -> None:
    timer = RetransmitTimer()
    sender: Sender[str] = Sender(window=4, timer=timer)
    sender.offer("a", deadline=25.0)
    sender.offer("b", deadline=25.0)
    assert [s.seq for s in sender.due(0.0)] == [0, 1]
    timer.sample(3.0)  # another answer's ack took 3 s: 3 + 4 x 1.5 -> the 8 s ceiling
    assert sender.due(1.0) == [] and sender.next_wakeup() == RTO_CEILING_S
    assert [(s.seq, s.attempt) for s in sender.due(RTO_CEILING_S)] == [(0, 1), (1, 1)]
    for _ in range(40):
        timer.sample(0.1)  # fast again: the doubling schedule (2 s after the second copy) is back
    assert sender.next_wakeup() == RTO_CEILING_S + 2.0


def test_with_confirmed_writes_a_copy_times_out_only_from_when_it_was_written() -> None:
    """A paced socket holds a copy back 1.25 s: its 1 s timer must not run out before it is on the wire."""
    s: Sender[str] = Sender(window=2, rto=1.0, rto_max=4.0, confirm_writes=True)
    s.offer("a", deadline=100.0)
    assert [d.seq for d in s.due(0.0)] == [0]
    assert s.due(1.2) == [] and s.next_wakeup() == 100.0  # still waiting for its token: no timer yet
    s.written(0, 1.25)
    assert s.due(2.2) == [] and s.next_wakeup() == pytest.approx(2.25)
    assert [(d.seq, d.attempt) for d in s.due(2.25)] == [(0, 1)]
    unconfirmed: Sender[str] = Sender(window=2, rto=1.0, rto_max=4.0)
    unconfirmed.offer("a", deadline=100.0)
    unconfirmed.due(0.0)
    assert [(d.seq, d.attempt) for d in unconfirmed.due(1.0)] == [(0, 1)]  # the control: timed from due()


def test_an_ack_stops_the_resends() -> None:
    sender: Sender[str] = Sender(window=1)
    sender.offer("answer", deadline=25.0)
    sender.due(0.0)
    assert sender.ack(0) == 1
    assert sender.done and sender.due(10.0) == [] and sender.next_wakeup() is None
    assert sender.ack(0) == 0  # a duplicate ack settles nothing


def test_the_window_holds_messages_back_until_acks_arrive() -> None:
    sender: Sender[int] = Sender(window=2)
    for i in range(5):
        sender.offer(i, deadline=100.0)
    assert [s.payload for s in sender.due(0.0)] == [0, 1]
    assert sender.ack(0) == 1
    assert [s.payload for s in sender.due(0.1)] == [2]
    sender.ack(4)  # cumulative
    assert [s.payload for s in sender.due(0.2)] == [3, 4]


def test_the_receiver_reorders_and_drops_duplicates() -> None:
    receiver: Receiver[str] = Receiver()
    assert receiver.accept(2, "c", fin=True)
    assert receiver.ready() == [] and receiver.cumulative_ack == -1
    assert receiver.accept(0, "a") and not receiver.accept(0, "a")
    assert receiver.ready() == ["a"] and receiver.cumulative_ack == 0
    assert receiver.accept(1, "b")
    assert receiver.ready() == ["b", "c"] and receiver.complete
    assert not receiver.accept(1, "b") and not receiver.accept(3, "past the end")


def test_window_one_is_strict_order() -> None:
    receiver: Receiver[str] = Receiver(window=1)
    assert not receiver.accept(1, "second first")
    assert receiver.accept(0, "first") and receiver.ready() == ["first"]
    assert receiver.accept(1, "second")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Sender(window=0)
    with pytest.raises(ValueError):
        Sender(rto=2.0, rto_max=1.0)


@settings(max_examples=200, deadline=None)
@given(count=st.integers(1, 12), window=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       drop=st.floats(0.0, 0.6), dup=st.floats(0.0, 0.5), ack_drop=st.floats(0.0, 0.6),
       recv_window=st.one_of(st.none(), st.integers(1, 6)))
def test_everything_arrives_once_and_in_order_over_a_lossy_channel(
        count: int, window: int, seed: int, drop: float, dup: float, ack_drop: float, recv_window: int | None) -> None:
    rng = random.Random(seed)
    sender: Sender[int] = Sender(window=window, rto=1.0, rto_max=4.0)
    receiver: Receiver[int] = Receiver(window=recv_window)
    for i in range(count):
        sender.offer(i * 10, deadline=float("inf"))
    delivered: list[int] = []
    wire: list[tuple[int, int, bool]] = []
    now = 0.0
    for _ in range(2000):
        for send in sender.due(now):
            copies = 0 if rng.random() < drop else (2 if rng.random() < dup else 1)
            wire.extend([(send.seq, send.payload, send.seq == count - 1)] * copies)
        rng.shuffle(wire)  # concurrent invocations: any order
        arrived, wire = wire[: rng.randint(0, len(wire))], []
        for seq, payload, fin in arrived:
            receiver.accept(seq, payload, fin)
            delivered.extend(receiver.ready())
            if rng.random() >= ack_drop:
                sender.ack(receiver.cumulative_ack)
        if sender.done:
            break
        wake = sender.next_wakeup()
        now = max(now + 0.01, wake if wake is not None else now)
    assert sender.done and not sender.expired
    assert delivered == [i * 10 for i in range(count)] and receiver.complete
