"""Caller WebSockets meet the tunnel's edge policy and fairness limits as HTTP requests do
(httptunnel.caller_ws, issues 24 x 29 x 30): a webhook-only tunnel refuses caller sockets at once,
without a KMS Decrypt; a caller's $connect spends the tunnel's request rate, in-flight ceiling and
per-source sign-in budget; caller messages spend a per-tunnel budget, past which the socket that
sent one is closed."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.exceptions import ClientError

from httptunnel import caller_ws, fairness, names, policy, sealed, tunnels
from httptunnel.ttlmap import TTLMap

from .helpers import connect_agent
from . import test_caller_ws, test_sealed
from .test_caller_ws import agent, answer_opens, caller_event, run, socket_row
from .test_forward_basic import FakeAgent, http_event, ok
from .test_sealed import SECRET, hook_headers

WS = {"X-Tunnel-Capabilities": "ack,ws"}
callers = pytest.fixture(test_caller_ws.callers.__wrapped__)  # the caller API's fixture, shared
kms_key = pytest.fixture(test_sealed.kms_key.__wrapped__)


@pytest.fixture(autouse=True)
def fresh_limits(monkeypatch):
    """Each test starts with empty per-instance counts and caches (they are module globals)."""
    monkeypatch.setattr(fairness, "TUNNELS", fairness.TunnelLimiter())
    monkeypatch.setattr(fairness, "CALLER_MESSAGES", fairness.MessageBudget(), raising=False)
    monkeypatch.setattr(tunnels, "CONNECTIONS", TTLMap(tunnels.CACHE_MAX))
    monkeypatch.setattr(sealed, "OPENED", TTLMap(sealed.OPENED_MAX))


@pytest.fixture
def kms_refuses_decrypt(monkeypatch) -> list[dict[str, Any]]:
    """KMS as caller_connect's role meets it on AWS: Encrypt works (connect seals), Decrypt is
    AccessDenied (terraform/kms.tf grants Decrypt to forward and forward_stream only)."""
    calls: list[dict[str, Any]] = []
    real = sealed._kms

    class Refusing:
        def encrypt(self, **kw: Any) -> Any:
            return real().encrypt(**kw)

        def decrypt(self, **kw: Any) -> Any:
            calls.append(kw)
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "Decrypt")
    monkeypatch.setattr(sealed, "_kms", Refusing)
    return calls


def webhook_tunnel(connection_id: str = "agent-W") -> str:
    headers = {**WS, **hook_headers(f"github:{SECRET}")}
    return str(connect_agent(connection_id, headers=headers)["tunnel_id"])


def assert_webhook_refusal(result: dict[str, Any], callers: Any, agent_connection: str) -> None:
    assert result["statusCode"] == 403, result
    assert result["headers"][names.ERROR_HEADER] == policy.WEBHOOK_INVALID
    assert "signed webhooks" in result["body"] and "WebSocket" in result["body"]
    assert not [m for m in callers.messages(agent_connection) if m["type"] == "ws_open"]
    assert socket_row("caller-1") is None


# --------------------------------------------------------------------------- webhook-only tunnels

def test_a_sealed_webhook_tunnel_refuses_a_caller_socket_with_403_and_no_decrypt(callers, kms_key,
                                                                                  kms_refuses_decrypt):
    tunnel_id = webhook_tunnel()
    result = run("caller_connect", caller_event("connect.json", "caller-1", tunnel_id))
    assert_webhook_refusal(result, callers, "agent-W")  # was 502 internal_error: Decrypt refused
    assert kms_refuses_decrypt == [], "caller_connect never opens the sealed secrets"


def test_an_unsealed_webhook_policy_refuses_a_caller_socket_the_same_way(callers):
    tunnel_id = webhook_tunnel()  # no SECRETS_KMS_KEY_ID: the hooks stay in the row's policy
    result = run("caller_connect", caller_event("connect.json", "caller-1", tunnel_id))
    assert_webhook_refusal(result, callers, "agent-W")


def test_a_webhook_tunnel_opened_by_forward_in_this_instance_is_refused_too(callers, kms_key):
    tunnel_id = webhook_tunnel()
    assert run("forward", http_event(tunnel_id))["statusCode"] == 403  # forward opened and cached the row
    cached = tunnels.CONNECTIONS.get(tunnel_id)
    assert cached is not None and policy.parse(str(cached.policy)).hooks, "the opened row is what is cached"
    result = run("caller_connect", caller_event("connect.json", "caller-1", tunnel_id))
    assert_webhook_refusal(result, callers, "agent-W")


def test_an_unopened_sealed_row_is_never_cached_for_forward(callers, kms_key, kms_refuses_decrypt):
    tunnel_id = webhook_tunnel()
    run("caller_connect", caller_event("connect.json", "caller-1", tunnel_id))
    assert tunnels.CONNECTIONS.get(tunnel_id) is None, "forward must not find a row without its webhook secrets"


def test_tunnels_without_webhooks_still_take_caller_sockets(callers, kms_key, kms_refuses_decrypt):
    tunnel_id = str(connect_agent("agent-A", headers={**WS, **{policy.HEADER: policy.to_header(
        policy.build(deny=["10.0.0.0/8"]))}})["tunnel_id"])
    answer_opens(callers)
    result = run("caller_connect", caller_event("connect.json", "caller-1", tunnel_id,
                                                headers={"Sec-WebSocket-Protocol": "chat"}))
    assert result == {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat"}}


# --------------------------------------------------------------------------- $connect: the tunnel's limits

def test_a_callers_connect_spends_the_same_per_tunnel_rate_as_http_requests(callers, monkeypatch):
    monkeypatch.setenv("TUNNEL_RATE_LIMIT", "1")
    monkeypatch.setenv("TUNNEL_BURST_LIMIT", "2")
    tunnel_id, other = agent("agent-A"), agent("agent-B")
    FakeAgent(callers, "agent-A", ok())
    assert run("forward", http_event(tunnel_id))["statusCode"] == 200  # one HTTP request ...
    answer_opens(callers)
    assert run("caller_connect", caller_event("connect.json", "caller-1", tunnel_id))["statusCode"] == 200  # + 1
    refused = run("caller_connect", caller_event("connect.json", "caller-2", tunnel_id))
    assert refused["statusCode"] == 429 and refused["headers"][names.ERROR_HEADER] == "tunnel_rate_limited"
    assert refused["headers"]["retry-after"] == "1"
    assert socket_row("caller-2") is None
    assert [m["socket_id"] for m in callers.messages("agent-A") if m["type"] == "ws_open"] == ["caller-1"]
    assert run("forward", http_event(tunnel_id))["statusCode"] == 429, "and the socket spent the HTTP share"
    answer_opens(callers, connection_id="agent-B")
    assert run("caller_connect", caller_event("connect.json", "caller-3", other))["statusCode"] == 200


def test_a_handshake_waiting_for_the_agent_is_in_flight(callers, monkeypatch):
    monkeypatch.setenv("TUNNEL_MAX_IN_FLIGHT", "1")
    tunnel_id = agent("agent-A")
    nested: list[dict[str, Any]] = []
    opens = answer_opens(callers)
    answering = callers.on_post

    def on_post(target: str, data: dict[str, Any]) -> None:
        if data.get("type") == "ws_open" and data.get("socket_id") == "caller-1":  # the first is still waiting
            nested.append(run("caller_connect", caller_event("connect.json", "caller-2", tunnel_id)))
        answering(target, data)
    callers.on_post = on_post
    assert run("caller_connect", caller_event("connect.json", "caller-1", tunnel_id))["statusCode"] == 200
    (second,) = nested
    assert second["statusCode"] == 429 and second["headers"][names.ERROR_HEADER] == "tunnel_rate_limited"
    assert [o.socket_id for o in opens] == ["caller-1"]
    assert run("caller_connect", caller_event("connect.json", "caller-3", tunnel_id))["statusCode"] == 200, \
        "released once the handshake ended"


def test_a_tunnels_own_lim_lowers_its_caller_connects_too(callers, monkeypatch):
    monkeypatch.setenv("TUNNEL_RATE_LIMIT", "100")
    lim = {policy.HEADER: policy.to_header(policy.parse('{"v":1,"lim":{"rps":1,"burst":1}}'))}
    tunnel_id = str(connect_agent("agent-A", headers={**WS, **lim})["tunnel_id"])
    answer_opens(callers)
    # the first request to a tunnel teaches this instance its lim (gate.edge_policy), as in forward
    statuses = [run("caller_connect", caller_event("connect.json", f"caller-{i}", tunnel_id))["statusCode"]
                for i in range(3)]
    assert statuses == [200, 200, 429]


def test_failed_sign_ins_are_counted_per_source_address_for_caller_sockets(callers, monkeypatch):
    monkeypatch.setattr(caller_ws.gate, "AUTH_FAILURES", TTLMap(1024))
    users = {policy.HEADER: policy.to_header(policy.build(basic_auth=["ann:right-password-1"]))}
    tunnel_id = str(connect_agent("agent-A", headers={**WS, **users})["tunnel_id"])
    answer_opens(callers)
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ann:wrong").decode()}

    def attempt(socket_id: str, ip: str) -> dict[str, Any]:
        event = caller_event("connect.json", socket_id, tunnel_id, headers=wrong)
        event["requestContext"]["identity"]["sourceIp"] = ip
        return dict(run("caller_connect", event))
    statuses = [attempt(f"c{i}", "198.51.100.7")["statusCode"] for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert attempt("other", "203.0.113.9")["statusCode"] == 401, "another source keeps its own budget"


# --------------------------------------------------------------------------- caller messages: the tunnel's budget

def open_on(callers: Any, tunnel_id: str, socket_id: str, agent_connection: str = "agent-A") -> None:
    answer_opens(callers, connection_id=agent_connection)
    assert run("caller_connect", caller_event("connect.json", socket_id, tunnel_id))["statusCode"] == 200
    callers.on_post = None


def send(socket_id: str, text: str) -> None:
    assert run("caller_message", caller_event("default_message.json", socket_id, body=text)) == {"statusCode": 200}


def test_caller_messages_over_the_tunnels_budget_close_the_socket_that_sent_them(callers, monkeypatch):
    monkeypatch.setenv("CALLER_MESSAGE_RATE_LIMIT", "0.001")  # no refill within the test
    monkeypatch.setenv("CALLER_MESSAGE_BURST_LIMIT", "3")
    tunnel_id, other = agent("agent-A"), agent("agent-B")
    open_on(callers, tunnel_id, "s1")
    open_on(callers, tunnel_id, "s2")
    open_on(callers, other, "s3", "agent-B")
    for socket_id, text in (("s1", "a"), ("s2", "b"), ("s1", "c"), ("s1", "over")):
        send(socket_id, text)
    to_agent = [m for m in callers.messages("agent-A") if m["type"] in ("ws_message", "ws_close")]
    assert [(m["socket_id"], m.get("data") or (m["code"], m["reason"])) for m in to_agent] == [
        ("s1", ["a"]), ("s2", ["b"]), ("s1", ["c"]),
        ("s1", (1008, "the tunnel's caller message budget is spent"))], "the budget is the tunnel's, shared"
    assert "s1" in callers.closed and socket_row("s1") is None
    send("s1", "after")  # the socket is closing: no row, dropped
    send("s2", "also over")  # the budget is the tunnel's: s2 goes over too
    assert "s2" in callers.closed
    send("s3", "another tunnel")
    assert [m["data"] for m in callers.messages("agent-B") if m["type"] == "ws_message"] == [["another tunnel"]]
    assert "s3" not in callers.closed


def test_no_caller_message_budget_unless_configured(callers, monkeypatch):
    monkeypatch.delenv("CALLER_MESSAGE_RATE_LIMIT", raising=False)
    tunnel_id = agent("agent-A")
    open_on(callers, tunnel_id, "s1")
    for i in range(300):
        send("s1", str(i))
    assert len([m for m in callers.messages("agent-A") if m["type"] == "ws_message"]) == 300
    assert "s1" not in callers.closed
