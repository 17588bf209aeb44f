"""The stop signal and unless(), the one helper every stoppable wait goes through."""

from __future__ import annotations

import asyncio

import pytest

from ttf.shutdown import StopSignal, Stopped, unless


class Work:
    """A coroutine that finishes when told to, and remembers whether it was cancelled."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = False

    async def run(self, result: str = "done") -> str:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return result


def test_first_request_stops_gracefully_the_second_forces():
    stop = StopSignal()
    stop.request()
    assert stop.requested.is_set() and not stop.forced.is_set()
    stop.request()
    assert stop.forced.is_set()


async def test_work_that_finishes_first_gives_its_result():
    event, work = asyncio.Event(), Work()
    work.release.set()
    assert await unless(event, work.run("answer")) == "answer"


async def test_a_stop_cancels_the_work_and_raises_stopped():
    event, work = asyncio.Event(), Work()
    racing = asyncio.create_task(unless(event, work.run()))
    await asyncio.wait_for(work.started.wait(), 2)
    event.set()
    with pytest.raises(Stopped):
        await asyncio.wait_for(racing, 2)
    assert work.cancelled


async def test_a_stop_already_requested_stops_before_the_work_can_finish():
    event, work = asyncio.Event(), Work()
    event.set()
    with pytest.raises(Stopped):
        await unless(event, work.run())
    assert work.cancelled or not work.started.is_set()


async def test_a_result_ready_with_the_stop_wins():
    """A socket opened in the same instant as the stop must be returned (and closed), not lost."""
    event = asyncio.Event()
    event.set()

    async def instant() -> str:
        return "opened"

    assert await unless(event, instant()) == "opened"


async def test_timeout_cancels_the_work_and_raises_timeout_error():
    work = Work()
    with pytest.raises(TimeoutError):
        await unless(asyncio.Event(), work.run(), timeout=0.05)
    assert work.cancelled


async def test_the_works_own_error_propagates():
    async def broken() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await unless(asyncio.Event(), broken())


async def test_cancelling_the_caller_cancels_the_work():
    work = Work()
    racing = asyncio.create_task(unless(asyncio.Event(), work.run()))
    await asyncio.wait_for(work.started.wait(), 2)
    racing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await racing
    assert work.cancelled


async def test_a_task_waited_on_through_asyncio_wait_outlives_the_race():
    """How the lifecycle waits on a session: the stop ends the wait, not the session."""
    event, work = asyncio.Event(), Work()
    session = asyncio.create_task(work.run("still serving"))

    async def ended() -> str:
        await asyncio.wait({session})
        return session.result()

    racing = asyncio.create_task(unless(event, ended()))
    await asyncio.wait_for(work.started.wait(), 2)
    event.set()
    with pytest.raises(Stopped):
        await racing
    assert not session.done()
    work.release.set()
    assert await session == "still serving"
