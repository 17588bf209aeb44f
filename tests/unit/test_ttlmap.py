"""httptunnel.ttlmap.TTLMap: what forward's warm instance remembers is bounded, expires and is thread-safe."""

from __future__ import annotations

import threading

import pytest

from httptunnel.ttlmap import MISSING, TTLMap


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_exactly_its_ttl():
    clock = Clock()
    memo: TTLMap[str, int] = TTLMap(10, ttl_s=5.0, clock=clock)
    memo.put("a", 1)
    memo.put("b", 2, ttl_s=1.0)  # its own ttl
    clock.now += 0.999
    assert (memo.get("a"), memo.get("b")) == (1, 2)
    clock.now += 0.001
    assert (memo.get("a"), memo.get("b")) == (1, None)
    clock.now += 4.0
    assert memo.get("a") is None and memo.get("a", "gone") == "gone"
    assert len(memo) == 0  # expired entries are removed when looked at


def test_a_zero_ttl_is_expired_at_once_and_no_ttl_never_expires():
    clock = Clock()
    memo: TTLMap[str, int] = TTLMap(10, clock=clock)
    memo.put("now", 1, ttl_s=0.0)
    memo.put("kept", 2)
    assert memo.get("now") is None
    clock.now += 1e9
    assert memo.get("kept") == 2


def test_none_is_a_value_missing_is_not():
    memo: TTLMap[str, int | None] = TTLMap(10)
    memo.put("absent", None)
    assert memo.get("absent", MISSING) is None
    assert memo.get("never-put", MISSING) is MISSING


def test_bounded_and_least_recently_used_goes_first():
    memo: TTLMap[str, int] = TTLMap(3)
    for key in "abc":
        memo.put(key, ord(key))
    assert memo.get("a") == ord("a")  # a use: "b" is now the least recent
    memo.put("d", 4)
    assert memo.get("b") is None and {k: memo.get(k) for k in "acd"} == {"a": 97, "c": 99, "d": 4}
    memo.update("c", lambda v: (v or 0) + 1)  # an update is a use too: "a" goes next
    memo.put("e", 5)
    assert memo.get("a") is None and len(memo) == 3
    for i in range(100):
        memo.put(f"k{i}", i)
    assert len(memo) == 3 and [memo.get(f"k{i}") for i in (97, 98, 99)] == [97, 98, 99]


def test_update_starts_afresh_after_expiry_and_returns_the_new_value():
    clock = Clock()
    memo: TTLMap[str, int] = TTLMap(10, ttl_s=2.0, clock=clock)
    seen: list[int | None] = []

    def bump(value: int | None) -> int:
        seen.append(value)
        return (value or 0) + 1

    assert memo.update("n", bump) == 1 and memo.update("n", bump) == 2
    clock.now += 2.0
    assert memo.update("n", bump) == 1
    assert seen == [None, 1, None]


def test_pop_only_if():
    memo: TTLMap[str, str] = TTLMap(10)
    memo.put("tunnel", "conn-A")
    assert memo.pop("tunnel", only_if=lambda v: v == "conn-B") is False and memo.get("tunnel") == "conn-A"
    assert memo.pop("tunnel", only_if=lambda v: v == "conn-A") is True and memo.get("tunnel") is None
    assert memo.pop("tunnel") is False


def test_at_least_one_entry():
    with pytest.raises(ValueError):
        TTLMap(0)


def test_threads_neither_lose_updates_nor_break_the_bound():
    counter: TTLMap[str, int] = TTLMap(1, ttl_s=60.0)
    memo: TTLMap[str, int] = TTLMap(50, ttl_s=60.0)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(2000):
                counter.update("shared", lambda v: (v or 0) + 1)
                memo.put(f"w{worker}-{i}", i)
                memo.get(f"w{worker}-{i - 1}")
                memo.pop(f"w{worker}-{i - 2}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert counter.get("shared") == 8 * 2000  # no read-modify-write lost
    assert len(memo) <= 50
