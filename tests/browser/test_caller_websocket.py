"""A page in headless Chromium exchanging WebSocket messages with the local app through the tunnel
(issue 24): the page comes through the HTTP API's subdomain URL, its `new WebSocket(...)` goes to
the caller WebSocket API (`caller_ws_url_template`), and the app echoes what it gets."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import WSMsgType, web

from tests.browser import test_static_site
from tests.e2e import conftest as e2e
from tests.e2e.conftest import Tunnel, start_agent

pytestmark = pytest.mark.browser
stack = e2e.stack  # the local stack fixture of tests/e2e (session scope)
browser = test_static_site.browser  # the same headless Chromium (*.localhost mapped to 127.0.0.1)

PAGE = """<!doctype html><meta charset="utf-8"><title>ws</title><body><script>
const url = new URLSearchParams(location.search).get("ws");
const got = [];
const ws = new WebSocket(url, ["chat"]);
ws.onopen = () => { for (let n = 0; n < 20; n++) ws.send(`page ${n} ✓`); };
ws.onmessage = (e) => { got.push(e.data); if (got.length === 20) { document.body.dataset.got = JSON.stringify(got);
  document.body.dataset.protocol = ws.protocol; ws.close(4000, "page done"); } };
ws.onerror = () => { document.body.dataset.error = "yes"; };
</script></body>"""


class EchoApp:
    """Serves the page on plain GETs and echoes on WebSocket upgrades (subprotocol `chat`)."""

    def __init__(self) -> None:
        self.close_codes: list[int | None] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text=PAGE, content_type="text/html")
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str("echo " + msg.data)
        self.close_codes.append(ws.close_code)
        return ws


@pytest.fixture
async def echo_app() -> Any:
    app = EchoApp()
    web_app = web.Application()
    web_app.router.add_get("/{tail:.*}", app.handle)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield app, runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def echo_tunnel(stack: e2e.StackInfo, echo_app: Any, tmp_path: Any) -> Any:
    _, port = echo_app
    tunnel: Tunnel = await asyncio.to_thread(start_agent, stack, port, tmp_path)
    try:
        yield tunnel
    finally:
        tunnel.agent.stop()


async def test_a_page_exchanges_messages_with_the_app_through_the_tunnel(browser, stack, echo_app, echo_tunnel):
    app, _ = echo_app
    state = json.loads(stack.state_file.read_text())
    caller = state["caller_ws_url_template"].replace("{tunnel_id}", echo_tunnel.tunnel_id)
    page_url = echo_tunnel.public_url.rstrip("/") + "/?ws=" + quote(caller, safe="")
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    try:
        response = await page.goto(page_url)
        assert response is not None and response.status == 200, (page_url, response and response.status)
        try:
            await page.wait_for_function("() => document.body.dataset.got || document.body.dataset.error",
                                         timeout=60_000)
        except Exception as exc:
            pytest.fail(f"no answer in the page: {exc!r}; console: {console}")
        assert await page.evaluate("document.body.dataset.error") is None
        got = json.loads(await page.evaluate("document.body.dataset.got"))
        # every message once, UTF-8 intact; a burst's order is not kept (shared/README.md "Ordering")
        assert sorted(got) == sorted(f"echo page {n} ✓" for n in range(20)), got
        assert await page.evaluate("document.body.dataset.protocol") == "chat"
    finally:
        await context.close()
    for _ in range(100):  # the page's close code (4000) reaches the app within 5 s
        if app.close_codes:
            break
        await asyncio.sleep(0.05)  # bounded: 100 x 50 ms
    assert app.close_codes == [4000]
