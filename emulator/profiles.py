"""Latency profiles for the emulator (owned by the benchmark work; see issue 6).

`local` adds nothing. `aws` adds the delays real AWS would add, each figure with its public
source in a comment, so `make bench PROFILE=aws` can report added latency under that model.
The emulator sleeps these (asynchronously / in the calling thread) around the matching operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    dynamodb_ms: dict[str, float] = field(default_factory=dict)  # by operation, "*" = default
    post_to_connection_ms: float = 0.0
    lambda_invoke_ms: float = 0.0  # per invocation overhead (warm)
    stream_delivery_ms: float = 0.0  # DynamoDB Stream record -> stream_notifier
    http_api_ms: float = 0.0  # HTTP API front door overhead
    websocket_api_ms: float = 0.0  # WebSocket API message routing overhead

    def dynamodb(self, operation: str) -> float:
        return self.dynamodb_ms.get(operation, self.dynamodb_ms.get("*", 0.0))


LOCAL = LatencyProfile(name="local")

PROFILES: dict[str, LatencyProfile] = {"local": LOCAL}


def load_profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown latency profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None
