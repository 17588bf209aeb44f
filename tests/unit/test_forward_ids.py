"""forward mints channel v2 request ids bound to the connection it posts to; the agents of today
echo them, so their answers verify and reach the caller."""

from __future__ import annotations

import time

import pytest

from httptunnel import id_keys, request_ids, store

from .helpers import FakeContext, connect_agent, load_handler, ws_event
from .test_forward_basic import FakeAgent, http_event, ok


@pytest.fixture
def keyed(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUEST_ID_KEY", "a request id key of at least 32 bytes")


def _verifies(request_id: str, connection_id: str) -> bool:
    keys = id_keys.current()
    assert keys is not None
    return request_ids.check(keys, request_id, connection_id, int(time.time() * 1000)) is None


def test_forward_posts_a_verifiable_id_and_an_echoing_agent_is_answered(keyed, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hello"))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 200 and result["body"] == "hello"
    rid = agent.requests[0]["request_id"]
    assert _verifies(rid, "conn-A") and not _verifies(rid, "conn-B")


def test_a_repost_to_a_reconnected_agent_gets_an_id_of_its_own(keyed, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"old"))
    assert load_handler("forward")(http_event(tid), ctx)["body"] == "old"  # conn-A is cached now
    load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), FakeContext())
    mgmt.gone.add("conn-A")
    store.put_connection(store.Connection(connection_id="conn-B", tunnel_id=tid, connected_at=int(time.time() * 1000),
                                          domain_name="abc123ws.execute-api.us-east-1.amazonaws.com", stage="prod"))
    agent = FakeAgent(mgmt, "conn-B", ok(b"new"))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 200 and result["body"] == "new"
    assert _verifies(agent.requests[0]["request_id"], "conn-B")


def test_the_answers_forward_read_ride_the_next_request_to_that_agent(keyed, mgmt, ctx):
    """Piggybacked acks: free, and only on connections that agreed `ack`."""
    tid = connect_agent("conn-A", headers={"X-Tunnel-Capabilities": "ack"})["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"x"))
    for _ in range(3):
        assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 200
    ids = [r["request_id"] for r in agent.requests]
    assert "acks" not in agent.requests[0]
    assert agent.requests[1]["acks"] == [ids[0]] and agent.requests[2]["acks"] == [ids[1]]


def test_an_agent_without_ack_gets_no_acks_field(keyed, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"x"))
    for _ in range(2):
        assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 200
    assert all("acks" not in r for r in agent.requests)
