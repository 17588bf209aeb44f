"""The edge policy through connect (stored on the row, 400 when unusable) and forward (one hook
before the post: a denial never reaches the agent; the agent is told with a rate-limited notice)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

import boto3
import pytest

from httptunnel import gate, policy, store, tunnels

from .helpers import CONN_TABLE, connect_agent, load_handler, ws_event
from .test_forward_basic import FakeAgent, http_event, ok


def policy_headers(**kwargs) -> dict[str, str]:
    return {policy.HEADER: policy.to_header(policy.build(**kwargs))}


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def from_ip(event: dict, ip: str) -> dict:
    event["requestContext"]["http"]["sourceIp"] = ip
    return event


def row(connection_id: str) -> dict:
    return boto3.client("dynamodb").get_item(TableName=CONN_TABLE, Key={"connectionId": {"S": connection_id}})["Item"]


def notices(mgmt, connection_id: str) -> list[dict]:
    return [m for m in mgmt.messages(connection_id) if m["type"] == "request_denied"]


@pytest.fixture(autouse=True)
def _cold_instance():
    gate.DENIED_BUDGETS.clear()
    gate.POLICIES.clear()


def test_connect_stores_the_canonical_policy_and_no_password(aws, mgmt, ctx):
    connect_agent("conn-A", headers=policy_headers(basic_auth=["alice:pw-secret"], deny=["10.0.0.0/8"]))
    stored = row("conn-A")["policy"]["S"]
    assert "pw-secret" not in stored and policy.parse(stored).deny[0].compressed == "10.0.0.0/8"
    assert store.get_connection("conn-A").policy == stored


def test_connect_without_policy_stores_none(aws, mgmt, ctx):
    connect_agent("conn-A")
    assert "policy" not in row("conn-A") and store.get_connection("conn-A").policy is None


@pytest.mark.parametrize("value, reason", [
    ("not base64!", "invalid policy: X-Tunnel-Policy is not base64url"),
    ("A" * (policy.HEADER_MAX + 1), "invalid policy: X-Tunnel-Policy is larger than"),
    (base64.urlsafe_b64encode(b'{"v":1,"hooks":[{"p":"twilio","k":"x"}]}').decode(), "unknown webhook provider"),
    (base64.urlsafe_b64encode(b'{"v":1,"deny":["300.0.0.0/8"]}').decode(), "is not an IP address"),
])
def test_connect_refuses_an_unusable_policy_with_400_and_stores_nothing(aws, mgmt, ctx, value, reason):
    result = load_handler("connect")(ws_event("connect.json", "conn-A", headers={policy.HEADER: value}), ctx)
    assert result["statusCode"] == 400 and reason in result["body"]
    assert boto3.client("dynamodb").scan(TableName=CONN_TABLE)["Items"] == []


def test_denied_requests_never_reach_the_agent_and_it_is_told(aws, mgmt, ctx):
    tid = connect_agent("conn-A", headers=policy_headers(deny=["198.51.100.0/24"]))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    result = load_handler("forward")(http_event(tid, query="a=1"), ctx)  # the fixture's sourceIp 198.51.100.9
    assert result["statusCode"] == 403 and result["headers"]["x-tunnel-error"] == "ip_denied"
    assert agent.requests == []
    [notice] = notices(mgmt, "conn-A")
    assert (notice["status"], notice["reason"], notice["uri"], notice["count"]) == (403, "ip_denied", "/api/items?a=1", 1)
    allowed = load_handler("forward")(from_ip(http_event(tid), "203.0.113.5"), ctx)
    assert allowed["statusCode"] == 200 and len(agent.requests) == 1


def test_source_ip_comes_from_the_request_context_never_a_header(aws, mgmt, ctx):
    tid = connect_agent("conn-A", headers=policy_headers(allow=["203.0.113.0/24"]))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    spoof = {"x-forwarded-for": "203.0.113.5", "x-real-ip": "203.0.113.5", "forwarded": "for=203.0.113.5"}
    assert load_handler("forward")(http_event(tid, headers=spoof), ctx)["statusCode"] == 403
    assert agent.requests == []


def test_basic_auth_challenge_then_pass_and_header_rules(aws, mgmt, ctx):
    tid = connect_agent("conn-A", headers=policy_headers(
        basic_auth=["alice:s3cret"], request_remove=["authorization"], request_add=["x-edge: checked"],
        response_add=["x-frame-options: DENY"], response_remove=["server"]))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"page", headers={"content-type": ["text/html"], "server": ["dev"]}))
    challenge = load_handler("forward")(http_event(tid), ctx)
    assert challenge["statusCode"] == 401 and challenge["headers"]["www-authenticate"].startswith("Basic realm=")
    assert challenge["headers"]["x-tunnel-error"] == "basic_auth_required"
    wrong = load_handler("forward")(http_event(tid, headers=basic("alice", "nope")), ctx)
    assert wrong["statusCode"] == 401 and agent.requests == []
    result = load_handler("forward")(http_event(tid, headers={**basic("alice", "s3cret"), "x-edge": "spoofed"}), ctx)
    assert result["statusCode"] == 200 and base64.b64decode(result["body"]) == b"page" or result["body"] == "page"
    sent = agent.requests[0]["headers"]
    assert "authorization" not in sent and sent["x-edge"] == ["checked"]
    assert result["headers"]["x-frame-options"] == "DENY" and "server" not in result["headers"]


def test_webhook_signature_over_the_exact_body(aws, mgmt, ctx):
    secret = "gh-secret"
    tid = connect_agent("conn-A", headers=policy_headers(hooks=[f"github:{secret}"]))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    body = b'{"zen":"Keep it logically awesome.","bytes":"\xff\x00"}'
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    good = http_event(tid, method="POST", body=body, headers={"x-hub-signature-256": sig})
    assert load_handler("forward")(good, ctx)["statusCode"] == 200
    assert base64.b64decode(agent.requests[0]["body"]) == body
    bad = http_event(tid, method="POST", body=body + b" ", headers={"x-hub-signature-256": sig})
    result = load_handler("forward")(bad, ctx)
    assert result["statusCode"] == 403 and result["headers"]["x-tunnel-error"] == "webhook_signature_invalid"
    assert len(agent.requests) == 1


def test_denied_notices_are_rate_limited_and_count_the_suppressed(aws, mgmt, ctx, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(gate.time, "monotonic", lambda: clock[0])
    tid = connect_agent("conn-A", headers=policy_headers(allow=["10.0.0.0/8"]))["tunnel_id"]
    for _ in range(gate.DENIED_BURST + 7):
        assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 403
    assert len(notices(mgmt, "conn-A")) == gate.DENIED_BURST
    clock[0] += 1.0 / gate.DENIED_PER_S
    load_handler("forward")(http_event(tid), ctx)
    sent = notices(mgmt, "conn-A")
    assert len(sent) == gate.DENIED_BURST + 1 and sent[-1]["count"] == 8
    assert sum(n["count"] for n in sent) == gate.DENIED_BURST + 8  # every denial is counted


def test_a_held_back_denial_survives_other_connections_below_the_bound(monkeypatch):
    """The buckets are evicted one at a time, least recently used first: a flood on 1,010 other
    connections no longer wipes every bucket (it used to clear them all past 1,000), so a
    connection that spent its burst stays held back and its held-back denials stay counted."""
    monkeypatch.setattr(gate.time, "monotonic", lambda: 1000.0)
    counts = [gate._denied_notice_count("conn-A") for _ in range(gate.DENIED_BURST + 2)]
    assert counts == [1] * gate.DENIED_BURST + [0, 0]
    for i in range(1010):
        gate._denied_notice_count(f"conn-{i}")
    assert gate._denied_notice_count("conn-A") == 0
    assert gate.DENIED_BUDGETS.get("conn-A").held_back == 3
    for i in range(3 * tunnels.CACHE_MAX):
        gate._denied_notice_count(f"flood-{i}")
    assert len(gate.DENIED_BUDGETS) == tunnels.CACHE_MAX  # bounded


def test_denied_budget_is_spent_atomically_across_threads(monkeypatch):
    """Invocations in threads of one process (the local emulator) share a bucket: exactly the
    burst goes out and every denial is counted once."""
    monkeypatch.setattr(gate.time, "monotonic", lambda: 1000.0)
    counts: list[int] = []
    lock = threading.Lock()

    def deny(n: int) -> None:
        mine = [gate._denied_notice_count("conn-A") for _ in range(n)]
        with lock:
            counts.extend(mine)

    threads = [threading.Thread(target=deny, args=(200,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for c in counts if c) == gate.DENIED_BURST
    assert sum(counts) + gate.DENIED_BUDGETS.get("conn-A").held_back == 8 * 200


def test_forward_parses_each_stored_policy_once(monkeypatch):
    raw = policy.build(deny=["10.0.0.0/8"]).to_json()
    parsed: list[str] = []
    real = policy.parse
    monkeypatch.setattr(policy, "parse", lambda text: parsed.append(text) or real(text))
    assert gate.parsed_policy(raw) is gate.parsed_policy(raw)
    assert parsed == [raw]
    for i in range(gate.POLICY_CACHE_MAX + 5):
        gate.parsed_policy(policy.build(deny=[f"10.{i}.0.0/16"]).to_json())
    assert len(gate.POLICIES) == gate.POLICY_CACHE_MAX


def test_denied_request_costs_one_dynamodb_call(aws, mgmt, ctx, capsys):
    tid = connect_agent("conn-A", headers=policy_headers(deny=["0.0.0.0/0"]))["tunnel_id"]
    capsys.readouterr()
    load_handler("forward")(http_event(tid), ctx)
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"forwarded"' in x]
    assert (line["status"], line["error_code"], line["dynamodb_calls"]) == (403, "ip_denied", 1)


def test_an_unreadable_stored_policy_fails_closed(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    boto3.client("dynamodb").update_item(TableName=CONN_TABLE, Key={"connectionId": {"S": "conn-A"}},
                                         UpdateExpression="SET #p = :p", ExpressionAttributeNames={"#p": "policy"},
                                         ExpressionAttributeValues={":p": {"S": "{broken"}})
    agent = FakeAgent(mgmt, "conn-A", ok())
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 502 and agent.requests == []


def test_allowed_request_overhead_p50(aws, mgmt, ctx):
    """The policy check itself, on a warm instance, for an allowed request with every rule kind
    (the remembered basic-auth digest, 50 CIDRs, a GitHub signature over 64 KB)."""
    p = policy.build(basic_auth=["alice:s3cret"], allow=[f"10.{i}.0.0/16" for i in range(49)] + ["198.51.100.0/24"],
                     hooks=["github:k"], request_add=["x-a: 1"])
    raw = p.to_json()
    body = b"x" * 65536
    headers = {**basic("alice", "s3cret"), "x-hub-signature-256": "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()}
    assert policy.check(gate.parsed_policy(raw), raw, "198.51.100.9", headers, body) is None  # first: scrypt once
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        assert policy.check(gate.parsed_policy(raw), raw, "198.51.100.9", headers, body) is None
        samples.append(time.perf_counter() - started)
    p50_ms = sorted(samples)[100] * 1000
    print(f"policy check p50 {p50_ms:.3f} ms")
    assert p50_ms < 5, p50_ms  # no scrypt on the warm path; the HMAC of 64 KB dominates
