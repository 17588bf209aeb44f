"""A tunnel's open requests on the function URL edge, counted across execution environments
(httptunnel.stream_holds, issue 29), against moto: each "environment" here is a cold start
(nothing remembered in the process); the count lives in DynamoDB."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from httptunnel import store, stream_holds
from httptunnel.replies import ForwardResult

from .helpers import PENDING_TABLE, cold_start, connect_agent, load_handler
from .test_forward_basic import FakeAgent, ok
from .test_forward_stream import StreamContext, url_event


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def leases(tunnel_id: str) -> dict[str, int]:
    item = boto3.client("dynamodb").get_item(TableName=PENDING_TABLE, Key={"requestId": {"S": "holds#" + tunnel_id}},
                                             ConsistentRead=True).get("Item")
    return {} if item is None else {k: int(v["N"]) for k, v in item["leases"]["M"].items()}


@pytest.fixture
def limit(aws, monkeypatch):
    monkeypatch.setenv("TUNNEL_MAX_OPEN_STREAMS", "2")
    monkeypatch.setenv("MAX_STREAM_SECONDS", "60")


@pytest.fixture
def online(limit, monkeypatch):
    """Tunnels t1 and other exist (a lease is taken only for a tunnel that exists)."""
    monkeypatch.setattr(stream_holds.tunnels, "connection_for", lambda tid: object() if tid in {"t1", "other"} else None)


def refused(held) -> bool:
    if not isinstance(held, ForwardResult):
        return False
    assert held.status == 429 and held.error_code == "tunnel_rate_limited"
    assert held.result["headers"]["retry-after"] == "1" and held.result["headers"]["x-tunnel-error"] == "tunnel_rate_limited"
    return True


def test_off_by_default_and_costs_no_call(aws, monkeypatch):
    monkeypatch.delenv("TUNNEL_MAX_OPEN_STREAMS", raising=False)
    before = store.calls()
    held = stream_holds.take("t1")
    assert held == stream_holds.Hold("t1") and store.calls() == before
    stream_holds.give_back(held)
    assert store.calls() == before


def test_the_count_holds_across_environments_and_a_given_back_lease_frees_a_place(online):
    first = stream_holds.take("t1")
    cold_start()  # another execution environment: it remembers nothing of the first
    second = stream_holds.take("t1")
    cold_start()
    assert not refused(first) and not refused(second) and len(leases("t1")) == 2
    assert refused(stream_holds.take("t1"))
    assert not refused(stream_holds.take("other"))  # another tunnel has its own count
    cold_start()
    stream_holds.give_back(first)
    third = stream_holds.take("t1")
    assert not refused(third) and set(leases("t1")) == {second.lease_id, third.lease_id}


def test_a_lease_lasts_past_the_longest_invocation(online):
    clock = Clock()
    held = stream_holds.take("t1", clock)
    assert leases("t1")[held.lease_id] == int(clock.now) + 60 + 15 + 30


def test_leases_of_environments_that_died_expire_and_are_removed(online):
    clock = Clock()
    dead = [stream_holds.take("t1", clock), stream_holds.take("t1", clock)]  # never given back
    cold_start()
    assert refused(stream_holds.take("t1", clock))
    cold_start()
    clock.now += stream_holds.lease_seconds() - 1
    assert refused(stream_holds.take("t1", clock))  # not yet expired
    cold_start()
    clock.now += 2
    fresh = stream_holds.take("t1", clock)
    assert not refused(fresh)
    assert set(leases("t1")) == {fresh.lease_id} and all(d.lease_id not in leases("t1") for d in dead)


def test_a_full_tunnel_is_refused_without_a_write_for_a_second(online, monkeypatch):
    clock = Clock()
    stream_holds.take("t1", clock), stream_holds.take("t1", clock)
    assert refused(stream_holds.take("t1", clock))
    before = store.calls()
    assert all(refused(stream_holds.take("t1", clock)) for _ in range(50))
    assert store.calls() == before


def test_an_unknown_tunnel_costs_no_write_and_leaves_no_item(online):
    before = store.calls()
    assert stream_holds.take("nosuchtunnel") == stream_holds.Hold("nosuchtunnel")
    assert store.calls() == before and leases("nosuchtunnel") == {}


def test_dynamodb_trouble_fails_open_and_a_failed_give_back_never_raises(online, monkeypatch):
    def throttled(op, **kwargs):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, op)

    monkeypatch.setattr(store, "_call", throttled)
    held = stream_holds.take("t1")
    assert held == stream_holds.Hold("t1")
    stream_holds.give_back(stream_holds.Hold("t1", "abc"))


def test_forward_stream_refuses_past_the_limit_before_posting_and_gives_its_lease_back(limit, mgmt):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hello"))
    ctx = StreamContext()
    load_handler("forward_stream")(url_event(tid, "/a"), ctx)
    assert ctx.head[0] == 200 and ctx.body == b"hello"
    assert leases(tid) == {}  # given back once the answer was written
    held = [stream_holds.take(tid), stream_holds.take(tid)]  # two open elsewhere
    cold_start()
    posts = len(mgmt.posts)
    ctx = StreamContext()
    load_handler("forward_stream")(url_event(tid, "/b"), ctx)
    status, headers, _ = ctx.head
    assert status == 429 and headers["x-tunnel-error"] == "tunnel_rate_limited" and headers["retry-after"] == "1"
    assert len(mgmt.posts) == posts and len(agent.requests) == 1  # the agent never saw it
    assert set(leases(tid)) == {h.lease_id for h in held}
