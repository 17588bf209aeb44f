"""An `EventSource` page in headless Chromium through the tunnel's stream_url (issue 23, item 10).

The local service (the benchmark origin: scripts/bench/origin.py) serves a page whose script opens
`new EventSource("sse?n=20&ms=200")`; each event carries the time the origin wrote it, and the
page records when it arrived (`Date.now()`, the same machine's clock). The page is loaded through
the local stack's function URL edge (`stream_url`), in path form and in subdomain form
(`<id>.localhost:<port>`, as on AWS with a domain), so the stream comes from the same origin.

What is asserted is arrival over time, not only the final DOM: events reach the page while the
origin is still writing the rest of the stream (a buffered edge delivers all 20 after the last
one was written), in order, and the median delay stays under a second. The buffered edge
(http_url) is loaded too: there the page must still get all 20 events, late (that is today's
behaviour, and the test's proof that it can tell the two apart).
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest

from tests.browser.conftest import SHOTS
from tests.browser import test_static_site
from tests.e2e import conftest as e2e
from tests.e2e import test_stream_client
from tests.e2e.conftest import Tunnel

pytestmark = pytest.mark.browser
stack = e2e.stack  # the local stack fixture of tests/e2e (session scope)
browser = test_static_site.browser  # Chromium, resolving *.localhost to loopback
bench_origin = test_stream_client.bench_origin  # the benchmark origin: /sse, /sse-page
bench_tunnel = test_stream_client.bench_tunnel

EVENTS, GAP_MS = 20, 200


def urls(stack: e2e.StackInfo, tunnel: Tunnel) -> dict[str, str]:
    """The page's URL per edge and form (each ends in /sse-page, so `sse?...` resolves beside it)."""
    if not stack.stream_url:
        pytest.fail("the local stack wrote no stream_url (the function URL edge is part of every stack)")
    stream = stack.stream_url.rstrip("/")
    port = stream.rsplit(":", 1)[1]
    return {"stream_url path": f"{stream}/{tunnel.tunnel_id}/sse-page",
            "stream_url subdomain": f"http://{tunnel.tunnel_id}.localhost:{port}/sse-page",
            "http_url path": f"{tunnel.path_based_url.rstrip('/')}/sse-page"}


async def watch(browser: Any, url: str, shot: str) -> list[dict[str, Any]]:
    """Open the page; wait (bounded) for all events; what the page recorded for each."""
    context = await browser.new_context(viewport={"width": 700, "height": 600})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        await page.goto(url)
        # 20 events 200 ms apart: 4 s of stream; the wait is a deadline, not a sleep
        await page.wait_for_function("() => document.body.dataset.done || document.body.dataset.error",
                                     timeout=EVENTS * GAP_MS + 30_000)
        state = await page.evaluate("({done: document.body.dataset.done, error: document.body.dataset.error,"
                                    " events: window.__events, items: [...document.querySelectorAll('#log li')]"
                                    ".map(li => li.textContent)})")
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{shot}.png"))
    finally:
        await context.close()
    assert not errors, errors
    assert state["done"] == "yes", state
    assert len(state["items"]) == EVENTS, state["items"]  # the final DOM ...
    return list(state["events"])  # ... and, per event, when it arrived


def timing(events: list[dict[str, Any]]) -> dict[str, Any]:
    delays = [(e["arrived"] - e["t"]) * 1000 for e in events]
    last_written = max(e["t"] for e in events)
    return {"ids": [e["i"] for e in events], "median_ms": statistics.median(delays),
            "before_the_last_was_written": sum(1 for e in events if e["arrived"] < last_written),
            "delays_ms": [round(d) for d in delays]}


async def test_a_buffered_edge_delivers_every_event_late(browser, stack, bench_tunnel):
    got = timing(await watch(browser, urls(stack, bench_tunnel)["http_url path"], "sse-http-api"))
    assert got["ids"] == list(range(EVENTS)), got
    assert got["before_the_last_was_written"] == 0, got  # whole answers: nothing before the end
    assert got["median_ms"] >= EVENTS * GAP_MS / 2 * 0.8, got


@pytest.mark.parametrize("form", ["stream_url path", "stream_url subdomain"])
async def test_event_source_gets_events_live_through_the_stream_url(browser, stack, bench_tunnel, form):
    got = timing(await watch(browser, urls(stack, bench_tunnel)[form], f"sse-{form.replace(' ', '-')}"))
    assert got["ids"] == list(range(EVENTS)), got
    # live: all but the last two arrived while the origin was still writing; none waited a second
    assert got["before_the_last_was_written"] >= EVENTS - 2, json.dumps(got)
    assert got["median_ms"] < 1000, json.dumps(got)
