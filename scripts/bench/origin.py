"""The "local service" the benchmark and the load suite tunnel to (aiohttp, 127.0.0.1 only).

    python -m scripts.bench.origin [--port 0]     # prints {"event": "listening", "port": N}

Routes (all bodies deterministic so callers can check them byte for byte):
  GET  /kb                    1024 bytes of text
  GET  /blob?size=N&seed=S    N pseudo-random bytes (application/octet-stream), X-Sha256 header
  GET  /text?size=N&seed=S    N bytes of ASCII text (text/plain), X-Sha256 header
  POST /upload                {"size": n, "sha256": hex} of the request body
  POST /echo                  the request body back, same content type, X-Sha256 of it
  GET  /status/{code}         that status, body "status <code>"
  GET  /slow?ms=M             1024 bytes after M ms (counts requests in flight)
  GET  /inflight              {"now": n, "max": m} of /slow, and resets max
  GET  /sse?n=20&ms=200       n server-sent events ms apart, each stamped with when it was written (scripts/bench/sse.py)
  GET  /sse-page              a page whose EventSource reads /sse beside it and records when each event arrived
  POST /v1/chat/completions   an OpenAI-style chunk stream ("stream": true), chunks ?ms= apart, stamped "t"
  GET  / (WebSocket)          echoes every message (scripts/bench/sockets.py: caller sockets reach the app at /)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import string
from functools import lru_cache

from aiohttp import web

from scripts.bench import sockets, sse

KB_BODY = (string.ascii_letters + string.digits) * 17  # 62 * 17 = 1054
KB_BODY = KB_BODY[:1024].encode()
MAX_SIZE = 10 * 1024 * 1024


@lru_cache(maxsize=16)
def blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@lru_cache(maxsize=16)
def text(size: int, seed: int) -> bytes:
    alphabet = (string.ascii_letters + string.digits + " \n").encode()
    table = bytes(alphabet[b % len(alphabet)] for b in range(256))
    return random.Random(seed).randbytes(size).translate(table)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _size(request: web.Request) -> tuple[int, int]:
    size = int(request.query.get("size", "1024"))
    seed = int(request.query.get("seed", "1"))
    if not 0 <= size <= MAX_SIZE:
        raise web.HTTPBadRequest(text="size out of range")
    return size, seed


def make_app() -> web.Application:
    state = {"now": 0, "max": 0}

    async def kb(request: web.Request) -> web.Response:
        return web.Response(body=KB_BODY, content_type="text/plain")

    async def get_blob(request: web.Request) -> web.Response:
        size, seed = _size(request)
        data = blob(size, seed)
        return web.Response(body=data, content_type="application/octet-stream", headers={"X-Sha256": sha256(data)})

    async def get_text(request: web.Request) -> web.Response:
        size, seed = _size(request)
        data = text(size, seed)
        return web.Response(body=data, content_type="text/plain", headers={"X-Sha256": sha256(data)})

    async def upload(request: web.Request) -> web.Response:
        data = await request.read()
        return web.json_response({"size": len(data), "sha256": sha256(data)})

    async def echo(request: web.Request) -> web.Response:
        data = await request.read()
        return web.Response(body=data, content_type=request.content_type or "application/octet-stream",
                            headers={"X-Sha256": sha256(data)})

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    async def slow(request: web.Request) -> web.Response:
        ms = min(int(request.query.get("ms", "500")), 30_000)
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        try:
            await asyncio.sleep(ms / 1000)
        finally:
            state["now"] -= 1
        return web.Response(body=KB_BODY, content_type="text/plain")

    async def inflight(request: web.Request) -> web.Response:
        out = dict(state)
        state["max"] = state["now"]
        return web.json_response(out)

    app = web.Application(client_max_size=MAX_SIZE + 1024)
    app.add_routes([
        web.get("/kb", kb), web.get("/blob", get_blob), web.get("/text", get_text),
        web.post("/upload", upload), web.post("/echo", echo), web.get("/status/{code}", status),
        web.get("/slow", slow), web.get("/inflight", inflight),
        web.get("/sse", sse.handler), web.get("/sse-page", sse.page_handler),
        web.post("/v1/chat/completions", sse.chat_handler), web.get("/", sockets.echo_handler),
    ])
    return app


async def serve(port: int) -> None:
    for size in (1024 * 1024, 5 * 1024 * 1024):  # what the benchmark fetches: generate before timing
        blob(size, 7)
        text(size, 7)
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1]
    print(json.dumps({"event": "listening", "port": bound}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="benchmark origin service (127.0.0.1 only)")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
