"""Which execution environment the fake Runtime API hands an invocation to (make bench relies on it)."""

import asyncio

from emulator.lambda_runtime.runtime_api_server import FakeRuntimeApi


async def test_sequential_invocations_stay_on_the_last_idle_environment():
    api = FakeRuntimeApi()
    first = asyncio.create_task(api._next())
    await asyncio.sleep(0)
    second = asyncio.create_task(api._next())
    await asyncio.sleep(0)
    a = api.invoke({"n": 1})
    await asyncio.sleep(0)
    assert second.done() and second.result() is a and not first.done()  # the one that asked last
    again = asyncio.create_task(api._next())  # the same environment, done with a, asks again
    await asyncio.sleep(0)
    b = api.invoke({"n": 2})
    await asyncio.sleep(0)
    assert again.done() and again.result() is b and not first.done()
    c = api.invoke({"n": 3})  # overlapping: now the other environment is used
    await asyncio.sleep(0)
    assert first.done() and first.result() is c


async def test_invocations_wait_in_order_when_no_environment_is_idle():
    api = FakeRuntimeApi()
    a, b = api.invoke({"n": 1}), api.invoke({"n": 2})
    assert await api._next() is a and await api._next() is b


async def test_an_environment_that_goes_away_hands_its_invocation_on():
    api = FakeRuntimeApi()
    survivor = asyncio.create_task(api._next())
    await asyncio.sleep(0)
    dying = asyncio.create_task(api._next())
    await asyncio.sleep(0)
    pending = api.invoke({"n": 1})  # given to `dying` (asked last) ...
    dying.cancel()  # ... which is cancelled before it could take it
    await asyncio.gather(dying, return_exceptions=True)
    assert await asyncio.wait_for(survivor, 1) is pending
