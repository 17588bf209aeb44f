"""The agent: one ttf process, its tunnels, and what they share.

    TunnelAgent          the process: stop signal, HTTP clients, request inspector, tunnels
      TunnelRunner       one tunnel (tunnel.py): forwarder, concurrency bound, saved URL
        connect()        its connection lifecycle (lifecycle.py): yields TunnelSessions
          TunnelSession  one established socket (session.py)

run() serves until request_stop() (Ctrl-C: once to stop, twice to stop waiting for in-flight
requests) and raises Fatal when retrying is pointless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import aiohttp

from httptunnel.protocol import Headers

from ttf.backoff import Backoff
from ttf.config import Config
from ttf.events import Event, Notice, Sink
from ttf.forward import Exchange, remote_session
from ttf.inspector import History, Inspector
from ttf.lifecycle import Fatal
from ttf.shutdown import StopSignal
from ttf.tunnel import ProcessShared, TunnelRunner

__all__ = ["Fatal", "TunnelAgent"]

log = logging.getLogger("ttf")


def guarded(sink: Sink) -> Sink:
    """The sink, except that a broken display never stops the tunnel."""
    def emit(event: Event) -> None:
        try:
            sink(event)
        except Exception:
            log.exception("output failed")
    return emit


class TunnelAgent:
    def __init__(self, config: Config, sink: Sink, backoff: Backoff | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self._sink = sink
        self.emit = guarded(self._fan_out)
        self.backoff = backoff or Backoff()
        self.sleep = sleep  # backoff waits (injectable)
        self.stop = StopSignal()
        self.history: History | None = History(config.inspect_history) if config.inspect else None
        self.inspector: Inspector | None = None
        self.tunnels: list[TunnelRunner] = []

    def _fan_out(self, event: Event) -> None:
        self._sink(event)
        if self.inspector is not None:
            self.inspector.observe(event)  # its header shows the tunnel's id, URLs and state

    def request_stop(self) -> None:
        """First call: graceful stop. Second call: stop waiting for in-flight requests."""
        self.stop.request()

    async def run(self) -> None:
        """Run until request_stop(); raises Fatal when retrying is pointless."""
        ws_http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        remote = remote_session()
        try:
            inspector_url = await self._start_inspector()
            shared = ProcessShared(emit=self.emit, stop=self.stop, ws_http=ws_http, remote=remote,
                                   history=self.history, inspector_url=inspector_url)
            self.tunnels = [TunnelRunner(self.config, shared, self.backoff, self.sleep)]
            try:
                async with asyncio.TaskGroup() as group:
                    for tunnel in self.tunnels:
                        group.create_task(tunnel.run())
            except* Fatal as fatal:
                raise fatal.exceptions[0] from None
        finally:
            if self.inspector is not None:
                await self.inspector.stop()
            await asyncio.gather(remote.close(), ws_http.close(), return_exceptions=True)

    async def _start_inspector(self) -> str | None:
        if self.config.inspect is None or self.history is None:
            return None
        host, port = self.config.inspect
        inspector = Inspector(self.history, self._replay, self.config.local_target, self.config.keep_host)
        try:
            url = await inspector.start(host, port)
        except OSError as exc:
            self.emit(Notice("warning", f"request inspector not started: cannot listen on {host}:{port} "
                                        f"({exc.strerror or exc}); the tunnel runs without it"))
            return None
        self.inspector = inspector
        self.emit(Notice("info", f"request inspector: {url}"))
        return url

    async def _replay(self, method: str, uri: str, headers: Headers, body: bytes) -> Exchange:
        return await self.tunnels[0].replay(method, uri, headers, body)
