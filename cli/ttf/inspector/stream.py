"""Server-sent events: the page hears of new entries, evictions, clears and the tunnel's state.

Each open page has a bounded backlog (BACKLOG_MAX events); a page that cannot keep up loses
its backlog and is told to `resync` (fetch the list again), so a stuck tab costs bounded
memory. At most STREAMS_MAX pages listen at once (503 beyond).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from aiohttp import web

BACKLOG_MAX = 1000
STREAMS_MAX = 16
KEEPALIVE_S = 15.0


class Stream:
    def __init__(self) -> None:
        self.backlog: deque[tuple[str, dict[str, Any]]] = deque()
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def push(self, kind: str, data: dict[str, Any]) -> None:
        if len(self.backlog) >= BACKLOG_MAX:
            self.backlog.clear()
            self.overflowed = True
        else:
            self.backlog.append((kind, data))
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


def frame(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode("utf-8")


class Streams:
    def __init__(self) -> None:
        self.open: set[Stream] = set()

    def broadcast(self, kind: str, data: dict[str, Any]) -> None:
        for stream in self.open:
            stream.push(kind, data)

    def close_all(self) -> None:
        for stream in self.open:
            stream.close()

    async def serve(self, request: web.Request, hello: dict[str, Any]) -> web.StreamResponse:
        if len(self.open) >= STREAMS_MAX:
            return web.json_response({"error": f"at most {STREAMS_MAX} pages can follow live updates at once"},
                                     status=503)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        stream = Stream()
        self.open.add(stream)
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n" + frame("hello", hello))
            while not stream.closed:
                try:
                    await asyncio.wait_for(stream.wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                stream.wake.clear()
                if stream.overflowed:
                    stream.overflowed = False
                    await response.write(frame("resync", {}))
                while stream.backlog:
                    kind, data = stream.backlog.popleft()
                    await response.write(frame(kind, data))
        except ConnectionError:
            pass  # the page went away
        finally:
            self.open.discard(stream)
        return response
