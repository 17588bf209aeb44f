"""stream_notifier (EventBridge, partial batch failures) and cleanup (expired/stale rows)."""

from __future__ import annotations

import json
import time

import boto3
from boto3.dynamodb.types import TypeSerializer

from httptunnel import names, notifier, store

from .helpers import CONN_TABLE, PENDING_TABLE, FakeContext, connect_agent, load_event, load_handler

SER = TypeSerializer()


def record(seq: str, status: str, event_name: str = "MODIFY", **extra) -> dict:
    image = {"requestId": f"r{seq}", "connectionId": "c1", "tunnelId": "abcdefghij12", "status": status,
             "method": "POST", "path": "/x", "createdAt": 1000, "completedAt": 1250, "statusCode": 201,
             "requestBytes": 7, "responseBytes": 9, "responseBody": "c2VjcmV0", **extra}
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
    monkeypatch.setattr(notifier, "_events", lambda: fake)
    records = [record(str(i), "completed") for i in range(23)] + [record("99", "pending"),
                                                                  record("98", "completed", "INSERT")]
    out = load_handler("stream_notifier")({"Records": records}, FakeContext())
    assert out == {"batchItemFailures": []}
    assert [len(c) for c in fake.calls] == [10, 10, 3]
    entry = fake.calls[0][0]
    assert entry["Source"] == "http-tunnel" and entry["DetailType"] == "TunnelRequestCompleted"
    assert entry["EventBusName"] == "test-bus"
    detail = json.loads(entry["Detail"])
    assert detail == {"request_id": "r0", "tunnel_id": "abcdefghij12", "connection_id": "c1", "method": "POST",
                      "path": "/x", "status": "completed", "status_code": 201, "error_code": None,
                      "request_bytes": 7, "response_bytes": 9, "duration_ms": 250}
    assert "c2VjcmV0" not in json.dumps(fake.calls)


def test_failed_entries_and_failed_calls_are_reported(aws, monkeypatch):
    fake = FakeEvents(fail_entries={"r3"}, raise_on_call=2)
    monkeypatch.setattr(notifier, "_events", lambda: fake)
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
    from httptunnel import janitor
    now = int(time.time())
    for i in range(250):
        _put(PENDING_TABLE, {"requestId": f"p{i:03}", "status": "pending", "ttl": now - 10})
    monkeypatch.setattr(janitor, "MAX_DELETES", 120)
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
    assert store.get_answer("p1") is None  # still there (pending)


def test_cleanup_logs_the_active_tunnels_gauge(aws, mgmt, capsys):
    """The observability ActiveTunnels metric filter reads msg, complete and live_connections."""
    connect_agent("live")
    capsys.readouterr()
    load_handler("cleanup")(load_event("scheduled.json"), FakeContext())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [run] = [line for line in lines if line["msg"] == "cleanup run"]
    assert run["complete"] is True and run["live_connections"] == 1
