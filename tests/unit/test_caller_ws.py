"""Caller WebSockets in the layer (httptunnel.caller_ws, issue 24): the caller API's three Lambdas and
the agent's ws frames in the response Lambda, over moto and a fake @connections API."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest

from httptunnel import caller_ws, names, protocol

from .helpers import CONN_TABLE, FakeContext, connect_agent, load_event, load_handler, ws_event

CALLER_ENDPOINT = "https://callers1.execute-api.us-east-1.amazonaws.com/live"
DOMAIN = "t.example.com"


@pytest.fixture
def callers(aws, mgmt, monkeypatch):
    monkeypatch.setenv("CALLER_WS_DOMAIN", DOMAIN)
    monkeypatch.setenv("CALLER_WS_MANAGEMENT_ENDPOINT", CALLER_ENDPOINT)
    monkeypatch.setenv("REQUEST_ID_KEY", "k" * 64)
    return mgmt


def agent(connection_id: str = "agent-A", capabilities: str = "ack,ws") -> str:
    """An agent on the agents' API; returns its tunnel id."""
    return str(connect_agent(connection_id, headers={"X-Tunnel-Capabilities": capabilities})["tunnel_id"])


def caller_event(name: str, socket_id: str, tunnel_id: str = "", *, body: str | None = None,
                 headers: dict[str, str] | None = None, query: dict[str, list[str]] | None = None) -> dict[str, Any]:
    event = copy.deepcopy(load_event(name))
    ctx = event["requestContext"]
    ctx.update(connectionId=socket_id, stage="live", apiId="callers1",
               domainName=f"{tunnel_id}.{DOMAIN}" if tunnel_id else "callers1.execute-api.us-east-1.amazonaws.com")
    if body is not None:
        event["body"] = body
    if headers:
        event["headers"] = {**event.get("headers", {}), **headers}
        event["multiValueHeaders"] = {**event.get("multiValueHeaders", {}), **{k: [v] for k, v in headers.items()}}
    if query is not None:
        event["multiValueQueryStringParameters"] = query
        event["queryStringParameters"] = {k: v[-1] for k, v in query.items()}
    return event


def run(name: str, event: dict[str, Any]) -> Any:
    return load_handler(name)(event, FakeContext())


def from_agent(connection_id: str, message: protocol.Message) -> Any:
    return run("response", ws_event("default_message.json", connection_id, protocol.encode(message)))


def answer_opens(mgmt, connection_id: str = "agent-A", chosen: str | None = "chat",
                 refuse: tuple[int, str] | None = None) -> list[protocol.WsOpen]:
    """The agent answers every ws_open posted to it (synchronously, inside the post)."""
    opens: list[protocol.WsOpen] = []

    def on_post(target: str, data: dict[str, Any]) -> None:
        if target != connection_id or data.get("type") != "ws_open":
            return
        msg = protocol.decode(protocol.encode(protocol.WsOpen(**{k: v for k, v in data.items() if k != "type"})))
        assert isinstance(msg, protocol.WsOpen)
        opens.append(msg)
        answer: protocol.Message = protocol.WsOpened(msg.request_id, msg.socket_id, chosen) if refuse is None else \
            protocol.WsRefused(msg.request_id, msg.socket_id, refuse[0], refuse[1])
        from_agent(connection_id, answer)
    mgmt.on_post = on_post
    return opens


def socket_row(socket_id: str) -> dict[str, Any] | None:
    item = boto3.client("dynamodb").get_item(TableName=CONN_TABLE, Key={names.CONN_PK: {"S": names.SOCKET_PREFIX + socket_id}},
                                             ConsistentRead=True).get("Item")
    return {k: list(v.values())[0] for k, v in item.items()} if item else None


def open_socket(callers, socket_id: str = "caller-1", **kwargs: Any) -> dict[str, Any]:
    tunnel_id = agent()
    answer_opens(callers, **kwargs)
    result = run("caller_connect", caller_event("connect.json", socket_id, tunnel_id,
                                                headers={"Sec-WebSocket-Protocol": "chat, other"}))
    callers.on_post = None  # the fake parses what it is given as JSON: a caller's texts need not be
    return dict(result)


