"""Caller WebSockets in `make bench` (issue 24 item 8): one caller socket's message round trip,
the operations each round trip costs, and what an idle socket-hour costs with common heartbeats.

The caller opens one socket on the stack's caller WebSocket API (``caller_ws_url``, subdomain form:
``Host: <tunnel id>.localhost:<port>``); the agent opens its local socket on the bench origin's `/`
(the app sees `/` + the query: shared/README.md "Caller WebSockets", Addresses), where
``echo_handler`` sends every text back. Each message is sent once the echo of the previous one is
back (caller -> caller API -> SQS FIFO -> caller_message -> agent -> app, and app -> agent ->
response -> caller), timed, and checked to be the message sent.

Between two snapshots of the emulator's /stats around the timed round trips, the deltas divided by
the round trips are the counted operations of one message each way (Lambda invocations and billed
ms by function, DynamoDB calls, PostToConnection, WebSocket messages of both APIs). The emulator
does not count SQS requests: they follow from the counts (cost.SQS_* below: 1 SendMessage per
caller frame, by API Gateway's integration, and a ReceiveMessage + DeleteMessageBatch per
caller_message invocation, i.e. per batch Lambda took). cost.socket_rates prices them.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from scripts.bench import stats as bench_stats

ROUND_TRIPS = 100
WARM_WITHIN_S = 90.0  # a frame met by caller_message's cold start can come back only after the queue's 60 s visibility timeout
ECHO_TIMEOUT_S = 30.0


async def echo_handler(request: web.Request) -> web.StreamResponse:
    """GET / as a WebSocket: every text message back, unchanged. Anything else at / is 404."""
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        raise web.HTTPNotFound(text="GET / is the bench origin's WebSocket echo only")
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def caller_address(state: dict[str, Any], tunnel_id: str) -> tuple[str, str]:
    """The URL to connect to (127.0.0.1) and the Host naming the tunnel (subdomain form)."""
    base, template = state.get("caller_ws_url"), state.get("caller_ws_url_template")
    if not base or not template:
        raise ValueError("the stack wrote no caller_ws_url / caller_ws_url_template (no caller WebSocket API)")
    if "{tunnel_id}" not in template:
        raise ValueError(f"caller_ws_url_template {template!r} has no {{tunnel_id}}")
    return base, urlsplit(template.replace("{tunnel_id}", tunnel_id)).netloc


async def _echo(ws: aiohttp.ClientWebSocketResponse, text: str, timeout: float) -> None:
    await ws.send_str(text)
    msg = await ws.receive(timeout=timeout)
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise RuntimeError(f"expected the echo of {text!r}, got {msg.type.name} {str(msg.data)[:100]!r}")
    if msg.data != text:
        raise RuntimeError(f"echo differs: sent {text!r}, got {str(msg.data)[:100]!r}")


async def warm_socket(session: aiohttp.ClientSession, url: str, host: str,
                       warm_within_s: float) -> aiohttp.ClientWebSocketResponse:
    """A socket whose first message echoed (a frame met by caller_message's cold start comes back
    only after the caller queue's visibility timeout), tried again until ``warm_within_s``; the caller closes it."""
    deadline = time.monotonic() + warm_within_s
    last_error = ""
    while True:
        ws = None
        try:
            ws = await session.ws_connect(url, headers={"Host": host}, timeout=aiohttp.ClientWSTimeout(ws_close=30))
            await _echo(ws, "warm", min(15.0, warm_within_s))
            return ws
        except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"[:200]
            if ws is not None:
                await ws.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no caller message echoed within {warm_within_s:.0f} s ({last_error})")


async def round_trips(url: str, host: str, n: int, stats: Callable[[], Any],
                      warm_within_s: float = WARM_WITHIN_S) -> dict[str, Any]:
    """One socket, warmed (one message echoed, within ``warm_within_s``), then ``n`` timed sequential
    round trips between two ``stats()`` snapshots (no socket opens or closes inside them)."""
    if n < 1:
        raise ValueError("round trips must be >= 1")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        ws = await warm_socket(session, url, host, warm_within_s)
        try:
            before = await asyncio.to_thread(stats)
            times: list[float] = []
            for i in range(n):
                text = f"round trip {i} é ✓"
                started = time.perf_counter()
                await _echo(ws, text, ECHO_TIMEOUT_S)
                times.append((time.perf_counter() - started) * 1000)
            after = await asyncio.to_thread(stats)
        finally:
            await ws.close()
    per = bench_stats.per_request(before, after, n)
    per.pop("lambda_cold_starts", None)
    return {"round_trips": n, "latency_ms": bench_stats.summarize(times), "per_round_trip": per}


def measure(state: dict[str, Any], tunnel_id: str, stats: Callable[[], Any], n: int = ROUND_TRIPS) -> dict[str, Any]:
    url, host = caller_address(state, tunnel_id)
    out = asyncio.run(round_trips(url, host, n, stats))
    return {"url": url, "host": host, **out}


def _nonzero(counts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in counts.items():
        if isinstance(value, dict):
            value = _nonzero(value)
        if value:
            out[key] = value
    return out


def render(prof: str, run: dict[str, Any]) -> str:
    """Plain-text lines for the bench's printout."""
    if "error" in run:
        return f"caller WebSockets ({prof}): not measured: {run['error']}"
    lat, rates = run["latency_ms"], run.get("cost", {})
    lines = [f"caller WebSockets ({prof} profile): {run['round_trips']} sequential round trips "
             f"(caller -> app -> caller) p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, max {lat['max']:.1f} ms",
             "  counted per round trip: " + json.dumps(_nonzero(run["per_round_trip"]), sort_keys=True)]
    if run.get("cost_error"):
        lines.append(f"  not priced: {run['cost_error']}")
    if rates:
        lines.append(f"  $ per million round trips (counted) {rates['usd_per_million_round_trips']:.2f}; per million "
                     f"messages caller -> app {rates['caller_to_app']['usd_per_million']:.2f}, "
                     f"app -> caller {rates['app_to_caller']['usd_per_million']:.2f}; "
                     f"per connection-hour {rates['connection_hour_usd']:.6f}")
        for name, idle in rates["idle_hour"].items():
            lines.append(f"  idle socket-hour, {name} (heartbeat every {idle['period_s']:g} s): ${idle['usd']:.6f}, "
                         f"{idle['agent_messages_per_s']:.3f} agent msg/s = {idle['share_of_default_budget']:.3%} of the "
                         f"agents' $default {idle['default_budget_per_s']}/s; {idle['sockets_to_fill_budget']:,} "
                         f"such sockets fill it")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m scripts.bench.sockets`: this part of `make bench` alone (its own stack, nothing written)."""
    import argparse
    import sys
    from contextlib import ExitStack
    from pathlib import Path

    from scripts.bench import cost
    from scripts.harness.proc import Proc
    from scripts.harness.stack import LocalStack, TtfAgent, agent_token

    root = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(description="caller WebSocket round trips and their cost, on the local stack")
    p.add_argument("--profile", default="aws", choices=("local", "aws"))
    p.add_argument("--round-trips", type=int, default=ROUND_TRIPS)
    p.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = p.parse_args(argv)
    if args.round_trips < 1:
        p.error("--round-trips must be >= 1")
    log_dir = root / "bench" / "cache" / "logs" / ("sockets-" + time.strftime("%Y%m%dT%H%M%S"))
    with ExitStack() as ctx:
        origin = ctx.enter_context(Proc([sys.executable, "-m", "scripts.bench.origin"], "origin",
                                        log_dir / "origin.stderr.log", cwd=root))
        port = origin.wait_json(lambda d: d.get("event") == "listening", 30)["port"]
        stack = ctx.enter_context(LocalStack(log_dir, args.profile, extra_args=("--caller-ws-port", "0")))
        agent = ctx.enter_context(TtfAgent(stack.state["ws_url"], port, log_dir, token=agent_token(stack.state)))
        run = measure(stack.state, agent.established["tunnel_id"], stack.stats, args.round_trips)
    run["cost"] = cost.socket_rates(run["per_round_trip"], cost.terraform_memory_mb())
    print(render(args.profile, run))
    if args.json:
        print(json.dumps(run, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
