"""The caller WebSocket API (issue 24): the agents' API emulation, parametrised - its own port, AWS's
same limits, the subprotocol a $connect result agrees, and one @connections for both APIs."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest

from emulator.apigateway.gateway import Gateway
from emulator.apigateway.wiring import ApiWiring, Route
from emulator.apigateway.ws_api import WsSettings
from emulator.stats import Faults
from tests.emulator.conftest import runtime_config, toy_wiring

# Every wait here has a deadline (once, under `make test` on a loaded machine, this suite stalled
# after its 4th test; each passed alone): a test that cannot finish fails with where it waited.
HANDSHAKE_S = 30.0  # a cold toy $connect's init (10 s) and its run fit
STOP_DEADLINE_S = 60.0  # the gateway's stop: sockets closed (10 s each), runners cleaned, workers stopped
RECEIVE_S = 10.0


@pytest.fixture
async def gateway(tmp_path):
    gw = Gateway(runtime_config(), ws_settings=WsSettings(idle_timeout_s=60))
    async with asyncio.timeout(STOP_DEADLINE_S):
        await gw.bind()
    wiring = toy_wiring(tmp_path)
    callers = ApiWiring("callersapi1", "live", (Route("$connect", "toy-connect"), Route("$default", "toy-default"),
                                                 Route("$disconnect", "toy-disconnect")))
    gw.attach(dataclasses.replace(wiring, callers=callers))
    yield gw
    await asyncio.wait_for(gw.stop(), STOP_DEADLINE_S)
    # Nothing the gateway started may outlive its stop: pytest-asyncio cancels what is left when it
    # closes the loop and waits for it with no deadline (the stall seen: a leftover task there).
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in left:
        task.cancel()
    done, pending = await asyncio.wait(left, timeout=10) if left else (set(), set())
    assert not pending, f"tasks that outlived the gateway's stop and ignored cancellation: {pending}"


@pytest.fixture
async def session():
    """Client sockets whose connect, handshake and close are all bounded (aiohttp's own defaults are
    5 minutes for the handshake and no bound on receive)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HANDSHAKE_S, sock_connect=10)) as s:
        yield s


def connect(session: aiohttp.ClientSession, url: str, **kwargs):
    return session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_receive=RECEIVE_S, ws_close=5.0), **kwargs)


async def test_the_caller_api_has_its_own_port_and_stage(gateway):
    assert gateway.ports.caller_ws_port not in (0, gateway.ports.ws_port, gateway.ports.http_port)
    assert gateway.caller_ws_url.endswith(f":{gateway.ports.caller_ws_port}/live")


async def test_a_callers_message_round_trips_through_the_one_connections_endpoint(gateway, session):
    """The toy posts through AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI (the agents' port): that endpoint
    serves the caller API's connections too."""
    async with connect(session, gateway.caller_ws_url) as ws:
        await ws.send_str("hello")
        message = await ws.receive(timeout=RECEIVE_S)
        assert message.data == "echo:hello"
        assert len(gateway.callers.connections) == 1 and gateway.ws.connections == {}


@pytest.mark.parametrize("offered,agreed", [(("chat", "other"), "chat"), ((), None)])
async def test_the_subprotocol_is_the_one_the_connect_result_names(gateway, session, offered, agreed):
    async with connect(session, gateway.caller_ws_url + "?protocol=chat", protocols=offered) as ws:
        assert ws.protocol == agreed
    async with connect(session, gateway.caller_ws_url, protocols=("chat",)) as ws:
        assert ws.protocol is None, "no header in the result: no subprotocol, whatever the client offered"


async def test_a_refused_callers_handshake_gets_the_results_status_and_headers(gateway, session):
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(session, gateway.caller_ws_url + "?refuse=404")
    assert info.value.status == 404


@pytest.mark.parametrize("send,code", [("binary", 1003), ("big", 1009)])
async def test_the_caller_api_keeps_aws_limits(gateway, session, send, code):
    async with connect(session, gateway.caller_ws_url) as ws:
        if send == "binary":
            await ws.send_bytes(b"\x00")
        else:
            await ws.send_str("x" * (32 * 1024 + 1))
        message = await ws.receive(timeout=RECEIVE_S)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == code


def test_the_jitter_fault_is_a_bounded_random_delay():
    faults = Faults()
    faults.update({"ws_jitter_s": 0.05})
    delays = [faults.jitter(faults.settings.ws_jitter_s) for _ in range(200)]
    assert all(0 <= d <= 0.05 for d in delays) and len(set(delays)) > 100
    assert faults.jitter(0.0) == 0.0
    with pytest.raises(ValueError):
        faults.update({"ws_jitter_s": 2})
