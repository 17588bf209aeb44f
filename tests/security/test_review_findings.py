"""Attacks from the second security review (issue 30) through the running local stack.

Each test is one finding, played by the attacker who has it: a tunnel owner's response header
rule, a hostile agent's answer, a caller guessing passwords or coming from a denied address.
What the stack cannot show is tested in tests/unit (named per test below).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from http.cookies import SimpleCookie

import aiohttp
import pytest

from httptunnel import protocol
from tests.e2e.client import request
from tests.security.test_public_edge import FakeAgent, post_form

MB = 1024 * 1024


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


# --------------------------------------------------------------------------- 1. header rules and cookies

@pytest.mark.parametrize("mode", ["subdomain", "path"])
async def test_a_response_header_rule_cannot_plant_a_cookie_for_other_tunnels(session, agent_factory, origin, mode):
    owner = agent_factory(origin, "--response-header-add", "Set-Cookie: planted=1; Domain=localhost; Path=/")
    base = owner.public_url if mode == "subdomain" else owner.path_based_url
    reply = await request(session, "GET", base, "/echo")
    assert reply.status == 200, reply.body[:300]
    [cookie] = reply.headers.getall("Set-Cookie")
    assert "domain" not in cookie.lower(), cookie
    assert next(iter(SimpleCookie(cookie).values()))["domain"] == ""  # host-only: this tunnel alone


# --------------------------------------------------------------------------- 12. header names from the agent

@pytest.mark.parametrize("name", ["Set-Cookie ", "Set-Cookie\t", "X:Y", "X Y"])
async def test_an_agent_cannot_slip_a_cookie_past_scoping_with_a_malformed_name(session, stack, name):
    async with FakeAgent(session, stack) as agent:
        call = asyncio.create_task(request(session, "GET", agent.public_url, "/"))
        msg = await agent.next_request()
        await agent.send(protocol.HttpResponse(request_id=msg["request_id"], status_code=200,
                                               headers={name: ["evil=1; Domain=localhost; Path=/"]}))
        reply = await asyncio.wait_for(call, 30)
    assert reply.status == 502 and reply.headers["x-tunnel-error"] == "internal_error", reply.status
    assert not any("domain=localhost" in v.lower() for v in reply.headers.values())


# --------------------------------------------------------------------------- 16. non-ASCII header values

async def test_a_non_ascii_header_value_reaches_the_caller_as_its_utf8_bytes(session, stack):
    async with FakeAgent(session, stack) as agent:
        call = asyncio.create_task(request(session, "GET", agent.public_url, "/"))
        msg = await agent.next_request()
        await agent.send(protocol.HttpResponse(request_id=msg["request_id"], status_code=200,
                                               headers={"X-U": ["café ☕"]}))
        reply = await asyncio.wait_for(call, 30)
    assert reply.status == 200
    assert reply.headers["X-U"] == "café ☕"  # aiohttp decodes the raw bytes as UTF-8: the bytes sent


# --------------------------------------------------------------------------- 13. the 307 to S3

@pytest.mark.parametrize("content_type, disposition", [
    ("text/html; charset=utf-8", "attachment"), ("image/svg+xml", "attachment"), ("application/xhtml+xml", "attachment"),
    ("image/png", None),
])
async def test_a_big_active_answer_is_never_served_inline_from_the_bucket(session, stack, content_type, disposition):
    body = b"<html><script>alert(document.domain)</script></html>" + os.urandom(7 * MB)
    async with FakeAgent(session, stack) as agent:
        call = asyncio.create_task(request(session, "GET", agent.public_url, "/page"))
        msg = await agent.next_request()
        assert await post_form(session, msg["response_upload"], body) == 204
        await agent.send(protocol.HttpResponse(
            request_id=msg["request_id"], status_code=200, headers={"content-type": [content_type]},
            body_uploaded=True, body_size=len(body), body_sha256=hashlib.sha256(body).hexdigest()))
        reply = await asyncio.wait_for(call, 60)
    assert reply.status == 307, reply.body[:300]
    async with session.get(reply.headers["Location"]) as resp:
        assert hashlib.sha256(await resp.read()).digest() == hashlib.sha256(body).digest()
        assert resp.headers.get("Content-Disposition") == disposition
        assert resp.headers["Content-Type"] == content_type


# --------------------------------------------------------------------------- 7. IPv4-mapped deny rules

async def test_a_mapped_ipv6_deny_rule_keeps_an_ipv4_caller_out(session, agent_factory, origin):
    guarded = agent_factory(origin, "--deny-ip", "::ffff:127.0.0.1/128")
    reply = await request(session, "GET", guarded.public_url, "/echo")  # the caller is 127.0.0.1 (IPv4)
    assert reply.status == 403 and reply.headers["x-tunnel-error"] == "ip_denied", reply.status


# --------------------------------------------------------------------------- 6. basic auth

def _basic(user: str, password: str) -> dict[str, str]:
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_a_password_guesser_is_slowed_to_429_and_the_app_gets_the_user_not_the_password(
        session, agent_factory, origin):
    from httptunnel import gate
    guarded = agent_factory(origin, "--basic-auth", "alice:correct-horse")
    reply = await request(session, "GET", guarded.public_url, "/echo",
                          headers={**_basic("alice", "correct-horse"), "X-Forwarded-User": "admin"})
    assert reply.status == 200, reply.body[:300]
    seen = [(k.lower(), v) for k, v in json.loads(reply.body)["headers"]]
    assert [v for k, v in seen if k == "x-forwarded-user"] == ["alice"], seen
    assert "authorization" not in dict(seen)
    statuses = [(await request(session, "GET", guarded.public_url, "/echo", headers=_basic("alice", f"guess-{i}"))).status
                for i in range(gate.AUTH_FAILURE_BURST + 5)]
    # one warm forward instance here: the budget is 10 failures at once (several instances: each its own)
    assert statuses[:gate.AUTH_FAILURE_BURST] == [401] * gate.AUTH_FAILURE_BURST, statuses
    assert 429 in statuses[gate.AUTH_FAILURE_BURST:], statuses
    prompt = await request(session, "GET", guarded.public_url, "/echo")
    assert prompt.status == 401 and f'realm="http-tunnel {guarded.tunnel_id}"' in prompt.headers["WWW-Authenticate"]
