"""forward_stream behind CloudFront (httptunnel.edge_origin): the tunnel's host and the viewer's
address are believed only with the secret origin header; a direct call to the function URL gets
403 edge_bypass; without CloudFront (no domain) the function URL's own host and sourceIp are used."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from httptunnel import edge_origin

from .helpers import connect_agent, load_handler
from .test_forward_basic import FakeAgent, ok
from .test_forward_policy import policy_headers
from .test_forward_stream import StreamContext, url_event

PARAMETER = "/http-tunnel/edge-origin-secret"
SECRET = "s" * 48
DOMAIN = "t.example.com"
CLOUDFRONT_IP = "130.176.1.7"  # the address CloudFront's origin fetch comes from (the event's sourceIp)
VIEWER_IP = "203.0.113.5"


@pytest.fixture
def fronted(aws, monkeypatch):
    """CloudFront in front: the parameter Terraform sets, the secret in SSM, a wildcard domain."""
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=SECRET, Type="SecureString")
    monkeypatch.setenv("EDGE_ORIGIN_SECRET_SSM_PARAMETER", PARAMETER)
    monkeypatch.setenv("TUNNEL_DOMAIN", DOMAIN)


def via_cloudfront(tid: str, path: str = "/x", secret: str | None = SECRET, **headers: str) -> dict[str, Any]:
    """What the function URL gets from CloudFront: its own host, CloudFront's sourceIp, and the
    headers the viewer-request function and the origin add."""
    event = url_event(tid, path, query="")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path  # subdomain form: no /<id> prefix
    event["requestContext"]["http"]["sourceIp"] = CLOUDFRONT_IP
    added = {"x-tunnel-host": f"{tid}.{DOMAIN}", "x-tunnel-viewer-address": VIEWER_IP,
             "cloudfront-viewer-address": f"{VIEWER_IP}:50123",
             "x-forwarded-for": f"198.51.100.1, {VIEWER_IP}, {CLOUDFRONT_IP}"}
    if secret is not None:
        added["x-tunnel-origin-verify"] = secret
    event["headers"].update({**added, **headers})
    return event


def serve(event: dict[str, Any]) -> StreamContext:
    ctx = StreamContext()
    assert load_handler("forward_stream")(event, ctx) is None
    return ctx


def test_with_the_secret_the_tunnel_host_and_viewer_address_are_the_callers(fronted, mgmt):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    ctx = serve(via_cloudfront(tid, "/a%2Fb"))
    assert ctx.head[0] == 200 and ctx.body == b"hi"
    [request] = agent.requests
    headers = {k: v[0] for k, v in request["headers"].items()}
    assert request["uri"] == "/a%2Fb"  # subdomain form, the path as sent
    assert headers["host"] == headers["x-forwarded-host"] == f"{tid}.{DOMAIN}"
    assert headers["x-real-ip"] == VIEWER_IP and headers["x-forwarded-for"] == f"198.51.100.1, {VIEWER_IP}"
    assert not set(edge_origin.EDGE_HEADERS) & set(headers), "CloudFront's headers and the secret never reach the agent"


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET[:-1], SECRET + "x"])
def test_without_the_secret_a_direct_call_is_refused_403_edge_bypass(fronted, mgmt, secret):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    ctx = serve(via_cloudfront(tid, secret=secret))
    assert ctx.head[0] == 403 and ctx.head[1]["x-tunnel-error"] == "edge_bypass"
    assert agent.requests == []


def test_a_direct_call_in_path_form_is_refused_too(fronted, mgmt):
    tid = connect_agent("conn-A")["tunnel_id"]
    ctx = serve(url_event(tid, "/x"))  # the function URL's own host, no CloudFront header at all
    assert ctx.head[0] == 403 and ctx.head[1]["x-tunnel-error"] == "edge_bypass"


def test_the_viewer_address_is_what_the_edge_policy_checks(fronted, mgmt):
    tid = connect_agent("conn-A", headers=policy_headers(allow=["203.0.113.0/24"]))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    assert serve(via_cloudfront(tid)).head[0] == 200  # the viewer is allowed, CloudFront's address is not
    denied = serve(via_cloudfront(tid, **{"x-tunnel-viewer-address": "198.51.100.9",
                                         "cloudfront-viewer-address": "198.51.100.9:1"}))
    assert denied.head[0] == 403 and denied.head[1]["x-tunnel-error"] == "ip_denied"
    assert len(agent.requests) == 1


@pytest.mark.parametrize("value, ip", [("203.0.113.5:50123", "203.0.113.5"), ("2001:db8::5:443", "2001:db8::5"),
                                       ("[2001:db8::5]:443", "2001:db8::5"), ("203.0.113.5", "203.0.113.5"),
                                       ("not an address", "")])
def test_cloudfront_viewer_address_is_the_fallback(value, ip):
    assert edge_origin.viewer_ip({"cloudfront-viewer-address": value}) == ip
    assert edge_origin.viewer_ip({"x-tunnel-viewer-address": "192.0.2.1", "cloudfront-viewer-address": value}) \
        == "192.0.2.1"


def test_with_the_secret_but_no_host_the_edge_is_misconfigured_502(fronted, mgmt):
    tid = connect_agent("conn-A")["tunnel_id"]
    event = via_cloudfront(tid)
    del event["headers"]["x-tunnel-host"]
    ctx = serve(event)
    assert ctx.head[0] == 502 and ctx.head[1]["x-tunnel-error"] == "internal_error"


def test_without_cloudfront_the_function_urls_own_host_and_source_ip_are_used(aws, mgmt):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hi"))
    forged = url_event(tid, "/x", headers={"x-tunnel-host": "other.t.example.com", "x-tunnel-viewer-address": "192.0.2.1",
                                           "x-tunnel-origin-verify": SECRET})
    assert serve(forged).head[0] == 200
    headers = {k: v[0] for k, v in agent.requests[0]["headers"].items()}
    assert headers["host"] == "abcdefurl.lambda-url.us-east-1.on.aws"
    assert headers["x-real-ip"] == "198.51.100.9"  # requestContext.http.sourceIp, not the forged header


def test_the_secret_is_read_once_and_a_rotation_is_picked_up(fronted, mgmt, monkeypatch):
    reads = []
    real = edge_origin._read
    monkeypatch.setattr(edge_origin, "_read", lambda name: reads.append(name) or real(name))
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"hi"))
    for _ in range(3):
        assert serve(via_cloudfront(tid)).head[0] == 200
    for _ in range(5):  # wrong values re-read it only once it is REFETCH_S old
        assert serve(via_cloudfront(tid, secret="w" * 48)).head[0] == 403
    assert len(reads) == 1
    rotated = "r" * 48
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=rotated, Type="SecureString", Overwrite=True)
    assert serve(via_cloudfront(tid, secret=rotated)).head[0] == 403  # within the minute: still the old secret
    monkeypatch.setattr(edge_origin, "REFETCH_S", 0.0)
    assert serve(via_cloudfront(tid, secret=rotated)).head[0] == 200
    assert serve(via_cloudfront(tid)).head[0] == 403  # the old one no longer opens
    assert len(reads) == 3


def test_a_short_secret_is_a_deployment_error(aws, mgmt, monkeypatch):
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value="short", Type="SecureString")
    monkeypatch.setenv("EDGE_ORIGIN_SECRET_SSM_PARAMETER", PARAMETER)
    tid = connect_agent("conn-A")["tunnel_id"]
    ctx = serve(via_cloudfront(tid, secret="short"))
    assert ctx.head[0] == 502 and ctx.head[1]["x-tunnel-error"] == "internal_error"
