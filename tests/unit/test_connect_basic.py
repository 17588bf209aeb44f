"""$connect / $disconnect with auth off, and tunnel id reservation/reclaim."""

from __future__ import annotations

import hashlib
import secrets

import boto3
import pytest

from httptunnel import names, routing, store
from .helpers import CONN_TABLE, connect_agent, load_handler, ws_event

TOKEN = secrets.token_urlsafe(32)  # what ttf makes: the agent's own reclaim token


def with_token(token: str = TOKEN, **headers: str) -> dict[str, str]:
    return {"X-Tunnel-Reclaim-Token": token, **headers}


def _rows() -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=CONN_TABLE)["Items"]


def test_connect_stores_row_and_ready_returns_urls(aws, mgmt, ctx):
    est = connect_agent("conn-A", headers=with_token())
    tid = est["tunnel_id"]
    assert routing.is_tunnel_id(tid)
    assert est["connection_id"] == "conn-A"
    assert est["public_url"] == f"https://abc123http.execute-api.us-east-1.amazonaws.com/{tid}/"
    assert est["path_based_url"] == est["public_url"]
    assert "subdomain_url" not in est
    assert "reclaim_token" not in est  # the agent made it; nothing secret travels back
    conn = store.get_connection("conn-A")
    assert conn is not None and conn.tunnel_id == tid
    assert conn.domain_name == "abc123ws.execute-api.us-east-1.amazonaws.com" and conn.stage == "prod"
    reservation = store.get_reservation(tid)
    assert reservation is not None and reservation.token_hash == hashlib.sha256(TOKEN.encode()).hexdigest()


def test_the_reclaim_token_is_stored_nowhere_only_its_hash_in_the_reservation(aws, mgmt):
    tid = connect_agent("conn-A", headers=with_token())["tunnel_id"]
    items = _rows()
    assert TOKEN not in repr(items)
    conn_row = next(r for r in items if r[names.CONN_PK]["S"] == "conn-A")
    assert set(conn_row) == {"connectionId", "tunnelId", "connectedAt", "ttl", "domainName", "stage"}
    reservation = next(r for r in items if r[names.CONN_PK]["S"] == f"reservation#{tid}")
    assert reservation["tokenHash"]["S"] == hashlib.sha256(TOKEN.encode()).hexdigest()


def test_an_agent_without_a_token_gets_an_id_nobody_can_reclaim(aws, mgmt, ctx):
    """An agent older than agent-made tokens presents none: it is served, its id just cannot be reclaimed."""
    tid = connect_agent("conn-A")["tunnel_id"]
    assert store.get_reservation(tid).token_hash is None
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers=with_token(**{"X-Tunnel-Id": tid})),
                                     ctx)
    assert result["statusCode"] == 409
    endpoint, _, _ = mgmt.posts[-1]
    assert endpoint == "https://abc123ws.execute-api.us-east-1.amazonaws.com/prod"


def test_subdomain_template_makes_public_url_the_subdomain(aws, mgmt, monkeypatch):
    monkeypatch.setenv("SUBDOMAIN_URL_TEMPLATE", "https://{tunnel_id}.t.example.com")
    est = connect_agent("conn-A")
    assert est["subdomain_url"] == f"https://{est['tunnel_id']}.t.example.com"
    assert est["public_url"] == est["subdomain_url"]
    assert est["path_based_url"].endswith("/" + est["tunnel_id"] + "/")  # relative links stay inside the tunnel


def test_management_endpoint_override_wins(aws, mgmt, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "http://127.0.0.1:4510/")
    connect_agent("conn-A")
    assert mgmt.posts[-1][0] == "http://127.0.0.1:4510"


def test_ready_is_retried_while_the_new_connection_refuses_posts(aws, mgmt):
    mgmt.forbidden_left["conn-A"] = 3
    est = connect_agent("conn-A")
    assert est["tunnel_id"]


def test_tunnel_ids_are_unique_and_well_formed(aws, mgmt):
    ids = {connect_agent(f"c{i}", headers=with_token(secrets.token_urlsafe(32)))["tunnel_id"] for i in range(20)}
    assert len(ids) == 20 and all(routing.is_tunnel_id(i) for i in ids)


def test_reclaim_with_token_keeps_the_id(aws, mgmt):
    first = connect_agent("conn-A", headers=with_token())
    load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), None)
    again = connect_agent("conn-B", headers=with_token(**{"X-Tunnel-Id": first["tunnel_id"]}))
    assert again["tunnel_id"] == first["tunnel_id"]
    assert again["public_url"] == first["public_url"]


def test_reclaim_via_query_parameters(aws, mgmt):
    first = connect_agent("conn-A", query={"reclaim_token": TOKEN})
    again = connect_agent("conn-B", query={"tunnel_id": first["tunnel_id"], "reclaim_token": TOKEN})
    assert again["tunnel_id"] == first["tunnel_id"]


