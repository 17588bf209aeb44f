"""The flood harness's own pieces (scripts/bench/flood.py), without a stack: the stream attacker
against a small SSE server on 127.0.0.1, the stack's variables, and bad arguments."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from scripts.bench import flood


def args(**over: Any) -> argparse.Namespace:
    base = {"edge": "http_api", "attacks": ("unknown", "own"), "stream_environments": 12, "var": []}
    return argparse.Namespace(**{**base, **over})


def test_today_s_configuration_is_unchanged_without_the_function_url_or_stream_attacks():
    assert flood.stack_variables("after", args()) == []
    assert flood.stack_variables("before", args()) == list(flood.CONFIGS["before"])


def test_the_function_url_edge_reserves_as_many_environments_as_the_emulator_runs():
    assert flood.stack_variables("after", args(edge="function_url", stream_environments=7)) == [
        "forward_reserved_concurrency=7"]


def test_stream_attacks_cap_stream_seconds_and_a_var_given_last_wins():
    got = flood.stack_variables("after", args(attacks=("stream",), var=["forward_reserved_concurrency=3"]))
    assert got == ["forward_reserved_concurrency=12", "max_stream_seconds=30", "forward_reserved_concurrency=3"]


def test_the_sse_outlasts_the_phase():
    path = flood.sse_path(8.0, 3000)
    assert path == "/sse?n=5&ms=3000"  # events at 0, 3, 6, 9, 12 s: the stream lasts past 8 + 2 s
    assert flood.sse_path(0.5, 60_000) == "/sse?n=2&ms=60000"


@pytest.mark.parametrize("bad", [["--streams", "0"], ["--stream-environments", "65"], ["--stream-gap-ms", "5"],
                                 ["--attacks", "stream,flood-everything"]])
def test_bad_arguments_are_refused_with_a_message(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        flood.main(bad)
    assert exc.value.code == 2
    assert "flood" in capsys.readouterr().err


@pytest.fixture
async def sse_server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """/sse streams an event every 50 ms while at most ``cap`` streams are open; past it 429 tunnel_busy."""
    state = {"open": 0, "cap": 3, "served": 0}

    async def sse(request: web.Request) -> web.StreamResponse:
        if state["open"] >= state["cap"]:
            return web.Response(status=429, headers={"x-tunnel-error": "tunnel_busy"}, text="busy")
        state["open"] += 1
        state["served"] += 1
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(1000):
                await resp.write(f"id: {i}\ndata: {{}}\n\n".encode())
                await asyncio.sleep(0.05)  # the stream's pace: what the test server serves
            return resp
        finally:
            state["open"] -= 1

    app = web.Application()
    app.router.add_get("/sse", sse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/sse", state
    finally:
        await runner.cleanup()


async def test_the_stream_attacker_holds_what_it_can_and_counts_the_refusals(sse_server):
    url, state = sse_server
    found = flood.Streams()
    started = time.monotonic()
    await flood.stream_flood("127.0.0.1", url, "t.localhost", workers=5, seconds=1.0, limit=100, found=found)
    assert time.monotonic() - started < 5
    assert found.open_max == 3  # the server's cap, not the 5 callers
    assert found.opened == 3 and found.events >= 3 * 5
    assert found.refused["429 tunnel_busy"] >= 2  # the other two kept trying, every 0.2 s
    assert found.open_now == 0


async def test_the_stream_attacker_stops_at_its_attempt_limit(sse_server):
    url, state = sse_server
    state["cap"] = 0
    found = flood.Streams()
    await flood.stream_flood("127.0.0.1", url, "t.localhost", workers=4, seconds=3.0, limit=6, found=found)
    assert sum(found.refused.values()) == 6 and found.opened == 0
