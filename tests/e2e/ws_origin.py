"""A local app with a WebSocket endpoint, for the caller-socket tests (in the test's own event loop).

``GET /`` upgrades (subprotocols ``graphql-transport-ws`` and ``chat``) and, by query:
- nothing: echo every text message back;
- ``greet=N``: speak first, N numbered messages as soon as the socket opens, then echo;
- ``info=1``: the first message answered is the handshake as the app saw it (JSON);
- ``close_after=N``: close (code 4001) after N messages echoed;
- ``refuse=S``: answer the handshake with status S instead of upgrading;
- ``binary=1``: answer the first message with a binary one.
Every socket's messages and the close code it got are kept in ``App.sessions`` (for the tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

PROTOCOLS = ("graphql-transport-ws", "chat")


@dataclass
class Session:
    handshake: dict[str, Any]
    received: list[str] = field(default_factory=list)
    close_code: int | None = None
    closed: bool = False


class App:
    def __init__(self) -> None:
        self.sessions: list[Session] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.socket)
        return app

    async def socket(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        if "refuse" in query:
            return web.Response(status=int(query["refuse"]), text="no sockets here")
        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
        await ws.prepare(request)
        session = Session({"path": request.path, "query_string": request.rel_url.raw_query_string,
                           "cookie": request.headers.get("Cookie"), "origin": request.headers.get("Origin"),
                           "protocol": ws.ws_protocol, "host": request.headers.get("Host"),
                           "x_custom": request.headers.get("X-Custom"),
                           "forwarded_for": request.headers.get("X-Forwarded-For")})
        self.sessions.append(session)
        for n in range(int(query.get("greet", "0"))):
            await ws.send_str(f"greeting {n}")
        close_after = int(query.get("close_after", "0"))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            session.received.append(msg.data)
            if query.get("info") and len(session.received) == 1:
                await ws.send_str(json.dumps(session.handshake))
            elif query.get("binary"):
                await ws.send_bytes(b"\x00\x01")
            else:
                await ws.send_str(msg.data)
            if close_after and len(session.received) >= close_after:
                await ws.close(code=4001, message=b"done")
                break
        session.close_code = ws.close_code
        session.closed = True
        return ws
