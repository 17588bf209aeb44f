"""$default: ping, malformed frames, and who may answer a pending request."""

from __future__ import annotations

import json

import boto3
import pytest

from httptunnel import names, protocol, store

from .helpers import PENDING_TABLE, FakeContext, connect_agent, load_handler, ws_event


def send(connection_id: str, frame: str) -> dict:
    return load_handler("response")(ws_event("default_message.json", connection_id, frame), FakeContext())


def row(request_id: str, connection_id: str) -> dict:
    item = boto3.client("dynamodb").get_item(TableName=PENDING_TABLE,
                                             Key={"requestId": {"S": store.answer_key(request_id, connection_id)}},
                                             ConsistentRead=True)["Item"]
    return {k: list(v.values())[0] for k, v in item.items()}


def test_ping_gets_pong(aws, mgmt):
    connect_agent("conn-A")
    assert send("conn-A", '{"type":"ping"}') == {"statusCode": 200}
    assert mgmt.messages("conn-A")[-1] == {"type": "pong"}


@pytest.mark.parametrize("frame", ["not json", "[]", '{"type":"warp"}', '{"type":"http_response"}',
                                   '{"type":"http_response","request_id":"r","status_code":"200"}',
                                   '{"no":"type"}', ""])
def test_malformed_or_unknown_frames_are_dropped_with_200(aws, mgmt, frame):
    connect_agent("conn-A")
    assert send("conn-A", frame) == {"statusCode": 200}


def test_ping_to_a_gone_connection_does_not_raise(aws, mgmt):
    connect_agent("conn-Z")
    mgmt.gone.add("conn-Z")
    assert send("conn-Z", '{"type":"ping"}') == {"statusCode": 200}


def test_ping_from_a_connection_without_a_row_closes_it(aws, mgmt):
    """Its row was removed (a failed post, cleanup, TTL): no request can reach it, so close it
    and let the agent reconnect and reclaim its tunnel id instead of idling unreachable."""
    assert send("orphan", '{"type":"ping"}') == {"statusCode": 200}
    assert mgmt.closed == ["orphan"]
    assert mgmt.messages("orphan") == []


def test_ping_from_an_orphan_already_gone_does_not_raise(aws, mgmt):
    mgmt.gone.add("orphan")
    assert send("orphan", '{"type":"ping"}') == {"statusCode": 200}
    assert mgmt.closed == []


def test_ready_from_unknown_connection_is_dropped(aws, mgmt):
    assert send("nobody", '{"type":"ready"}') == {"statusCode": 200}
    assert mgmt.posts == []


def test_second_agent_cannot_answer_first_agents_request(aws, mgmt):
    connect_agent("conn-A")
    connect_agent("conn-B")
    forged = protocol.HttpResponse(request_id="req-1", status_code=200, body=protocol.b64encode(b"evil"))
    assert send("conn-B", protocol.encode(forged)) == {"statusCode": 200}
    assert send("conn-B", protocol.encode(protocol.Error(request_id="req-1", code="timeout"))) == {"statusCode": 200}
    # forward posted req-1 to conn-A and reads only conn-A's slot: nothing there yet
    assert store.get_answer("req-1", "conn-A") is None
    genuine = protocol.HttpResponse(request_id="req-1", status_code=201, body=protocol.b64encode(b"ok"))
    send("conn-A", protocol.encode(genuine))
    answer = store.get_answer("req-1", "conn-A")
    assert answer is not None and answer.status == names.STATUS_COMPLETED and answer.status_code == 201
    assert answer.body_b64 == protocol.b64encode(b"ok")
    # the forged one sits under conn-B's key, where no forward looks (and TTL removes it)
    assert row("req-1", "conn-B")["responseBody"] == protocol.b64encode(b"evil")


def test_answer_only_once(aws, mgmt):
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id="req-1", status_code=200, body="")))
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id="req-1", status_code=500, body="")))
    assert row("req-1", "conn-A")["statusCode"] == "200"


def test_answer_row_has_a_ttl_and_names_its_request_and_connection(aws, mgmt):
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id="req-1", status_code=204, body="")))
    stored = row("req-1", "conn-A")
    assert stored[names.ANSWER_REQUEST_ID] == "req-1" and stored[names.ANSWER_CONNECTION_ID] == "conn-A"
    assert int(stored["completedAt"]) // 1000 + store.ANSWER_TTL_S == int(stored["ttl"])


@pytest.mark.parametrize("request_id", ["", "a" * 129, "req 1", "req:1", "../x"])
def test_answer_with_a_malformed_request_id_is_dropped(aws, mgmt, request_id):
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=request_id, status_code=200)))
    assert boto3.client("dynamodb").scan(TableName=PENDING_TABLE)["Items"] == []


def test_bad_base64_body_becomes_an_error_answer(aws, mgmt):
    send("conn-A", json.dumps({"type": "http_response", "request_id": "req-1", "status_code": 200, "body": "@@"}))
    stored = row("req-1", "conn-A")
    assert stored[names.PENDING_STATUS] == names.STATUS_ERROR and stored["errorCode"] == "internal_error"


def test_unknown_error_code_maps_to_internal_error(aws, mgmt):
    send("conn-A", protocol.encode(protocol.Error(request_id="req-1", code="kaboom", message="x")))
    assert row("req-1", "conn-A")["errorCode"] == "internal_error"
