"""The local service's state (issue 28): a tunnel can be online while the app behind it is down.

Tested against a closed port (bound, not listening: connections are refused) that later starts
listening, through the probe alone and through the whole agent with two tunnels, one of them
pointing at the closed port: its events, the dashboard and the inspector's status say so."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ttf.events import LocalService, RequestDone, TunnelEstablished
from ttf.probe import LocalProbe, connectable
from ttf.render import MultiDashboard, render_dashboard

from conftest import Harness, make_config, wait_until
from test_render import record


@pytest.fixture
def reserved():
    """A socket bound to a free port and not listening; `.listen()` brings the "service" up."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s


async def test_connectable_says_why_not(reserved):
    port = reserved.getsockname()[1]
    assert await connectable("127.0.0.1", port) == "connection refused"
    reserved.listen()
    assert await connectable("127.0.0.1", port) is None


async def test_the_probe_reports_down_at_start_then_up_once_the_service_listens(reserved):
    port = reserved.getsockname()[1]
    events: list[LocalService] = []
    probe = LocalProbe("127.0.0.1", port, f"127.0.0.1:{port}", events.append, retry=(0.05,))
    task = asyncio.create_task(probe.run())
    try:
        await wait_until(lambda: events, what="the first report")
        assert events == [LocalService(up=False, target=f"127.0.0.1:{port}", detail="connection refused")]
        reserved.listen()
        await wait_until(lambda: len(events) == 2, what="up again")
        assert events[1] == LocalService(up=True, target=f"127.0.0.1:{port}", detail=None)
        await asyncio.sleep(0.2)  # several retry periods: nothing more to say while nothing changes
        assert len(events) == 2
    finally:
        task.cancel()


async def test_a_failed_request_wakes_the_probe_and_an_answer_means_up(reserved):
    port = reserved.getsockname()[1]
    reserved.listen()
    events: list[LocalService] = []
    probe = LocalProbe("127.0.0.1", port, f"127.0.0.1:{port}", events.append, retry=(30.0,))
    task = asyncio.create_task(probe.run())
    try:
        await wait_until(lambda: probe.up is True, what="the start-up look")
        assert events == []  # "up" at start goes without saying
        reserved.close()  # the app stops
        probe.observe(RequestDone("GET", "/", 503, 1, 0, 0, error="local_service_unavailable"))
        await wait_until(lambda: events, what="down, at once (not after the 30 s retry)")
        assert events[0].up is False and events[0].detail == "connection refused"
        probe.observe(RequestDone("GET", "/", 200, 1, 0, 0))  # an answer: it is back
        assert events[-1].up is True and len(events) == 2
    finally:
        task.cancel()


async def test_the_agent_shows_a_down_local_service_per_tunnel(gateway, local_app, reserved):
    _, port = local_app
    closed = reserved.getsockname()[1]
    gateway.next_ids = ["one", "two"]
    web = make_config(gateway, port, name="web", inspect=("127.0.0.1", 0))
    api = make_config(gateway, closed, name="api", inspect=("127.0.0.1", 0))
    h = Harness([web, api]).start()
    try:
        await wait_until(lambda: len(h.of(TunnelEstablished)) == 2 and h.of(LocalService), what="online, api down")
        assert [(e.tunnel, e.up, e.detail) for e in h.of(LocalService)] == [("api", False, "connection refused")]
        status = {t["name"]: t for t in h.agent.inspector.status()["tunnels"]}
        assert (status["web"]["state"], status["web"]["local_service"]) == ("online", None)
        assert (status["api"]["state"], status["api"]["local_service"]) == ("online", "down")
        assert status["api"]["local_detail"] == "connection refused"

        state = MultiDashboard.of([("web", web.endpoint, web.local_target), ("api", api.endpoint, api.local_target)],
                                  0.0, "ttf.toml")
        for event in h.events:
            state.apply(event, 1.0)
        text = record(render_dashboard(state, 2.0), width=160).export_text()
        assert "2 of 2 online · 1 local service down (ttf.toml)" in text
        assert "online · local service down (connection refused)" in next(
            line for line in text.splitlines() if " api " in line)

        reserved.listen()  # the app starts: the probe, looking again every few seconds, sees it
        await wait_until(lambda: h.of(LocalService)[-1].up, timeout=10, what="api's service up")
        assert h.agent.inspector.status()["tunnels"][1]["local_service"] == "up"
    finally:
        await h.stop()
