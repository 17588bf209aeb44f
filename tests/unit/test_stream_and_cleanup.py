"""stream_notifier (EventBridge, partial batch failures) and cleanup (expired/stale rows)."""

from __future__ import annotations

import json
import time

import boto3
from boto3.dynamodb.types import TypeSerializer

from httptunnel import names, store, stream_notifier

from .helpers import CONN_TABLE, PENDING_TABLE, FakeContext, connect_agent, load_event, load_handler

SER = TypeSerializer()


def record(seq: str, status: str, event_name: str = "INSERT", **extra) -> dict:
    """An answer row as the response Lambda writes it (no tunnel, method or path: the agent's word
    is not taken for those)."""
    image = {"requestId": f"r{seq}:c1", "forRequest": f"r{seq}", "connectionId": "c1", "status": status,
             "completedAt": 1250, "statusCode": 201, "responseBytes": 9, "processingTimeMs": 4,
             "responseBody": "c2VjcmV0", **extra}
    return {"eventID": seq, "eventName": event_name, "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": seq, "NewImage": {k: SER.serialize(v) for k, v in image.items()}}}


class FakeEvents:
    def __init__(self, fail_entries: set[str] = frozenset(), raise_on_call: int | None = None):
        self.calls: list[list[dict]] = []
        self.fail_entries = fail_entries
        self.raise_on_call = raise_on_call

    def put_events(self, Entries):
        self.calls.append(Entries)
        if self.raise_on_call == len(self.calls):
            raise RuntimeError("throttled")
        return {"FailedEntryCount": 0, "Entries": [
            {"ErrorCode": "InternalFailure"} if json.loads(e["Detail"])["request_id"] in self.fail_entries
            else {"EventId": "e"} for e in Entries]}


def test_completed_rows_become_events_without_bodies(aws, monkeypatch):
    fake = FakeEvents()
    monkeypatch.setattr(stream_notifier, "_events", lambda: fake)
    _put(CONN_TABLE, {"connectionId": "c1", "tunnelId": "abcdefghij12", "connectedAt": 1})
    records = [record(str(i), "completed") for i in range(23)] + [record("99", "pending"),
                                                                  record("98", "completed", "MODIFY"),
                                                                  record("97", "completed", "REMOVE")]
    calls_before = store.calls()
    out = load_handler("stream_notifier")({"Records": records}, FakeContext())
    assert store.calls() - calls_before == 1  # one BatchGetItem names the tunnel of the whole batch
    assert out == {"batchItemFailures": []}
    assert [len(c) for c in fake.calls] == [10, 10, 3]
    entry = fake.calls[0][0]
    assert entry["Source"] == "http-tunnel" and entry["DetailType"] == "TunnelRequestCompleted"
    assert entry["EventBusName"] == "test-bus"
    detail = json.loads(entry["Detail"])
    assert detail == {"request_id": "r0", "tunnel_id": "abcdefghij12", "connection_id": "c1", "method": None,
                      "path": None, "status": "completed", "status_code": 201, "error_code": None,
                      "request_bytes": None, "response_bytes": 9, "processing_time_ms": 4, "completed_at": 1250,
                      "duration_ms": None}
    assert "c2VjcmV0" not in json.dumps(fake.calls)


def test_tunnel_comes_from_the_connection_row_not_the_agent(aws, monkeypatch):
    """An agent cannot put its answers into another tunnel's traffic log: the response Lambda
    writes no tunnel id, and stream_notifier names the tunnel of the answering connection."""
    fake = FakeEvents()
    monkeypatch.setattr(stream_notifier, "_events", lambda: fake)
    _put(CONN_TABLE, {"connectionId": "c1", "tunnelId": "mine00000000", "connectedAt": 1})
    load_handler("stream_notifier")({"Records": [record("1", "completed"),
                                                 record("2", "completed", connectionId="gone")]}, FakeContext())
    details = [json.loads(e["Detail"]) for e in fake.calls[0]]
    assert [(d["connection_id"], d["tunnel_id"]) for d in details] == [("c1", "mine00000000"), ("gone", None)]


def test_forward_written_timeout_rows_carry_the_request(aws, monkeypatch):
    fake = FakeEvents()
    monkeypatch.setattr(stream_notifier, "_events", lambda: fake)
    calls_before = store.calls()
    load_handler("stream_notifier")({"Records": [record(
        "1", "error", errorCode="timeout", tunnelId="abcdefghij12", method="POST", path="/x", createdAt=1000,
        requestBytes=7)]}, FakeContext())
    assert store.calls() == calls_before  # nothing to look up
    detail = json.loads(fake.calls[0][0]["Detail"])
    assert (detail["tunnel_id"], detail["method"], detail["path"], detail["duration_ms"], detail["error_code"],
            detail["request_bytes"]) == ("abcdefghij12", "POST", "/x", 250, "timeout", 7)


