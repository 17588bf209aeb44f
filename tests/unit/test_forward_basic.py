"""forward end to end against moto with a simulated agent behind the fake management API."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import urllib.parse
from typing import Any

import boto3
import pytest

from httptunnel import protocol, store, tunnels

from .helpers import PENDING_TABLE, FakeContext, connect_agent, load_event, load_handler, ws_event


def http_event(tunnel_id: str, path: str = "/api/items", method: str = "GET", body: bytes | None = None,
               query: str | None = None, headers: dict[str, str] | None = None, host: str | None = None
               ) -> dict[str, Any]:
    event = copy.deepcopy(load_event("http_get.json"))
    event["rawPath"] = f"/{tunnel_id}{path}" if host is None else path
    event["requestContext"]["http"]["path"] = event["rawPath"]
    event["requestContext"]["http"]["method"] = method
    if query is not None:
        event["rawQueryString"] = query
    if headers:
        event["headers"].update(headers)
    if host is not None:
        event["headers"]["host"] = host
        event["requestContext"]["domainName"] = host
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    return event


class FakeAgent:
    """Answers http_request messages by invoking the response Lambda, like ttf would."""

    def __init__(self, mgmt, connection_id: str, reply, threaded: bool = False):
        self.connection_id = connection_id
        self.reply = reply
        self.threaded = threaded
        self.requests: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []
        previous = mgmt.on_post

        def on_post(conn_id: str, msg: dict[str, Any]) -> None:
            if conn_id != connection_id:
                if previous:
                    previous(conn_id, msg)
                return
            if msg["type"] != "http_request":
                return
            self.requests.append(msg)
            if threaded:
                t = threading.Thread(target=self._answer, args=(msg,), daemon=True)
                self.threads.append(t)
                t.start()
            else:
                self._answer(msg)
        mgmt.on_post = on_post

    def _answer(self, msg: dict[str, Any]) -> None:
        out = self.reply(msg)
        if out is None:
            return
        frame = out if isinstance(out, str) else protocol.encode(out)
        load_handler("response")(ws_event("default_message.json", self.connection_id, frame), FakeContext())

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=10)


def ok(body: bytes = b"hello", status: int = 200, headers: dict[str, list[str]] | None = None):
    def reply(msg: dict[str, Any]) -> protocol.HttpResponse:
        return protocol.HttpResponse(request_id=msg["request_id"], status_code=status,
                                     headers=headers or {"content-type": ["text/plain"]},
                                     body=protocol.b64encode(body))
    return reply


def test_get_inline_round_trip(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"hello world"))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 200
    assert result["body"] == "hello world" and result["isBase64Encoded"] is False
    req = agent.requests[0]
    assert req["method"] == "GET"
    assert req["uri"] == "/api/items?a=1&a=2&b=%20x+y&empty=&flag"
    assert req["body"] == ""
    assert req["headers"]["cookie"] == ["session=s1; theme=dark"]
    assert req["headers"]["x-custom"] == ["one,two"]
    assert req["headers"]["x-forwarded-for"] == ["198.51.100.9"]
    assert req["headers"]["x-forwarded-proto"] == ["https"]
    assert req["headers"]["x-forwarded-host"] == ["abc123http.execute-api.us-east-1.amazonaws.com"]
    assert req["headers"]["x-forwarded-prefix"] == [f"/{tid}"]
    # the public host the caller used: ttf --keep-host passes it on as Host (issue 14)
    assert req["headers"]["host"] == ["abc123http.execute-api.us-east-1.amazonaws.com"]
    assert "content-length" not in req["headers"]
    # the only row is the agent's answer, keyed by the request and the connection it was posted to
    [row] = boto3.client("dynamodb").scan(TableName=PENDING_TABLE)["Items"]
    assert row["requestId"]["S"] == f"{req['request_id']}:conn-A" and "ttl" in row


def test_threaded_agent_answer_is_picked_up(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"\x00\x01\xffbinary", headers={"content-type": ["application/octet-stream"]}),
                  threaded=True)
    result = load_handler("forward")(http_event(tid, method="POST", body=b"\x00payload\xff"), ctx)
    agent.join()
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == b"\x00\x01\xffbinary"
    assert base64.b64decode(agent.requests[0]["body"]) == b"\x00payload\xff"


def test_unknown_tunnel_is_404(aws, mgmt, ctx):
    result = load_handler("forward")(http_event("zzzzzzzzzzzz"), ctx)
    assert result["statusCode"] == 404
    assert result["headers"]["x-tunnel-error"] == "tunnel_not_found"
    assert result["body"].startswith("tunnel not found")


def test_root_path_without_tunnel_is_404(aws, mgmt, ctx):
    event = http_event("x")
    event["rawPath"] = "/"
    assert load_handler("forward")(event, ctx)["statusCode"] == 404


def test_agent_gone_on_post_is_502_and_row_removed(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    mgmt.gone.add("conn-A")
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502
    assert result["headers"]["x-tunnel-error"] == "agent_gone"
    assert store.get_connection("conn-A") is None
    assert boto3.client("dynamodb").scan(TableName=PENDING_TABLE)["Items"] == []


def test_post_refused_by_a_live_connection_is_retried_and_keeps_the_row(aws, mgmt, ctx):
    """A 410 on the post while GET @connections says the socket lives: retried, not a dead tunnel."""
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"hello"))
    mgmt.post_gone_left["conn-A"] = 1
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 200, result
    assert store.get_connection("conn-A") is not None


def test_post_refused_persistently_by_a_live_connection_is_502_and_keeps_the_row(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    mgmt.post_gone_left["conn-A"] = 1000
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "agent_gone"
    assert store.get_connection("conn-A") is not None


def test_newest_connection_of_a_tunnel_gets_the_request(aws, mgmt, ctx):
    token = "t" * 43
    first = connect_agent("conn-A", headers={"X-Tunnel-Reclaim-Token": token})
    connect_agent("conn-B", headers={"X-Tunnel-Id": first["tunnel_id"], "X-Tunnel-Reclaim-Token": token})
    old = FakeAgent(mgmt, "conn-A", ok(b"old"))
    new = FakeAgent(mgmt, "conn-B", ok(b"new"))
    result = load_handler("forward")(http_event(first["tunnel_id"]), ctx)
    assert result["body"] == "new"
    assert old.requests == [] and len(new.requests) == 1


def test_three_set_cookies_come_out_as_three_and_repeated_headers_join(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    tid = connect_agent("conn-A")["tunnel_id"]
    headers = {"Set-Cookie": ["a=1; Path=/", "b=2; HttpOnly", "c=3; Path=/x"], "X-Multi": ["v1", "v2"],
               "Content-Type": ["text/plain"], "Connection": ["close"], "Transfer-Encoding": ["chunked"],
               "Content-Length": ["5"]}
    FakeAgent(mgmt, "conn-A", ok(b"hello", headers=headers))
    result = load_handler("forward")(http_event(tid, host=f"{tid}.t.example.com"), ctx)
    assert result["statusCode"] == 200
    assert result["cookies"] == ["a=1; Path=/", "b=2; HttpOnly", "c=3; Path=/x"]  # subdomain mode: untouched
    assert result["headers"]["X-Multi"] == "v1, v2"
    lower = {k.lower() for k in result["headers"]}
    assert not lower & {"connection", "transfer-encoding", "content-length", "set-cookie"}


def test_subdomain_routing_keeps_the_path(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    result = load_handler("forward")(http_event(tid, path="/a/b", query="", host=f"{tid}.t.example.com:443"), ctx)
    assert result["statusCode"] == 200
    assert agent.requests[0]["uri"] == "/a/b"
    assert "x-forwarded-prefix" not in agent.requests[0]["headers"]


def test_non_tunnel_host_falls_back_to_path_mode(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("TUNNEL_DOMAIN", "t.example.com")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    result = load_handler("forward")(http_event(tid, path="/z", host="api.other.example.org"), ctx)
    assert result["statusCode"] == 404  # path "/z" has no tunnel id
    event = http_event(tid, path="/z")
    event["headers"]["host"] = event["requestContext"]["domainName"] = "api.other.example.org"
    assert load_handler("forward")(event, ctx)["statusCode"] == 200
    assert agent.requests[-1]["uri"] == "/z?a=1&a=2&b=%20x+y&empty=&flag"


def test_any_method_token_is_forwarded(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    for method in ("PROPFIND", "PURGE", "M-SEARCH"):
        assert load_handler("forward")(http_event(tid, method=method), ctx)["statusCode"] == 200
    assert [r["method"] for r in agent.requests] == ["PROPFIND", "PURGE", "M-SEARCH"]
    bad = http_event(tid, method="GE T")
    assert load_handler("forward")(bad, ctx)["statusCode"] == 400


def test_malformed_event_is_400(aws, mgmt, ctx):
    assert load_handler("forward")({"foo": "bar"}, ctx)["statusCode"] == 400
    event = http_event("abcdefghij12")
    event["body"], event["isBase64Encoded"] = "!!!notbase64", True
    result = load_handler("forward")(event, ctx)
    assert result["statusCode"] == 400 and result["headers"]["x-tunnel-error"] == "invalid_request"


def test_dynamodb_calls_are_logged(aws, mgmt, ctx, capsys, monkeypatch):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(), threaded=True)
    polls = []
    real_get_answer = store.get_answer
    monkeypatch.setattr(store, "get_answer", lambda rid, cid: polls.append(rid) or real_get_answer(rid, cid))
    capsys.readouterr()
    load_handler("forward")(http_event(tid), ctx)
    load_handler("forward")(http_event(tid), ctx)  # warm: the connection comes from the cache
    agent.join()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    cold, warm = [line for line in lines if line["msg"] == "forwarded"]
    # query GSI (first request only) + one GetItem per poll, and no write (the agent's write runs
    # in another thread)
    assert len(polls) >= 2
    assert cold["dynamodb_calls"] + warm["dynamodb_calls"] == 1 + len(polls)
    assert cold["dynamodb_calls"] >= 2 and warm["dynamodb_calls"] >= 1
    assert cold["tunnel_id"] == tid and cold["request_id"] and cold["connection_id"] == "conn-A"
    assert cold["method"] == "GET" and cold["path"] == "/api/items" and cold["created_at"] > 0


def test_forged_answer_written_before_the_real_one_is_never_read(aws, mgmt, ctx):
    """Agent B learns the request id somehow and answers first; the caller still gets A's answer."""
    tid = connect_agent("conn-A")["tunnel_id"]
    connect_agent("conn-B")

    def forge_then_answer(msg: dict[str, Any]) -> protocol.HttpResponse:
        forged = protocol.HttpResponse(request_id=msg["request_id"], status_code=200,
                                       headers={"content-type": ["text/plain"]}, body=protocol.b64encode(b"evil"))
        load_handler("response")(ws_event("default_message.json", "conn-B", protocol.encode(forged)), FakeContext())
        return ok(b"genuine", status=201)(msg)
    FakeAgent(mgmt, "conn-A", forge_then_answer)
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 201 and result["body"] == "genuine"
    keys = {i["requestId"]["S"].rsplit(":", 1)[1] for i in boto3.client("dynamodb").scan(TableName=PENDING_TABLE)["Items"]}
    assert keys == {"conn-A", "conn-B"}  # the forged row exists, under B's key, and TTL removes it


