"""ttf.expose() and the pytest plugin through the local stack: sync, async, in-process ASGI and
WSGI apps, and the webhook examples (examples/webhooks) run as a user runs them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import ttf

from tests.e2e.client import request

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


def options(stack: Any) -> dict[str, Any]:
    return {"endpoint": stack.ws_url, "token": stack.token if stack.auth else None, "env": {},
            "connect_timeout": 20.0}


async def test_sync_expose_of_a_local_port(stack, origin, session):
    tunnel = await asyncio.to_thread(ttf.expose, origin, **options(stack))  # a script's call, off this loop
    try:
        reply = await request(session, "POST", tunnel.url, "/echo?a=%2F&b=%20", data=b"hello")
        assert reply.status == 200
        echoed = json.loads(reply.body)
        assert echoed["raw_path"] == "/echo?a=%2F&b=%20" and echoed["method"] == "POST"
        seen = await asyncio.to_thread(tunnel.wait_for_request, "/echo", timeout=10)
        assert (seen.method, seen.status, seen.request.data) == ("POST", 200, b"hello")
    finally:
        await asyncio.to_thread(tunnel.close)
    reply = await request(session, "GET", tunnel.url, "/echo")
    assert reply.status in {404, 502, 503}  # closed: the edge no longer reaches it


async def test_async_expose_path_url(stack, origin, session):
    async with ttf.expose(f"http://127.0.0.1:{origin}", **options(stack)) as tunnel:
        assert tunnel.path_url is not None
        reply = await request(session, "GET", tunnel.path_url, "/echo/plain?q=%2F")
        assert reply.status == 200 and json.loads(reply.body)["raw_path"] == "/echo/plain?q=%2F"
        assert (await tunnel.wait_for_request_async("/echo/plain", timeout=10)).status == 200


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = json.dumps({"path": scope["path"], "query": scope["query_string"].decode(),
                         "sha256": hashlib.sha256(body).hexdigest()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": answer})


def wsgi_app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("X-Len", str(len(body)))])
    return [body[::-1]]


async def test_in_process_asgi_app(stack, session):
    payload = os.urandom(200_000)  # bigger than one WebSocket message: the S3 path
    async with ttf.expose(app=asgi_app, **options(stack)) as tunnel:
        reply = await request(session, "PUT", tunnel.url, "/up%20load?x=%2F", data=payload)
    assert reply.status == 200
    assert json.loads(reply.body) == {"path": "/up load", "query": "x=%2F", "sha256": hashlib.sha256(payload).hexdigest()}


async def test_in_process_wsgi_app(stack, session):
    payload = bytes(range(256)) * 40
    async with ttf.expose(app=wsgi_app, **options(stack)) as tunnel:
        reply = await request(session, "POST", tunnel.url, "/reverse", data=payload)
    assert reply.status == 200 and reply.body == payload[::-1] and reply.headers["X-Len"] == str(len(payload))


async def test_the_webhook_examples_pass_through_the_stack_with_the_plugin(stack, tmp_path):
    """examples/webhooks, run as a user runs them: pytest with the installed plugin and --ttf-stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTF_") and k != "PYTEST_ADDOPTS"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
        str(ROOT / "examples" / "webhooks"), "--ttf-stack", str(stack.state_file),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text
    assert "4 passed" in text and "skipped" not in text, text
