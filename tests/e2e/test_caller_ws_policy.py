"""Caller WebSockets meet the tunnel's edge policy and fairness limits through the local stack
(issues 24 x 29 x 30; shared/README.md "Caller WebSockets", Fairness): a webhook-only tunnel
refuses caller sockets at once with 403, and a caller's $connect spends its tunnel's rate."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import aiohttp
import pytest

from httptunnel import policy, protocol
from tests.e2e.test_caller_ws import caller_url, session  # noqa: F401 - fixture

REFUSED_WITHIN_S = 5.0


@asynccontextmanager
async def raw_agent(session: aiohttp.ClientSession, stack, rules: policy.Policy,  # noqa: F811 - the fixture
                    capabilities: str = "ack,ws") -> AsyncIterator[str]:
    """An agent socket with an edge policy that ttf has no flag for (`lim`), or none needed here;
    yields its tunnel id. It never answers a ws_open: what these tests expect is refused first."""
    headers = {"Authorization": f"Bearer {stack.token}", "X-Tunnel-Capabilities": capabilities,
               policy.HEADER: policy.to_header(rules)}
    async with session.ws_connect(stack.ws_url, headers=headers) as agent:
        await agent.send_str(protocol.encode(protocol.Ready()))
        established = protocol.decode((await agent.receive(timeout=10)).data)
        assert isinstance(established, protocol.ConnectionEstablished), established
        yield established.tunnel_id


async def refusal(session: aiohttp.ClientSession, stack, tunnel_id: str) -> aiohttp.WSServerHandshakeError:  # noqa: F811
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await caller_url(stack, tunnel_id).connect(session)
    return refused.value


async def test_a_webhook_only_tunnel_refuses_a_caller_socket_at_once_with_403(session, stack):  # noqa: F811
    rules = policy.build(hooks=["github:e2e-webhook-secret-0123456789"])
    async with raw_agent(session, stack, rules) as tunnel_id:
        started = time.monotonic()
        refused = await refusal(session, stack, tunnel_id)
    assert refused.status == 403
    assert refused.headers.get("x-tunnel-error") == policy.WEBHOOK_INVALID
    assert time.monotonic() - started < REFUSED_WITHIN_S


async def test_a_callers_connect_spends_its_tunnels_rate(session, stack):  # noqa: F811
    """The tunnel's own `lim` (the suite's operator ceilings are high): 1 at once, then one every
    20 s. An agent without `ws` answers each admitted handshake 501 at once, so the third, over
    the rate, shows the 429 (the first request teaches the instance the tunnel's lim, as in forward)."""
    rules = policy.parse('{"v":1,"lim":{"rps":0.05,"burst":1}}')
    async with raw_agent(session, stack, rules, capabilities="ack") as tunnel_id:
        statuses = [(await refusal(session, stack, tunnel_id)) for _ in range(3)]
    assert [(r.status, r.headers.get("x-tunnel-error")) for r in statuses] == [
        (501, "websocket_unsupported"), (501, "websocket_unsupported"), (429, "tunnel_rate_limited")]
    assert statuses[2].headers.get("retry-after") and int(statuses[2].headers["retry-after"]) >= 1

