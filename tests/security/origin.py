"""A local service that does what a hostile or careless app would (a real HTTP server process).

    python tests/security/origin.py --port 0   # prints {"port": N} on stdout once listening

/echo                  -> JSON: method, raw path+query, headers as a list of pairs
/set-cookie?c=V[&c=V]  -> one Set-Cookie header per `c`, exactly as given
/bytes?n=N             -> N deterministic bytes (application/octet-stream)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import web


def pattern(n: int) -> bytes:
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"method": request.method, "raw_path": request.raw_path,
                              "headers": [[k, v] for k, v in request.headers.items()]})


async def set_cookie(request: web.Request) -> web.Response:
    response = web.Response(text="cookies set")
    for value in request.query.getall("c", []):
        response.headers.add("Set-Cookie", value)
    return response


async def payload(request: web.Request) -> web.Response:
    return web.Response(body=pattern(int(request.query.get("n", "0"))), content_type="application/octet-stream")


def app() -> web.Application:
    application = web.Application()
    application.router.add_route("*", "/echo", echo)
    application.router.add_get("/set-cookie", set_cookie)
    application.router.add_get("/bytes", payload)
    return application


async def main(port: int) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)
