"""Channel v2 `ack` in the agent: answers are resent until acknowledged (a throttled answer is
not lost), and only when the server agreed the capability."""

from __future__ import annotations

import asyncio

from ttf.events import TunnelEstablished

from conftest import make_config, wait_until


async def test_the_agent_announces_what_it_speaks(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    assert gateway.conns[0].headers["X-Tunnel-Capabilities"] == "ack"


async def test_a_throttled_answer_is_resent_until_acknowledged(gateway, local_app, running):
    gateway.speaks = ("ack",)
    gateway.throttle_answers = 2  # the first copy and the first resend are refused
    _, port = local_app
    h = running(make_config(gateway, port))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    conn = gateway.conns[0]
    await conn.request_frame("r1", "GET", "/echo")
    reply = await asyncio.wait_for(conn.next_reply(), timeout=10)
    assert reply["request_id"] == "r1" and reply["status_code"] == 200 and reply["seq"] == 0 and reply["ack"] is True
    answers = [m for m in conn.received if m.get("type") == "http_response"]
    assert len(answers) == 3  # refused, refused, stored (then acknowledged)
    await asyncio.sleep(2.5)  # past the next resend timer (1 s, 2 s, 4 s): an ack ends the resends
    assert len([m for m in conn.received if m.get("type") == "http_response"]) == 3


async def test_an_old_server_gets_one_answer_without_seq(gateway, local_app, running):
    gateway.throttle_answers = 1  # lost, as today: nothing tells the agent
    _, port = local_app
    h = running(make_config(gateway, port))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    conn = gateway.conns[0]
    await conn.request_frame("r1", "GET", "/echo")
    await conn.request_frame("r2", "GET", "/echo")
    reply = await asyncio.wait_for(conn.next_reply(), timeout=5)
    assert reply["request_id"] == "r2" and "seq" not in reply and "ack" not in reply
    await asyncio.sleep(1.5)
    assert [m["request_id"] for m in conn.received if m.get("type") == "http_response"] == ["r1", "r2"]