def test_wrong_reclaim_token_is_refused_and_nothing_stored(aws, mgmt, ctx):
    first = connect_agent("conn-A", headers=with_token())
    before = _rows()
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers=with_token(
        secrets.token_urlsafe(32), **{"X-Tunnel-Id": first["tunnel_id"]})), ctx)
    assert result["statusCode"] == 409
    assert _rows() == before


def test_reclaim_of_an_id_without_a_reservation_is_refused(aws, mgmt, ctx):
    """Squatting: a random-looking id nobody was given (or whose reservation is gone) cannot be taken
    by naming it, whatever token comes with it."""
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers=with_token(
        **{"X-Tunnel-Id": "mycompanyapi"})), ctx)
    assert result["statusCode"] == 409
    assert _rows() == []


def test_reservations_from_before_agent_made_tokens_are_never_reclaimed(aws, mgmt, ctx):
    """Their token was also kept in plain text on the connection row: whoever read it must not get the id."""
    boto3.client("dynamodb").put_item(TableName=CONN_TABLE, Item={
        "connectionId": {"S": "reservation#abcdefghij12"}, "reservedId": {"S": "abcdefghij12"},
        "reclaimHash": {"S": hashlib.sha256(TOKEN.encode()).hexdigest()}, "ttl": {"N": "4102444800"}})
    before = _rows()
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers=with_token(
        **{"X-Tunnel-Id": "abcdefghij12"})), ctx)
    assert result["statusCode"] == 409 and _rows() == before


@pytest.mark.parametrize("token", ["short", "x" * 42, "a" * 43 + "!", "b" * 129, "c" * 43 + " d"])
def test_malformed_reclaim_token_is_a_bad_request(aws, mgmt, ctx, token):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={"X-Tunnel-Reclaim-Token": token}),
                                     ctx)
    assert result["statusCode"] == 400 and _rows() == []


def test_tunnel_id_without_token_is_a_bad_request(aws, mgmt, ctx):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={"X-Tunnel-Id": "abcdefghij12"}), ctx)
    assert result["statusCode"] == 400
    assert _rows() == []


def test_malformed_tunnel_id_is_a_bad_request(aws, mgmt, ctx):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers=with_token(**{
        "X-Tunnel-Id": "../../etc"})), ctx)
    assert result["statusCode"] == 400


def test_named_subdomain_needs_auth(aws, mgmt, ctx):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={"X-Tunnel-Subdomain": "myapp"}), ctx)
    assert result["statusCode"] == 403
    assert _rows() == []


def test_disconnect_removes_row_and_is_idempotent(aws, mgmt, ctx):
    connect_agent("conn-A", headers=with_token())
    disconnect = load_handler("disconnect")
    assert disconnect(ws_event("disconnect.json", "conn-A"), ctx) == {"statusCode": 200}
    assert store.get_connection("conn-A") is None
    assert disconnect(ws_event("disconnect.json", "conn-A"), ctx) == {"statusCode": 200}
    reservations = [r for r in _rows() if r[names.CONN_PK]["S"].startswith("reservation#")]
    assert len(reservations) == 1  # the id stays reserved after the socket closes


def test_malformed_connect_event_is_400_not_a_traceback(aws, ctx):
    assert load_handler("connect")({"nope": 1}, ctx)["statusCode"] == 400
    assert load_handler("disconnect")("garbage", ctx)["statusCode"] == 400


def _audit_lines(out: str) -> list[dict]:
    import json
    return [line for line in (json.loads(raw) for raw in out.splitlines() if raw.startswith("{"))
            if line["msg"] == "tunnel audit"]


def test_connect_and_disconnect_write_an_always_on_audit_line(aws, mgmt, capsys, monkeypatch):
    from .helpers import FakeContext
    monkeypatch.setenv("LOG_LEVEL", "ERROR")  # the audit trail ignores the log level
    capsys.readouterr()
    tid = connect_agent("conn-A", headers=with_token())["tunnel_id"]
    calls = store.calls()
    load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), FakeContext())
    assert store.calls() - calls == 1  # the row's fields come back from the DeleteItem itself
    rejected = load_handler("connect")(ws_event("connect.json", "conn-X", headers=with_token(
        **{"X-Tunnel-Id": "zzzzzzzzzzzz"})), FakeContext())
    assert rejected["statusCode"] == 409
    connect_line, disconnect_line, rejected_line = _audit_lines(capsys.readouterr().out)
    assert {k: connect_line[k] for k in ("event", "outcome", "status", "tunnel_id", "source_ip", "connection_id")} == {
        "event": "connect", "outcome": "new", "status": 200, "tunnel_id": tid, "source_ip": "203.0.113.7",
        "connection_id": "conn-A"}
    assert "sub" in connect_line and connect_line["audit"] is True
    assert (disconnect_line["event"], disconnect_line["outcome"], disconnect_line["tunnel_id"],
            disconnect_line["source_ip"]) == ("disconnect", "disconnected", tid, "203.0.113.7")
    assert (rejected_line["outcome"], rejected_line["status"], rejected_line["tunnel_id"]) == ("rejected", 409,
                                                                                               "zzzzzzzzzzzz")
