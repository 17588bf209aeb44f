"""Reconnect delays: 1 s doubling to 60 s, with jitter; reset after a good session."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Backoff:
    initial: float = 1.0
    cap: float = 60.0
    jitter: float = 0.25  # each delay is shortened by up to this fraction
    rand: Callable[[], float] = field(default=random.random)
    attempt: int = 0

    def next_delay(self) -> float:
        base = min(self.cap, self.initial * (2.0 ** min(self.attempt, 32)))
        self.attempt += 1
        return base * (1.0 - self.jitter * self.rand())

    def reset(self) -> None:
        self.attempt = 0