def test_forged_answer_alone_leaves_the_caller_waiting_for_the_real_one(aws, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("FORWARD_WAIT_SECONDS", "0.3")
    tid = connect_agent("conn-A")["tunnel_id"]
    connect_agent("conn-B")

    def forge_only(msg: dict[str, Any]) -> None:
        forged = protocol.HttpResponse(request_id=msg["request_id"], status_code=200, body=protocol.b64encode(b"evil"))
        load_handler("response")(ws_event("default_message.json", "conn-B", protocol.encode(forged)), FakeContext())
    FakeAgent(mgmt, "conn-A", forge_only)
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 504 and "evil" not in result["body"]


def test_warm_instance_reuses_the_connection_row(aws, mgmt, ctx, monkeypatch):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok())
    queries = []
    real = store.newest_connection_for_tunnel
    monkeypatch.setattr(store, "newest_connection_for_tunnel", lambda t: queries.append(t) or real(t))
    for _ in range(3):
        assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 200
    assert queries == [tid]
    monkeypatch.setattr(tunnels, "CONNECTION_CACHE_S", 0.0)  # expired: asked again
    tunnels.CONNECTIONS.clear()
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 200
    assert queries == [tid, tid]


def test_reconnect_behind_a_cached_connection_costs_the_caller_nothing(aws, mgmt, ctx):
    """The cached connection answers 410 (its agent reconnected): the entry is dropped, the Query
    asked once more, and the new connection gets the request."""
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"old"))
    assert load_handler("forward")(http_event(tid), ctx)["body"] == "old"
    load_handler("disconnect")(ws_event("disconnect.json", "conn-A"), FakeContext())
    mgmt.gone.add("conn-A")
    store.put_connection(store.Connection(connection_id="conn-B", tunnel_id=tid, connected_at=int(time.time() * 1000),
                                          domain_name="abc123ws.execute-api.us-east-1.amazonaws.com", stage="prod"))
    FakeAgent(mgmt, "conn-B", ok(b"new"))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 200 and result["body"] == "new"


