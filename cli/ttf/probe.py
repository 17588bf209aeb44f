"""Is the local service there? A tunnel can be online while the app behind it is not running.

LocalProbe opens a TCP connection to the local service (and closes it at once: no request is
sent) when the tunnel starts, again as soon as a request could not reach it, and then every few
seconds until it can. It reports only changes, as `LocalService` events: down (with the reason,
"connection refused"), and up again after that. A request the app answered is proof enough that
it is up. ngrok's agent does the same ("failed to dial the local service" beside "online").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Awaitable, Callable

from ttf.events import Event, LocalService, RequestDone, Sink

PROBE_TIMEOUT = 2.0  # seconds a connect may take
RETRY_S = (1.0, 2.0, 5.0)  # while down: look again after these, then every last one
UNREACHABLE = "local_service_unavailable"  # the error code of a request that could not connect


async def connectable(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to host:port opens; otherwise why not, in a few words."""
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no answer to a connect within {timeout:g} s"
    except OSError as exc:
        return os.strerror(exc.errno).lower() if exc.errno else str(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


class LocalProbe:
    """One tunnel's local service: run() looks at start and after failures; observe() hears requests."""

    def __init__(self, host: str, port: int, target: str, emit: Sink, timeout: float = PROBE_TIMEOUT,
                 retry: tuple[float, ...] = RETRY_S, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.host, self.port, self.target = host, port, target
        self.emit = emit
        self.timeout = timeout
        self.retry = retry
        self.sleep = sleep
        self.up: bool | None = None  # None: not looked at yet
        self._failed = asyncio.Event()

    def observe(self, event: Event) -> None:
        """A request's outcome: one that could not connect wakes the probe; an answer means it is up."""
        if isinstance(event, RequestDone):
            if event.error == UNREACHABLE:
                self._failed.set()
            elif event.error is None:
                self._report(None)

    def failed(self) -> None:
        """A call (a replay) could not connect: look again now."""
        self._failed.set()

    async def run(self) -> None:
        """Until cancelled: look, then wait for a failure while up, or look again soon while down."""
        attempt = 0
        while True:
            self._failed.clear()
            why = await connectable(self.host, self.port, self.timeout)
            self._report(why)
            if why is None:
                attempt = 0
                await self._failed.wait()
            else:
                await self.sleep(self.retry[min(attempt, len(self.retry) - 1)])
                attempt += 1

    def _report(self, why: str | None) -> None:
        up = why is None
        if up == self.up:
            return  # only changes
        quiet = up and self.up is None  # "up" at start goes without saying
        self.up = up
        if not quiet:
            self.emit(LocalService(up=up, target=self.target, detail=why))
