"""The layer's side of the second security review (issue 30), item by item; the attacks through
the stack are in tests/security/test_review_findings.py."""

from __future__ import annotations

import json

import pytest

from httptunnel import events, gate, to_caller

from .helpers import connect_agent, load_handler
from .test_forward_basic import FakeAgent, http_event, ok
from .test_forward_policy import policy_headers


@pytest.fixture(autouse=True)
def _cold_instance():
    gate.DENIED_BUDGETS.clear()
    gate.POLICIES.clear()


# --------------------------------------------------------------------------- 1. rules, then cookie scope

@pytest.mark.parametrize("host", [None, "{tid}.t.example.com"])
def test_a_response_rule_cookie_is_scoped_like_the_agents(aws, mgmt, ctx, monkeypatch, host):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    rule = "Set-Cookie: planted=1; Domain=t.example.com; Path=/"
    tid = connect_agent("conn-A", headers=policy_headers(response_add=[rule]))["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"hi"))
    event = http_event(tid) if host is None else http_event(tid, host=host.format(tid=tid))
    result = load_handler("forward")(event, ctx)
    assert result["statusCode"] == 200
    [cookie] = result["cookies"]
    assert "domain" not in cookie.lower() and cookie.startswith("planted=1")


# --------------------------------------------------------------------------- 12. header names are tokens

@pytest.mark.parametrize("name", ["Set-Cookie ", " Set-Cookie", "Set-Cookie\t", "X:Y", "X Y", "", "X\u00e9"])
def test_an_agent_header_name_that_is_not_a_token_is_a_502(aws, mgmt, ctx, name):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"hi", headers={name: ["evil=1; Domain=t.example.com"]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "internal_error"
    assert "evil" not in json.dumps(result)


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "a\nb", "a\x00b"])
def test_an_agent_header_value_with_line_breaks_is_a_502(aws, mgmt, ctx, value):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"hi", headers={"X-A": [value]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502


def test_token_check_unit():
    assert to_caller.invalid_header({"X-Ok": ["v"], "set-cookie": ["a=1"], "!#$%&'*+-.^_`|~09az": [""]}) is None
    assert to_caller.invalid_header({"X-Ok": ["v"], "Set-Cookie ": ["a=1"]}) == "Set-Cookie "


# --------------------------------------------------------------------------- 13. the 307 to S3

@pytest.mark.parametrize("content_type, inline", [
    ("text/html", False), ("TEXT/HTML; charset=utf-8", False), ("image/svg+xml", False), ("application/xml", False),
    ("text/xml", False), ("application/xhtml+xml", False), ("text/javascript", False), ("application/pdf", False),
    ("", False), ("made/up", False),
    ("image/png", True), ("application/json", True), ("text/plain; charset=utf-8", True), ("video/mp4", True),
    ("application/octet-stream", True),
])
def test_only_passive_types_are_served_inline_from_the_bucket(content_type, inline):
    assert to_caller.passive(content_type) is inline


def test_the_download_url_asks_s3_for_an_attachment(aws, monkeypatch):
    from httptunnel import bodies
    monkeypatch.setenv("BODY_BUCKET", "bucket")
    url = bodies.response_download_url("r1", "v1", "text/html", attachment=True)
    assert "response-content-disposition=attachment" in url
    assert "response-content-disposition" not in bodies.response_download_url("r1", "v1", "image/png")


# --------------------------------------------------------------------------- 16. non-ASCII header values (layer hop)

def test_a_non_ascii_header_value_leaves_the_layer_as_the_same_text(aws, mgmt, ctx):
    """The layer hop of issue 30 item 16: what the agent sent is what the Lambda result says (the
    runtime's JSON carries it as text; the emulator hop is tests/emulator, the agent's tests/cli)."""
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"hi", headers={"X-U": ["café ☕"], "Content-Type": ["text/plain"]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 200 and result["headers"]["X-U"] == "café ☕"
    assert json.loads(json.dumps(result))["headers"]["X-U"] == "café ☕"
    assert events.http_response(200, {"X-U": ["café"]}, b"")["headers"] == {"X-U": "café"}


# --------------------------------------------------------------------------- 11. deeply nested JSON

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_deeply_nested_policy_is_a_policy_error():
    from httptunnel import policy
    with pytest.raises(policy.PolicyError, match="not valid JSON"):
        policy.parse('{"v":1,"allow":' + "[" * 2000 + "]" * 2000 + "}")  # fits POLICY_MAX


def test_a_deeply_nested_frame_is_a_protocol_error_and_the_response_lambda_answers_200(aws, mgmt, ctx):
    from httptunnel import protocol

    from .helpers import ws_event
    with pytest.raises(protocol.ProtocolError, match="nested too deeply"):
        protocol.decode('{"type":"ping","x":' + DEEP + "}")
    connect_agent("conn-A")
    result = load_handler("response")(ws_event("default_message.json", "conn-A", body='{"type":"ping","x":' + DEEP + "}"), ctx)
    assert result["statusCode"] == 200


def test_a_deeply_nested_token_is_unauthorized():
    import base64

    from httptunnel import auth
    part = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
    with pytest.raises(auth.Unauthorized):
        auth._json_object(auth._b64url(part), "payload")


# --------------------------------------------------------------------------- 7. IPv4-mapped IPv6 rules

@pytest.mark.parametrize("rule, network", [
    ("::ffff:1.2.3.4/128", "1.2.3.4/32"), ("::ffff:1.2.3.4", "1.2.3.4/32"), ("::ffff:198.51.100.0/120", "198.51.100.0/24"),
    ("::ffff:0:0/96", "0.0.0.0/0"), ("2001:db8::/32", "2001:db8::/32"), ("::/0", "::/0"),
])
def test_ipv4_mapped_rules_become_ipv4_at_parse_time(rule, network):
    from httptunnel import policy
    assert str(policy.parse_cidr(rule)) == network


def test_a_mapped_deny_rule_refuses_an_ipv4_caller(aws, mgmt, ctx):
    from .test_forward_policy import from_ip
    tid = connect_agent("conn-A", headers=policy_headers(deny=["::ffff:198.51.100.0/120"]))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    result = load_handler("forward")(from_ip(http_event(tid), "198.51.100.9"), ctx)
    assert result["statusCode"] == 403 and agent.requests == []
    assert load_handler("forward")(from_ip(http_event(tid), "203.0.113.5"), ctx)["statusCode"] == 200


# --------------------------------------------------------------------------- 6. basic auth

def _basic(user: str, password: str) -> dict[str, str]:
    import base64
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_failed_sign_ins_are_budgeted_per_tunnel_and_source_ip(aws, mgmt, ctx, monkeypatch):
    from httptunnel import gate, policy

    from .test_forward_policy import from_ip
    gate.AUTH_FAILURES.clear()
    tid = connect_agent("conn-A", headers=policy_headers(basic_auth=["alice:right"]))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    forward = load_handler("forward")
    statuses = [forward(http_event(tid, headers=_basic("alice", f"guess{i}")), ctx)["statusCode"]
                for i in range(gate.AUTH_FAILURE_BURST)]
    assert statuses == [401] * gate.AUTH_FAILURE_BURST
    hashed: list[bytes] = []
    with monkeypatch.context() as patch:
        patch.setattr(policy.User, "matches", lambda self, pw: hashed.append(pw) or False)
        throttled = forward(http_event(tid, headers=_basic("alice", "right")), ctx)
    assert throttled["statusCode"] == 429 and throttled["headers"]["x-tunnel-error"] == "basic_auth_throttled"
    assert 1 <= int(throttled["headers"]["retry-after"]) <= 6 and hashed == []  # refused unchecked
    assert forward(http_event(tid), ctx)["statusCode"] == 401  # no credentials: the prompt, not a 429
    other = forward(from_ip(http_event(tid, headers=_basic("alice", "right")), "203.0.113.5"), ctx)
    assert other["statusCode"] == 200 and len(agent.requests) == 1  # another address has its own budget


def test_an_unknown_user_costs_the_same_scrypt(monkeypatch):
    from httptunnel import policy
    rules = policy.build(basic_auth=["alice:right"])
    calls = []
    real = policy.hashlib.scrypt
    monkeypatch.setattr(policy.hashlib, "scrypt", lambda *a, **k: calls.append(k["n"]) or real(*a, **k))
    assert policy.check(rules, rules.to_json(), "198.51.100.9", _basic("mallory", "x"), b"") is not None
    assert calls == [policy.SCRYPT_N]


def test_the_realm_names_the_tunnel(aws, mgmt, ctx):
    tid = connect_agent("conn-A", headers=policy_headers(basic_auth=["alice:right"]))["tunnel_id"]
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["headers"]["www-authenticate"] == f'Basic realm="http-tunnel {tid}", charset="UTF-8"'


@pytest.mark.parametrize("forward_authorization", [False, True])
def test_the_consumed_authorization_reaches_the_app_only_when_asked(aws, mgmt, ctx, forward_authorization):
    from httptunnel import policy
    built = policy.build(basic_auth=["alice:right"], forward_authorization=forward_authorization)
    tid = connect_agent("conn-A", headers={policy.HEADER: policy.to_header(built)})["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    forged = {"x-forwarded-user": "admin", **_basic("alice", "right")}
    assert load_handler("forward")(http_event(tid, headers=forged), ctx)["statusCode"] == 200
    [msg] = agent.requests
    assert msg["headers"]["x-forwarded-user"] == ["alice"]
    assert ("authorization" in msg["headers"]) is forward_authorization


def test_without_basic_auth_a_callers_x_forwarded_user_never_reaches_the_app(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    load_handler("forward")(http_event(tid, headers={"x-forwarded-user": "admin", "authorization": "Bearer x"}), ctx)
    [msg] = agent.requests
    assert "x-forwarded-user" not in msg["headers"] and msg["headers"]["authorization"] == ["Bearer x"]


def test_fa_round_trips_and_is_refused_when_not_true():
    from httptunnel import policy
    built = policy.build(basic_auth=["a:b"], forward_authorization=True)
    assert policy.parse(built.to_json()).forward_authorization is True
    with pytest.raises(policy.PolicyError, match="fa must be true"):
        policy.parse('{"v":1,"fa":false}')


# --------------------------------------------------------------------------- 5. a reconnect with another policy

def test_a_request_checked_against_the_cached_connection_is_checked_again_on_the_new_one(aws, mgmt, ctx):
    """The cached connection had no policy; the agent reconnected with a deny rule for this caller:
    the request is refused, never delivered on the new connection."""
    import time

    from httptunnel import policy, store

    from .helpers import FakeContext, ws_event
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"old"))
    assert load_handler("forward")(http_event(tid), ctx)["body"] == "old"  # conn-A is now cached
    load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), FakeContext())
    mgmt.gone.add("conn-A")
    denying = policy.build(deny=["198.51.100.0/24"], request_add=["X-New: 1"]).to_json()
    store.put_connection(store.Connection(connection_id="conn-B", tunnel_id=tid, connected_at=int(time.time() * 1000),
                                          domain_name="abc123ws.execute-api.us-east-1.amazonaws.com", stage="prod",
                                          policy=denying))
    fresh = FakeAgent(mgmt, "conn-B", ok(b"new"))
    result = load_handler("forward")(http_event(tid), ctx)  # from 198.51.100.9
    assert result["statusCode"] == 403 and result["headers"]["x-tunnel-error"] == "ip_denied"
    assert fresh.requests == []


