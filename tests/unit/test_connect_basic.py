"""$connect / $disconnect with auth off, and tunnel id reservation/reclaim."""

from __future__ import annotations

import boto3

from httptunnel import names, routing, store
from .helpers import CONN_TABLE, connect_agent, load_handler, ws_event


def _rows() -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=CONN_TABLE)["Items"]


def test_connect_stores_row_and_ready_returns_urls(aws, mgmt, ctx):
    est = connect_agent("conn-A")
    tid = est["tunnel_id"]
    assert routing.is_tunnel_id(tid)
    assert est["connection_id"] == "conn-A"
    assert est["public_url"] == f"https://abc123http.execute-api.us-east-1.amazonaws.com/{tid}"
    assert est["path_based_url"] == est["public_url"]
    assert "subdomain_url" not in est
    assert len(est["reclaim_token"]) >= 32
    conn = store.get_connection("conn-A")
    assert conn is not None and conn.tunnel_id == tid
    assert conn.domain_name == "abc123ws.execute-api.us-east-1.amazonaws.com" and conn.stage == "prod"
    assert store.get_reservation(tid) is not None
    endpoint, _, _ = mgmt.posts[-1]
    assert endpoint == "https://abc123ws.execute-api.us-east-1.amazonaws.com/prod"


def test_subdomain_template_makes_public_url_the_subdomain(aws, mgmt, monkeypatch):
    monkeypatch.setenv("SUBDOMAIN_URL_TEMPLATE", "https://{tunnel_id}.t.example.com")
    est = connect_agent("conn-A")
    assert est["subdomain_url"] == f"https://{est['tunnel_id']}.t.example.com"
    assert est["public_url"] == est["subdomain_url"]
    assert est["path_based_url"].endswith("/" + est["tunnel_id"])


def test_management_endpoint_override_wins(aws, mgmt, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "http://127.0.0.1:4510/")
    connect_agent("conn-A")
    assert mgmt.posts[-1][0] == "http://127.0.0.1:4510"


def test_ready_is_retried_while_the_new_connection_refuses_posts(aws, mgmt):
    mgmt.forbidden_left["conn-A"] = 3
    est = connect_agent("conn-A")
    assert est["tunnel_id"]


def test_tunnel_ids_are_unique_and_well_formed(aws, mgmt):
    ids = {connect_agent(f"c{i}")["tunnel_id"] for i in range(20)}
    assert len(ids) == 20 and all(routing.is_tunnel_id(i) for i in ids)


def test_reclaim_with_token_keeps_the_id(aws, mgmt):
    first = connect_agent("conn-A")
    load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), None)
    again = connect_agent("conn-B", headers={"X-Tunnel-Id": first["tunnel_id"],
                                             "X-Tunnel-Reclaim-Token": first["reclaim_token"]})
    assert again["tunnel_id"] == first["tunnel_id"]
    assert again["public_url"] == first["public_url"]
    assert again["reclaim_token"] == first["reclaim_token"]


def test_reclaim_via_query_parameters(aws, mgmt):
    first = connect_agent("conn-A")
    again = connect_agent("conn-B", query={"tunnel_id": first["tunnel_id"], "reclaim_token": first["reclaim_token"]})
    assert again["tunnel_id"] == first["tunnel_id"]


def test_wrong_reclaim_token_is_refused_and_nothing_stored(aws, mgmt, ctx):
    first = connect_agent("conn-A")
    before = _rows()
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={
        "X-Tunnel-Id": first["tunnel_id"], "X-Tunnel-Reclaim-Token": "not-the-token"}), ctx)
    assert result["statusCode"] == 409
    assert _rows() == before


def test_tunnel_id_without_token_is_a_bad_request(aws, mgmt, ctx):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={"X-Tunnel-Id": "abcdefghij12"}), ctx)
    assert result["statusCode"] == 400
    assert _rows() == []


def test_malformed_tunnel_id_is_a_bad_request(aws, mgmt, ctx):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={
        "X-Tunnel-Id": "../../etc", "X-Tunnel-Reclaim-Token": "t"}), ctx)
    assert result["statusCode"] == 400


def test_named_subdomain_needs_auth(aws, mgmt, ctx):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={"X-Tunnel-Subdomain": "myapp"}), ctx)
    assert result["statusCode"] == 403
    assert _rows() == []


def test_disconnect_removes_row_and_is_idempotent(aws, mgmt, ctx):
    connect_agent("conn-A")
    disconnect = load_handler("disconnect")
    assert disconnect(ws_event("disconnect.json", "conn-A"), ctx) == {"statusCode": 200}
    assert store.get_connection("conn-A") is None
    assert disconnect(ws_event("disconnect.json", "conn-A"), ctx) == {"statusCode": 200}
    reservations = [r for r in _rows() if r[names.CONN_PK]["S"].startswith("reservation#")]
    assert len(reservations) == 1  # the id stays reserved after the socket closes


def test_malformed_connect_event_is_400_not_a_traceback(aws, ctx):
    assert load_handler("connect")({"nope": 1}, ctx)["statusCode"] == 400
    assert load_handler("disconnect")("garbage", ctx)["statusCode"] == 400
