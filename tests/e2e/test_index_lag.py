"""A request right after `$connect`, while the GSI does not show the new connection row yet.

DynamoDB's global secondary indexes are eventually consistent; moto's are not, so the stack
injects the lag (fault ``gsi_lag_s``: a row PutItem wrote stays out of GSI Query results that
long). forward used to answer such a request 404 and remember the tunnel as absent for a second.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.e2e.client import request
from tests.e2e.test_admin import admin


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def test_first_request_after_connect_waits_for_the_index(session, stack, agent_factory, origin):
    status, body = await admin(session, stack, "POST", "/faults", {"gsi_lag_s": 1})
    assert status == 200 and body["gsi_lag_s"] == 1
    try:
        agent = agent_factory(origin)  # returns once ttf printed its URL: within the lag
        first = await request(session, "GET", agent.public_url, "/bytes?n=10")
        second = await request(session, "GET", agent.public_url, "/bytes?n=10")
    finally:
        await admin(session, stack, "POST", "/faults", {"gsi_lag_s": 0})
    assert (first.status, second.status) == (200, 200), (first.status, first.headers.get("x-tunnel-error"))


async def test_unknown_tunnel_is_still_404_at_once(session, stack):
    """No reservation, nothing to wait for: the lag window applies only to a name just connected."""
    reply = await request(session, "GET", stack.http_url.rstrip("/") + "/no-such-tunnel-here", "/x")
    assert reply.status == 404 and reply.headers.get("x-tunnel-error") == "tunnel_not_found"