def test_a_reconnect_with_another_policy_gets_the_frame_its_rules_make(aws, mgmt, ctx):
    import time

    from httptunnel import policy, store

    from .helpers import FakeContext, ws_event
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"old"))
    load_handler("forward")(http_event(tid), ctx)
    load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), FakeContext())
    mgmt.gone.add("conn-A")
    store.put_connection(store.Connection(connection_id="conn-B", tunnel_id=tid, connected_at=int(time.time() * 1000),
                                          domain_name="abc123ws.execute-api.us-east-1.amazonaws.com", stage="prod",
                                          policy=policy.build(request_add=["X-New: 1"]).to_json()))
    fresh = FakeAgent(mgmt, "conn-B", ok(b"new"))
    assert load_handler("forward")(http_event(tid), ctx)["body"] == "new"
    [msg] = fresh.requests
    assert msg["headers"]["x-new"] == ["1"]


# --------------------------------------------------------------------------- 9. cleanup's projection

def test_cleanup_never_reads_a_policy_or_a_subject(aws, mgmt, ctx, monkeypatch):
    from httptunnel import cleanup, store
    connect_agent("conn-A", headers=policy_headers(basic_auth=["alice:pw"], hooks=["github:whsec"]))
    seen: list[dict] = []
    real = store.scan_pages

    def recording(*args, **kwargs):
        for rows, key in real(*args, **kwargs):
            seen.extend(rows)
            yield rows, key
    monkeypatch.setattr(store, "scan_pages", recording)
    cleanup.run(ctx)
    [row] = [r for r in seen if r.get("connectionId") == "conn-A"]
    assert set(row) <= {"connectionId", *cleanup.SCANNED_ATTRIBUTES}, row
    assert "policy" not in row and "whsec" not in json.dumps(row, default=str)


