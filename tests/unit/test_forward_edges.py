"""forward: agent errors, timeouts, agent gone mid-wait, limits, big bodies via S3 (moto), path-mode rewriting."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from urllib.parse import urlparse

import boto3
import pytest

from httptunnel import limits, protocol, replies

from .helpers import BUCKET, PENDING_TABLE, FakeContext, connect_agent, load_handler, ws_event
from .test_forward_basic import FakeAgent, http_event, ok


def _s3_key(url: str) -> str:
    """The object key of a presigned URL (virtual-hosted or path-style)."""
    parsed = urlparse(url)
    path = parsed.path.lstrip("/")
    if parsed.hostname and parsed.hostname.startswith(BUCKET + "."):
        return path
    bucket, _, key = path.partition("/")
    assert bucket == BUCKET
    return key


@pytest.mark.parametrize("code,status", [("invalid_request", 400), ("timeout", 504),
                                         ("local_service_unavailable", 503), ("local_service_error", 502),
                                         ("internal_error", 502), ("tunnel_busy", 429)])
def test_agent_error_codes_map_to_statuses(aws, mgmt, ctx, code, status):
    """The caller gets the code and a fixed sentence; the agent's message (which may name local
    addresses and errno) never reaches the public body."""
    tid = connect_agent("conn-A")["tunnel_id"]
    message = "cannot connect to 127.0.0.1:8765: [Errno 111] Connect call failed"
    FakeAgent(mgmt, "conn-A", lambda m: protocol.Error(request_id=m["request_id"], code=code, message=message))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == status
    assert result["headers"]["x-tunnel-error"] == code
    assert result["headers"]["content-type"].startswith("text/plain")
    assert result["body"] == replies.PUBLIC_MESSAGES[code] + "\n"
    assert "127.0.0.1" not in result["body"] and "Errno" not in result["body"]


def test_an_unknown_agent_error_code_is_internal_error(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", lambda m: protocol.Error(request_id=m["request_id"], code="made_up", message="x"))
    result = load_handler("forward")(http_event(tid), ctx)
    assert (result["statusCode"], result["headers"]["x-tunnel-error"]) == (502, "internal_error")


def test_no_answer_is_504_and_late_answer_is_rejected(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("FORWARD_WAIT_SECONDS", "0.4")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", lambda m: None)
    started = time.monotonic()
    result = load_handler("forward")(http_event(tid), ctx)
    assert 0.4 <= time.monotonic() - started < 2
    assert result["statusCode"] == 504 and result["headers"]["x-tunnel-error"] == "timeout"
    request_id = agent.requests[0]["request_id"]
    late = protocol.HttpResponse(request_id=request_id, status_code=200)
    load_handler("response")(ws_event("default_message.json", "conn-A", protocol.encode(late)), FakeContext())
    # the slot holds forward's timeout record (with the request's context), not the late answer
    [row] = boto3.client("dynamodb").scan(TableName=PENDING_TABLE)["Items"]
    assert row["requestId"]["S"] == f"{request_id}:conn-A" and row["status"]["S"] == "error"
    assert row["errorCode"]["S"] == "timeout" and row["tunnelId"]["S"] == tid and row["method"]["S"] == "GET"


def test_agent_that_disconnects_mid_wait_gives_prompt_502(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]

    def die(msg):
        load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), FakeContext())
        return None
    agent = FakeAgent(mgmt, "conn-A", die, threaded=True)
    started = time.monotonic()
    result = load_handler("forward")(http_event(tid), ctx)
    agent.join()
    assert time.monotonic() - started < 2.5
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "agent_gone"


def test_request_over_body_max_is_413(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    result = load_handler("forward")(http_event(tid, method="POST", body=b"x" * (limits.BODY_MAX + 1)), ctx)
    assert result["statusCode"] == 413 and result["headers"]["x-tunnel-error"] == "payload_too_large"
    assert agent.requests == []


def test_big_request_without_bucket_is_413(aws, mgmt, ctx, monkeypatch):
    monkeypatch.delenv("BODY_BUCKET")
    tid = connect_agent("conn-A")["tunnel_id"]
    body = b"x" * (limits.INLINE_REQUEST_BODY_MAX + 1)
    assert load_handler("forward")(http_event(tid, method="POST", body=body), ctx)["statusCode"] == 413


def big_agent(mgmt, response_body: bytes, content_type: str = "application/octet-stream"):
    """An agent that reads big request bodies from S3 and uploads big responses, as ttf does."""
    s3 = boto3.client("s3")
    received: list[bytes] = []

    def reply(msg):
        if msg.get("body_url"):
            body = s3.get_object(Bucket=BUCKET, Key=_s3_key(msg["body_url"]))["Body"].read()
            assert hashlib.sha256(body).hexdigest() == msg["body_sha256"]
        else:
            body = base64.b64decode(msg["body"])
        received.append(body)
        assert "response_upload_url" not in msg  # a PUT URL could carry any size
        key = msg["response_upload"]["fields"]["key"]
        assert key == "resp/" + msg["request_id"]
        s3.put_object(Bucket=BUCKET, Key=key, Body=response_body)
        return protocol.HttpResponse(request_id=msg["request_id"], status_code=200,
                                     headers={"content-type": [content_type]}, body_uploaded=True,
                                     body_size=len(response_body),
                                     body_sha256=hashlib.sha256(response_body).hexdigest())
    return FakeAgent(mgmt, "conn-A", reply), received


def test_5mb_both_ways_byte_exact(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    request_body = os.urandom(5 * limits.MB)
    response_body = bytes(range(32, 127)) * (5 * limits.MB // 95)  # ~5 MB of text: fits the 6 MB Lambda result
    agent, received = big_agent(mgmt, response_body, "text/plain; charset=utf-8")
    result = load_handler("forward")(http_event(tid, method="PUT", body=request_body), ctx)
    assert received == [request_body]
    assert agent.requests[0]["body"] == "" and agent.requests[0]["body_size"] == len(request_body)
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is False
    assert result["body"].encode("utf-8") == response_body


def test_big_non_ascii_text_falls_back_to_base64_when_smaller(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    response_body = ("é" * (2 * limits.MB)).encode("utf-8")  # 4 MB; as escaped JSON text 12 MB, as base64 5.3 MB
    big_agent(mgmt, response_body, "text/plain; charset=utf-8")
    result = load_handler("forward")(http_event(tid, method="POST", body=b"q"), ctx)
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == response_body


def test_5mb_binary_get_becomes_307_to_s3(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    response_body = os.urandom(5 * limits.MB)
    big_agent(mgmt, response_body)
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 307
    assert result["headers"]["x-tunnel-body"] == "s3"
    location = result["headers"]["location"]
    assert "X-Amz-Signature" in location and "response-content-type=application%2Foctet-stream" in location
    stored = boto3.client("s3").get_object(Bucket=BUCKET, Key=_s3_key(location))["Body"].read()
    assert stored == response_body


def test_5mb_binary_post_answer_is_502_response_too_large(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    big_agent(mgmt, os.urandom(5 * limits.MB))
    result = load_handler("forward")(http_event(tid, method="POST", body=b"small"), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "response_too_large"


def test_uploaded_body_with_wrong_checksum_is_502(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    s3 = boto3.client("s3")

    def reply(msg):
        s3.put_object(Bucket=BUCKET, Key=msg["response_upload"]["fields"]["key"], Body=b"truncated")
        return protocol.HttpResponse(request_id=msg["request_id"], status_code=200, body_uploaded=True,
                                     body_sha256=hashlib.sha256(b"the full body").hexdigest())
    FakeAgent(mgmt, "conn-A", reply)
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "internal_error"


def test_upload_claimed_but_missing_is_502(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", lambda m: protocol.HttpResponse(request_id=m["request_id"], status_code=200,
                                                          body_uploaded=True))
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 502


def test_response_over_body_max_is_502(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setattr(limits, "BODY_MAX", 1000)
    tid = connect_agent("conn-A")["tunnel_id"]
    big_agent(mgmt, b"z" * 1001)
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "response_too_large"


def test_path_mode_rewrites_links_location_and_cookie_path(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    html = b'<a href="/about">a</a><img src="//cdn.example.com/x.png"><link href="https://e.com/s.css">'
    FakeAgent(mgmt, "conn-A", ok(html, status=302, headers={
        "content-type": ["text/html; charset=utf-8"], "location": ["/login?next=/"],
        "set-cookie": ["sid=1; Path=/; HttpOnly", "x=2"]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 302
    assert result["body"] == (f'<a href="/{tid}/about">a</a><img src="//cdn.example.com/x.png">'
                              '<link href="https://e.com/s.css">')
    assert result["headers"]["location"] == f"/{tid}/login?next=/"
    assert result["cookies"] == [f"sid=1; Path=/{tid}/; HttpOnly", "x=2"]


@pytest.mark.parametrize("how", [{"headers": {"X-Tunnel-Rewrite": "off"}}, {"query": {"rewrite": "false"}}])
def test_agent_can_switch_path_mode_rewriting_off(aws, mgmt, ctx, how):
    """`ttf --no-rewrite`: the answer is the local service's, byte for byte, even in path mode."""
    tid = connect_agent("conn-A", **how)["tunnel_id"]
    body = b'{"next": "/page/2", "html": "<a href=\\"/x\\">"}'
    FakeAgent(mgmt, "conn-A", ok(body, status=302, headers={
        "content-type": ["application/json"], "location": ["/login"], "set-cookie": ["sid=1; Path=/"]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["body"] == body.decode() and result["headers"]["location"] == "/login"
    assert result["cookies"] == ["sid=1; Path=/"]
    # a second agent of another tunnel keeps the default: JSON is data, never rewritten (issue 14)
    tid_b = connect_agent("conn-B", headers={"X-Tunnel-Rewrite": "on"})["tunnel_id"]
    FakeAgent(mgmt, "conn-B", ok(body, headers={"content-type": ["application/json"]}))
    assert load_handler("forward")(http_event(tid_b), ctx)["body"] == body.decode()
    # ttf --rewrite-json asks for JSON string values too
    tid_c = connect_agent("conn-C", headers={"X-Tunnel-Rewrite": "json"})["tunnel_id"]
    FakeAgent(mgmt, "conn-C", ok(body, headers={"content-type": ["application/json"]}))
    assert f'"/{tid_c}/page/2"' in load_handler("forward")(http_event(tid_c), ctx)["body"]


def test_bad_rewrite_value_is_a_clear_400(aws, ctx):
    result = load_handler("connect")(ws_event("connect.json", "conn-X", headers={"X-Tunnel-Rewrite": "sometimes"}),
                                     FakeContext())
    assert result["statusCode"] == 400 and "X-Tunnel-Rewrite must be on, off or json" in result["body"]


def test_compressed_bodies_are_never_rewritten(aws, mgmt, ctx):
    import gzip
    tid = connect_agent("conn-A")["tunnel_id"]
    body = gzip.compress(b'<a href="/about">a</a>')
    FakeAgent(mgmt, "conn-A", ok(body, headers={"content-type": ["text/html"], "content-encoding": ["gzip"]}))
    result = load_handler("forward")(http_event(tid), ctx)
    assert base64.b64decode(result["body"]) == body and result["isBase64Encoded"] is True


def test_subdomain_mode_never_rewrites(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b'<a href="/about">', headers={"content-type": ["text/html"], "location": ["/x"]}))
    result = load_handler("forward")(http_event(tid, path="/", host=f"{tid}.t.example.com"), ctx)
    assert result["body"] == '<a href="/about">' and result["headers"]["location"] == "/x"


# ---- issue 28: WebSocket upgrades, one timeout sentence, the tunnel_not_found text ----------------

@pytest.mark.parametrize("headers", [{"upgrade": "websocket", "connection": "Upgrade",
                                      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13"},
                                     {"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13"},
                                     {"Upgrade": "WebSocket"}], ids=["full", "upgrade dropped", "upgrade only"])
def test_a_websocket_upgrade_is_501_naming_the_limit_and_never_reaches_the_agent(aws, mgmt, ctx, headers):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    event = http_event(tid)
    event["headers"].update(headers)
    result = load_handler("forward")(event, ctx)
    assert (result["statusCode"], result["headers"]["x-tunnel-error"]) == (501, "websocket_unsupported")
    assert "WebSocket" in result["body"] and "do not pass through the tunnel" in result["body"]
    assert agent.requests == []  # the app never sees it as a plain GET


def test_a_timeout_reads_the_same_whichever_timer_fired(aws, mgmt, ctx, monkeypatch):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", lambda m: protocol.Error(request_id=m["request_id"], code="timeout", message="slow"))
    by_agent = load_handler("forward")(http_event(tid), ctx)
    monkeypatch.setenv("FORWARD_WAIT_SECONDS", "0.3")
    tid = connect_agent("conn-B")["tunnel_id"]
    FakeAgent(mgmt, "conn-B", lambda m: None)
    by_forward = load_handler("forward")(http_event(tid), ctx)
    assert by_agent["statusCode"] == by_forward["statusCode"] == 504
    assert by_agent["body"] == by_forward["body"] == replies.PUBLIC_MESSAGES["timeout"] + "\n"
    assert "agent" not in by_forward["body"]  # the local app was slow: the agent is not blamed


def test_tunnel_not_found_names_root_relative_urls():
    assert "root-relative URL" in replies.NOT_FOUND and "without the slash" not in replies.NOT_FOUND
