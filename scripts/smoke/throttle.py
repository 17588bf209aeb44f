"""What API Gateway sends back when it throttles an agent's message (channel v2, issue 26).

A hand-made agent (scripts/smoke/swap.HandAgent: the deployment's token, `ready`) sends a burst of
pings larger than the WebSocket stage's `$default` burst (Terraform
`websocket_throttling_burst_limit`, 200 by default) and listens for a few seconds. Every ping
gets a pong unless API Gateway refused it; whatever frame came back instead is reported
verbatim (ids masked), so the smoke report records the frame the documentation does not show
(AWS says only that clients "may receive 429 Too Many Requests":
https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html).
`ttf` cannot match such a frame to a message either way: its acks decide what it resends.

The burst briefly spends the deployment's shared `$default` budget: run `make smoke` on a
deployment nobody depends on at that moment (an agent's throttled answers are resent).
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp

from httptunnel import protocol
from scripts.smoke.swap import HandAgent, bounded
from scripts.smoke.verdict import CheckFailed, NotCheckable

THROTTLE = "throttled agent message"
BURST = 300  # above the default $default burst of 200
LISTEN_S = 8.0
_IDS = re.compile(r'"(connectionId|requestId)"\s*:\s*"[^"]*"')


def masked(frame: str) -> str:
    return _IDS.sub(lambda m: f'"{m.group(1)}":"…"', frame)[:200]


def judge(pings: int, pongs: int, others: list[str]) -> str:
    """The check's verdict from what came back for ``pings`` pings."""
    if pongs >= pings and not others:
        raise NotCheckable(f"all {pings} pings were answered: nothing throttled (a route limit above the burst, "
                           "or the local stack, which throttles only with agent_message_throttle_rate)")
    refused = pings - pongs
    if not others:
        return f"{refused} of {pings} pings got no pong and nothing else back: a throttled message is dropped silently"
    shapes = sorted({masked(f) for f in others})
    return f"{refused} of {pings} pings refused; API Gateway sent back {len(others)} frame(s): " + " | ".join(shapes[:3])


async def _burst(endpoint: str, token: str) -> str:
    async with HandAgent(endpoint, token) as agent:
        assert agent.reader is not None and agent.ws is not None
        agent.reader.cancel()  # this check reads the raw frames itself
        await asyncio.gather(agent.reader, return_exceptions=True)
        ws = agent.ws
        ping = protocol.encode(protocol.Ping())
        for _ in range(BURST):
            await ws.send_str(ping)
        pongs, others = 0, []
        deadline = time.monotonic() + LISTEN_S
        while pongs < BURST and (left := deadline - time.monotonic()) > 0:
            try:
                frame = await ws.receive(timeout=left)
            except asyncio.TimeoutError:
                break
            if frame.type != aiohttp.WSMsgType.TEXT:
                if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    raise CheckFailed(f"the socket closed during the burst (code {ws.close_code})")
                continue
            try:
                kind = json.loads(frame.data).get("type")
            except (ValueError, AttributeError):
                kind = None
            if kind == "pong":
                pongs += 1
            elif kind is None:
                others.append(frame.data)
        return judge(BURST, pongs, others)


def check_throttle_frame(ctx) -> str:  # noqa: ANN001 - battery.Context (imported there, not here)
    if not ctx.endpoint:
        raise CheckFailed("no agent endpoint to connect a hand-made agent to")
    return bounded(_burst(ctx.endpoint, ctx.token))
