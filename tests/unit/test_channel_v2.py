"""Channel v2 at the edge: capabilities at $connect, verifiable ids, acks (shared/README.md)."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from httptunnel import id_keys, limits, protocol, request_ids, response, store

from .helpers import CONN_TABLE, PENDING_TABLE, FakeContext, connect_agent, load_handler, ws_event

KEY = "a request id key of at least 32 bytes"


def send(connection_id: str, frame: str) -> dict:
    return load_handler("response")(ws_event("default_message.json", connection_id, frame), FakeContext())


def rows() -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=PENDING_TABLE, ConsistentRead=True)["Items"]


def mint(connection_id: str, now_ms: int | None = None) -> str:
    keys = id_keys.current()
    assert keys is not None
    return request_ids.mint(keys, connection_id, now_ms if now_ms is not None else int(time.time() * 1000))


@pytest.fixture
def keyed(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUEST_ID_KEY", KEY)
    response.REFUSALS.clear()


def test_capabilities_are_agreed_stored_and_told(aws, mgmt):
    established = connect_agent("conn-A", headers={"X-Tunnel-Capabilities": "stream, ack, future-thing"})
    assert established["capabilities"] == ["ack", "stream"]  # what the server speaks of what the agent announced, in its order
    conn = store.get_connection("conn-A")
    assert conn is not None and conn.capabilities == ("ack", "stream")


def test_an_agent_that_announces_nothing_gets_todays_protocol(aws, mgmt):
    established = connect_agent("conn-A")
    assert "capabilities" not in established
    assert store.get_connection("conn-A").capabilities == ()
    item = boto3.client("dynamodb").get_item(TableName=CONN_TABLE, Key={"connectionId": {"S": "conn-A"}})["Item"]
    assert "capabilities" not in item


@pytest.mark.parametrize("value", ["ack;stream", "a" * 300, ",".join(f"c{i}" for i in range(17)), "ACK STREAM"])
def test_malformed_capabilities_are_refused_at_connect(aws, mgmt, value):
    result = load_handler("connect")(ws_event("connect.json", "conn-A", headers={"X-Tunnel-Capabilities": value}),
                                     FakeContext())
    assert result["statusCode"] == 400
    assert store.get_connection("conn-A") is None


def test_a_forged_answer_is_refused_without_a_write_and_logged_once(keyed, mgmt, capsys):
    connect_agent("conn-A")
    connect_agent("conn-B")
    capsys.readouterr()
    others = mint("conn-A")  # a live id, but posted to conn-A
    for rid in ("0123456789abcdef0123456789abcdef", others, "1.zzz.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"):
        send("conn-B", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200, body="", seq=0, ack=True)))
        send("conn-B", protocol.encode(protocol.Error(request_id=rid, code="timeout")))
    assert rows() == []
    assert [m for m in mgmt.messages("conn-B") if m["type"] == "ack"] == []  # no post either
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "answer refused" in x]
    assert len(lines) == 1 and lines[0]["connection_id"] == "conn-B"


def test_refusals_are_logged_again_after_a_minute_with_the_count(keyed, mgmt, capsys, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(response.time, "monotonic", lambda: clock[0])
    for _ in range(5):
        send("conn-B", protocol.encode(protocol.Error(request_id="nope", code="timeout")))
    clock[0] += response.REFUSAL_LOG_EVERY_S
    send("conn-B", protocol.encode(protocol.Error(request_id="nope", code="timeout")))
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "answer refused" in x]
    assert [line["refused"] for line in lines] == [1, 5]


def test_an_expired_id_is_refused(keyed, mgmt):
    old = mint("conn-A", int(time.time() * 1000) - request_ids.MAX_AGE_MS - 1000)
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=old, status_code=200)))
    assert rows() == []


def test_a_genuine_answer_is_stored_and_acked_when_asked(keyed, mgmt):
    rid = mint("conn-A")
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=201, seq=0, ack=True)))
    assert store.get_answer(rid, "conn-A").status_code == 201
    assert mgmt.messages("conn-A") == [{"type": "ack", "request_id": rid, "seq": 0}]


def test_no_ack_unless_asked_or_already_stored(keyed, mgmt):
    rid = mint("conn-A")
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200, seq=0)))
    assert mgmt.messages("conn-A") == []
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200, seq=0)))  # a resend
    assert mgmt.messages("conn-A") == [{"type": "ack", "request_id": rid, "seq": 0}]
    assert len(rows()) == 1


def test_an_old_agent_without_seq_is_never_acked(keyed, mgmt):
    rid = mint("conn-A")
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200)))
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200)))
    assert mgmt.messages("conn-A") == [] and len(rows()) == 1


def test_an_inline_answer_over_what_ttf_sends_becomes_a_small_error_row(keyed, mgmt):
    rid = mint("conn-A")
    body = protocol.b64encode(b"x" * limits.AGENT_MESSAGE_MAX)
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200, body=body)))
    answer = store.get_answer(rid, "conn-A")
    assert answer.status == "error" and answer.error_code == "internal_error"


def test_without_a_key_uuid_ids_are_stored_as_before(aws, mgmt):
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id="0123456789abcdef", status_code=200)))
    assert len(rows()) == 1


def test_rotation_previous_key_verifies(aws, mgmt, monkeypatch):
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/t/k-1", Value="version one key, 32 bytes or more", Type="SecureString")
    monkeypatch.setenv("REQUEST_ID_KEY_SSM_PREFIX", "/t/k-")
    old = mint("conn-A")
    id_keys.reset()
    ssm.put_parameter(Name="/t/k-0", Value="version two key, 32 bytes or more", Type="SecureString")
    monkeypatch.setenv("REQUEST_ID_KEY_VERSION", "2")
    new = mint("conn-A")
    assert new.startswith("2.")
    for rid in (old, new):
        send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200)))
    assert len(rows()) == 2


def test_a_resend_of_a_stored_answer_is_acked_after_a_read_not_a_write(keyed, mgmt, monkeypatch):
    rid = mint("conn-A")
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200, seq=0)))
    writes = []
    monkeypatch.setattr(store, "put_answer", lambda *a, **k: writes.append(a) or False)
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=200, seq=0, ack=True)))
    assert writes == []
    assert mgmt.messages("conn-A") == [{"type": "ack", "request_id": rid, "seq": 0}]


def test_a_resend_whose_first_copy_was_lost_is_stored_and_acked(keyed, mgmt):
    rid = mint("conn-A")
    send("conn-A", protocol.encode(protocol.HttpResponse(request_id=rid, status_code=202, seq=0, ack=True)))
    assert store.get_answer(rid, "conn-A").status_code == 202
    assert mgmt.messages("conn-A") == [{"type": "ack", "request_id": rid, "seq": 0}]
