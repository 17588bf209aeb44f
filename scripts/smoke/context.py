"""What every smoke check is given: the tunnel under test and how to reach it.

Its own module so that the battery (scripts/smoke/battery.py) and the swap attempt
(scripts/smoke/swap.py), which the battery runs, both import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from scripts.smoke.client import Client


@dataclass(frozen=True)
class Tunnel:
    tunnel_id: str
    public_url: str


@dataclass
class Context:
    tunnel: Tunnel
    restart: Callable[[], Tunnel]  # stop the agent, start it again with its saved state
    latency_requests: int = 20
    max_p90_ms: float | None = None
    client: Client | None = None
    endpoint: str = ""  # the agent WebSocket URL, for the swap attempt's hand-made agents
    token: str = ""  # the agent token ("" when the deployment lets anonymous agents in)
    stream_url: str = ""  # the streaming edge's base URL (function URL); "" when the deployment has none
    caller_ws_url: str = ""  # the caller WebSocket API's base URL (query form); "" when the deployment has none
    cloudfront: bool = False  # CloudFront fronts the tunnels' hostnames: caller sockets on wss://<tunnel host>/...
    socket_idle: bool = False  # run the 11-minute caller-socket idle observation (scripts/smoke/sockets.py)

    def url(self, path: str) -> str:
        return self.tunnel.public_url.rstrip("/") + path

    def http(self) -> Client:
        if self.client is None:
            self.client = Client()
        return self.client
