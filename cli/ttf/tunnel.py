"""One tunnel: its local service, its concurrency bound, its saved URL, its connection lifecycle.

A process runs one TunnelRunner per tunnel (one from the command line, or a config file's) under
one TaskGroup; they share what ProcessShared holds (the stop signal, the WebSocket and
presigned-URL HTTP clients, the inspector's history; each gets the event sink tagged with its
name). Everything else is the tunnel's own: its Config, local connection pool, concurrency
bound, saved URL (per name) and connection lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

import aiohttp

from httptunnel import protocol
from httptunnel.protocol import Headers

from ttf.backoff import Backoff
from ttf.config import Config
from ttf.events import Event, RequestDenied, Sink
from ttf.forward import Exchange, Forwarder, local_session
from ttf.handshake import open_socket
from ttf.inspector import History
from ttf.lifecycle import connect
from ttf.probe import UNREACHABLE, LocalProbe
from ttf.saved_url import SavedUrl
from ttf.session import TunnelSession
from ttf.socketlog import SocketLog
from ttf.sockets import CallerSockets, SocketCap
from ttf.streaming import Streamer, StreamSlots
from ttf.shutdown import StopSignal

log = logging.getLogger("ttf")


@dataclass(frozen=True)
class ProcessShared:
    """What every tunnel of one ttf process shares."""

    emit: Sink  # never raises (see agent.guarded)
    stop: StopSignal
    ws_http: aiohttp.ClientSession  # the WebSocket connections to API Gateway
    remote: aiohttp.ClientSession  # presigned body URLs (S3)
    history: History | None = None  # the request inspector's records; None without the inspector
    inspector_url: str | None = None
    socket_log: SocketLog | None = None  # caller WebSocket sessions (the inspector and the dashboard show them)


# Requests waiting for a local slot, per slot: beyond max_concurrency x (1 + this), the agent answers
# tunnel_busy (429 at the edge) at once instead of queueing without bound.
QUEUE_PER_SLOT = 4


class TunnelRunner:
    def __init__(self, config: Config, shared: ProcessShared, backoff: Backoff | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.shared = shared
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.slots = asyncio.Semaphore(config.max_concurrency)  # local requests at once, replays included
        self.local = local_session(config.max_concurrency)
        history = shared.history
        self.forwarder = Forwarder(
            local=self.local, remote=shared.remote, host=config.host, port=config.port,
            keep_host=config.keep_host, request_timeout=config.request_timeout,
            # a config file's tunnel marks its entries with its name (the one tunnel's get its id)
            observer=functools.partial(history.record, tunnel=config.name) if history is not None else None,
        )
        self.socket_http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())  # caller WebSockets (ttf.sockets)
        self.socket_cap = SocketCap(config.max_websockets)  # ... at most this many over all of this tunnel's sockets
        # streamed answers (`stream`): at most max_streams at once over all of this tunnel's sockets
        self.streamer = Streamer(self.forwarder, StreamSlots(config.max_streams),
                                 live=functools.partial(history.open_live, tunnel=config.name) if history is not None
                                 else None, emit=self._emit)
        self.saved = SavedUrl.for_config(config, shared.emit)
        self.probe = LocalProbe(config.host, config.port, config.local_target, shared.emit)

    @property
    def name(self) -> str | None:
        return self.config.name

    async def run(self) -> None:
        """Serve until the stop signal; raises lifecycle.Fatal when retrying is pointless."""
        self.saved.restore(self.config.new_url)
        sessions = connect(self.config, self._dial, self.saved, emit=self.shared.emit, stop=self.shared.stop,
                           backoff=self.backoff, sleep=self.sleep, inspector_url=self.shared.inspector_url)
        probe = asyncio.create_task(self.probe.run())  # is the local service there? (at start, after failures)
        try:
            async with contextlib.aclosing(sessions):
                async for session in sessions:  # each serves by itself
                    log.debug("serving on connection %s", session.info.connection_id)
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe

    async def close(self) -> None:
        """Close the local connection pool (after run(): replays use it while the process lives)."""
        await self.local.close()
        await self.socket_http.close()

    async def replay(self, method: str, uri: str, headers: Headers, body: bytes) -> Exchange:
        async with self.slots:  # replays share the local service's concurrency bound
            exchange = await self.forwarder.replay(method, uri, headers, body)
        if exchange.error == UNREACHABLE:
            self.probe.failed()
        return exchange

    async def _dial(self, headers: Mapping[str, str]) -> TunnelSession:
        opened = await open_socket(self.shared.ws_http, self.config.endpoint, headers,
                                   self.config.connect_timeout, self.shared.emit)
        return TunnelSession(opened.ws, opened.info, handle=self.forwarder.handle, slots=self.slots,
                             emit=self._emit, heartbeat_interval=self.config.heartbeat_interval,
                             stopping=self.shared.stop.requested, early=opened.early,
                             on_denied=self._record_denied,
                             queue_limit=self.config.max_concurrency * (1 + QUEUE_PER_SLOT), streamer=self.streamer,
                             sockets=self._caller_sockets)

    def _caller_sockets(self, send: Callable[[str], Awaitable[bool]]) -> CallerSockets:
        return CallerSockets(send, self.socket_http, f"ws://{self.forwarder.target}", self.forwarder._local_headers,
                             cap=self.socket_cap, record=self.shared.socket_log, tunnel=self.name)

    def _emit(self, event: Event) -> None:
        """The session's events (requests done), which also tell the probe how the local calls went."""
        self.shared.emit(event)
        self.probe.observe(event)

    def _record_denied(self, denied: protocol.RequestDenied) -> None:
        self.shared.emit(RequestDenied(denied.method, denied.uri, denied.status, denied.reason, max(1, denied.count)))
        if self.shared.history is not None:  # the edge refused it; the inspector lists it
            self.shared.history.record_denied(time.time(), denied.method, denied.uri, denied.headers,
                                              denied.status, denied.reason, tunnel=self.name)