def test_unknown_tunnel_is_cached_absent_for_at_most_a_second(aws, mgmt, ctx, monkeypatch):
    assert tunnels.ABSENT_CACHE_S <= 1.0
    queries = []
    real = store.newest_connection_for_tunnel
    monkeypatch.setattr(store, "newest_connection_for_tunnel", lambda t: queries.append(t) or real(t))
    tid = "abcdefghij12"
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 404
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 404
    assert queries == [tid]
    store.put_connection(store.Connection(connection_id="conn-A", tunnel_id=tid, connected_at=int(time.time() * 1000),
                                          domain_name="abc123ws.execute-api.us-east-1.amazonaws.com", stage="prod"))
    FakeAgent(mgmt, "conn-A", ok())
    deadline = time.monotonic() + tunnels.ABSENT_CACHE_S + 0.5
    while load_handler("forward")(http_event(tid), ctx)["statusCode"] == 404:
        assert time.monotonic() < deadline, "a tunnel that came back must be found within ABSENT_CACHE_S"
        time.sleep(0.05)
    assert len(queries) == 2


def test_hop_by_hop_request_headers_never_reach_the_agent(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    hop = {"connection": "keep-alive, X-Secret-Hop", "keep-alive": "timeout=5", "x-secret-hop": "1",
           "upgrade": "h2c", "te": "trailers", "transfer-encoding": "chunked", "proxy-authorization": "Basic eA==",
           "x-end-to-end": "kept"}
    assert load_handler("forward")(http_event(tid, headers=hop), ctx)["statusCode"] == 200
    sent = agent.requests[0]["headers"]
    assert sent["x-end-to-end"] == ["kept"]
    assert not set(sent) & (set(hop) - {"x-end-to-end"})


def test_a_renewed_agent_serves_its_old_socket_longer_than_forward_caches_it():
    from ttf import lifecycle
    assert lifecycle.RETIRE_GRACE_S > tunnels.CONNECTION_CACHE_S


# ---- request target: HTTP APIs hand over rawPath percent-DECODED (hotsock/voker#8) -------------

def test_decoded_path_is_re_encoded_into_a_valid_target(aws, mgmt, ctx):
    """What AWS delivers for `/RSC/%40id%2Fassets%2Frsf0.js%23save.txt` (honojs/hono#2156) and
    other decoded paths: the agent gets a target that decodes back to the delivered path."""
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    cases = {
        "/RSC/@id/assets/rsf0.js#save.txt": "/RSC/@id/assets/rsf0.js%23save.txt",
        "/space value/100%": "/space%20value/100%25",
        "/unicode-λ-世界": "/unicode-%CE%BB-%E4%B8%96%E7%95%8C",
        "/a+b/(c);d=e,f:g@h!$&'*~": "/a+b/(c);d=e,f:g@h!$&'*~",
        "/ctl\x00\x1f\x7f\"<>\\^`{|}[]": "/ctl%00%1F%7F%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D",
    }
    for path, target in cases.items():
        result = load_handler("forward")(http_event(tid, path=path, query=""), ctx)
        assert result["statusCode"] == 200, (path, result)
        assert agent.requests[-1]["uri"] == target
        assert urllib.parse.unquote(target, errors="strict") == path


def test_query_is_kept_byte_for_byte_or_refused(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    raw = "a=%2F%3F+b&c=[1]|{x}&d=%zz&q=?/"
    assert load_handler("forward")(http_event(tid, path="/p", query=raw), ctx)["statusCode"] == 200
    assert agent.requests[-1]["uri"] == "/p?" + raw  # byte for byte
    assert load_handler("forward")(http_event(tid, path="/p", query="u=é"), ctx)["statusCode"] == 200
    assert agent.requests[-1]["uri"] == "/p?u=%C3%A9"  # non-ASCII percent-encoded, as ttf always did
    sent = len(agent.requests)
    for bad in ("a=1 2", "h=#x", "c=\x01", "d=\x7f"):  # no valid request has these: refused, not altered
        result = load_handler("forward")(http_event(tid, path="/p", query=bad), ctx)
        assert result["statusCode"] == 400 and result["headers"]["x-tunnel-error"] == "invalid_request", bad
    assert len(agent.requests) == sent


def test_path_that_cannot_be_rebuilt_is_400_invalid_request(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    for path, query in (("/lone\udc80surrogate", ""), ("/p", "x=\ud800")):
        result = load_handler("forward")(http_event(tid, path=path, query=query), ctx)
        assert result["statusCode"] == 400, path
        assert result["headers"]["x-tunnel-error"] == "invalid_request"
    event = http_event(tid)
    event["rawPath"] = "relative/path"
    result = load_handler("forward")(event, ctx)
    assert result["statusCode"] == 400 and result["headers"]["x-tunnel-error"] == "invalid_request"
    assert agent.requests == []  # nothing reached the agent


def test_request_target_unit():
    from httptunnel.routing import request_target

    assert request_target("/", "") == "/"
    assert request_target("/a?b", "c=d") == "/a%3Fb?c=d"
    assert request_target("/%41", "") == "/%2541"  # a literal '%': the local service must not see "A"
    for bad in ("", "no-slash", "/\udcff"):
        with pytest.raises(ValueError):
            request_target(bad, "")
