"""The emulator's hop of issue 30 item 16: a non-ASCII response header value in a Lambda result
goes to the caller as its UTF-8 bytes (what AWS does: no source found, see the fidelity table)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from emulator.apigateway import events
from emulator.apigateway.http_api import build_response


async def test_non_ascii_header_values_go_out_as_utf8():
    result = events.http_result({"statusCode": 200, "headers": {"X-U": "café ☕"}, "body": "x"})

    async def handler(request: web.Request) -> web.StreamResponse:
        return build_response(result, "req-1")

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await runner.cleanup()
    assert b"\r\nX-U: caf\xc3\xa9 \xe2\x98\x95\r\n" in raw
