"""The agent: one ttf process, its tunnels, and what they share.

    TunnelAgent          the process: stop signal, HTTP clients, request inspector, tunnels
      TunnelRunner       one tunnel (tunnel.py): forwarder, concurrency bound, saved URL
        connect()        its connection lifecycle (lifecycle.py): yields TunnelSessions
          TunnelSession  one established socket (session.py)

run() serves until request_stop() (Ctrl-C: once to stop, twice to stop waiting for in-flight
requests) and raises Fatal when retrying is pointless. With several tunnels (a config file) each
one's events are tagged with its name, and a tunnel for which retrying is pointless reports
TunnelFailed and stops while the others go on; Fatal is raised once every tunnel has failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
from typing import Awaitable, Callable, Sequence

import aiohttp

from httptunnel.protocol import Headers

from ttf.backoff import Backoff
from ttf.config import Config
from ttf.events import Event, Notice, Sink, TunnelFailed, tagged
from ttf.forward import Exchange, remote_session
from ttf.inspector import History, Inspector, Local, ReplayRefused
from ttf.lifecycle import Fatal
from ttf.shutdown import StopSignal
from ttf.socketlog import SocketLog
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
    """One process. `config` is the command line's one tunnel, or a config file's tunnels (each
    Config has its name; the process-wide settings are the same in all of them)."""

    def __init__(self, config: Config | Sequence[Config], sink: Sink, backoff: Backoff | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, record: bool = False) -> None:
        self.configs: tuple[Config, ...] = (config,) if isinstance(config, Config) else tuple(config)
        if not self.configs:
            raise ValueError("no tunnels to run")
        self.config = self.configs[0]  # json, verbose, inspector, drain: process-wide
        self._sink = sink
        self.emit = guarded(self._fan_out)
        self.backoff = backoff or Backoff()
        self.sleep = sleep  # backoff waits (injectable)
        self.stop = StopSignal()
        # the inspector's records; `record` keeps them without the inspector (the Python API's .requests)
        self.history: History | None = History(self.config.inspect_history) if self.config.inspect or record else None
        self.inspector: Inspector | None = None
        self.socket_log = SocketLog()  # caller WebSocket sessions: the inspector's and the dashboard's (bounded)
        self.tunnels: list[TunnelRunner] = []
        self.failed: dict[str | None, Fatal] = {}  # tunnel name -> why it stopped

    def _fan_out(self, event: Event) -> None:
        self._sink(event)
        if self.inspector is not None:
            self.inspector.observe(event)  # its header shows the tunnel's id, URLs and state

    def request_stop(self) -> None:
        """First call: graceful stop. Second call: stop waiting for in-flight requests."""
        self.stop.request()

    async def run(self) -> None:
        """Run until request_stop(); raises Fatal when retrying is pointless for every tunnel."""
        ws_http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        remote = remote_session()
        try:
            inspector_url = await self._start_inspector()
            shared = ProcessShared(emit=self.emit, stop=self.stop, ws_http=ws_http, remote=remote,
                                   history=self.history, inspector_url=inspector_url, socket_log=self.socket_log)
            self.tunnels = [
                TunnelRunner(config, dataclasses.replace(shared, emit=tagged(self.emit, config.name)),
                             dataclasses.replace(self.backoff, attempt=0), self.sleep)
                for config in self.configs
            ]
            try:
                async with asyncio.TaskGroup() as group:
                    for tunnel in self.tunnels:
                        group.create_task(self._run_tunnel(tunnel))
            except* Fatal as fatal:
                raise fatal.exceptions[0] from None
        finally:
            await asyncio.gather(*(tunnel.close() for tunnel in self.tunnels), return_exceptions=True)
            if self.inspector is not None:
                await self.inspector.stop()
            await asyncio.gather(remote.close(), ws_http.close(), return_exceptions=True)

    async def _run_tunnel(self, tunnel: TunnelRunner) -> None:
        """One tunnel's task: its Fatal stops it alone, until none is left."""
        try:
            await tunnel.run()
        except Fatal as exc:
            self.failed[tunnel.name] = exc
            if tunnel.name is not None:
                tunnel.shared.emit(TunnelFailed(reason=str(exc)))
            if len(self.failed) < len(self.tunnels):
                return
            if len(self.tunnels) == 1:
                raise
            raise Fatal("every tunnel failed: " + "; ".join(f"{name}: {why}" for name, why in self.failed.items())
                        ) from None

    async def _start_inspector(self) -> str | None:
        if self.config.inspect is None or self.history is None:
            return None
        host, port = self.config.inspect
        named = {c.name: Local(c.local_target, c.keep_host) for c in self.configs if c.name is not None}
        inspector = Inspector(self.history, self._replay, self.config.local_target, self.config.keep_host, named,
                              socket_log=self.socket_log)
        taken = None
        try:
            try:
                url = await inspector.start(host, port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or port == 0:
                    raise
                taken = port  # another ttf (or anything) has it: any free port beats no inspector
                url = await inspector.start(host, 0)
        except OSError as exc:
            self.emit(Notice("warning", f"request inspector not started: cannot listen on {host}:{port} "
                                        f"({exc.strerror or exc}); the tunnel runs without it"))
            return None
        self.inspector = inspector
        if taken is not None:
            self.emit(Notice("warning", f"port {taken} is taken: request inspector on {url} instead"))
        else:
            self.emit(Notice("info", f"request inspector: {url}"))
        return url

    async def _replay(self, tunnel: str | None, method: str, uri: str, headers: Headers, body: bytes) -> Exchange:
        """Send a captured request again to the local service of the tunnel it came through (the
        one tunnel's entries carry its id, or none when imported: they all go to that tunnel)."""
        if len(self.tunnels) == 1 and self.tunnels[0].name is None:
            return await self.tunnels[0].replay(method, uri, headers, body)
        for runner in self.tunnels:
            if runner.name is not None and tunnel is not None and runner.name.lower() == tunnel.lower():
                return await runner.replay(method, uri, headers, body)
        names = ", ".join(r.name or "" for r in self.tunnels)
        came = f"came through tunnel {tunnel!r}, which this ttf does not run" if tunnel else "names no tunnel"
        raise ReplayRefused(f"this request {came} (its tunnels: {names}): cannot tell which local service "
                            "to send it to")
