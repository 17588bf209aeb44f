"""API Gateway's throttles in the emulator (emulator/apigateway/throttle.py): token buckets per
stage route and per account, the account's new WebSocket connections, and what a throttled
request, $connect or message gets. Fidelity rows: emulator/README.md, "Throttling"."""

from __future__ import annotations

import dataclasses
import json

import aiohttp
import pytest

from emulator.apigateway.gateway import Gateway
from emulator.apigateway.http_api import HttpSettings
from emulator.apigateway.throttle import Limit, StageThrottles, Throttler, stage_throttles
from emulator.apigateway.ws_api import WsSettings
from tests.emulator.conftest import runtime_config, toy_wiring


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_route_bucket_allows_its_burst_then_its_rate():
    clock = Clock()
    throttler = Throttler(clock=clock)
    throttler.configure("api", StageThrottles(default=Limit(rate=2, burst=5)))
    assert [throttler.allow("api", "$default") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.5  # 1 token back at 2/s
    assert throttler.allow("api", "$default") and not throttler.allow("api", "$default")
    clock.now += 100  # refills to the burst, never past it
    assert sum(throttler.allow("api", "$default") for _ in range(10)) == 5
    assert throttler.refused["api $default"] == 1 + 1 + 5


def test_route_settings_override_the_stage_default_and_each_route_has_its_own_bucket():
    clock = Clock()
    throttler = Throttler(clock=clock)
    throttler.configure("ws", StageThrottles(default=Limit(100, 3), routes=(("$connect", Limit(1, 1)),)))
    assert throttler.allow("ws", "$connect") and not throttler.allow("ws", "$connect")
    assert [throttler.allow("ws", "$default") for _ in range(4)] == [True, True, True, False]


def test_the_account_bucket_is_shared_by_every_api():
    clock = Clock()
    throttler = Throttler(clock=clock, account=Limit(1, 3))
    assert throttler.allow("http", "$default") and throttler.allow("ws", "$default") and throttler.allow("ws", "$connect")
    assert not throttler.allow("http", "$default")
    clock.now += 1
    assert throttler.allow("ws", "$default") and not throttler.allow("http", "$default")
    assert throttler.refused == {"account": 2}


def test_new_connections_have_an_account_bucket_of_their_own():
    clock = Clock()
    throttler = Throttler(clock=clock, new_connections=Limit(500, 500))
    assert sum(throttler.allow("ws", "$connect", new_connection=True) for _ in range(600)) == 500
    assert throttler.allow("http", "$default")  # requests are not connections
    clock.now += 0.125  # 62.5 more
    assert sum(throttler.allow("ws2", "$connect", new_connection=True) for _ in range(100)) == 62
    assert throttler.refused == {"new_connections": 100 + 38}


def test_a_refused_request_spends_no_token():
    clock = Clock()
    throttler = Throttler(clock=clock, account=Limit(1, 1))
    throttler.configure("api", StageThrottles(default=Limit(1, 2)))
    assert throttler.allow("api", "$default")
    assert not throttler.allow("api", "$default")  # the account is empty: the route keeps its token
    clock.now += 1
    assert throttler.allow("api", "$default")


def test_off_allows_everything():
    throttler = Throttler(enabled=False)
    throttler.configure("api", StageThrottles(default=Limit(0.001, 1)))
    assert all(throttler.allow("api", "$default") for _ in range(100))


def test_stage_throttles_read_from_a_get_stage_answer():
    stage = {"DefaultRouteSettings": {"ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100.0},
             "RouteSettings": {"$connect": {"ThrottlingBurstLimit": 20, "ThrottlingRateLimit": 5.0},
                               "$default": {"DetailedMetricsEnabled": False}}}
    found = stage_throttles(stage)
    assert found.limit("$connect") == Limit(5, 20)
    assert found.limit("$default") == Limit(100, 200)  # a route setting without numbers keeps the default
    assert stage_throttles({}).limit("$default") is None


@pytest.fixture
async def throttled_gateway(tmp_path):
    gw = Gateway(runtime_config(), http_settings=HttpSettings(integration_timeout_s=5.0),
                 ws_settings=WsSettings(idle_timeout_s=60))
    await gw.bind()
    wiring = toy_wiring(tmp_path, http_timeout_s=5.0)
    assert wiring.http is not None and wiring.ws is not None
    gw.attach(dataclasses.replace(
        wiring, http=dataclasses.replace(wiring.http, throttles=StageThrottles(Limit(0.01, 2))),
        ws=dataclasses.replace(wiring.ws, throttles=StageThrottles(Limit(0.01, 2), (("$connect", Limit(0.01, 1)),)))))
    yield gw
    await gw.stop()


async def test_http_api_answers_429_too_many_requests_past_the_burst(throttled_gateway):
    url = throttled_gateway.ports.http_url + "/echo"
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(3):
            async with session.get(url) as resp:
                statuses.append(resp.status)
                last = (await resp.read(), resp.headers)
    assert statuses[:2] != [429, 429] and statuses[2] == 429
    body, headers = last
    assert body == b'{"message":"Too Many Requests"}'
    assert headers["content-type"].startswith("application/json") and "apigw-requestid" in headers


async def test_a_throttled_connect_is_refused_with_429_before_the_connect_lambda(throttled_gateway, tmp_path):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(throttled_gateway.ws_url) as ws:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(throttled_gateway.ws_url)
            assert refused.value.status == 429
            # messages: the stage default (burst 2), then the throttle frame and no route
            for n in range(3):
                await ws.send_str(f"m{n}")
            answers = [(await ws.receive(timeout=10)).data for _ in range(3)]
    assert sorted(answers)[:2] == ["echo:m0", "echo:m1"]
    notice = json.loads(next(a for a in answers if not a.startswith("echo:")))
    assert notice["message"] == "Too Many Requests" and "connectionId" in notice
    assert throttled_gateway.throttler.refused == {"wsapi1 $connect": 1, "wsapi1 $default": 1}
