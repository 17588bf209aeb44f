"""Channel v2 `ack` in the agent: answers are resent until acknowledged (a throttled answer is
not lost), and only when the server agreed the capability."""

from __future__ import annotations

import asyncio

from ttf.events import TunnelEstablished

from conftest import make_config, wait_until


async def established(gateway, local_app, running, speaks: tuple[str, ...] = ("ack",)):
    """An agent connected to the fake gateway (speaking ``speaks``): its socket there."""
    gateway.speaks = speaks
    h = running(make_config(gateway, local_app[1]))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    return gateway.conns[0]


async def test_the_agent_announces_what_it_speaks(gateway, local_app, running):
    conn = await established(gateway, local_app, running, speaks=())
    assert conn.headers["X-Tunnel-Capabilities"] == "ack,stream,ws"


async def test_a_throttled_answer_is_resent_until_acknowledged(gateway, local_app, running):
    gateway.throttle_answers = 2  # the first copy and the first resend are refused
    conn = await established(gateway, local_app, running)
    await conn.request_frame("r1", "GET", "/echo")
    reply = await asyncio.wait_for(conn.next_reply(), timeout=10)
    assert reply["request_id"] == "r1" and reply["status_code"] == 200 and reply["seq"] == 0 and reply["ack"] is True
    answers = [m for m in conn.received if m.get("type") == "http_response"]
    assert len(answers) == 3  # refused, refused, stored (then acknowledged)
    await asyncio.sleep(2.5)  # past the next resend timer (1 s, 2 s, 4 s): an ack ends the resends
    assert len([m for m in conn.received if m.get("type") == "http_response"]) == 3


async def test_an_old_server_gets_one_answer_without_seq(gateway, local_app, running):
    gateway.throttle_answers = 1  # lost, as today: nothing tells the agent
    conn = await established(gateway, local_app, running, speaks=())
    await conn.request_frame("r1", "GET", "/echo")
    await conn.request_frame("r2", "GET", "/echo")
    reply = await asyncio.wait_for(conn.next_reply(), timeout=5)
    assert reply["request_id"] == "r2" and "seq" not in reply and "ack" not in reply
    await asyncio.sleep(1.5)
    assert [m["request_id"] for m in conn.received if m.get("type") == "http_response"] == ["r1", "r2"]


async def test_an_ack_riding_the_next_request_ends_the_wait_for_free(gateway, local_app, running):
    conn = await established(gateway, local_app, running)
    await conn.request_frame("r1", "GET", "/echo")
    first = await conn.next_reply()
    assert first["seq"] == 0 and "ack" not in first  # the first copy asks for no ack of its own
    await conn.request_frame("r2", "GET", "/echo", acks=["r1"])
    await conn.next_reply()
    await conn.request_frame("r3", "GET", "/echo", acks=["r2"])
    await conn.next_reply()
    await asyncio.sleep(1.5)  # past the 1 s resend timer
    answered = [m["request_id"] for m in conn.received if m.get("type") == "http_response"]
    assert answered.count("r1") == 1 and answered.count("r2") == 1


async def test_without_a_piggyback_the_resend_asks_for_an_ack(gateway, local_app, running):
    conn = await established(gateway, local_app, running)
    await conn.request_frame("r1", "GET", "/echo")
    await conn.next_reply()
    resent = await conn.next_reply(timeout=3)
    assert resent["request_id"] == "r1" and resent["ack"] is True
    await asyncio.sleep(2.5)  # acknowledged: no third copy
    assert [m["request_id"] for m in conn.received if m.get("type") == "http_response"] == ["r1", "r1"]


async def test_the_first_resend_waits_as_long_as_acks_take(gateway, local_app, running):
    """Acks that take 1.5 s (a busy edge) must not draw a resend of every answer after 1 s: the
    agent learns the round trip (chunks.RetransmitTimer) and waits that long, plus its spread."""
    loop = asyncio.get_running_loop()
    conn = await established(gateway, local_app, running)
    await conn.request_frame("r1", "GET", "/echo")
    await conn.next_reply()
    resent = await conn.next_reply(timeout=3)  # no ack within 1 s: resent, and the timer backs off to 2 s
    assert resent["request_id"] == "r1" and resent["ack"] is True
    await conn.request_frame("r2", "GET", "/echo")
    await conn.next_reply()
    with_ack_at = loop.time() + 1.5
    await asyncio.sleep(1.5)  # the ack takes 1.5 s: under the backed-off 2 s, so no resend of r2
    assert [m["request_id"] for m in conn.received if m.get("type") == "http_response"] == ["r1", "r1", "r2"]
    await conn.request_frame("r3", "GET", "/echo", acks=["r2"])  # measured: 1.5 s -> next delay 1.5 + 4 x 0.75
    first = await conn.next_reply()
    sent_at = loop.time()
    assert first["request_id"] == "r3" and sent_at >= with_ack_at
    again = await conn.next_reply(timeout=10)
    waited = loop.time() - sent_at
    assert again["request_id"] == "r3" and again["ack"] is True
    assert 4.0 <= waited <= 6.0, waited
