"""Counters and fault switches shared by the emulator's parts (read by the admin API)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any


class Stats:
    """Thread-safe counters (moto's WSGI app runs in threads, the gateway on the loop)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dynamodb_calls: dict[str, int] = {}
        self.post_to_connection = 0
        self.agent_to_api = 0
        self.api_to_agent = 0
        self.http_requests = 0

    def count_dynamodb(self, operation: str) -> None:
        with self.lock:
            self.dynamodb_calls[operation] = self.dynamodb_calls.get(operation, 0) + 1

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def reset(self) -> None:
        with self.lock:
            self.dynamodb_calls = {}
            self.post_to_connection = self.agent_to_api = self.api_to_agent = self.http_requests = 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "dynamodb_calls": dict(self.dynamodb_calls),
                "post_to_connection": self.post_to_connection,
                "ws_messages": {"agent_to_api": self.agent_to_api, "api_to_agent": self.api_to_agent},
                "http_requests": self.http_requests,
            }


@dataclass(frozen=True)
class FaultSettings:
    dynamodb_throttle_rate: float = 0.0
    post_to_connection_gone_rate: float = 0.0
    # share of agent messages ($default) refused the way a throttled WebSocket route refuses them:
    # not routed, and an error frame sent back (emulator/README.md, "agent message throttling")
    agent_message_throttle_rate: float = 0.0
    # Seconds a row written by PutItem stays out of Query results on a GSI (DynamoDB's global
    # secondary indexes are eventually consistent; moto's are not).
    gsi_lag_s: float = 0.0
    # Caller WebSockets (issue 24): seconds, uniform 0..this, added before each agent-API $default
    # invocation and each PostToConnection, so concurrent Lambdas' posts and the agent's messages
    # overtake each other (AWS orders neither). Caller-API invocations are not delayed: see emulator/README.md.
    ws_jitter_s: float = 0.0


class Faults:
    """Current fault injection rates (replaced atomically as a frozen value)."""

    def __init__(self) -> None:
        self.settings = FaultSettings()
        self.rng = random.Random()

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply a POST /faults body; raises ValueError on an unknown key or a bad rate."""
        current = dict(self.settings.__dict__)
        for key, value in changes.items():
            if key not in current:
                raise ValueError(f"unknown fault {key!r} (known: {', '.join(sorted(current))})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{key} must be a number between 0 and 1")
            current[key] = float(value)
        self.settings = FaultSettings(**current)
        return self.settings

    def jitter(self, upper_s: float) -> float:
        return self.rng.uniform(0, upper_s) if upper_s > 0 else 0.0

    def hit(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate
