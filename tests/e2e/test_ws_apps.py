"""An origin-checking WebSocket server behind the tunnel (issue 24 item 5): Python `websockets` with
`origins=`, the check Rails (`allowed_request_origins`), Django (`AllowedHostsOriginValidator`)
and Phoenix (`check_origin`) make too. A browser sends its page's origin (`Origin:
http://<id>.localhost:<http port>` for a page opened through the local stack's subdomain URL);
the tunnel passes it on unchanged, so the app must list the tunnel's public origin, not its local
one (README "WebSockets: what each framework needs"). Vite and graphql-ws: tests/browser/test_ws_apps.py."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.e2e.conftest import StackInfo, Tunnel
from tests.e2e.test_caller_ws import caller_url, receive_text


def free_port() -> int:
    """The app's port, known before the tunnel starts (its `origins=` names the tunnel, the tunnel
    names its port); released before the app binds it, as in tests/e2e/test_commands.py."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def echo_what_it_saw(ws: ServerConnection) -> None:
    """Answers each message with the handshake's Origin and Host as the app got them."""
    async for message in ws:
        await ws.send(json.dumps({"origin": ws.request.headers.get("Origin"), "host": ws.request.headers.get("Host"),
                                  "message": message}))


class OriginApp:
    def __init__(self, port: int, origins: list[str | None]) -> None:
        self.port, self.origins = port, origins

    async def __aenter__(self) -> "OriginApp":
        self.server = await serve(echo_what_it_saw, "127.0.0.1", self.port, origins=self.origins)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def origin_tunnel(stack: StackInfo, agent_factory: Any) -> AsyncIterator[tuple[Tunnel, int, str]]:
    port = free_port()
    tunnel: Tunnel = await asyncio.to_thread(agent_factory, port)
    page_origin = tunnel.public_url.rstrip("/")  # what a browser sends from a page opened through the tunnel
    assert urlsplit(page_origin).path == "" and page_origin.startswith("http://"), page_origin
    yield tunnel, port, page_origin


async def handshake_status(stack: StackInfo, tunnel: Tunnel, origin: str | None) -> int:
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        try:
            async with caller_url(stack, tunnel.tunnel_id).connect(session, headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_the_app_sees_the_pages_origin_and_accepts_it_when_listed(stack, origin_tunnel):
    tunnel, port, page_origin = origin_tunnel
    async with OriginApp(port, [page_origin]):
        await warm_up_with_origin(stack, tunnel, page_origin)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            async with caller_url(stack, tunnel.tunnel_id).connect(session, headers={"Origin": page_origin}) as ws:
                await ws.send_str("hello ✓")
                seen = json.loads(await receive_text(ws, timeout=20))
        assert seen == {"origin": page_origin, "host": f"127.0.0.1:{port}", "message": "hello ✓"}
        # the app's own origin (what it sees when opened directly) is not the page's: refused
        assert await handshake_status(stack, tunnel, f"http://127.0.0.1:{port}") == 403
        # a non-browser client sends no Origin: refused unless origins= lists None
        assert await handshake_status(stack, tunnel, None) == 403


async def test_an_app_listing_only_its_local_origin_refuses_the_tunnelled_page(stack, origin_tunnel):
    """The mistake the README's rows warn of: the app allows the origin it is developed on."""
    tunnel, port, page_origin = origin_tunnel
    async with OriginApp(port, [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]):
        assert await handshake_status(stack, tunnel, page_origin) == 403
    async with OriginApp(port, [f"http://localhost:{port}", page_origin, None]):  # the documented fix
        assert await handshake_status(stack, tunnel, page_origin) == 101
        assert await handshake_status(stack, tunnel, None) == 101
        assert await handshake_status(stack, tunnel, "https://evil.example") == 403


async def warm_up_with_origin(stack: StackInfo, tunnel: Tunnel, origin: str, within_s: float = 90) -> None:
    """tests/e2e/test_caller_ws.py's warm_up with this app's Origin: one echo, retried while the functions are cold."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                headers = {"Origin": origin} if origin else {}
                async with caller_url(stack, tunnel.tunnel_id).connect(session, headers=headers) as ws:
                    await ws.send_str("warm")
                    if (await ws.receive(timeout=15)).type == aiohttp.WSMsgType.TEXT:
                        return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        if loop.time() > deadline:
            pytest.fail(f"no echo through the caller WebSocket API within {within_s} s")


async def test_keep_host_gives_the_app_the_sockets_public_host(stack, agent_factory):
    """Without --keep-host the app's Host is the local target (the test above); with it, the host the
    caller's socket named, without a port: caller_connect takes the caller API as wss on 443
    (terraform: PUBLIC_HTTP_URL ""), so on the local stack the caller port is not in it."""
    port = free_port()
    tunnel: Tunnel = await asyncio.to_thread(agent_factory, port, "--keep-host")
    public = caller_url(stack, tunnel.tunnel_id).host
    async with OriginApp(port, [None]):
        await warm_up_with_origin(stack, tunnel, "")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            async with caller_url(stack, tunnel.tunnel_id).connect(session) as ws:
                await ws.send_str("host?")
                seen = json.loads(await receive_text(ws, timeout=20))
    assert seen["host"] == urlsplit(f"ws://{public}").hostname, (seen, public)
