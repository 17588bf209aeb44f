"""Encoded paths through the local stack: what the local service receives.

API Gateway's HTTP APIs hand Lambda a percent-DECODED rawPath, cut at a decoded '?'
(live captures: https://github.com/hotsock/voker/pull/8, middleapi/standard-server#93); the
emulator does the same, and forward re-encodes the path into a valid request target. So the
local service gets a target that decodes to the path AWS delivered: the same as the caller's,
except where AWS itself loses information (%2F is '/', %25 is decoded twice, a %3F cuts the
path). The README's limits table lists those.
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.e2e.client import request

# (sent by the caller, raw path + query the local service receives)
CASES = [
    ("/echo/a%20b", "/echo/a%20b"),
    ("/echo/rsf0.js%23save.txt", "/echo/rsf0.js%23save.txt"),
    ("/echo/RSC/%40id%2Fassets%2Frsf0.js%23save.txt", "/echo/RSC/@id/assets/rsf0.js%23save.txt"),
    ("/echo/a%2Fb", "/echo/a/b"),  # limit: %2F cannot be told apart from '/'
    ("/echo/a+b%2Bc", "/echo/a+b+c"),  # '+' is a plus in a path, never a space
    ("/echo/%CE%BB-%E4%B8%96%E7%95%8C", "/echo/%CE%BB-%E4%B8%96%E7%95%8C"),
    ("/echo/%2525", "/echo/%25"),  # limit: AWS decodes %25 twice (%2525 arrives as '%')
    ("/echo/50%2541", "/echo/50A"),  # ... so %2541 arrives as 'A'
    ("/echo/q%3Fx?real=1", "/echo/q?real=1"),  # limit: cut at the decoded '?', the real query kept
    ("/echo/p?a=%2F%3F&b=c+d&c=%20", "/echo/p?a=%2F%3F&b=c+d&c=%20"),  # the query byte for byte
]


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


@pytest.mark.parametrize("sent,received", CASES)
async def test_local_service_receives_a_target_that_decodes_to_the_callers_path(session, tunnel, sent, received):
    reply = await request(session, "GET", tunnel.public_url, sent)
    assert reply.status == 200, reply.body[:300]
    assert json.loads(reply.body)["raw_path"] == received


@pytest.mark.parametrize("sent,received", CASES[:3] + CASES[5:6])
async def test_path_mode_strips_the_tunnel_segment_and_re_encodes_the_rest(session, tunnel, sent, received):
    reply = await request(session, "GET", tunnel.path_based_url, sent)
    assert reply.status == 200, reply.body[:300]
    # a JSON body is data: path mode leaves it alone unless ttf --rewrite-json (issue 14)
    assert json.loads(reply.body)["raw_path"] == received


async def test_a_percent_left_undecodable_is_refused_by_api_gateway(session, tunnel):
    """`/percent%25done` is refused with 400 by a real HTTP API (hotsock/voker#8): API Gateway's
    answer, before any Lambda, so it carries no x-tunnel-error."""
    reply = await request(session, "GET", tunnel.public_url, "/echo/100%25done")
    assert reply.status == 400
    assert json.loads(reply.body) == {"message": "Bad Request"}
    assert "x-tunnel-error" not in reply.headers
