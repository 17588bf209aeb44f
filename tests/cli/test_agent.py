"""The agent in-process against the fake API Gateway and a real local app."""

from __future__ import annotations

import asyncio
import re

import pytest

from ttf.agent import Fatal
from ttf.backoff import Backoff
from ttf.events import Disconnected, Notice, Reconnecting, RequestDone, TunnelEstablished

from conftest import Harness, make_config, wait_until


async def test_protocol_connect_ready_established_request_response(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port, token="jwt-abc", subdomain="myname"))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    conn = gateway.conns[0]
    assert conn.headers["Authorization"] == "Bearer jwt-abc"
    assert conn.headers["X-Tunnel-Subdomain"] == "myname"
    assert "X-Tunnel-Id" not in conn.headers and "X-Tunnel-Rewrite" not in conn.headers
    # the agent makes its reclaim token itself (256 bits, base64url) and presents it from the first connect
    token = conn.headers["X-Tunnel-Reclaim-Token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token) and gateway.reservations["tun123"] == token
    assert conn.received[0] == {"type": "ready"}
    est = h.of(TunnelEstablished)[0]
    assert (est.tunnel_id, est.subdomain_url) == ("tun123", "https://tun123.t.example.test")

    # junk from the server is logged and ignored, the socket stays up
    await conn.ws.send_str("not json")
    await conn.send({"type": "no_such_type"})
    await conn.send({"type": "http_request", "request_id": 5})
    await conn.request_frame("r1", "GET", "/echo?a=%2F")
    reply = await conn.next_reply()
    assert reply["type"] == "http_response" and reply["request_id"] == "r1" and reply["status_code"] == 200
    done = h.of(RequestDone)
    assert done and done[0].path == "/echo" and done[0].status == 200
    assert len(gateway.conns) == 1 and not conn.closed.is_set()


async def test_no_rewrite_is_asked_for_at_connect(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port, no_rewrite=True))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    assert gateway.conns[0].headers["X-Tunnel-Rewrite"] == "off"


async def test_server_ping_gets_pong(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port))
    await wait_until(lambda: h.of(TunnelEstablished))
    await gateway.conns[0].send({"type": "ping"})
    await wait_until(lambda: {"type": "pong"} in gateway.conns[0].received, what="pong")


async def test_reconnect_reclaims_the_same_tunnel_id(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port))
    await wait_until(lambda: h.of(TunnelEstablished))
    gateway.tunnel_id = "other-id"  # a fresh connection without reclaim would get a new id
    gateway.conns[0].kill()
    await wait_until(lambda: len(h.of(TunnelEstablished)) == 2, what="second tunnel_established")
    second = gateway.conns[1].headers
    assert second["X-Tunnel-Id"] == "tun123"
    assert second["X-Tunnel-Reclaim-Token"] == gateway.conns[0].headers["X-Tunnel-Reclaim-Token"]
    assert h.of(TunnelEstablished)[1].tunnel_id == "tun123"
    assert h.of(Disconnected) and h.of(Reconnecting)
    await gateway.conns[1].request_frame("r2", "GET", "/echo")
    assert (await gateway.conns[1].next_reply())["status_code"] == 200


async def test_requests_that_arrive_before_connection_established_are_served(gateway, local_app, running):
    """The connection row exists from $connect on, so requests can reach a reconnecting agent before
    its connection_established: they are answered on that socket, not dropped (callers waited 25 s)."""
    _, port = local_app
    gateway.early_request_ids = ["early-1", "early-2"]
    h = running(make_config(gateway, port))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    replies = [await gateway.conns[0].next_reply(), await gateway.conns[0].next_reply()]
    assert sorted(r["request_id"] for r in replies) == ["early-1", "early-2"]
    assert all(r["type"] == "http_response" and r["status_code"] == 200 for r in replies)
    gateway.early_request_ids = ["early-3"]
    gateway.conns[0].kill()  # and on a reconnect, which is where it happens under traffic
    await wait_until(lambda: len(h.of(TunnelEstablished)) == 2, what="second tunnel_established")
    reply = await gateway.conns[1].next_reply()
    assert (reply["request_id"], reply["status_code"]) == ("early-3", 200)


