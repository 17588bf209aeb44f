"""Forwarder against raw local servers that behave like real apps (issue 14): absolute redirects
built from Host come back as the public URL, a dropped connection is local_service_error, and
error detail stays local (the frame carries a sentence anyone may read)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

import pytest

from httptunnel import protocol
from httptunnel.protocol import HttpRequest
from ttf.forward import Forwarder, local_session, public_location, remote_session

Handler = Callable[[bytes], Awaitable[bytes | None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        reply = await handler(head)
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _host(head: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            return value.strip().decode("latin-1")
    return ""


async def redirect_from_host(head: bytes) -> bytes:
    """Like Werkzeug's slash redirect: an absolute URL built from the Host it was sent."""
    host = _host(head)
    return (f"HTTP/1.1 308 Permanent Redirect\r\nLocation: http://{host}/docs/?a=1\r\n"
            f"Content-Location: http://{host}/docs/index.html\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n").encode("latin-1")


async def drop(head: bytes) -> None:
    return None  # read the request, close without a byte of answer


@pytest.fixture
async def make_forwarder() -> AsyncIterator[Callable[..., Awaitable[Forwarder]]]:
    servers: list[asyncio.Server] = []
    sessions = []

    async def make(handler: Handler, **kwargs: object) -> Forwarder:
        server, port = await _serve(handler)
        servers.append(server)
        local, remote = local_session(4), remote_session()
        sessions.extend([local, remote])
        return Forwarder(local=local, remote=remote, host="127.0.0.1", port=port, request_timeout=5.0,
                         **kwargs)  # type: ignore[arg-type]

    yield make
    for session in sessions:
        await session.close()
    for server in servers:
        server.close()
        await server.wait_closed()


def request(headers: dict[str, list[str]]) -> HttpRequest:
    return HttpRequest(request_id="r1", method="GET", uri="/docs", headers=headers, body="")


PATH_MODE = {"host": ["gw.example.test"], "x-forwarded-proto": ["https"], "x-forwarded-prefix": ["/abcdefghijkl"]}
SUBDOMAIN_MODE = {"host": ["abcdefghijkl.t.example.test:8080"], "x-forwarded-proto": ["http"]}


@pytest.mark.parametrize("keep_host", [False, True])
@pytest.mark.parametrize("headers,base", [(PATH_MODE, "https://gw.example.test/abcdefghijkl"),
                                          (SUBDOMAIN_MODE, "http://abcdefghijkl.t.example.test:8080")])
async def test_absolute_redirects_to_the_local_target_become_the_public_url(make_forwarder, keep_host, headers, base):
    fwd = await make_forwarder(redirect_from_host, keep_host=keep_host)
    outcome = await fwd.handle(request(headers))
    msg = protocol.decode(outcome.frame)
    assert isinstance(msg, protocol.HttpResponse) and msg.status_code == 308
    assert msg.headers["Location"] == [f"{base}/docs/?a=1"]
    assert msg.headers["Content-Location"] == [f"{base}/docs/index.html"]


async def test_keep_host_sends_the_public_host_forward_gives(make_forwarder):
    seen: list[str] = []

    async def record(head: bytes) -> bytes:
        seen.append(_host(head))
        return b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"

    fwd = await make_forwarder(record, keep_host=True)
    await fwd.handle(request(SUBDOMAIN_MODE))
    plain = await make_forwarder(record)
    await plain.handle(request(SUBDOMAIN_MODE))
    assert seen == ["abcdefghijkl.t.example.test:8080", plain.target]


def test_other_locations_are_left_alone():
    local = frozenset({"127.0.0.1:3000"})
    for value in ("/x", "https://example.com/x", "http://127.0.0.1:3001/x", "mailto:a@b", "http://[::1", ""):
        assert public_location(value, local, "gw.test", "https", "/p") == value
    assert public_location("http://127.0.0.1:3000", local, "gw.test", "https", "") == "https://gw.test/"
    assert public_location("HTTP://127.0.0.1:3000/p/x", local, "gw.test", "https", "/p") == "https://gw.test/p/x"


async def test_a_dropped_connection_is_local_service_error_with_detail_kept_local(make_forwarder, caplog):
    recorded = []
    fwd = await make_forwarder(drop, observer=recorded.append)
    outcome = await fwd.handle(request(SUBDOMAIN_MODE))
    msg = protocol.decode(outcome.frame)
    assert isinstance(msg, protocol.Error) and msg.code == "local_service_error"
    assert "127.0.0.1" not in msg.message and str(fwd.port) not in msg.message
    assert outcome.event.status == 502
    assert recorded[0].error == "local_service_error" and fwd.target in (recorded[0].error_detail or "")
    assert fwd.target in caplog.text


async def test_refused_connection_message_names_no_address(make_forwarder):
    fwd = await make_forwarder(drop)
    fwd.port = 1  # nothing listens on port 1
    msg = protocol.decode((await fwd.handle(request(SUBDOMAIN_MODE))).frame)
    assert isinstance(msg, protocol.Error) and msg.code == "local_service_unavailable"
    assert "127.0.0.1" not in msg.message and "Errno" not in msg.message
