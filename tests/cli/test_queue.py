"""The agent's queue is bounded, and a request whose time is up is dropped, not served (issue 12, item 3)."""

from __future__ import annotations

import asyncio

from ttf.events import TunnelEstablished
from ttf.tunnel import QUEUE_PER_SLOT

from conftest import make_config, wait_until


async def test_beyond_the_queue_bound_the_agent_answers_tunnel_busy_at_once(gateway, local_app, running):
    app, port = local_app
    h = running(make_config(gateway, port, max_concurrency=2))
    await wait_until(lambda: h.of(TunnelEstablished))
    conn = gateway.conns[0]
    bound = 2 * (1 + QUEUE_PER_SLOT)
    for i in range(bound):
        await conn.request_frame(f"held{i}", "GET", f"/hold?i={i}")
    await wait_until(lambda: app.arrived == 2, what="two requests at the local app")
    for i in range(3):
        await conn.request_frame(f"extra{i}", "GET", "/hold")
    busy = [await conn.next_reply(timeout=2) for _ in range(3)]  # at once: nothing was released yet
    assert [(r["type"], r["request_id"], r["code"]) for r in busy] == \
        [("error", f"extra{i}", "tunnel_busy") for i in range(3)]
    assert app.arrived == 2
    app.release.set()
    answered = [await conn.next_reply() for _ in range(bound)]
    assert sorted(r["request_id"] for r in answered) == sorted(f"held{i}" for i in range(bound))
    assert all(r["status_code"] == 200 for r in answered)  # everything admitted is served: nothing lost


async def test_a_request_whose_time_ran_out_in_the_queue_is_dropped(gateway, local_app, running, caplog):
    app, port = local_app
    h = running(make_config(gateway, port, max_concurrency=1))
    await wait_until(lambda: h.of(TunnelEstablished))
    conn = gateway.conns[0]
    await conn.request_frame("first", "GET", "/hold")
    await wait_until(lambda: app.arrived == 1, what="the first request at the local app")
    # the server still waits 200 ms for this one; the only slot stays busy longer than that
    await conn.request_frame("late", "GET", "/echo", time_left_ms=200, timestamp=1)  # wall clock far off
    await conn.request_frame("in-time", "GET", "/echo", time_left_ms=60_000)
    await asyncio.sleep(0.5)
    app.release.set()
    reply = await conn.next_reply()
    assert reply["request_id"] == "first"
    reply = await conn.next_reply()
    assert reply["request_id"] == "in-time" and reply["status_code"] == 200
    assert any("dropped GET /echo" in r.getMessage() for r in caplog.records)
    await asyncio.sleep(0.2)
    assert conn.inbox.empty()  # "late" was dropped: never served, no answer (its caller already has a 504)
    assert "late" not in {m.get("request_id") for m in conn.received}


async def test_requests_without_time_left_are_served_as_before(gateway, local_app, running):
    app, port = local_app
    h = running(make_config(gateway, port, max_concurrency=1))
    await wait_until(lambda: h.of(TunnelEstablished))
    conn = gateway.conns[0]
    await conn.request_frame("old-server", "GET", "/echo")  # no time_left_ms: an older server
    assert (await conn.next_reply())["status_code"] == 200
