"""The admin API the benchmark and load suites build on: counters and fault injection."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.e2e.client import request

RECYCLE_WAIT_S = 30  # the longest an earlier test's resends keep `response` busy (a request's 25 s, and margin)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def admin(session, stack, method: str, path: str, body=None) -> tuple[int, dict]:
    async with session.request(method, stack.admin_url + path, json=body) as resp:
        return resp.status, await resp.json()


async def test_stats_count_one_request(session, stack, tunnel):
    await admin(session, stack, "POST", "/stats/reset")
    reply = await request(session, "GET", tunnel.public_url, "/bytes?n=100")
    assert reply.status == 200
    _, stats = await admin(session, stack, "GET", "/stats")
    assert stats["http_requests"] == 1
    assert stats["lambda_invocations"]["forward"] == 1
    assert stats["lambda_invocations"]["response"] >= 1
    assert stats["lambda_billed_ms"]["forward"] >= 1
    assert stats["post_to_connection"] >= 1
    assert stats["ws_messages"]["api_to_agent"] >= 1 and stats["ws_messages"]["agent_to_api"] >= 1
    assert sum(stats["dynamodb_calls"].values()) > 0


async def test_faults_validate_and_inject(session, stack, agent_factory, origin):
    """A 410 makes forward drop the connection row (as for a dead socket): use a throwaway agent."""
    victim = agent_factory(origin)
    status, body = await admin(session, stack, "POST", "/faults", {"dynamodb_throttle_rate": 2})
    assert status == 400 and "between 0 and 1" in body["error"]
    status, body = await admin(session, stack, "POST", "/faults", {"nonsense": 0.1})
    assert status == 400
    try:
        status, body = await admin(session, stack, "POST", "/faults", {"post_to_connection_gone_rate": 1})
        assert status == 200 and body["post_to_connection_gone_rate"] == 1
        reply = await request(session, "GET", victim.public_url, "/bytes?n=10")
        assert reply.status in (502, 503, 504, 404, 410), reply.status
        assert "x-tunnel-error" in reply.headers
    finally:
        await admin(session, stack, "POST", "/faults",
                    {"post_to_connection_gone_rate": 0, "dynamodb_throttle_rate": 0})
    healthy = agent_factory(origin)
    reply = await request(session, "GET", healthy.public_url, "/bytes?n=10")
    assert reply.status == 200


async def test_dynamodb_throttling_is_injected_and_cleared(session, stack, agent_factory, origin):
    agent = agent_factory(origin)
    await admin(session, stack, "POST", "/stats/reset")
    try:
        await admin(session, stack, "POST", "/faults", {"dynamodb_throttle_rate": 1})
        reply = await request(session, "GET", agent.public_url, "/bytes?n=10")
        assert reply.status >= 500
    finally:
        await admin(session, stack, "POST", "/faults", {"dynamodb_throttle_rate": 0})
    _, stats = await admin(session, stack, "GET", "/stats")
    assert sum(stats["dynamodb_calls"].values()) > 1  # botocore retried the throttled calls
    reply = await request(session, "GET", agent.public_url, "/bytes?n=10")
    assert reply.status == 200


async def test_recycled_functions_start_cold_and_still_answer(session, stack, tunnel):
    """What `make bench` times as "first request after idle": forward and response start cold."""
    # A worker with an invocation in flight is not recycled (as Lambda reclaims only idle sandboxes),
    # and the earlier tests' agents may still be resending an answer to `response` (channel v2 resends
    # an unacknowledged answer for as long as its request's time lasts): ask until both are idle.
    deadline = time.monotonic() + RECYCLE_WAIT_S
    while True:
        status, body = await admin(session, stack, "POST", "/lambdas/recycle", {"functions": ["forward", "response"]})
        if status != 200 or all(body["recycled"].values()) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    assert status == 200 and body == {"recycled": {"forward": True, "response": True}}
    _, before = await admin(session, stack, "GET", "/stats")  # recycling starts nothing: counts are as before it
    reply = await request(session, "GET", tunnel.public_url, "/bytes?n=100")
    assert reply.status == 200 and len(reply.body) == 100
    _, after = await admin(session, stack, "GET", "/stats")
    for name in ("forward", "response"):
        assert after["lambda_cold_starts"][name]["cold_starts"] == before["lambda_cold_starts"][name]["cold_starts"] + 1
        assert after["lambda_cold_starts"][name]["last_init_ms"] > 0
    assert after["lambda_cold_starts"]["connect"]["cold_starts"] == before["lambda_cold_starts"]["connect"]["cold_starts"]


async def test_recycle_refuses_a_bad_request(session, stack):
    status, body = await admin(session, stack, "POST", "/lambdas/recycle", {"functions": "forward"})
    assert status == 400 and "list" in body["error"]
    status, body = await admin(session, stack, "POST", "/lambdas/recycle", {"functions": ["nope"]})
    assert status == 400 and "nope" in body["error"]
