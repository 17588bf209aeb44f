"""WebSocket API + @connections management API through real worker subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from emulator.apigateway.gateway import Gateway
from emulator.apigateway.ws_api import WsSettings
from tests.emulator.conftest import connect_dir, runtime_config, toy_wiring


async def wait_for_file(folder: Path, deadline_s: float) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for path in folder.iterdir():
            if not path.is_file():
                continue
            try:
                return dict(json.loads(path.read_text()))
            except ValueError:
                pass  # the toy handler has created the file but not finished writing it
        await asyncio.sleep(0.05)
    raise AssertionError(f"no $disconnect event within {deadline_s} s")


async def receive_text(ws, timeout: float = 5.0) -> str:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return message.data


async def test_message_roundtrip_via_management_api(gateway):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url + "?a=1&a=2&b=x", headers={"X-Custom": "yes"}) as ws:
            await ws.send_str("hello")
            assert await receive_text(ws) == "echo:hello"
            await ws.send_str("event")
            event = json.loads(await receive_text(ws))
            context = event["requestContext"]
            assert context["eventType"] == "MESSAGE" and context["routeKey"] == "$default"
            assert context["stage"] == "dev" and context["apiId"] == "wsapi1"
            assert context["identity"]["sourceIp"] == "127.0.0.1"
            assert event["body"] == "event" and event["isBase64Encoded"] is False


async def test_connect_event_and_disconnect_event(gateway, tmp_path):
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(gateway.ws_url + "?a=1&a=2&b=x", headers={"X-Custom": "yes"})
        await ws.close()
    event = await wait_for_file(tmp_path, 5)
    context = event["requestContext"]
    assert context["eventType"] == "DISCONNECT" and context["routeKey"] == "$disconnect"
    assert context["disconnectStatusCode"] == 1000
    assert event["headers"]["X-Custom"] == "yes"
    assert event["multiValueHeaders"]["X-Custom"] == ["yes"]


async def test_connect_refused_with_handler_status(gateway):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(gateway.ws_url + "?refuse=401")
        assert info.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(gateway.ws_url + "?crash=1")
        assert info.value.status == 500
    assert gateway.ws.connections == {}


async def test_post_limits_and_errors(gateway):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
            await ws.send_str("big")
            assert await receive_text(ws) == "big refused with 413"
            await ws.send_str("gone")
            assert await receive_text(ws) == "gone refused with 410"
            await ws.send_str("info")
            assert await receive_text(ws) == "info 127.0.0.1"


async def test_management_delete_closes_and_disconnects(gateway, tmp_path):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
            await ws.send_str("kick")
            message = await ws.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    event = await wait_for_file(tmp_path, 5)
    assert event["requestContext"]["disconnectStatusCode"] == 1000  # what AWS logs for a DELETE (aws/chalice#2060)


async def test_frame_over_32kb_closes_with_1009(gateway, tmp_path):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
            await ws.send_str("x" * (32 * 1024 + 1))
            message = await ws.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1009
    await wait_for_file(tmp_path, 5)


async def test_frame_of_32kb_passes(gateway):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
            body = "y" * (32 * 1024 - 5)
            await ws.send_str(body)
            assert await receive_text(ws) == "echo:" + body


@contextlib.asynccontextmanager
async def own_gateway(tmp_path: Path, settings: WsSettings):
    """A gateway with short WebSocket limits, apart from the shared fixture (whose generous idle
    limit keeps slow worker starts on a loaded machine from closing its sockets)."""
    gw = Gateway(runtime_config(), ws_settings=settings)
    await gw.bind()
    gw.attach(toy_wiring(tmp_path))
    try:
        yield gw
    finally:
        await gw.stop()


async def test_idle_timeout_closes_with_1001(tmp_path):
    async with own_gateway(tmp_path, WsSettings(idle_timeout_s=1.5)) as gw:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(gw.ws_url) as ws:
                started = time.monotonic()
                message = await ws.receive(timeout=5)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 1001
                assert 1.2 < time.monotonic() - started < 3.5
        event = await wait_for_file(tmp_path, 5)
        assert "Idle" in event["requestContext"]["disconnectReason"]


async def test_killed_client_disconnects_promptly(gateway, tmp_path):
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(gateway.ws_url)
        await ws.send_str("hello")
        assert await receive_text(ws) == "echo:hello"
        ws._response.connection.transport.abort()  # like a SIGKILLed agent: no close frame
    event = await wait_for_file(tmp_path, 3)
    assert event["requestContext"]["disconnectStatusCode"] == 1006


async def test_management_unknown_connection_is_gone(gateway):
    url = gateway.ports.management_url + "/dev/@connections/unknown%3D"
    async with aiohttp.ClientSession() as session:
        for method in ("POST", "GET", "DELETE"):
            async with session.request(method, url, data=b"x") as resp:
                assert resp.status == 410
                assert resp.headers["x-amzn-ErrorType"] == "GoneException"


# ---- fidelity audit (emulator/README.md "Fidelity") -----------------------------------------

AWS_ID = re.compile(r"[A-Za-z0-9+/]{15}=")


async def test_connect_headers_and_query_as_api_gateway_passes_them(gateway, tmp_path):
    headers = [("X-Custom", "first"), ("X-Custom", "second"), ("X-Forwarded-For", "203.0.113.7")]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url + "?save=1&a=1&a=2&b=x%20y", headers=headers):
            pass
    event = await wait_for_file(connect_dir(tmp_path), 5)
    assert event["headers"]["X-Custom"] == "second"  # case kept, the last value (1.0 shape)
    assert event["multiValueHeaders"]["X-Custom"] == ["first", "second"]
    assert event["headers"]["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert event["headers"]["X-Forwarded-Proto"] == "http"  # AWS: https; the local stack is plain HTTP
    assert event["headers"]["X-Forwarded-Port"] == str(gateway.ports.ws_port)
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["queryStringParameters"] == {"save": "1", "a": "2", "b": "x y"}
    assert event["multiValueQueryStringParameters"]["a"] == ["1", "2"]
    context = event["requestContext"]
    assert context["eventType"] == "CONNECT" and context["routeKey"] == "$connect"
    assert AWS_ID.fullmatch(context["connectionId"]) and AWS_ID.fullmatch(context["requestId"])


async def test_binary_frame_closes_with_1003(gateway, tmp_path):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
            await ws.send_bytes(b"\x00\x01binary")
            message = await ws.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1003
    event = await wait_for_file(tmp_path, 5)
    assert event["requestContext"]["disconnectStatusCode"] == 1003


async def test_management_status_codes_and_gone(gateway):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
            await ws.send_str("event")
            connection_id = json.loads(await receive_text(ws))["requestContext"]["connectionId"]
            url = f"{gateway.ports.management_url}/dev/@connections/{quote(connection_id, safe='')}"
            async with session.post(url, data=b"pushed") as resp:
                assert resp.status == 200
            assert await receive_text(ws) == "pushed"
            async with session.get(url) as resp:
                info = await resp.json()
                assert resp.status == 200 and set(info) == {"connectedAt", "identity", "lastActiveAt"}
                assert info["identity"]["sourceIp"] == "127.0.0.1"
            async with session.delete(url) as resp:
                assert resp.status == 204
            message = await ws.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.close_code == 1000
        for method in ("POST", "GET", "DELETE"):
            async with session.request(method, url, data=b"x") as resp:
                assert resp.status == 410 and resp.headers["x-amzn-ErrorType"] == "GoneException"


async def test_max_connection_age_closes_the_socket(tmp_path):
    async with own_gateway(tmp_path, WsSettings(idle_timeout_s=30, max_age_s=1.0)) as gw:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()  # the age counts from the handshake ($connect included)
            async with session.ws_connect(gw.ws_url) as ws:
                while time.monotonic() - started < 5:  # keep it busy: only the age can close it
                    await ws.send_str("hello")
                    message = await ws.receive(timeout=5)
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                assert ws.close_code == 1001 and 0.9 < time.monotonic() - started < 3
        event = await wait_for_file(tmp_path, 5)
        assert "Maximum connection age" in event["requestContext"]["disconnectReason"]


async def test_post_of_non_utf8_data_is_a_binary_frame(gateway):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
            await ws.send_str("event")
            connection_id = json.loads(await receive_text(ws))["requestContext"]["connectionId"]
            url = f"{gateway.ports.management_url}/@connections/{quote(connection_id, safe='')}"
            async with session.post(url, data=b"\xff\x00raw") as resp:
                assert resp.status == 200
            message = await ws.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.BINARY and message.data == b"\xff\x00raw"
