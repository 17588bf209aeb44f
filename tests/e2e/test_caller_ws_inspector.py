"""Caller WebSocket sessions in the inspector, through the local stack (issue 24 item 4): a real
caller socket on the caller WebSocket API, a real `ttf` with its inspector on, the local app of
tests/e2e/ws_origin.py. The inspector lists the session with its messages, sends a text into it
that reaches the caller, and shows the caller's close code."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from scripts.harness.stack import TtfAgent
from tests.e2e.test_caller_ws import caller_url, receive_text, warm_up
from tests.e2e.ws_origin import App


@pytest.fixture
async def app_port():
    origin = App()
    runner = web.AppRunner(origin.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield origin, runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
def inspected_agent(stack, app_port, tmp_path):
    _, port = app_port
    agent = TtfAgent(stack.ws_url, port, tmp_path, state_dir=tmp_path / "ttf-state", inspect="127.0.0.1:0",
                     token=stack.token if stack.auth else None).start(30)
    try:
        yield agent, agent.established["inspector_url"]
    finally:
        agent.stop()


async def until_json(client: aiohttp.ClientSession, url: str, check, what: str, timeout: float = 15) -> dict:
    """The inspector's answer at `url` once `check(answer)` holds (deadline-based)."""
    deadline = time.monotonic() + timeout
    while True:
        async with client.get(url) as resp:
            data = await resp.json()
        if check(data):
            return data
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s (last answer {data})")
        await asyncio.sleep(0.1)  # polling the inspector's API, bounded by the deadline above


async def test_the_inspector_lists_a_real_session_and_sends_into_it(stack, app_port, inspected_agent):
    origin, _ = app_port
    agent, inspector = inspected_agent
    await warm_up(stack, agent)  # the stack's cold functions first (their own session: #1 in the inspector)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session, \
            aiohttp.ClientSession() as client:
        async with caller_url(stack, agent.tunnel_id, "subdomain", "room=7").connect(session, protocols=("chat",)) as ws:
            listed = await until_json(client, f"{inspector}/api/sockets",
                                      lambda d: any(s["uri"] == "/?room=7" and s["state"] == "open" for s in d["sockets"]),
                                      "the caller's session listed open")
            sid = next(s["id"] for s in listed["sockets"] if s["uri"] == "/?room=7")
            await ws.send_str("<b>héllo</b>")
            assert await receive_text(ws) == "<b>héllo</b>"  # the app echoes
            detail = await until_json(client, f"{inspector}/api/sockets/{sid}",
                                      lambda d: d["messages"] == {"to_app": 1, "to_caller": 1}, "the echo recorded")
            assert [(m["direction"], m["text"]) for m in detail["kept"]] == [("to_app", "<b>héllo</b>"),
                                                                           ("to_caller", "<b>héllo</b>")]
            assert detail["protocol"] == "chat" and detail["bytes"]["to_app"] == len("<b>héllo</b>".encode())

            async with client.post(f"{inspector}/api/sockets/{sid}/send", json={"text": "from the inspector ✓"}) as resp:
                assert resp.status == 200, await resp.text()
            assert await receive_text(ws) == "from the inspector ✓"  # through the response Lambda to the caller
            assert origin.sessions[-1].received == ["<b>héllo</b>"]  # toward the caller only
            await ws.close(code=4321)
        closed = await until_json(client, f"{inspector}/api/sockets/{sid}", lambda d: d["state"] == "closed",
                                  "the caller's close recorded")
        assert (closed["close_code"], closed["closed_by"]) == (4321, "caller")
        async with client.post(f"{inspector}/api/sockets/{sid}/send", json={"text": "late"}) as resp:
            assert resp.status == 409 and "closed (by the caller with 4321)" in (await resp.json())["error"]
