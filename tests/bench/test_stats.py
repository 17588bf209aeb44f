"""Unit tests of the benchmark statistics (scripts/bench/stats.py)."""

import statistics

import pytest
from hypothesis import given, strategies as st

from scripts.bench import stats as s


def test_percentile_matches_hand_computed_values():
    data = [10.0, 20.0, 30.0, 40.0]
    assert s.percentile(data, 0) == 10.0
    assert s.percentile(data, 100) == 40.0
    assert s.percentile(data, 50) == 25.0  # halfway between 20 and 30
    assert s.percentile(data, 90) == pytest.approx(37.0)  # pos 2.7 -> 30 + 0.7 * 10


def test_percentile_unsorted_and_single():
    assert s.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert s.percentile([7.5], 99) == 7.5


def test_percentile_rejects_bad_input():
    with pytest.raises(ValueError):
        s.percentile([], 50)
    with pytest.raises(ValueError):
        s.percentile([1.0], 101)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=2, max_size=200))
def test_percentile_agrees_with_statistics_quantiles(values):
    # statistics.quantiles(method="inclusive") uses the same linear interpolation
    q = statistics.quantiles(values, n=100, method="inclusive")
    assert s.percentile(values, 50) == pytest.approx(q[49], rel=1e-9, abs=1e-9)
    assert s.percentile(values, 90) == pytest.approx(q[89], rel=1e-9, abs=1e-9)
    assert min(values) <= s.percentile(values, 99) <= max(values)


def test_summarize_and_added():
    base = s.summarize([1.0] * 100)
    over = s.summarize([float(i) for i in range(1, 101)])
    assert base["p50"] == 1.0 and base["n"] == 100
    assert over["p50"] == 50.5 and over["max"] == 100.0
    assert s.added(over, base) == {"p50": 49.5, "p90": over["p90"] - 1.0, "p99": over["p99"] - 1.0}
    assert s.summarize([]) == {"n": 0}


def test_per_request_divides_nested_deltas():
    before = {"http_requests": 10, "dynamodb_calls": {"GetItem": 4}, "ws_messages": {"api_to_agent": 1}}
    after = {"http_requests": 30, "dynamodb_calls": {"GetItem": 14, "PutItem": 20},
             "ws_messages": {"api_to_agent": 21}}
    got = s.per_request(before, after, 20)
    assert got == {"http_requests": 1.0, "dynamodb_calls": {"GetItem": 0.5, "PutItem": 1.0},
                   "ws_messages": {"api_to_agent": 1.0}}
    with pytest.raises(ValueError):
        s.per_request(before, after, 0)


def test_throughput_and_rate():
    assert s.throughput(300, 2.0) == 150.0
    assert s.throughput(5, 0) == 0.0
    assert s.mb_per_s(5 * 1024 * 1024, 0.25) == 20.0
