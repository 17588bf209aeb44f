"""The public edge (issue 12): cookie scope, path routing off, pinned big bodies and the upload
policy, proxy headers owned by forward, the time-left field and the tunnel_busy code."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from httptunnel import bodies, limits, protocol, replies, rewrite, to_agent, to_caller

from .helpers import BUCKET, connect_agent, load_handler
from .test_forward_basic import FakeAgent, http_event, ok
from .test_forward_edges import _s3_key


# --------------------------------------------------------------------------- 1. cookies

@pytest.mark.parametrize("value,expected", [
    ("sid=1; Domain=t.example.com; Path=/; HttpOnly", "sid=1; Path=/; HttpOnly"),
    ("sid=1;domain=.t.example.com", "sid=1"),
    ("sid=1; DOMAIN = evil ; Secure; Domain=x", "sid=1; Secure"),
    ("domain=keep-this-name; Path=/", "domain=keep-this-name; Path=/"),  # the NAME is not an attribute
    ("plain=1", "plain=1"),
    ("a=b; Expires=Wed, 21 Oct 2026 07:28:00 GMT; SameSite=Lax", "a=b; Expires=Wed, 21 Oct 2026 07:28:00 GMT; SameSite=Lax"),
])
def test_cookie_domain_is_dropped_and_every_other_byte_kept(value, expected):
    assert rewrite.drop_cookie_domain(value) == expected


def _cookie_agent(mgmt):
    return FakeAgent(mgmt, "conn-A", ok(b"x", headers={"content-type": ["text/plain"], "set-cookie": [
        "sid=1; Domain=t.example.com; Path=/", "other=2; Path=/a; domain=.example.com; Secure"]}))


def test_origin_cannot_set_domain_cookies_in_subdomain_mode(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    tid = connect_agent("conn-A")["tunnel_id"]
    _cookie_agent(mgmt)
    result = load_handler("forward")(http_event(tid, path="/", host=f"{tid}.t.example.com"), ctx)
    assert result["cookies"] == ["sid=1; Path=/", "other=2; Path=/a; Secure"]


@pytest.mark.parametrize("rewrite_header,prefixed", [("on", True), ("off", False)])
def test_origin_cannot_set_domain_cookies_in_path_mode_even_without_rewriting(aws, mgmt, ctx, rewrite_header,
                                                                             prefixed):
    tid = connect_agent("conn-A", headers={"X-Tunnel-Rewrite": rewrite_header})["tunnel_id"]
    _cookie_agent(mgmt)
    result = load_handler("forward")(http_event(tid, path="/"), ctx)
    prefix = f"/{tid}" if prefixed else ""
    assert result["cookies"] == [f"sid=1; Path={prefix}/", f"other=2; Path={prefix}/a; Secure"]


def test_path_routing_off_refuses_path_urls_and_keeps_subdomains(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    monkeypatch.setenv("SUBDOMAIN_URL_TEMPLATE", "https://{tunnel_id}.t.example.com")
    monkeypatch.setenv("PATH_ROUTING", "false")
    established = connect_agent("conn-A")
    tid = established["tunnel_id"]
    assert established["public_url"] == f"https://{tid}.t.example.com"
    assert "path_based_url" not in established  # nobody is told about a URL that does not work
    agent = FakeAgent(mgmt, "conn-A", ok())
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 404 and result["headers"]["x-tunnel-error"] == "tunnel_not_found"
    assert agent.requests == []
    assert load_handler("forward")(http_event(tid, path="/", host=f"{tid}.t.example.com"), ctx)["statusCode"] == 200


def test_a_malformed_path_routing_setting_is_a_configuration_error(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("PATH_ROUTING", "maybe")
    result = load_handler("forward")(http_event("abcdefghij12"), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "internal_error"


# --------------------------------------------------------------------------- 2. big bodies

def _form_policy(form: dict) -> dict:
    return json.loads(base64.b64decode(form["fields"]["policy"]))


def test_upload_form_policy_caps_the_size_pins_the_key_and_expires(aws):
    before = time.time()
    form = bodies.response_upload_form("req123")
    policy = _form_policy(form)
    conditions = policy["conditions"]
    assert ["content-length-range", 0, limits.BODY_MAX] in conditions
    assert {"key": "resp/req123"} in conditions  # exact match, not starts-with
    assert {"bucket": BUCKET} in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)
    expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + bodies.PRESIGN_EXPIRES_S - 5 <= expires <= time.time() + bodies.PRESIGN_EXPIRES_S + 5
    assert form["fields"]["key"] == "resp/req123"
    assert {"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature", "policy"} <= set(form["fields"])
    assert BUCKET in form["url"]


def test_request_carries_the_post_form_and_no_put_url(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    load_handler("forward")(http_event(tid), ctx)
    msg = agent.requests[0]
    assert "response_upload_url" not in msg
    assert _form_policy(msg["response_upload"])["conditions"].count(["content-length-range", 0, limits.BODY_MAX]) == 1
    decoded = protocol.decode(json.dumps(msg))
    assert isinstance(decoded, protocol.HttpRequest) and decoded.response_upload == msg["response_upload"]


@pytest.mark.parametrize("bad", [{"url": 1, "fields": {}}, {"url": "u"}, {"url": "u", "fields": {"k": 1}}, []])
def test_malformed_upload_form_is_a_protocol_error(bad):
    frame = json.dumps({"type": "http_request", "request_id": "r", "method": "GET", "uri": "/",
                        "response_upload": bad})
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(frame)


def test_swapped_upload_after_the_check_never_reaches_the_caller(aws, mgmt, ctx):
    """The agent uploads the body forward checks, then (its form still valid) uploads another:
    the 307 names the version forward checked, so the caller gets the checked bytes."""
    tid = connect_agent("conn-A")["tunnel_id"]
    s3 = boto3.client("s3")
    checked = os.urandom(5 * limits.MB)
    keys: list[str] = []

    def reply(msg):
        key = msg["response_upload"]["fields"]["key"]
        keys.append(key)
        s3.put_object(Bucket=BUCKET, Key=key, Body=checked)
        return protocol.HttpResponse(request_id=msg["request_id"], status_code=200,
                                     headers={"content-type": ["application/octet-stream"]}, body_uploaded=True,
                                     body_size=len(checked), body_sha256=hashlib.sha256(checked).hexdigest())
    FakeAgent(mgmt, "conn-A", reply)
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 307
    s3.put_object(Bucket=BUCKET, Key=keys[0], Body=b"swapped: 11 MB of something else")  # the attack
    query = parse_qs(urlparse(result["headers"]["location"]).query)
    version = query["versionId"][0]
    assert s3.get_object(Bucket=BUCKET, Key=keys[0], VersionId=version)["Body"].read() == checked
    assert s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read() != checked  # the key itself did change


def test_rewritten_big_body_is_stored_by_forward_and_pinned(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setattr(to_caller, "RESULT_HEADROOM", limits.LAMBDA_PAYLOAD_MAX - 1000)  # nothing fits inline
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b'<a href="/x">' + b"y" * 3000, headers={"content-type": ["text/html"]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 307
    location = result["headers"]["location"]
    version = parse_qs(urlparse(location).query)["versionId"][0]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=_s3_key(location), VersionId=version)["Body"].read()
    assert body.startswith(f'<a href="/{tid}/x">'.encode())


def test_unversioned_bucket_fails_closed(aws, mgmt, ctx, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="plain-bucket")
    monkeypatch.setenv("BODY_BUCKET", "plain-bucket")
    tid = connect_agent("conn-A")["tunnel_id"]
    s3 = boto3.client("s3")
    body = os.urandom(100_000)

    def reply(msg):
        s3.put_object(Bucket="plain-bucket", Key=msg["response_upload"]["fields"]["key"], Body=body)
        return protocol.HttpResponse(request_id=msg["request_id"], status_code=200, body_uploaded=True,
                                     body_sha256=hashlib.sha256(body).hexdigest())
    FakeAgent(mgmt, "conn-A", reply)
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "internal_error"


# --------------------------------------------------------------------------- 3. time left, tunnel_busy

def test_request_says_how_much_time_is_left(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("FORWARD_WAIT_SECONDS", "3")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    before = int(time.time() * 1000)
    load_handler("forward")(http_event(tid), ctx)
    msg = agent.requests[0]
    assert 2000 < msg["time_left_ms"] <= 3000
    assert before <= msg["timestamp"] and msg["deadline_ms"] - msg["timestamp"] <= 3000 + 50  # still sent


def test_tunnel_busy_is_429(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", lambda m: protocol.Error(request_id=m["request_id"], code="tunnel_busy",
                                                   message="64 requests queued"))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 429 and result["headers"]["x-tunnel-error"] == "tunnel_busy"
    # the agent's message stays local: callers get the code's fixed sentence (issue 14)
    assert result["body"] == replies.PUBLIC_MESSAGES["tunnel_busy"] + "\n"


# --------------------------------------------------------------------------- 4. proxy headers

FORGED = {name: "evil.example" for name in to_agent.PROXY_HEADERS}


def _seen(agent) -> dict[str, list[str]]:
    return agent.requests[-1]["headers"]


def test_caller_cannot_choose_proxy_headers_in_path_mode(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    load_handler("forward")(http_event(tid, headers=FORGED | {"x-forwarded-for": "10.0.0.1, 198.51.100.9"}), ctx)
    headers = _seen(agent)
    assert not any("evil.example" in v for values in headers.values() for v in values), headers
    host = "abc123http.execute-api.us-east-1.amazonaws.com"
    assert headers["x-forwarded-host"] == [host]
    assert headers["x-forwarded-proto"] == ["https"] and headers["x-forwarded-port"] == ["443"]
    assert headers["x-forwarded-prefix"] == [f"/{tid}"]
    assert headers["x-real-ip"] == ["198.51.100.9"]
    assert headers["forwarded"] == [f"for=198.51.100.9;host={host};proto=https"]
    # the caller's chain is kept; the address API Gateway saw stays last and is not doubled
    assert headers["x-forwarded-for"] == ["10.0.0.1, 198.51.100.9"]
    assert set(headers) & to_agent.PROXY_HEADERS == {"forwarded", "x-real-ip", "x-forwarded-host",
                                                       "x-forwarded-port", "x-forwarded-proto", "x-forwarded-prefix"}


def test_caller_cannot_choose_proxy_headers_in_subdomain_mode(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    event = http_event(tid, path="/p", host=f"{tid}.t.example.com", headers=FORGED | {"x-forwarded-for": "6.6.6.6"})
    event["requestContext"]["http"]["sourceIp"] = "2001:db8::7"
    load_handler("forward")(event, ctx)
    headers = _seen(agent)
    assert "x-forwarded-prefix" not in headers
    assert headers["x-forwarded-host"] == [f"{tid}.t.example.com"]
    assert headers["x-forwarded-for"] == ["6.6.6.6, 2001:db8::7"]  # last entry: what API Gateway saw
    assert headers["x-real-ip"] == ["2001:db8::7"]
    assert headers["forwarded"] == [f'for="[2001:db8::7]";host={tid}.t.example.com;proto=https']


def test_local_stack_scheme_and_port_come_from_the_public_url(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("PUBLIC_HTTP_URL", "http://127.0.0.1:8123")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    event = http_event(tid)
    event["requestContext"]["domainName"] = "127.0.0.1"
    load_handler("forward")(event, ctx)
    headers = _seen(agent)
    assert headers["x-forwarded-proto"] == ["http"] and headers["x-forwarded-port"] == ["8123"]
    assert headers["forwarded"] == ['for=198.51.100.9;host="127.0.0.1:8123";proto=http']


def test_without_a_valid_source_ip_the_callers_chain_is_dropped(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    event = http_event(tid, headers={"x-forwarded-for": "6.6.6.6"})
    event["requestContext"]["http"]["sourceIp"] = "not-an-ip"
    load_handler("forward")(event, ctx)
    headers = _seen(agent)
    assert "x-forwarded-for" not in headers and "x-real-ip" not in headers
    assert headers["forwarded"][0].startswith("host=")
