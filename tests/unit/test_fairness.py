"""Per-tunnel limits and the per-socket message budget (httptunnel.fairness, issue 29)."""

from __future__ import annotations

import json

import pytest

from httptunnel import fairness, gate, policy


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_tenant_can_only_lower_the_operators_ceilings():
    operator = fairness.Limits(rate=10, burst=20, in_flight=4)
    assert fairness.effective(operator, fairness.Limits(rate=50, burst=100, in_flight=40)) == operator
    assert fairness.effective(operator, fairness.Limits(rate=2, burst=0, in_flight=1)) == fairness.Limits(2, 20, 1)
    assert fairness.effective(fairness.OFF, fairness.Limits(3, 0, 0)) == fairness.Limits(3, 0, 0)
    assert fairness.effective(operator, None) == operator


def test_a_tunnel_gets_its_burst_then_its_rate_and_other_tunnels_keep_theirs():
    clock = Clock()
    limiter = fairness.TunnelLimiter(clock)
    ceiling = fairness.Limits(rate=2, burst=3)
    results = [limiter.admit("noisy", ceiling) for _ in range(4)]
    assert results[:3] == [None] * 3
    assert results[3] == fairness.Refusal(1, "rate")
    assert limiter.admit("quiet", ceiling) is None  # its own bucket
    clock.now += 0.5
    assert limiter.admit("noisy", ceiling) is None and limiter.admit("noisy", ceiling) is not None


def test_retry_after_says_when_a_token_is_back():
    clock = Clock()
    limiter = fairness.TunnelLimiter(clock)
    ceiling = fairness.Limits(rate=0.25, burst=1)
    assert limiter.admit("t", ceiling) is None
    assert limiter.admit("t", ceiling) == fairness.Refusal(4, "rate")


def test_in_flight_counts_until_released():
    limiter = fairness.TunnelLimiter(Clock())
    ceiling = fairness.Limits(in_flight=2)
    assert limiter.admit("t", ceiling) is None and limiter.admit("t", ceiling) is None
    assert limiter.admit("t", ceiling) == fairness.Refusal(1, "in_flight")
    limiter.release("t")
    assert limiter.admit("t", ceiling) is None


def test_a_tunnels_policy_lowers_its_limits_for_what_follows():
    limiter = fairness.TunnelLimiter(Clock())
    limiter.learn("t", fairness.tenant((0.0, 0.0, 1)))
    assert limiter.admit("t", fairness.Limits(in_flight=5)) is None
    assert limiter.admit("t", fairness.Limits(in_flight=5)) is not None
    limiter.learn("t", None)
    assert limiter.admit("t", fairness.Limits(in_flight=5)) is None


def test_policy_lim_parses_round_trips_and_refuses_what_is_off():
    parsed = policy.parse('{"v":1,"lim":{"rps":5,"inflight":2}}')
    assert parsed.limits == (5.0, 0.0, 2) and bool(parsed)
    assert json.loads(parsed.to_json())["lim"] == {"rps": 5.0, "inflight": 2}
    for bad in ('{"v":1,"lim":{"rps":-1}}', '{"v":1,"lim":{"rate":1}}', '{"v":1,"lim":[1]}',
                '{"v":1,"lim":{"inflight":1.5}}', '{"v":1,"lim":{"burst":true}}'):
        with pytest.raises(policy.PolicyError):
            policy.parse(bad)


def test_gate_admit_answers_429_tunnel_rate_limited_with_retry_after(monkeypatch):
    monkeypatch.setenv("TUNNEL_RATE_LIMIT", "1")
    monkeypatch.setenv("TUNNEL_BURST_LIMIT", "1")
    monkeypatch.setattr(fairness, "TUNNELS", fairness.TunnelLimiter())
    assert gate.admit("abc") is None
    refused = gate.admit("abc")
    assert refused is not None and refused.status == 429 and refused.error_code == "tunnel_rate_limited"
    assert refused.result["headers"]["retry-after"] == "1"
    assert refused.result["headers"]["x-tunnel-error"] == "tunnel_rate_limited"


def test_gate_admit_is_open_without_ceilings(monkeypatch):
    for name in ("TUNNEL_RATE_LIMIT", "TUNNEL_BURST_LIMIT", "TUNNEL_MAX_IN_FLIGHT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(fairness, "TUNNELS", fairness.TunnelLimiter())
    assert all(gate.admit("abc") is None for _ in range(1000))


def test_a_socket_over_its_message_budget_is_closed_once(monkeypatch):
    monkeypatch.setenv("AGENT_MESSAGE_RATE_LIMIT", "1")
    monkeypatch.setenv("AGENT_MESSAGE_BURST_LIMIT", "3")
    monkeypatch.setattr(fairness, "MESSAGES", fairness.MessageBudget(Clock()))
    monkeypatch.setattr(fairness, "CLOSED", fairness.TTLMap(10))
    closed: list[tuple[str, str]] = []
    monkeypatch.setattr(fairness.management, "close_connection", lambda cid, endpoint: closed.append((cid, endpoint)))
    flooding = [fairness.socket_flooding("c1", "ws.example.com", "prod") for _ in range(6)]
    assert flooding == [False, False, False, True, True, True]
    assert closed == [("c1", "https://ws.example.com/prod")]
    assert fairness.socket_flooding("c2", "ws.example.com", "prod") is False  # another socket's budget


def test_no_message_budget_unless_configured(monkeypatch):
    monkeypatch.delenv("AGENT_MESSAGE_RATE_LIMIT", raising=False)
    monkeypatch.setattr(fairness, "MESSAGES", fairness.MessageBudget(Clock()))
    assert not any(fairness.socket_flooding("c", "d", "s") for _ in range(1000))
