"""The function URL edge (forward_stream behind the emulator's RESPONSE_STREAM function URL) on
the stack's ``stream_url``: answers slower than the HTTP API's 25 s, the caller's path byte for
byte, the edge policy, and a body past 6 MB with no redirect - in subdomain and path form."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.e2e.client import request
from tests.e2e.origin import pattern


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as s:
        yield s


def forms(stack, tunnel) -> dict[str, str]:
    """The tunnel's two URL forms on the stream edge: ``<id>.localhost:<port>`` and ``/<id>``."""
    if not stack.stream_url:
        pytest.fail("the stack wrote no stream_url")
    port = urlsplit(stack.stream_url).port
    return {"subdomain": f"http://{tunnel.tunnel_id}.localhost:{port}",
            "path": f"{stack.stream_url}/{tunnel.tunnel_id}"}


# (sent by the caller, what the local service receives): unlike the HTTP API, a function URL
# does not decode the path, so nothing is lost (README's path-encoding table, tests/e2e/test_paths.py)
PATHS = [
    ("/echo/a%2Fb", "/echo/a%2Fb"),
    ("/echo/%2525", "/echo/%2525"),
    ("/echo/100%25done", "/echo/100%25done"),
    ("/echo/q%3Fx?real=1", "/echo/q%3Fx?real=1"),
]


@pytest.mark.parametrize("form", ["subdomain", "path"])
@pytest.mark.parametrize("sent,received", PATHS)
async def test_the_path_reaches_the_local_service_as_sent(session, stack, tunnel, form, sent, received):
    reply = await request(session, "GET", forms(stack, tunnel)[form], sent)
    assert reply.status == 200, reply.body[:300]
    assert json.loads(reply.body)["raw_path"] == received


async def test_an_answer_slower_than_the_http_apis_25_s_is_served(session, stack, tunnel):
    """27 s: past the HTTP API's 25 s wait (a 504 there), well inside max_stream_seconds."""
    reply = await request(session, "GET", forms(stack, tunnel)["subdomain"], "/sleep?s=27")
    assert reply.status == 200, reply.body[:300]
    assert reply.body == b"slept" and reply.seconds >= 27


async def test_the_edge_policy_refuses_on_the_stream_edge(session, stack, agent_factory, origin):
    tunnel = agent_factory(origin, "--deny-ip", "127.0.0.1/32")
    reply = await request(session, "GET", forms(stack, tunnel)["path"], "/echo/x")
    assert reply.status == 403 and reply.headers["x-tunnel-error"] == "ip_denied"


async def test_a_body_past_6_mb_streams_with_no_redirect(session, stack, tunnel):
    size = 7 * 1024 * 1024  # the agent uploads it to S3; the HTTP API would answer a 307 to S3
    reply = await request(session, "GET", forms(stack, tunnel)["path"], f"/bytes?n={size}")
    assert reply.status == 200, reply.body[:300]
    assert "location" not in reply.headers
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(pattern(size)).digest()