def test_a_caller_socket_opens_with_the_apps_subprotocol_and_its_handshake(callers):
    tunnel_id = agent()
    opens = answer_opens(callers)
    result = run("caller_connect", caller_event(
        "connect.json", "caller-1", tunnel_id, query={"a": ["1", "é"], "tunnel": ["ignored"]},
        headers={"Sec-WebSocket-Protocol": "chat, other", "Cookie": "sid=1", "Origin": "https://page.example"}))
    assert result == {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat"}}
    (sent,) = opens
    assert sent.socket_id == "caller-1" and sent.uri == "/?a=1&a=%C3%A9"
    assert sent.headers["cookie"] == ["sid=1"] and sent.headers["origin"] == ["https://page.example"]
    assert sent.headers["sec-websocket-protocol"] == ["chat, other"]
    assert "sec-websocket-key" not in sent.headers and "sec-websocket-version" not in sent.headers
    assert sent.request_id.count(".") == 3, "a verifiable id bound to the agent's connection"
    row = socket_row("caller-1")
    assert row and row["agentConnection"] == "agent-A" and "tunnelId" not in row, "not in the GSI"


def test_the_query_form_reaches_the_tunnel_too(callers):
    tunnel_id = agent()
    answer_opens(callers, chosen=None)
    result = run("caller_connect", caller_event("connect.json", "caller-1", query={"tunnel": [tunnel_id]}))
    assert result == {"statusCode": 200}


def test_a_socket_the_app_refuses_is_refused_with_its_status(callers):
    result = open_socket(callers, refuse=(403, "local_service_error"))
    assert result["statusCode"] == 403 and result["headers"][names.ERROR_HEADER] == "local_service_error"
    assert socket_row("caller-1") is None


def test_unknown_tunnels_and_agents_without_ws_are_refused_at_the_handshake(callers):
    assert run("caller_connect", caller_event("connect.json", "c1", "nosuchtunnel1"))["statusCode"] == 404
    old = agent("agent-old", capabilities="ack")
    refused = run("caller_connect", caller_event("connect.json", "c2", old))
    assert refused["statusCode"] == 501 and refused["headers"][names.ERROR_HEADER] == "websocket_unsupported"
    assert not [m for m in callers.messages("agent-old") if m["type"] == "ws_open"]


def test_caller_frames_are_numbered_and_sent_to_the_agent(callers):
    open_socket(callers)
    for text in ("one", "twö", '{"json": true}'):
        assert run("caller_message", caller_event("default_message.json", "caller-1", body=text)) == {"statusCode": 200}
    frames = [m for m in callers.messages("agent-A") if m["type"] == "ws_message"]
    assert [(f["seq"], f["data"]) for f in frames] == [(0, ["one"]), (1, ["twö"]), (2, ['{"json": true}'])]


def test_agent_messages_are_posted_in_order_once_and_acknowledged(callers):
    open_socket(callers)
    assert from_agent("agent-A", protocol.WsMessage("caller-1", 1, ["early"])) == {"statusCode": 200}
    assert callers.messages("caller-1") == [], "seq 1 before seq 0 is not posted"
    from_agent("agent-A", protocol.WsMessage("caller-1", 0, ["a", "b"]))
    from_agent("agent-A", protocol.WsMessage("caller-1", 0, ["a", "b"]))  # a resend: acked, not posted
    from_agent("agent-A", protocol.WsMessage("caller-1", 1, ["c"]))
    posted = [(e, t) for e, c, t in callers.posts if c == "caller-1"]
    assert posted == [(CALLER_ENDPOINT, "a"), (CALLER_ENDPOINT, "b"), (CALLER_ENDPOINT, "c")]
    acks = [m for m in callers.messages("agent-A") if m["type"] == "ws_ack"]
    assert [a["seq"] for a in acks] == [0, 0, 1]


def test_another_connection_cannot_write_to_or_close_a_socket(callers):
    open_socket(callers)
    agent("agent-B")
    from_agent("agent-B", protocol.WsMessage("caller-1", 0, ["forged"]))
    from_agent("agent-B", protocol.WsClose("caller-1", 1000, ""))
    assert callers.messages("caller-1") == [] and "caller-1" not in callers.closed
    assert socket_row("caller-1") is not None


def test_the_callers_close_code_reaches_the_agent_once(callers):
    open_socket(callers)
    event = caller_event("disconnect.json", "caller-1")
    event["requestContext"].update(disconnectStatusCode=4005, disconnectReason="bye")
    run("caller_disconnect", event)
    run("caller_disconnect", event)
    closes = [m for m in callers.messages("agent-A") if m["type"] == "ws_close"]
    assert closes == [{"type": "ws_close", "socket_id": "caller-1", "code": 4005, "reason": "bye"}]
    run("caller_message", caller_event("default_message.json", "caller-1", body="late"))
    assert not [m for m in callers.messages("agent-A") if m["type"] == "ws_message"]


def test_an_agent_close_ends_the_callers_socket(callers):
    open_socket(callers)
    from_agent("agent-A", protocol.WsClose("caller-1", 4001, "done"))
    assert callers.closed == ["caller-1"] and socket_row("caller-1") is None


def test_a_gone_agent_ends_the_callers_socket_at_its_next_frame(callers):
    open_socket(callers)
    callers.gone.add("agent-A")
    run("caller_message", caller_event("default_message.json", "caller-1", body="hello?"))
    assert callers.closed == ["caller-1"] and socket_row("caller-1") is None


def test_a_caller_message_too_big_for_the_agent_ends_both_sides(callers):
    open_socket(callers)
    run("caller_message", caller_event("default_message.json", "caller-1", body="\u0001" * 40_000))  # 6x when escaped
    assert callers.closed == ["caller-1"]
    assert [m for m in callers.messages("agent-A") if m["type"] == "ws_close"][0]["code"] == 1009


def test_an_app_speaking_first_is_posted_once_the_callers_connect_returned(callers):
    open_socket(callers)
    callers.post_gone_left["caller-1"] = 3  # $connect still returning: 410 for a moment
    from_agent("agent-A", protocol.WsMessage("caller-1", 0, ["welcome"]))
    assert [t for _, c, t in callers.posts if c == "caller-1"] == ["welcome"]


def test_open_answers_map_to_the_handshake():
    assert caller_ws.open_answer(protocol.WsOpened("r", "s", None)).status_code == 101
    weird = caller_ws.open_answer(protocol.WsRefused("r", "s", 200, "made-up"))
    assert weird.status_code == 502 and "local_service_error" in weird.headers_json


def test_a_resend_while_its_first_copy_is_posted_is_not_acknowledged(callers):
    """The ack waits for the posts: acking a resend early let the next message overtake them (e2e)."""
    open_socket(callers)
    assert not isinstance(caller_ws.claim_out_seq("caller-1", "agent-A", 0), str)  # an invocation is posting 0
    from_agent("agent-A", protocol.WsMessage("caller-1", 0, ["a"]))
    assert [t for _, c, t in callers.posts if c == "caller-1"] == []
    assert not [m for m in callers.messages("agent-A") if m["type"] == "ws_ack"]
    caller_ws.posted("caller-1", 0)
    from_agent("agent-A", protocol.WsMessage("caller-1", 0, ["a"]))
    assert [m["seq"] for m in callers.messages("agent-A") if m["type"] == "ws_ack"] == [0]
