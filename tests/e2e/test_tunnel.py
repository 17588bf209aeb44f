"""Through the public URL of a real `ttf` agent to a real local server, via the local stack."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
import pytest

from tests.e2e.client import request
from tests.e2e.origin import pattern

MB = 1024 * 1024


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_every_method_reaches_the_origin(session, tunnel, method):
    reply = await request(session, method, tunnel.public_url, "/echo", data=b"m" if method != "GET" else None)
    assert reply.status == 200, reply.body[:300]
    assert json.loads(reply.body)["method"] == method


async def test_head_has_headers_and_no_body(session, tunnel):
    reply = await request(session, "HEAD", tunnel.public_url, "/bytes?n=1234")
    assert reply.status == 200
    assert reply.body == b""


async def test_path_mode_reaches_the_origin(session, tunnel):
    raw = pattern(5000)
    reply = await request(session, "POST", tunnel.path_based_url, "/sha?x=1", data=raw,
                          headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200, reply.body[:300]
    assert reply.body.decode() == hashlib.sha256(raw).hexdigest()
    reply = await request(session, "GET", tunnel.path_based_url, "/bytes?n=3000")
    assert reply.body == pattern(3000)


async def test_path_mode_rewrites_json_only_when_the_agent_asks(session, tunnel, agent_factory, origin):
    """Default: a JSON body is data and comes back unchanged in path mode (issue 14);
    `ttf --rewrite-json` asks for root-relative JSON string values to get the /<id> prefix;
    `ttf --no-rewrite` leaves every answer untouched."""
    reply = await request(session, "GET", tunnel.path_based_url, "/echo?a=%2F")
    assert reply.status == 200 and json.loads(reply.body)["raw_path"] == "/echo?a=%2F"
    rewriting = agent_factory(origin, "--rewrite-json")
    reply = await request(session, "GET", rewriting.path_based_url, "/echo?a=%2F")
    assert json.loads(reply.body)["raw_path"] == f"/{rewriting.tunnel_id}/echo?a=%2F"
    plain = agent_factory(origin, "--no-rewrite", "--new-url")  # its own id, not the saved one of the first
    assert plain.tunnel_id != rewriting.tunnel_id
    reply = await request(session, "GET", plain.path_based_url, "/echo?a=%2F")
    assert reply.status == 200 and json.loads(reply.body)["raw_path"] == "/echo?a=%2F"


def text_pattern(n: int) -> bytes:
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ {json: [1, 2]}\n"
    return (line * (n // len(line) + 1))[:n]


# Binary request bodies ride base64 in the Lambda event (4/3 bigger): AWS refuses an event
# over 6 MB, so ~4.4 MB is the largest binary request an HTTP API + Lambda accepts.
@pytest.mark.parametrize("size", [0, 1, 1000, 30 * 1024, 100 * 1024, 1 * MB, 4 * MB])
async def test_binary_request_body_arrives_byte_exact(session, tunnel, size):
    raw = pattern(size)[::-1]
    reply = await request(session, "POST", tunnel.public_url, "/sha", data=raw,
                          headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 200, reply.body[:300]
    assert reply.body.decode() == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("size", [100 * 1024, 5 * MB])
async def test_text_request_body_arrives_byte_exact(session, tunnel, size):
    raw = text_pattern(size)
    reply = await request(session, "POST", tunnel.public_url, "/sha", data=raw,
                          headers={"Content-Type": "text/plain"})
    assert reply.status == 200, reply.body[:300]
    assert reply.body.decode() == hashlib.sha256(raw).hexdigest()


async def test_binary_request_over_the_lambda_limit_is_413(session, tunnel):
    reply = await request(session, "POST", tunnel.public_url, "/sha", data=pattern(5 * MB),
                          headers={"Content-Type": "application/octet-stream"})
    assert reply.status == 413


async def fetch_following_s3(session, public_url: str, path: str):
    """A GET; a body too big for the Lambda result comes as 307 to a presigned S3 URL."""
    reply = await request(session, "GET", public_url, path)
    if reply.status != 307:
        return reply, False
    assert reply.headers.get("x-tunnel-body") == "s3"
    async with session.get(reply.headers["Location"]) as resp:
        assert resp.status == 200
        return await resp.read(), True


@pytest.mark.parametrize("size", [0, 1, 1000, 30 * 1024, 100 * 1024, 1 * MB, 5 * MB])
async def test_response_body_arrives_byte_exact(session, tunnel, size):
    reply, via_s3 = await fetch_following_s3(session, tunnel.public_url, f"/bytes?n={size}")
    body = reply if via_s3 else reply.body
    if not via_s3:
        assert reply.status == 200, reply.body[:300]
    assert via_s3 == (size == 5 * MB)
    assert len(body) == size
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(pattern(size)).hexdigest()


async def test_text_body_round_trip_is_byte_exact(session, tunnel):
    raw = "héllo wörld ✓ — {\"k\": [1, 2]}\r\n".encode() * 10
    reply = await request(session, "PUT", tunnel.public_url, "/sha", data=raw,
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.body.decode() == hashlib.sha256(raw).hexdigest()


async def test_query_headers_and_cookies_fidelity(session, tunnel):
    query = "b=2&a=1&a=%20two&empty=&flag&enc=%2F%3D%26&plus=a+b"
    headers = [("X-Repeat", "one"), ("X-Repeat", "two"), ("X-Case", "MiXeD"),
               ("Cookie", "c1=v1; c2=v2"), ("Content-Type", "text/plain")]
    reply = await request(session, "POST", tunnel.public_url, f"/echo/p%20q?{query}", headers=headers,
                          data=b"body")
    assert reply.status == 200, reply.body[:300]
    seen = json.loads(reply.body)
    assert seen["raw_path"] == f"/echo/p%20q?{query}"
    got = {}
    for name, value in seen["headers"]:
        got.setdefault(name.lower(), []).append(value)
    assert ",".join(got["x-repeat"]).replace(", ", ",") == "one,two"
    assert got["x-case"] == ["MiXeD"]
    assert "c1=v1" in "; ".join(got["cookie"]) and "c2=v2" in "; ".join(got["cookie"])
    assert seen["text"] == "body"


async def test_response_set_cookies_and_repeated_headers(session, tunnel):
    reply = await request(session, "GET", tunnel.public_url, "/cookies")
    assert reply.status == 200
    assert sorted(reply.headers.getall("Set-Cookie")) == ["a=1; Path=/", "b=2; HttpOnly"]
    assert ",".join(reply.headers.getall("X-Repeat")).replace(", ", ",") == "one,two"


@pytest.mark.parametrize("code", [201, 204, 301, 404, 418, 500, 503])
async def test_origin_status_codes_pass_through(session, tunnel, code):
    reply = await request(session, "GET", tunnel.public_url, f"/status/{code}")
    assert reply.status == code
    assert "x-tunnel-error" not in reply.headers


async def test_unknown_tunnel_is_404(session, stack):
    reply = await request(session, "GET", f"http://nosuchtunnel.localhost:{stack.http_port}", "/")
    assert reply.status == 404
    reply = await request(session, "GET", stack.http_url, "/nosuchtunnel/echo")
    assert reply.status == 404


async def test_body_over_10mb_is_413(session, tunnel):
    reply = await request(session, "POST", tunnel.public_url, "/sha", data=b"z" * (10 * MB + 1))
    assert reply.status == 413


async def test_two_hundred_concurrent_requests_none_lost(session, tunnel):
    async def one(i: int) -> tuple[int, bytes, bytes]:
        raw = f"request-{i}-".encode() * (i % 50 + 1)
        reply = await request(session, "POST", tunnel.public_url, f"/sha?i={i}", data=raw)
        return reply.status, reply.body, hashlib.sha256(raw).hexdigest().encode()

    results = await asyncio.gather(*(one(i) for i in range(200)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 200, {s: statuses.count(s) for s in set(statuses)}
    assert all(body == expected for _, body, expected in results)
