"""Stopping: Ctrl-C's two stages and the one helper that races work against them.

The first Ctrl-C (or SIGTERM) asks for a graceful stop: new requests are refused, in-flight
ones get a few seconds. The second one stops the waiting. Every wait in the agent that a stop
must cut short (connecting, the backoff pause, serving until renewal, draining) goes through
`unless()`, so how a stop interrupts work is written once.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The event passed to unless() was set before the work finished."""


class StopSignal:
    """One per process, shared by every tunnel: request() once to stop, twice to stop waiting."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()  # graceful stop: refuse new requests, drain, close
        self.forced = asyncio.Event()  # stop draining in-flight requests

    def request(self) -> None:
        if self.requested.is_set():
            self.forced.set()
            return
        self.requested.set()


async def unless(event: asyncio.Event, work: Awaitable[T], timeout: float | None = None) -> T:
    """Await work; cancel it and raise Stopped as soon as event is set, TimeoutError after timeout.

    A result that is ready wins over a stop that arrives at the same moment (nothing opened is
    lost). work is cancelled when it loses, so to wait on a task that must outlive the race,
    pass a coroutine that waits for it (asyncio.wait does not cancel what it waits on).
    """
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(event.wait())
    finished = False
    try:
        await asyncio.wait({task, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finished = task.done()
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if finished:
        return task.result()
    if event.is_set():
        raise Stopped
    raise TimeoutError