def test_failed_entries_and_failed_calls_are_reported(aws, monkeypatch):
    fake = FakeEvents(fail_entries={"r3"}, raise_on_call=2)
    monkeypatch.setattr(stream_notifier, "_events", lambda: fake)
    records = [record(str(i), "error", errorCode="timeout") for i in range(12)]
    out = load_handler("stream_notifier")({"Records": records}, FakeContext())
    assert out == {"batchItemFailures": [{"itemIdentifier": s} for s in ("3", "10", "11")]}


def test_notifier_against_moto_eventbridge(aws):
    boto3.client("events").create_event_bus(Name="test-bus")
    out = load_handler("stream_notifier")({"Records": [record("1", "completed")]}, FakeContext())
    assert out == {"batchItemFailures": []}


def _put(table: str, item: dict) -> None:
    boto3.client("dynamodb").put_item(TableName=table, Item={k: SER.serialize(v) for k, v in item.items()})


def _keys(table: str, pk: str) -> set[str]:
    return {i[pk]["S"] for i in boto3.client("dynamodb").scan(TableName=table)["Items"]}


def test_cleanup_removes_expired_and_stale_rows_only(aws, mgmt):
    now = int(time.time())
    old_ms = (now - 3600) * 1000
    connect_agent("live")  # fresh: never probed
    _put(CONN_TABLE, {"connectionId": "dead", "tunnelId": "t1", "connectedAt": old_ms, "ttl": now + 3600})
    _put(CONN_TABLE, {"connectionId": "alive-old", "tunnelId": "t2", "connectedAt": old_ms, "ttl": now + 3600})
    _put(CONN_TABLE, {"connectionId": "expired", "tunnelId": "t3", "connectedAt": old_ms, "ttl": now - 1})
    _put(CONN_TABLE, {"connectionId": "reservation#keepme", "reservedId": "keepme", "ttl": now + 99})
    _put(CONN_TABLE, {"connectionId": "reservation#oldres", "reservedId": "oldres", "ttl": now - 99})
    _put(PENDING_TABLE, {"requestId": "p-old", "status": "pending", "ttl": now - 5})
    _put(PENDING_TABLE, {"requestId": "p-new", "status": "pending", "ttl": now + 500})
    mgmt.gone.add("dead")
    summary = load_handler("cleanup")(load_event("scheduled.json"), FakeContext())
    assert summary["expired_deleted"] == 3 and summary["stale_deleted"] == 1 and summary["complete"] is True
    assert summary["live_connections"] == 2  # live + alive-old: the active-tunnels gauge (no reservations)
    conns = _keys(CONN_TABLE, names.CONN_PK)
    assert {"dead", "expired", "reservation#oldres"}.isdisjoint(conns)
    assert {"live", "alive-old", "reservation#keepme"} <= conns
    assert _keys(PENDING_TABLE, names.PENDING_PK) == {"p-new"}
    again = load_handler("cleanup")(load_event("scheduled.json"), FakeContext())
    assert again["expired_deleted"] == 0 and again["stale_deleted"] == 0 and again["live_connections"] == 2


def test_cleanup_is_bounded_and_paginated(aws, mgmt, monkeypatch):
    from httptunnel import cleanup
    now = int(time.time())
    for i in range(250):
        _put(PENDING_TABLE, {"requestId": f"p{i:03}", "status": "pending", "ttl": now - 10})
    monkeypatch.setattr(cleanup, "MAX_DELETES", 120)
    first = load_handler("cleanup")(load_event("scheduled.json"), FakeContext())
    assert first["expired_deleted"] == 120 and first["complete"] is False
    while load_handler("cleanup")(load_event("scheduled.json"), FakeContext())["complete"] is False:
        pass
    assert _keys(PENDING_TABLE, names.PENDING_PK) == set()


def test_cleanup_stops_when_the_lambda_is_out_of_time(aws, mgmt):
    now = int(time.time())
    _put(PENDING_TABLE, {"requestId": "p1", "status": "pending", "ttl": now - 10})
    summary = load_handler("cleanup")(load_event("scheduled.json"), FakeContext(remaining_ms=1000))
    assert summary["complete"] is False and summary["expired_deleted"] == 0
    assert _keys(PENDING_TABLE, names.PENDING_PK) == {"p1"}  # still there


def test_cleanup_logs_the_active_tunnels_gauge(aws, mgmt, capsys):
    """The observability ActiveTunnels metric filter reads msg, complete and live_connections."""
    connect_agent("live")
    capsys.readouterr()
    load_handler("cleanup")(load_event("scheduled.json"), FakeContext())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [run] = [line for line in lines if line["msg"] == "cleanup run"]
    assert run["complete"] is True and run["live_connections"] == 1
