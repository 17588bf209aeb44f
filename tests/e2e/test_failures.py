"""The failure paths: 502 (agent killed), 503 (local service down), 504 (local service too slow), 501 (a WebSocket upgrade),
a reconnecting agent keeps its URL, a forged response from another agent is refused."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import aiohttp
import pytest

from httptunnel import protocol
from tests.e2e.client import request


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_POSTED = re.compile(r"<- http_request ([A-Za-z0-9_.-]{1,128})")


async def wait_posted(agent, timeout: float = 10) -> str:
    """The request id of the first http_request the agent (run with -v) received. Nothing is
    written to DynamoDB before the post any more, so the agent's own log is where it shows."""
    log_path = agent.agent.log_path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _POSTED.search(log_path.read_text(errors="replace")) if log_path.exists() else None
        if found:
            return found.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no request reached agent {agent.tunnel_id} within {timeout} s")


async def test_local_service_down_is_503(session, agent_factory):
    port = closed_port()
    agent = agent_factory(port)
    reply = await request(session, "GET", agent.public_url, "/anything")
    assert reply.status == 503
    assert reply.headers["x-tunnel-error"] == "local_service_unavailable"
    # strangers learn what failed, not where: the address and errno are in ttf's log only
    assert str(port) not in reply.body.decode() and "Errno" not in reply.body.decode()
    assert f"127.0.0.1:{port}" in agent.agent.log_path.read_text()


async def test_an_app_that_drops_the_connection_is_local_service_error(session, agent_factory):
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()  # the request read, not a byte answered

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    try:
        agent = agent_factory(server.sockets[0].getsockname()[1])
        reply = await request(session, "GET", agent.public_url, "/anything")
    finally:
        server.close()
    assert (reply.status, reply.headers["x-tunnel-error"]) == (502, "local_service_error")
    assert "127.0.0.1" not in reply.body.decode()


async def test_local_service_too_slow_is_504(session, agent_factory, origin):
    agent = agent_factory(origin, "--request-timeout", "1")
    reply = await request(session, "GET", agent.public_url, "/sleep?s=4")
    assert reply.status == 504
    assert reply.seconds < 10


async def test_a_websocket_upgrade_is_501_naming_the_limit(session, agent_factory, origin):
    """Issue 28: WebSockets do not pass through yet; the handshake is answered 501 at the edge instead
    of reaching the app as a plain GET (whose 400 the browser would get)."""
    agent = agent_factory(origin)
    reply = await request(session, "GET", agent.public_url, "/socket", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13"})
    assert (reply.status, reply.headers["x-tunnel-error"]) == (501, "websocket_unsupported")
    assert b"WebSocket connections do not pass through the tunnel" in reply.body
    plain = await request(session, "GET", agent.public_url, "/echo/socket")  # and nothing else changed
    assert plain.status == 200


async def test_agent_killed_mid_request_is_a_prompt_502(session, agent_factory, origin, stack):
    agent = agent_factory(origin, "-v")
    call = asyncio.create_task(request(session, "GET", agent.public_url, "/sleep?s=20"))
    await wait_posted(agent)
    killed_at = time.monotonic()
    agent.agent.kill()
    reply = await asyncio.wait_for(call, 30)
    waited = time.monotonic() - killed_at
    assert reply.status == 502, reply.body[:300]
    assert waited < 6, f"the caller waited {waited:.1f} s after the agent died"


async def test_reconnecting_agent_keeps_its_url(session, agent_factory, origin, stack):
    agent = agent_factory(origin)
    url = f"{stack.management_url}/prod/@connections/{agent.connection_id}"
    async with session.delete(url) as resp:
        assert resp.status == 204
    line = await asyncio.to_thread(agent.agent.wait_line, lambda l: '"tunnel_established"' in l, 30)
    again = json.loads(line)
    assert again["connection_id"] != agent.connection_id
    assert again["tunnel_id"] == agent.tunnel_id
    assert again["public_url"] == agent.public_url
    reply = await request(session, "GET", agent.public_url, "/bytes?n=10")
    assert reply.status == 200 and len(reply.body) == 10


async def test_forged_response_from_another_agent_is_refused(session, agent_factory, origin, stack):
    victim = agent_factory(origin, "-v")
    call = asyncio.create_task(request(session, "GET", victim.public_url, "/sleep?s=3"))
    request_id = await wait_posted(victim)
    # the attacker is another authenticated user of the same deployment
    async with session.ws_connect(stack.ws_url, headers={"Authorization": f"Bearer {stack.token}"}) as attacker:
        await attacker.send_str(protocol.encode(protocol.Ready()))
        established = protocol.decode((await attacker.receive(timeout=10)).data)
        assert isinstance(established, protocol.ConnectionEstablished)
        assert established.tunnel_id != victim.tunnel_id
        forged = protocol.HttpResponse(request_id=request_id, status_code=299,
                                       headers={"x-forged": ["yes"]}, body=protocol.b64encode(b"forged"))
        await attacker.send_str(protocol.encode(forged))
        reply = await asyncio.wait_for(call, 30)
    assert reply.status == 200
    assert reply.body == b"slept"
    assert "x-forged" not in reply.headers


async def test_restarted_agent_keeps_its_url(session, agent_factory, origin):
    """ttf saves its reclaim token: killed (-9) and started again, it gets the same URL back."""
    first = agent_factory(origin)
    first.agent.kill()
    second = agent_factory(origin)
    assert second.tunnel_id == first.tunnel_id
    assert second.public_url == first.public_url
    reply = await request(session, "GET", second.public_url, "/bytes?n=10")
    assert reply.status == 200 and len(reply.body) == 10
