"""A real multi-asset static site in headless Chromium through the local stack (issue 14).

The site (tests/browser/site: HTML, @import-ed CSS, deferred JS, SVG and PNG images, CSS
background images, a relative fetch of JSON, a second page one folder down) is served by
Python's http.server on 127.0.0.1; a real `ttf` forwards to it through the local stack
(moto + terraform + the API Gateway emulator, as in tests/e2e). Each page is loaded directly,
through the subdomain URL and through the path URL (as printed, with its trailing slash, and
without it: 308 to the slash): every sub-resource must load (0 failed, 0 HTTP errors), the
relative fetch must fill the list, and the screenshot must be pixel-identical to direct.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from scripts.harness.proc import Proc
from tests.browser.conftest import CHROMIUM_ARGS, SHOTS, png
from tests.e2e import conftest as e2e
from tests.e2e.conftest import Tunnel, start_agent

pytestmark = pytest.mark.browser
stack = e2e.stack  # the local stack fixture of tests/e2e (session scope)

SITE = Path(__file__).parent / "site"
_SERVING = re.compile(r"port (\d+)")
PAGES = ["", "about/"]


@pytest.fixture(scope="module")
def static_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("site") / "www"
    shutil.copytree(SITE, root)
    (root / "img" / "photo.png").write_bytes(png(24, 12))  # a real PNG, made here (no binary fixture)
    proc = Proc([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), "0"],
                "static-site", root.parent / "http.log").start()
    try:
        line = proc.wait_line(lambda l: _SERVING.search(l) is not None, 30)
        match = _SERVING.search(line)
        assert match is not None
        yield int(match.group(1))
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def site_tunnel(stack: e2e.StackInfo, static_site: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    tunnel = start_agent(stack, static_site, tmp_path_factory.mktemp("site-agent"))
    try:
        yield tunnel
    finally:
        tunnel.agent.stop()


@pytest.fixture
async def browser() -> Any:
    from tests.browser.conftest import chromium_path
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run `make test-browser` (pip install -e '.[browser]')", pytrace=False)
    async with async_playwright() as pw:
        # *.localhost (the local stack's subdomain URLs) is loopback, as Chromium resolves it anyway
        args = CHROMIUM_ARGS + ["--host-resolver-rules=MAP *.localhost 127.0.0.1"]
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=args, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def load(browser: Any, url: str, shot: Path) -> dict[str, Any]:
    """Open url in a fresh context; what failed, what answered >= 400, the final URL, the list."""
    context = await browser.new_context(viewport={"width": 800, "height": 600})
    page = await context.new_page()
    failed: list[str] = []
    errors: list[str] = []
    loaded: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    page.on("response", lambda r: (errors if r.status >= 400 else loaded).append(f"{r.status} {r.url}"))
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    try:
        await page.goto(url, wait_until="networkidle")
        await page.wait_for_function("() => document.body.dataset.ready", timeout=15_000)
        ready = await page.evaluate("document.body.dataset.ready")
        items = await page.locator("#items li").all_inner_texts()
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shot), full_page=True)
        return {"failed": failed, "errors": errors, "loaded": loaded, "ready": ready, "items": items,
                "final": page.url, "pixels": shot.read_bytes()}
    finally:
        await context.close()


@pytest.mark.parametrize("page", PAGES)
async def test_the_site_renders_identically_through_both_url_forms(browser, static_site, site_tunnel, page):
    name = page.strip("/") or "index"
    direct = await load(browser, f"http://127.0.0.1:{static_site}/{page}", SHOTS / f"site-{name}-direct.png")
    assert direct["failed"] == [] and direct["errors"] == [] and direct["ready"] == "yes", direct
    assert len(direct["loaded"]) >= 7  # page, 2 CSS, JS, JSON, 2 SVG (+ the PNG on the home page)
    path_url = site_tunnel.path_based_url
    assert path_url.endswith(f"/{site_tunnel.tunnel_id}/"), "the printed path URL ends in /"
    forms = {"subdomain": site_tunnel.public_url.rstrip("/") + "/" + page, "path": path_url + page}
    if not page:
        forms["path-without-slash"] = path_url.rstrip("/")  # 308 to the slash
    for form, url in forms.items():
        seen = await load(browser, url, SHOTS / f"site-{name}-{form}.png")
        assert seen["failed"] == [] and seen["errors"] == [], (form, seen["failed"], seen["errors"])
        assert seen["ready"] == "yes" and seen["items"] == direct["items"], (form, seen["ready"], seen["items"])
        assert len(seen["loaded"]) >= len(direct["loaded"]), (form, seen["loaded"])
        assert seen["final"].endswith("/" + page), (form, seen["final"])
        assert seen["pixels"] == direct["pixels"], f"{form}: the screenshot differs from direct ({SHOTS})"
