"""The local service behind the tunnel in the end-to-end tests (a real HTTP server process).

    python tests/e2e/origin.py --port 0   # prints {"port": N} on stdout once listening

/echo            -> JSON: method, raw path+query, headers as a list of pairs, body sha256/size
/bytes?n=N       -> N deterministic bytes (application/octet-stream)
/sha             -> sha256 hex of the request body
/sleep?s=S       -> waits S seconds, answers "slept"
/status/N        -> status N
/cookies         -> two Set-Cookie headers and a repeated custom header
/set-cookie?c=V[&c=V] -> one Set-Cookie header per `c`, exactly as given (tests/security plays a
                    hostile local service with it: cookie tossing with Domain=)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys

from aiohttp import web


def pattern(n: int) -> bytes:
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "method": request.method, "raw_path": request.raw_path,
        "headers": [[k, v] for k, v in request.headers.items()],
        "size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
        "text": body.decode("utf-8", "replace") if len(body) < 1000 else None,
    })


async def payload(request: web.Request) -> web.Response:
    n = int(request.query.get("n", "0"))
    return web.Response(body=pattern(n), content_type="application/octet-stream")


async def sha(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(text=hashlib.sha256(body).hexdigest())


async def sleep(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text="slept")


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status")


async def cookies(request: web.Request) -> web.Response:
    response = web.Response(text="cookies")
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2; HttpOnly")
    response.headers.add("X-Repeat", "one")
    response.headers.add("X-Repeat", "two")
    return response


async def set_cookie(request: web.Request) -> web.Response:
    response = web.Response(text="cookies set")
    for value in request.query.getall("c", []):
        response.headers.add("Set-Cookie", value)
    return response


def app() -> web.Application:
    application = web.Application(client_max_size=64 * 1024 * 1024)
    application.router.add_route("*", "/echo", echo)
    application.router.add_route("*", "/echo/{tail:.*}", echo)
    application.router.add_get("/bytes", payload)
    application.router.add_route("*", "/sha", sha)
    application.router.add_get("/sleep", sleep)
    application.router.add_route("*", "/status/{code}", status)
    application.router.add_get("/cookies", cookies)
    application.router.add_get("/set-cookie", set_cookie)
    return application


async def main(port: int) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(json.dumps({"port": site._server.sockets[0].getsockname()[1]}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)