# --------------------------------------------------------------------------- 4. rotating the HS secret

def test_a_rotated_secret_reaches_warm_connect_and_cleanup_closes_older_sockets(aws, mgmt, ctx, monkeypatch):
    import time

    import boto3

    from httptunnel import auth, cleanup, store

    from .test_auth import SECRET, hs
    from .test_auth import connect as connect_with
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/tunnel/jwt", Value=SECRET, Type="SecureString")
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_SECRET_SSM_PARAMETER", "/tunnel/jwt")
    assert connect_with(hs())["statusCode"] == 200  # conn-J, verified with version 1
    assert store.get_connection("conn-J").secret_version == 1
    old = time.time() * 1000 - 10 * 60_000  # old enough to be probed, alive on GET @connections

    rotated = SECRET[::-1]
    ssm.put_parameter(Name="/tunnel/jwt", Value=rotated, Type="SecureString", Overwrite=True)  # version 2
    assert connect_with(hs())["statusCode"] == 200  # a warm container still has version 1 ...
    clock = time.monotonic() + auth.SECRET_CACHE_S + 1
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock)
    assert connect_with(hs())["statusCode"] == 401  # ... for at most SECRET_CACHE_S: then the old token fails
    assert connect_with(hs(secret=rotated))["statusCode"] == 200
    assert store.get_connection("conn-J").secret_version == 2
    store.put_connection(store.Connection(connection_id="conn-OLD", tunnel_id="t-old", connected_at=int(old),
                                          secret_version=1))
    summary = cleanup.run(ctx)
    assert summary["rotated_closed"] == 1 and "conn-OLD" in mgmt.closed
    assert store.get_connection("conn-OLD") is None and store.get_connection("conn-J") is not None


def test_cleanup_reads_the_secrets_version_not_the_secret(aws, monkeypatch):
    import boto3

    from httptunnel import auth
    boto3.client("ssm").put_parameter(Name="/tunnel/jwt", Value="x" * 64, Type="SecureString")
    monkeypatch.setenv("JWT_SECRET_SSM_PARAMETER", "/tunnel/jwt")
    calls = []
    real = auth.aws.client

    def recording(name):
        client = real(name)
        original = client.get_parameter

        def get_parameter(**kw):
            calls.append(kw)
            return original(**kw)
        client.get_parameter = get_parameter
        return client
    monkeypatch.setattr(auth.aws, "client", recording)
    assert auth.current_secret_version() == 1 and calls == [{"Name": "/tunnel/jwt", "WithDecryption": False}]
