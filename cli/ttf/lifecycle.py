"""The connection lifecycle of one tunnel, as an async generator of live sessions.

    async with contextlib.aclosing(connect(config, dial, saved, emit=emit, stop=stop)) as sessions:
        async for session in sessions:
            ...  # a session serves by itself; the caller may watch it, or do nothing

Like the `websockets` client's `async for ws in connect(uri)`, connect() owns everything
between sessions: the handshake (through `dial`), backoff between failed attempts (reset after
a success), reclaiming the tunnel id and asking for a new one at once when the reclaim is
refused, and renewal before API Gateway's 2 h cap (open a new socket, yield it, drain the old
one in the background). It yields each new live session: after a reconnect and after a renewal.
It returns once `stop` is requested, having refused new requests, drained in-flight ones and
closed every socket it opened; it raises Fatal when retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncGenerator, Awaitable, Callable, Generic, Mapping, Protocol, TypeVar

from httptunnel.protocol import ConnectionEstablished

from ttf.backoff import Backoff
from ttf.config import Config
from ttf.events import Disconnected, Notice, Reconnecting, Sink, TunnelEstablished
from ttf.handshake import ConnectFailed, connect_headers
from ttf.saved_url import SavedUrl
from ttf.shutdown import StopSignal, Stopped, unless

RENEW_RETRY_S = 30.0
RETIRE_GRACE_S = 6.0  # > forward's connection cache (CONNECTION_CACHE_S, 5 s): the old socket keeps serving that long
RETIRE_DRAIN_EXTRA_S = 5.0  # an old socket waits for its requests up to request_timeout + this
# connect's answers to an id + reclaim token it will not honour: 400 malformed id, 403 not
# granted, 409 held by someone else (a wrong token), 410 gone. A new id is the way out.
RECLAIM_REFUSED = frozenset({400, 403, 409, 410})


class LiveSession(Protocol):
    """What connect() needs of a session (session.TunnelSession; a fake in the tests)."""

    info: ConnectionEstablished
    opened_at: float  # time.monotonic() when established

    @property
    def busy(self) -> int: ...  # requests in flight
    async def ended(self) -> str: ...  # wait until the socket is gone (cancelling the wait stops nothing)
    def stop_accepting(self) -> None: ...
    async def drain(self, timeout: float, force: asyncio.Event | None = None) -> None: ...
    async def close(self) -> None: ...


S = TypeVar("S", bound=LiveSession)
# Opens one socket with these $connect headers and starts serving it; raises ConnectFailed.
Dial = Callable[[Mapping[str, str]], Awaitable[S]]


class Fatal(Exception):
    """Retrying cannot help (e.g. the token is rejected before any success). `status`: the HTTP
    status the endpoint refused the WebSocket with, when that is why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


async def connect(config: Config, dial: Dial[S], saved: SavedUrl, *, emit: Sink, stop: StopSignal,
                  backoff: Backoff | None = None,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                  inspector_url: str | None = None) -> AsyncGenerator[S, None]:
    """Yield live sessions of one tunnel until stop is requested (see the module docstring)."""
    life = _Lifecycle(config, dial, saved, emit, stop, backoff or Backoff(), sleep, inspector_url)
    try:
        session = await life.establish()
        while session is not None:
            yield session
            session = await life.next_after(session)
    finally:
        await life.shutdown()


