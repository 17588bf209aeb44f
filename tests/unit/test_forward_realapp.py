"""forward, for real apps and browsers (issue 14): the public Host reaches the agent, HEAD keeps
its Content-Length, nothing invents a Content-Type, /<id> answers 308 to /<id>/, the 404 explains
path URLs, and the single-tenant Referer switch."""

from __future__ import annotations

import pytest

from httptunnel import replies

from .helpers import connect_agent, load_handler
from .test_forward_basic import FakeAgent, http_event, ok


def test_the_public_host_reaches_the_agent_as_host(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("PUBLIC_HTTP_URL", "https://api.example.test:8443")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    load_handler("forward")(http_event(tid, path=f"/{tid}/x", host="api.example.test"), ctx)
    headers = agent.requests[0]["headers"]
    assert headers["host"] == ["api.example.test:8443"] and headers["x-forwarded-host"] == ["api.example.test"]


def test_head_keeps_the_local_content_length(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"", headers={"content-type": ["text/plain"], "content-length": ["1234"]}))
    head = load_handler("forward")(http_event(tid, method="HEAD"), ctx)
    assert head["statusCode"] == 200 and head["headers"]["content-length"] == "1234"
    get = load_handler("forward")(http_event(tid), ctx)
    assert "content-length" not in get["headers"]  # API Gateway sets the length of a body it sends


def test_no_content_type_is_invented(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"\x00\x01raw", headers={"x-a": ["1"]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 200 and "content-type" not in {k.lower() for k in result["headers"]}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("query,location", [("", "/{tid}/"), ("a=1&b=%2F", "/{tid}/?a=1&b=%2F")])
def test_bare_path_url_redirects_to_the_slash_keeping_the_query(aws, mgmt, ctx, method, query, location):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    result = load_handler("forward")(http_event(tid, path="", method=method, query=query), ctx)
    assert result["statusCode"] == 308 and result["headers"]["location"] == location.format(tid=tid)
    assert agent.requests == []
    # the target answers (never a loop)
    again = load_handler("forward")(http_event(tid, path="/", method=method, query=query), ctx)
    assert again["statusCode"] == 200 and len(agent.requests) == 1


def test_bare_path_url_post_is_forwarded_not_redirected(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    assert load_handler("forward")(http_event(tid, path="", method="POST", body=b"x"), ctx)["statusCode"] == 200
    assert agent.requests[0]["uri"].startswith("/")


def test_unknown_first_segment_404_explains_path_urls(aws, mgmt, ctx):
    connect_agent("conn-A")
    result = load_handler("forward")(http_event("css", path="/base.css"), ctx)
    assert result["statusCode"] == 404 and result["headers"]["x-tunnel-error"] == "tunnel_not_found"
    assert result["body"] == replies.NOT_FOUND + "\n"
    assert "/<tunnel-id>/" in result["body"] and "css" not in result["body"].split(":")[0]


def _from_page(tid: str, path: str, referer_host: str = "abc123http.execute-api.us-east-1.amazonaws.com") -> dict:
    return http_event("x", host="abc123http.execute-api.us-east-1.amazonaws.com", path=path,
                      headers={"referer": f"https://{referer_host}/{tid}/index.html"})


def test_referer_routing_is_off_by_default(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    assert load_handler("forward")(_from_page(tid, "/api/x"), ctx)["statusCode"] == 404
    assert agent.requests == []


def test_referer_routing_sends_root_relative_requests_to_the_page_tunnel(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("PATH_REFERER_ROUTING", "true")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"{}", headers={"content-type": ["application/json"]}))
    for path in ("/api/x", "/favicon.ico"):  # a routable first segment that is no tunnel, and one that is not
        result = load_handler("forward")(_from_page(tid, path), ctx)
        assert result["statusCode"] == 200, result
        sent = agent.requests[-1]
        assert sent["uri"].split("?")[0] == path and sent["headers"]["x-forwarded-prefix"] == [f"/{tid}"]
    # another origin's Referer is never followed
    assert load_handler("forward")(_from_page(tid, "/api/x", "evil.example"), ctx)["statusCode"] == 404
    assert len(agent.requests) == 2


def test_referer_routing_setting_is_validated(monkeypatch):
    from httptunnel import config
    monkeypatch.setenv("PATH_REFERER_ROUTING", "sometimes")
    with pytest.raises(config.ConfigError):
        config.path_referer_routing()


def test_every_agent_error_code_has_a_public_sentence():
    from httptunnel import protocol
    assert set(replies.PUBLIC_MESSAGES) == set(protocol.ERROR_STATUS)
