"""Caller WebSockets on a tunnel's own hostname through CloudFront (issue 24,
httptunnel.caller_ws.through_cloudfront): the distribution's viewer-request function sends the
handshake to the caller API with the viewer's host, address and request target in headers
(terraform/modules/cloudfront/viewer_request.js), and the origin adds the secret header.
caller_connect believes those headers only with the secret: a caller on the caller API's own name
(``sockets.<domain>``, or the execute-api name) cannot name another tunnel or path with them, and
without CloudFront nothing changes."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from httptunnel import caller_ws, edge_origin, names, policy

from . import test_caller_ws
from .helpers import connect_agent
from .test_caller_ws import DOMAIN, agent, answer_opens, caller_event, run

callers = test_caller_ws.callers  # its fixture: the caller API's settings over moto and a fake @connections

PARAMETER = "/http-tunnel/edge-origin-secret"
SECRET = "s" * 48
CLOUDFRONT_IP = "130.176.1.7"  # CloudFront's origin fetch: the $connect event's sourceIp
VIEWER_IP = "198.51.100.20"


@pytest.fixture
def fronted(callers, monkeypatch):
    """CloudFront in front: the parameter Terraform sets for caller_connect and the secret in SSM."""
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=SECRET, Type="SecureString")
    monkeypatch.setenv("EDGE_ORIGIN_SECRET_SSM_PARAMETER", PARAMETER)
    return callers


def via_cloudfront(socket_id: str, host: str, target: str, secret: str | None = SECRET,
                   query: dict[str, list[str]] | None = None, **extra: str) -> dict[str, Any]:
    """A $connect as CloudFront's origin fetch makes it: the caller API's own name (no tunnel in
    domainName), CloudFront's address, and the headers the function and the origin add."""
    headers = {edge_origin.HOST_HEADER: host, edge_origin.VIEWER_HEADER: VIEWER_IP, caller_ws.TARGET_HEADER: target,
               "X-Forwarded-For": f"{VIEWER_IP}, {CLOUDFRONT_IP}", "Origin": f"https://{host}", "Cookie": "sid=1",
               **extra}
    if secret is not None:
        headers[edge_origin.SECRET_HEADER] = secret
    event = caller_event("connect.json", socket_id, headers=headers, query=query)
    event["requestContext"]["identity"]["sourceIp"] = CLOUDFRONT_IP
    return event


def test_a_handshake_on_the_tunnels_hostname_reaches_the_apps_own_path_and_query(fronted):
    tunnel_id = agent()
    opens = answer_opens(fronted)
    target = "/socket.io/?EIO=4&transport=websocket&t=a%2Fb"
    result = run("caller_connect", via_cloudfront("caller-1", f"{tunnel_id}.{DOMAIN}", target))
    assert result == {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat"}}
    (sent,) = opens
    assert sent.uri == target, "path and query byte for byte"
    headers = sent.headers
    assert not [name for name in headers if name.startswith("x-tunnel-")], "CloudFront's headers never reach the app"
    assert headers["x-forwarded-host"] == [f"{tunnel_id}.{DOMAIN}"] and headers["origin"] == [f"https://{tunnel_id}.{DOMAIN}"]
    assert headers["x-forwarded-for"] == [VIEWER_IP] and headers["x-real-ip"] == [VIEWER_IP], "the viewer, not CloudFront"
    assert headers["cookie"] == ["sid=1"]


def test_the_path_form_through_cloudfront_strips_the_tunnel_prefix(fronted, monkeypatch):
    tunnel_id = agent()
    opens = answer_opens(fronted)
    assert run("caller_connect", via_cloudfront("caller-1", DOMAIN, f"/{tunnel_id}/cable?x=1"))["statusCode"] == 200
    assert opens[0].uri == "/cable?x=1" and opens[0].headers["x-forwarded-prefix"] == [f"/{tunnel_id}"]
    monkeypatch.setenv("PATH_ROUTING", "false")
    refused = run("caller_connect", via_cloudfront("caller-2", DOMAIN, f"/{tunnel_id}/cable"))
    assert refused["statusCode"] == 404 and refused["headers"][names.ERROR_HEADER] == "tunnel_not_found"


@pytest.mark.parametrize("secret", [None, "", "s" * 47 + "t"], ids=["no secret", "empty", "wrong secret"])
def test_forged_headers_without_the_secret_are_ignored(fronted, secret):
    """A caller on the caller API's own name sends CloudFront's headers itself: they neither pick the
    tunnel nor the app's path, and they never reach the app."""
    victim = agent("agent-V")
    opens = answer_opens(fronted, connection_id="agent-V")
    forged = via_cloudfront("caller-1", f"{victim}.{DOMAIN}", "/admin?x=1", secret=secret)
    refused = run("caller_connect", forged)
    assert refused["statusCode"] == 404, "no tunnel in the caller API's name nor in ?tunnel="
    own = run("caller_connect", via_cloudfront("caller-2", f"{victim}.{DOMAIN}", "/admin?x=1", secret=secret,
                                               query={"tunnel": [victim], "y": ["2"]}))
    assert own["statusCode"] == 200
    (sent,) = opens
    assert sent.uri == "/?y=2", "the query form's target, not the forged header's"
    assert not [name for name in sent.headers if name.startswith("x-tunnel-")]
    assert sent.headers["x-real-ip"] == [CLOUDFRONT_IP], "the event's sourceIp, not a claimed viewer address"


def test_without_cloudfront_nothing_changes_and_the_secret_is_never_read(callers, monkeypatch):
    victim = agent()
    answer_opens(callers)
    reads: list[str] = []
    monkeypatch.setattr(edge_origin, "_read", lambda name: reads.append(name) or b"x" * 48)
    result = run("caller_connect", via_cloudfront("caller-1", f"{victim}.{DOMAIN}", "/admin"))
    assert result["statusCode"] == 404 and reads == []


def test_cloudfronts_headers_missing_or_a_target_that_cannot_be_sent_are_refused(fronted):
    tunnel_id = agent()
    answer_opens(fronted)
    missing = run("caller_connect", via_cloudfront("caller-1", f"{tunnel_id}.{DOMAIN}", ""))
    assert missing["statusCode"] == 502 and missing["headers"][names.ERROR_HEADER] == "internal_error"
    for bad in ("/100%zz", "/x?a b", "/x?a#b"):
        refused = run("caller_connect", via_cloudfront("caller-2", f"{tunnel_id}.{DOMAIN}", bad))
        assert refused["statusCode"] == 400 and refused["headers"][names.ERROR_HEADER] == "invalid_request", bad


def test_the_edge_policy_sees_the_viewers_address_through_cloudfront(fronted):
    """An allow list names the viewer's network: CloudFront's own address (the event's sourceIp)
    would be refused, the viewer's passes; forged headers without the secret do not pass it."""
    tunnel_id = str(connect_agent("agent-A", headers={"X-Tunnel-Capabilities": "ack,ws", policy.HEADER: policy.to_header(
        policy.build(allow=["198.51.100.0/24"]))})["tunnel_id"])
    answer_opens(fronted)
    host = f"{tunnel_id}.{DOMAIN}"
    assert run("caller_connect", via_cloudfront("caller-1", host, "/ws"))["statusCode"] == 200
    forged = run("caller_connect", via_cloudfront("caller-2", host, "/ws", secret=None, query={"tunnel": [tunnel_id]}))
    assert forged["statusCode"] == 403 and forged["headers"][names.ERROR_HEADER] == "ip_denied"
