"""The browser suite (`make test-browser`): the inspector's page in Debian's headless Chromium.

Playwright's Python API drives /usr/bin/chromium (TTF_CHROMIUM overrides) through
executable_path; Playwright's own browser downloads are never used. The agent runs in-process
against the fake API Gateway of tests/cli, in front of a small local site (`Site`), so each test
sends real tunnelled requests and watches them arrive in the page. A missing Chromium or
Playwright is a failure that says how to install it, never a skip: `make test` does not collect
this suite (marker `browser`), `make test-browser` installs what it needs and runs it.
Screenshots of each view go to build/inspector-screenshots/.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.cli.conftest import FakeGateway, Harness, make_config
from ttf.events import TunnelEstablished
from scripts.harness.wait import wait_until_async

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "inspector-screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]



def png(width: int = 4, height: int = 3) -> bytes:
    """A real PNG (red pixels), made here: no binary fixture in the repo."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class Site:
    """The developer's local service: echoes what it got, plus a few typed answers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.router.add_route("*", "/echo{tail:.*}", self._echo)
        self.app.router.add_get("/image.png", self._image)
        self.app.router.add_get("/gzip", self._gzip)
        self.app.router.add_get("/page", self._page)
        self.app.router.add_get("/ws", self._ws)  # a caller WebSocket's local end (the inspector's sessions view)
        self.ws_received: list[str] = []

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        seen = {"method": request.method, "raw_path": request.raw_path, "headers": [[k, v] for k, v in request.headers.items()],
                "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest(), "n": len(self.seen) + 1}
        self.seen.append(seen | {"body": body})
        return web.json_response(seen)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                self.ws_received.append(msg.data)
                await ws.send_str("echo: " + msg.data)
        return ws

    async def _image(self, request: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    async def _gzip(self, request: web.Request) -> web.Response:
        payload = json.dumps({"compressed": True, "items": list(range(5))}).encode()
        return web.Response(body=gzip.compress(payload), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body><script>window.__pwned = 'response'</script>"
                                 "<img src=x onerror=\"window.__pwned='img'\"></body></html>", content_type="text/html")


def chromium_path() -> str:
    path = os.environ.get("TTF_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is not installed: run `make test-browser` (it installs Debian's chromium with apt-get), "
                    "or set TTF_CHROMIUM to a Chromium binary", pytrace=False)
    return path


class Ui:
    """One inspector in one browser page, with the tunnel to send traffic through."""

    def __init__(self, page: Any, url: str, gateway: FakeGateway, harness: Harness, site: Site, site_dir: Path) -> None:
        self.page = page
        self.site_dir = site_dir  # a scratch folder (downloads, commands run from here)
        self.url = url
        self.gateway = gateway
        self.harness = harness
        self.site = site
        self.console_errors: list[str] = []
        self.csp_violations: list[str] = []
        self.expected_errors = 0
        self._n = 0

    async def send(self, method: str, uri: str, headers: dict[str, list[str]] | None = None, body: bytes = b"") -> dict:
        """One request through the tunnel (as API Gateway would deliver it); the agent's answer frame."""
        self._n += 1
        conn = self.gateway.conns[-1]
        headers = {"Host": ["tun123.t.example.test"], **(headers or {})}
        await conn.request_frame(f"r{self._n}", method, uri, headers=headers, body=base64.b64encode(body).decode())
        return await conn.next_reply()

    async def rows(self) -> list[str]:
        return await self.page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.id)")

    async def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=False)
        return path

    async def api(self, path: str) -> Any:
        return await self.page.evaluate("p => fetch(p).then(r => r.json())", path)


async def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    await wait_until_async(predicate, timeout=timeout, what=what)


async def until(page: Any, script: str, what: str, timeout: float = 10.0) -> Any:
    """Poll a JS function `() => value` in the page until truthy. (Playwright's wait_for_function
    compiles its predicate with eval, which the inspector's CSP rightly refuses.)"""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await page.evaluate(script)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s ({script})")
        await asyncio.sleep(0.05)


@pytest.fixture
async def playwright_browser():
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run `make test-browser` (pip install -e '.[browser]')", pytrace=False)
    path = chromium_path()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def ui(aiohttp_server, playwright_browser, tmp_path):
    gateway = FakeGateway()
    gateway.speaks = ("ws",)  # caller WebSockets agreed: the sessions view has something to show
    gw_server = await aiohttp_server(gateway.app, host="127.0.0.1")
    gateway.url = str(gw_server.make_url("")).rstrip("/")
    site = Site()
    site_server = await aiohttp_server(site.app, host="127.0.0.1")
    harness = Harness(make_config(gateway, site_server.port, inspect=("127.0.0.1", 0), inspect_history=100)).start()
    try:
        await wait_for(lambda: harness.of(TunnelEstablished), "tunnel_established")
        url = harness.of(TunnelEstablished)[0].inspector_url
        context = await playwright_browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        page = await context.new_page()
        view = Ui(page, url, gateway, harness, site, tmp_path)
        page.on("console", lambda m: view.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: view.console_errors.append(f"page error: {e}"))
        await page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => "
            "(window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI))")
        await page.goto(url)
        await until(page, "() => document.getElementById('state').textContent === 'online'", "header says online")
        yield view
        violations = await page.evaluate("window.__csp || []")
        assert not violations, f"CSP violations: {violations}"
        unexpected = len(view.console_errors) - view.expected_errors
        assert unexpected <= 0, f"console errors: {view.console_errors}"
        await context.close()
    finally:
        harness.agent.request_stop()
        await asyncio.wait_for(harness.task, 10)