async def test_backoff_timing_with_injected_sleep_and_reset(gateway, local_app, running):
    _, port = local_app
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        await asyncio.sleep(0)

    gateway.refuse_status = 502
    h = running(make_config(gateway, port), sleep=fake_sleep, backoff=Backoff(rand=lambda: 0.0))
    await wait_until(lambda: len(slept) >= 9, what="nine retries")
    assert slept[:9] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert all(e.reason == "endpoint refused the WebSocket (HTTP 502)" for e in h.of(Reconnecting))
    gateway.refuse_status = None
    await wait_until(lambda: h.of(TunnelEstablished), what="connected after refusals")
    count = len(slept)
    gateway.conns[0].kill()
    await wait_until(lambda: len(h.of(TunnelEstablished)) == 2)
    assert slept[count] == 1  # reset after a successful session


def test_backoff_jitter_bounds():
    values = iter([1.0, 0.5, 0.0])
    b = Backoff(rand=lambda: next(values))
    assert [b.next_delay(), b.next_delay(), b.next_delay()] == [0.75, 2 * 0.875, 4.0]
    b.reset()
    assert b.attempt == 0


async def test_silent_socket_is_detected_and_replaced(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port, heartbeat_interval=0.3))
    await wait_until(lambda: h.of(TunnelEstablished))
    gateway.conns[0].silent = True  # still open, but never answers again
    await wait_until(lambda: len(gateway.conns) == 2 and h.of(TunnelEstablished)[1:], timeout=3.0,
                     what="a replacement connection")
    assert "heartbeat" in h.of(Disconnected)[0].reason
    pings = [m for m in gateway.conns[0].received if m["type"] == "ping"]
    assert pings, "the agent never pinged"


async def test_concurrency_bound_queues_requests(gateway, local_app, running):
    app, port = local_app
    h = running(make_config(gateway, port, max_concurrency=3))
    await wait_until(lambda: h.of(TunnelEstablished))
    conn = gateway.conns[0]
    for i in range(10):
        await conn.request_frame(f"r{i}", "GET", f"/hold?i={i}")
    await wait_until(lambda: app.arrived == 3, what="three requests at the local app")
    await asyncio.sleep(0.2)  # give a wrongly unbounded agent the chance to send more
    assert app.arrived == 3 and app.inflight == 3
    app.release.set()
    replies = [await conn.next_reply() for _ in range(10)]
    assert sorted(r["request_id"] for r in replies) == sorted(f"r{i}" for i in range(10))
    assert all(r["status_code"] == 200 for r in replies)
    assert app.max_inflight == 3


async def test_renewal_keeps_in_flight_requests(gateway, local_app, running, monkeypatch):
    monkeypatch.setattr("ttf.lifecycle.RETIRE_GRACE_S", 1.0)  # the real 6 s (> forward's cache) only slows the test
    _, port = local_app
    h = running(make_config(gateway, port, renew_after=0.6, request_timeout=5.0))
    await wait_until(lambda: h.of(TunnelEstablished))
    old = gateway.conns[0]
    await old.request_frame("slow", "GET", "/slow?s=1.5")
    await wait_until(lambda: len(gateway.conns) >= 2 and len(h.of(TunnelEstablished)) >= 2, what="renewal")
    new = gateway.conns[1]
    assert new.headers["X-Tunnel-Id"] == "tun123"
    assert new.headers["X-Tunnel-Reclaim-Token"] == old.headers["X-Tunnel-Reclaim-Token"]
    assert h.of(TunnelEstablished)[1].renewed
    assert not old.closed.is_set()  # still draining
    reply = await old.next_reply(timeout=5)
    assert reply["request_id"] == "slow" and reply["status_code"] == 200
    await asyncio.wait_for(old.closed.wait(), 5)  # closed once drained
    await new.request_frame("after", "GET", "/echo")
    assert (await new.next_reply())["status_code"] == 200
    assert not h.of(Disconnected)


