"""Deadline-based waits: the only way tests, the bench and the dev loop wait for a condition."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition was not met before the deadline."""


def wait_until(condition: Callable[[], T], timeout: float, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll condition() until it returns something truthy and return that, or raise WaitTimeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what} not met within {timeout} s")
        time.sleep(interval)


async def wait_until_async(condition: Callable[[], T], timeout: float = 5.0,
                           interval: float = 0.01, what: str = "condition") -> T:
    """wait_until for code on an event loop: yields to the loop between checks."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)
