"""WebSocket API + @connections management API through real worker subprocesses."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest


async def wait_for_file(folder: Path, deadline_s: float) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for path in folder.iterdir():
            try:
                return dict(json.loads(path.read_text()))
            except ValueError:
                pass  # the toy $disconnect handler has created the file but not finished writing it
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
    assert event["requestContext"]["disconnectStatusCode"] == 1001


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


async def test_idle_timeout_closes_with_1001(gateway, tmp_path):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gateway.ws_url) as ws:
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
