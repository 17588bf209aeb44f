"""Opening one socket: the WebSocket upgrade, `ready`, and the wait for `connection_established`.

Every way this can fail becomes ConnectFailed(reason, HTTP status if the upgrade was refused);
the connection lifecycle decides whether to back off, drop a refused reclaim, or give up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Mapping

import aiohttp

from httptunnel import policy, protocol
from httptunnel.protocol import ConnectionEstablished, HttpRequest

from ttf._version import __version__
from ttf.config import Config
from ttf.events import Connected, Sink

log = logging.getLogger("ttf")

CLOSE_TIMEOUT = 2.0
# What this agent speaks of channel v2 (shared/README.md "Capabilities"), announced at every $connect.
AGENT_CAPABILITIES: tuple[str, ...] = (protocol.CAP_ACK, protocol.CAP_STREAM, protocol.CAP_WS)


class ConnectFailed(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Opened:
    """A socket the server called established, and the requests it routed there before saying so."""

    ws: aiohttp.ClientWebSocketResponse
    info: ConnectionEstablished
    early: list[HttpRequest] = field(default_factory=list)


def connect_headers(config: Config) -> dict[str, str]:
    """The $connect headers that do not depend on the saved URL."""
    headers = {"User-Agent": f"ttf/{__version__}", protocol.CAPABILITIES_HEADER: ",".join(AGENT_CAPABILITIES)}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    if config.subdomain:
        headers["X-Tunnel-Subdomain"] = config.subdomain
    if config.no_rewrite:
        headers["X-Tunnel-Rewrite"] = "off"
    elif config.rewrite_json:
        headers["X-Tunnel-Rewrite"] = "json"
    if config.policy:  # at every $connect: reconnects and renewals keep the policy
        headers[policy.HEADER] = policy.to_header(config.policy)
    return headers


async def open_socket(http: aiohttp.ClientSession, endpoint: str, headers: Mapping[str, str],
                      connect_timeout: float, emit: Sink) -> Opened:
    ws: aiohttp.ClientWebSocketResponse | None = None
    try:
        async with asyncio.timeout(connect_timeout):
            ws = await http.ws_connect(
                endpoint,
                headers=dict(headers),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                autoping=True,
            )
            emit(Connected(endpoint=endpoint))
            await ws.send_str(protocol.encode(protocol.Ready()))
            info, early = await _await_established(ws)
    except TimeoutError:
        await close_quietly(ws)
        what = "no connection_established" if ws is not None else "no answer"
        raise ConnectFailed(f"{what} within {connect_timeout:g} s") from None
    except aiohttp.WSServerHandshakeError as exc:
        raise ConnectFailed(f"endpoint refused the WebSocket (HTTP {exc.status})", exc.status) from None
    except aiohttp.ClientConnectorError as exc:
        raise ConnectFailed(f"cannot reach {endpoint}: {exc.os_error}") from None
    except (aiohttp.ClientError, ConnectionError, OSError) as exc:
        await close_quietly(ws)
        raise ConnectFailed(f"connection failed: {exc!r}") from None
    except ConnectFailed:
        await close_quietly(ws)
        raise
    return Opened(ws, info, early)


async def _await_established(ws: aiohttp.ClientWebSocketResponse) -> tuple[ConnectionEstablished, list[HttpRequest]]:
    """Wait for connection_established; http_request frames that come first are kept for the session."""
    early: list[HttpRequest] = []
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        notice = protocol.gateway_notice(msg.data)
        if notice is not None:
            # API Gateway refused a message of ours (e.g. throttled): it cannot say which, and
            # nothing else is in flight yet, so say `ready` again.
            log.warning("the gateway refused a message while connecting (%s): sending ready again", notice[:100])
            await ws.send_str(protocol.encode(protocol.Ready()))
            continue
        try:
            message = protocol.decode(msg.data)
        except protocol.ProtocolError as exc:
            log.warning("ignoring a frame while connecting: %s", exc)
            continue
        if isinstance(message, ConnectionEstablished):
            return message, early
        if isinstance(message, HttpRequest):
            early.append(message)
            continue
        if isinstance(message, protocol.Ping):
            await ws.send_str(protocol.encode(protocol.Pong()))
            continue
        log.warning("ignoring %s before connection_established", message.type)
    raise ConnectFailed(f"closed before connection_established (code {ws.close_code})")


async def close_quietly(ws: aiohttp.ClientWebSocketResponse | None) -> None:
    if ws is None or ws.closed:
        return
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close()
    except (TimeoutError, ConnectionError, aiohttp.ClientError):
        pass