async def test_stop_drains_in_flight_then_closes(gateway, local_app, running):
    app, port = local_app
    h = running(make_config(gateway, port, drain_timeout=5.0))
    await wait_until(lambda: h.of(TunnelEstablished))
    conn = gateway.conns[0]
    await conn.request_frame("slow", "GET", "/slow?s=0.5")
    await wait_until(lambda: app.slow_arrived == 1, what="the slow request at the local app")
    h.agent.request_stop()
    await conn.request_frame("late", "GET", "/echo")  # arrives after the stop: refused quickly
    await asyncio.wait_for(h.task, 5)
    replies = {}
    while not conn.inbox.empty():
        r = conn.inbox.get_nowait()
        replies[r["request_id"]] = r
    assert replies["slow"]["type"] == "http_response" and replies["slow"]["status_code"] == 200
    assert replies["late"]["type"] == "error" and replies["late"]["code"] == "local_service_unavailable"
    await asyncio.wait_for(conn.closed.wait(), 2)


async def test_stop_gives_up_on_requests_past_the_drain_timeout(gateway, local_app, running):
    app, port = local_app
    h = running(make_config(gateway, port, drain_timeout=0.3))
    await wait_until(lambda: h.of(TunnelEstablished))
    conn = gateway.conns[0]
    await conn.request_frame("stuck", "GET", "/hold")
    await wait_until(lambda: app.arrived == 1)
    h.agent.request_stop()
    await asyncio.wait_for(h.task, 3)
    reply = await conn.next_reply(1)
    assert reply["type"] == "error" and reply["request_id"] == "stuck"


async def test_rejected_token_before_any_success_is_fatal(gateway, local_app):
    _, port = local_app
    gateway.refuse_status = 401
    h = Harness(make_config(gateway, port, token="bad")).start()
    with pytest.raises(Fatal, match="401"):
        await asyncio.wait_for(h.task, 5)


async def test_no_connection_established_times_out_and_retries(gateway, local_app, running):
    _, port = local_app
    gateway.establish = False
    h = running(make_config(gateway, port, connect_timeout=0.3))
    await wait_until(lambda: len(h.of(Reconnecting)) >= 2, what="two retries")
    assert "no connection_established within 0.3 s" in h.of(Reconnecting)[0].reason
    gateway.establish = True
    await wait_until(lambda: h.of(TunnelEstablished), what="eventual connection")


async def test_failed_renewal_keeps_the_current_connection(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port, renew_after=0.3))
    await wait_until(lambda: h.of(TunnelEstablished))
    gateway.refuse_status = 503
    await wait_until(lambda: any("renewal failed" in n.message for n in h.of(Notice)), what="renewal failure")
    conn = gateway.conns[0]
    assert not conn.closed.is_set()
    await conn.request_frame("r", "GET", "/echo")
    assert (await conn.next_reply())["status_code"] == 200
    assert not h.of(Disconnected)


async def test_rejected_reclaim_falls_back_to_a_new_tunnel(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port))
    await wait_until(lambda: h.of(TunnelEstablished))
    gateway.refuse_status = 403
    gateway.conns[0].kill()
    await wait_until(lambda: any("could not be reclaimed" in n.message for n in h.of(Notice)), what="reclaim notice")
    gateway.tunnel_id = "fresh"
    gateway.refuse_status = None
    await wait_until(lambda: len(h.of(TunnelEstablished)) == 2, what="new tunnel")
    assert "X-Tunnel-Id" not in gateway.conns[-1].headers
    assert h.of(TunnelEstablished)[1].tunnel_id == "fresh"
    # a new id comes with a new token: the refused one is never presented again
    assert gateway.conns[-1].headers["X-Tunnel-Reclaim-Token"] != gateway.conns[0].headers["X-Tunnel-Reclaim-Token"]
