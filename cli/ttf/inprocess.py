"""Serving a Python web app in-process for `ttf.expose(app=...)`: ASGI 3 or WSGI (PEP 3333).

The app is served by aiohttp on an ephemeral 127.0.0.1 port inside the tunnel's own thread and
event loop, and the tunnel forwards to that port like to any local service (the caller names no
port). ASGI apps get the `lifespan` protocol (startup before the tunnel opens, shutdown when it
closes; an app that does not speak it is served anyway, as the spec says). WSGI apps run in a
small thread pool this module owns and shuts down.

What the tunnel carries today: whole request and response bodies (a streamed ASGI response is
collected, then sent), no WebSockets (an ASGI `websocket` scope is never opened). Paths and
query strings reach the app as the caller sent them: `raw_path` and `query_string` are the bytes
from the request line; `path`/`PATH_INFO` are percent-decoded as the specs say.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import io
import logging
import socket
import sys
from typing import Any, Awaitable, Callable, Iterable, MutableMapping
from urllib.parse import unquote, unquote_to_bytes

from aiohttp import web

log = logging.getLogger("ttf")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
LIFESPAN_TIMEOUT_S = 30.0
WSGI_THREADS = 8
# set by aiohttp from the body it sends; the app's own would contradict it
_COMPUTED = frozenset({"content-length", "transfer-encoding"})


class AppError(Exception):
    """The app could not be served (its lifespan startup failed)."""


def kind_of(app: object) -> str:
    """'asgi' for an async callable (function or object), 'wsgi' for a plain callable."""
    if not callable(app):
        raise TypeError(f"app={app!r} is not callable: pass an ASGI or a WSGI application")
    method = None if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    return "asgi" if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(method) else "wsgi"


class AppServer:
    """One app on 127.0.0.1:<ephemeral>, in the running loop. start() -> port; stop() undoes all."""

    def __init__(self, app: Any, kind: str | None = None) -> None:
        self.app = app
        self.kind = kind or kind_of(app)
        if self.kind not in {"asgi", "wsgi"}:
            raise ValueError(f"interface must be 'asgi' or 'wsgi', got {self.kind!r}")
        self.runner: web.AppRunner | None = None
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.lifespan: _Lifespan | None = None
        self.port = 0

    async def start(self) -> int:
        if self.kind == "asgi":
            self.lifespan = _Lifespan(self.app)
            await self.lifespan.startup()
            handler = self._asgi
        else:
            self.pool = concurrent.futures.ThreadPoolExecutor(WSGI_THREADS, thread_name_prefix="ttf-wsgi")
            handler = self._wsgi
        server = web.Application(client_max_size=64 * 1024 * 1024)
        server.router.add_route("*", "/{tail:.*}", handler)
        self.runner = web.AppRunner(server, access_log=None, handle_signals=False)
        await self.runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))  # loopback, ephemeral: only this machine can reach it
        self.port = int(listener.getsockname()[1])
        await web.SockSite(self.runner, listener).start()
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.lifespan is not None:
            await self.lifespan.shutdown()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    # ---- ASGI ------------------------------------------------------------------------------
    async def _asgi(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        raw_path, _, raw_query = request.raw_path.partition("?")
        scope: Scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": request.method, "scheme": "http", "root_path": "",
            "path": unquote(raw_path, errors="surrogateescape"),
            "raw_path": raw_path.encode("utf-8", "surrogateescape"),
            "query_string": raw_query.encode("utf-8", "surrogateescape"),
            "headers": [(name.lower(), value) for name, value in request.raw_headers],
            "client": _peer(request), "server": ("127.0.0.1", self.port),
            "state": dict(self.lifespan.state) if self.lifespan else {},
        }
        sent_request = False
        finished = asyncio.Event()
        start: Message | None = None
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and start is None:
                start = message
            elif message["type"] == "http.response.body" and start is not None and not finished.is_set():
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    finished.set()

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("the ASGI app raised on %s %s", request.method, raw_path)
            if start is None:
                return web.Response(status=500, text="Internal Server Error")
        finally:
            finished.set()
        if start is None:
            log.error("the ASGI app sent no response to %s %s", request.method, raw_path)
            return web.Response(status=500, text="Internal Server Error")
        headers = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in start.get("headers", [])]
        return _response(int(start["status"]), headers, b"".join(chunks))

    # ---- WSGI ------------------------------------------------------------------------------
    async def _wsgi(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        environ = _environ(request, body, self.port)
        loop = asyncio.get_running_loop()
        try:
            status, headers, content = await loop.run_in_executor(self.pool, _call_wsgi, self.app, environ)
        except Exception:
            log.exception("the WSGI app raised on %s %s", request.method, environ["PATH_INFO"])
            return web.Response(status=500, text="Internal Server Error")
        return _response(status, headers, content)


def _peer(request: web.Request) -> tuple[str, int] | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None


def _response(status: int, headers: list[tuple[str, str]], body: bytes) -> web.Response:
    response = web.Response(status=status, body=body)
    response.headers.popall("Content-Type", None)
    for name, value in headers:
        if name.lower() not in _COMPUTED:
            response.headers.add(name, value)
    return response


def _environ(request: web.Request, body: bytes, port: int) -> dict[str, Any]:
    raw_path, _, raw_query = request.raw_path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method, "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"), "QUERY_STRING": raw_query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(port), "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": (_peer(request) or ("", 0))[0],
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    for raw_name, raw_value in request.raw_headers:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
            if name == "CONTENT_TYPE":
                environ[name] = value
            continue
        key = "HTTP_" + name
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return written.append

    result: Iterable[bytes] = app(environ, start_response)
    try:
        for chunk in result:
            written.append(bytes(chunk))
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the WSGI app never called start_response")
    return int(str(started[0]).split(" ", 1)[0]), list(started[1]), b"".join(written)


class _Lifespan:
    """The ASGI lifespan protocol: startup before serving, shutdown after."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.replies: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.supported = True

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self.inbox.get, self.replies.put)
        except Exception as exc:  # an app without lifespan support raises: serve it anyway
            self.supported = False
            await self.replies.put({"type": "ttf.lifespan.unsupported", "message": repr(exc)})

    async def _exchange(self, message: str) -> Message | None:
        await self.inbox.put({"type": message})
        assert self.task is not None
        getter = asyncio.ensure_future(self.replies.get())
        await asyncio.wait({getter, self.task}, timeout=LIFESPAN_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        return None

    async def startup(self) -> None:
        self.task = asyncio.create_task(self._run())
        reply = await self._exchange("lifespan.startup")
        if reply is None:
            if self.task.done():  # returned without a word: no lifespan support
                self.supported = False
                return
            raise AppError(f"the ASGI app's lifespan startup did not finish within {LIFESPAN_TIMEOUT_S:g} s")
        if reply["type"] == "lifespan.startup.failed":
            await self.shutdown()
            raise AppError(f"the ASGI app's lifespan startup failed: {reply.get('message', '')}")

    async def shutdown(self) -> None:
        if self.task is None:
            return
        if self.supported and not self.task.done():
            reply = await self._exchange("lifespan.shutdown")
            if reply is not None and reply["type"] == "lifespan.shutdown.failed":
                log.warning("the ASGI app's lifespan shutdown failed: %s", reply.get("message", ""))
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        self.task = None