class _Lifecycle(Generic[S]):
    """The state connect() keeps between yields: the current socket and those being retired."""

    def __init__(self, config: Config, dial: Dial[S], saved: SavedUrl, emit: Sink, stop: StopSignal,
                 backoff: Backoff, sleep: Callable[[float], Awaitable[None]], inspector_url: str | None) -> None:
        self.config = config
        self.dial = dial
        self.saved = saved
        self.emit = emit
        self.stop = stop
        self.backoff = backoff
        self.sleep = sleep
        self.inspector_url = inspector_url
        self.ever_established = False
        self.current: S | None = None
        self.retiring: dict[S, asyncio.Task[None]] = {}

    async def establish(self) -> S | None:
        """Connect, retrying forever with backoff; None when asked to stop."""
        while not self.stop.requested.is_set():
            try:
                session = await unless(self.stop.requested, self._open(renewing=False))
            except Stopped:
                return None
            except ConnectFailed as exc:
                if self._after_refusal(exc):
                    continue  # the reclaim was dropped: ask for a new id at once
                await self._wait_before_retry(exc.reason)
                continue
            self.backoff.reset()
            self.current = session
            return session
        return None

    async def next_after(self, session: S) -> S | None:
        """Wait while session serves; its successor (renewal or reconnect), None on stop."""
        renew_at = session.opened_at + self.config.renew_after
        while True:
            try:
                reason = await unless(self.stop.requested, session.ended(),
                                      timeout=max(0.0, renew_at - time.monotonic()))
            except Stopped:
                return None
            except TimeoutError:
                fresh = await self._renew()
                if fresh is None:
                    if self.stop.requested.is_set():
                        return None
                    renew_at = time.monotonic() + RENEW_RETRY_S
                    continue
                self._retire(session)
                self.current = fresh
                return None if self.stop.requested.is_set() else fresh
            if self.stop.requested.is_set():
                return None
            self.emit(Disconnected(reason=reason))
            await self._wait_before_retry(reason)
            return await self.establish()

    async def shutdown(self) -> None:
        """Refuse new requests, drain in-flight ones (until stop is forced), close every socket."""
        sessions = [s for s in [self.current, *self.retiring] if s is not None]
        for session in sessions:
            session.stop_accepting()
        busy = sum(s.busy for s in sessions)
        if busy:
            self.emit(Notice("info", f"finishing {busy} in-flight request(s), up to "
                                     f"{self.config.drain_timeout:g} s (Ctrl-C again to skip)"))
        await asyncio.gather(*(s.drain(self.config.drain_timeout, self.stop.forced) for s in sessions))
        retirements = list(self.retiring.values())
        for task in retirements:
            task.cancel()
        await asyncio.gather(*retirements, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sessions))
        if self.current is not None and self.stop.requested.is_set():
            self.emit(Disconnected(reason="stopped"))

    # ---- connecting -------------------------------------------------------------------
    async def _open(self, renewing: bool) -> S:
        session = await self.dial({**connect_headers(self.config), **self.saved.reclaim_headers()})
        self.ever_established = True
        self.saved.established(session.info)
        info = session.info
        self.emit(TunnelEstablished(
            tunnel_id=info.tunnel_id,
            public_url=info.public_url,
            subdomain_url=info.subdomain_url,
            path_based_url=info.path_based_url,
            connection_id=info.connection_id,
            renewed=renewing,
            inspector_url=self.inspector_url,
        ))
        return session

    def _after_refusal(self, exc: ConnectFailed) -> bool:
        """Raise Fatal, or drop a refused reclaim (True: worth retrying at once)."""
        if exc.status == 401 and not self.ever_established:
            raise Fatal(f"the endpoint rejected the token (HTTP 401): {exc.reason}", 401)
        if exc.status in RECLAIM_REFUSED and self.saved.refused(exc.status):
            return True
        if exc.status is not None and exc.status in self.config.give_up_on and not self.ever_established:
            raise Fatal(f"the endpoint refused the tunnel (HTTP {exc.status}): {exc.reason}", exc.status)
        return False

    async def _wait_before_retry(self, reason: str) -> None:
        delay = self.backoff.next_delay()
        self.emit(Reconnecting(delay_s=delay, attempt=self.backoff.attempt, reason=reason))
        with contextlib.suppress(Stopped):
            await unless(self.stop.requested, self.sleep(delay))

    # ---- renewal ------------------------------------------------------------------------
    async def _renew(self) -> S | None:
        try:
            return await unless(self.stop.requested, self._open(renewing=True))
        except Stopped:
            return None
        except ConnectFailed as exc:
            self.emit(Notice("warning", f"connection renewal failed ({exc.reason}); keeping the current one"))
            return None

    def _retire(self, old: S) -> None:
        """Let the old socket answer what it has (and what was posted to it just before the switch)."""
        async def retire() -> None:
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETIRE_GRACE_S):
                        await old.ended()
                await old.drain(self.config.request_timeout + RETIRE_DRAIN_EXTRA_S)
            finally:
                await old.close()
                self.retiring.pop(old, None)

        self.retiring[old] = asyncio.create_task(retire())
