"""Several tunnels from one config file in the inspector page: a header line per tunnel, the
tunnel column and filter, and a replay that goes back through the tunnel it came from."""

from __future__ import annotations

import asyncio
import base64
import socket

import pytest

from tests.browser.conftest import SHOTS, Site, until, wait_for
from tests.cli.conftest import FakeGateway, Harness, make_config
from ttf.events import TunnelEstablished

pytestmark = pytest.mark.browser  # make test-browser, never make test


async def test_two_tunnels_header_column_filter_and_replay(aiohttp_server, playwright_browser):
    gateway = FakeGateway()
    gateway.next_ids = ["one", "two"]
    gw_server = await aiohttp_server(gateway.app, host="127.0.0.1")
    gateway.url = str(gw_server.make_url("")).rstrip("/")
    site = Site()
    site_server = await aiohttp_server(site.app, host="127.0.0.1")
    with socket.socket() as down:  # the api's local service is down
        down.bind(("127.0.0.1", 0))
        configs = [make_config(gateway, site_server.port, name="web", inspect=("127.0.0.1", 0)),
                   make_config(gateway, down.getsockname()[1], name="api", inspect=("127.0.0.1", 0))]
        harness = Harness(configs).start()
        try:
            await wait_for(lambda: len(harness.of(TunnelEstablished)) == 2, "both tunnels")
            conns = {e.tunnel: gateway.conns[int(e.connection_id.removeprefix("conn-"))]
                     for e in harness.of(TunnelEstablished)}
            for n, name in enumerate(["web", "api", "web"]):
                await conns[name].request_frame(f"r{n}", "POST", f"/echo/{name}?n={n}",
                                                headers={"Host": ["x.example.test"]},
                                                body=base64.b64encode(b"<b>" + name.encode()).decode())
                await conns[name].next_reply()
            context = await playwright_browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(harness.agent.inspector.url)
            await until(page, "() => document.querySelectorAll('#rows tr').length === 3", "three rows")

            header = await page.text_content("header")
            assert "web" in header and "api" in header
            # api's local service is down (the port refuses connections): the tunnel is online, the app is not
            await until(page, "() => document.getElementById('state').textContent === "
                              "'2 of 2 tunnels online · 1 local service down'", "the header counts the down service")
            states = await page.locator("#tunnel .state").all_text_contents()
            assert states == ["online", "online · local service down (connection refused)"]
            assert f"http://127.0.0.1:{site_server.port}" in header and "https://api.example.test/one" in header
            cells = await page.locator("#rows td.tunnel").evaluate_all("tds => tds.map(td => td.textContent)")
            assert cells == ["web", "api", "web"]
            assert await page.locator("#rows td.tunnel").first.is_visible()  # the column shows
            options = await page.locator("#f-tunnel option").evaluate_all("os => os.map(o => o.value)")
            assert options == ["", "web", "api"] and await page.locator("#f-tunnel").is_visible()

            await page.select_option("#f-tunnel", "api")
            await until(page, "() => document.querySelectorAll('#rows tr').length === 1", "api's row only")
            assert await page.locator("#rows td.tunnel").all_text_contents() == ["api"]
            await page.click("#rows tr")
            await page.wait_for_selector("#detail >> text=tunnel api")
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "20-tunnels-filtered.png"))
            await page.select_option("#f-tunnel", "")
            await until(page, "() => document.querySelectorAll('#rows tr').length === 3", "all rows again")

            # Replay from the page (a POST asks first): web's entry goes back to web's service
            await page.click("#rows tr[data-id='1']")
            before = len(site.seen)
            await page.click("#do-replay")
            await page.wait_for_selector("#confirm[open]")  # a POST asks first
            await page.click("#confirm-ok")
            await wait_for(lambda: len(site.seen) == before + 1, "the replay at web's service")
            listing = await page.evaluate("() => fetch('/api/requests').then(r => r.json())")
            replay = listing["requests"][0]
            assert (replay["tunnel"], replay["replay_of"], replay["status"]) == ("web", 1, 200)
            assert site.seen[-1]["raw_path"] == "/echo/web?n=0"
            assert not errors, errors
            await context.close()
        finally:
            harness.agent.request_stop()
            await asyncio.wait_for(harness.task, 10)
