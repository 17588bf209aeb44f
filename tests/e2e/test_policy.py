"""The edge policy through the local stack: a real `ttf` with policy options, callers bound to
other loopback addresses (127.0.0.2, 127.0.0.3) so the HTTP API emulator puts different peer
addresses into requestContext.http.sourceIp, and a local service that counts what reaches it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.client import request

SECRET = "e2e-webhook-secret"


def session_from(ip: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0)),
                                 timeout=aiohttp.ClientTimeout(total=60))


@pytest.fixture
async def counting_origin():
    hits: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(req: web.Request) -> web.Response:
        body = await req.read()
        hits.append((req.path_qs, {k.lower(): v for k, v in req.headers.items()}, body))
        return web.Response(body=body, headers={"x-powered-by": "local-dev", "content-type": "application/octet-stream"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, hits
    finally:
        await runner.cleanup()


async def test_denied_before_the_agent_allowed_byte_exact(counting_origin, agent_factory):
    port, hits = counting_origin
    tunnel = agent_factory(port, "--deny-ip", "127.0.0.2/32", "--basic-auth", "alice:e2e pw",
                           "--verify-webhook", f"github:{SECRET}", "--request-header-add", "X-Edge: checked",
                           "--request-header-remove", "Authorization", "--response-header-remove", "X-Powered-By")
    body = bytes(range(256)) * 40
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    creds = "Basic " + base64.b64encode(b"alice:e2e pw").decode()
    good = {"Authorization": creds, "X-Hub-Signature-256": signature, "Content-Type": "application/octet-stream"}

    async with session_from("127.0.0.2") as denied_ip:
        reply = await request(denied_ip, "POST", tunnel.public_url, "/hook?from=2", headers=good, data=body)
        assert reply.status == 403 and reply.headers["x-tunnel-error"] == "ip_denied"
    async with session_from("127.0.0.3") as caller:
        reply = await request(caller, "POST", tunnel.public_url, "/hook?no=auth", data=body)
        assert reply.status == 401 and reply.headers["www-authenticate"].startswith("Basic realm=")
        reply = await request(caller, "POST", tunnel.public_url, "/hook?bad=sig", headers=good, data=body + b"!")
        assert reply.status == 403 and reply.headers["x-tunnel-error"] == "webhook_signature_invalid"
        assert hits == []  # nothing denied reached the local service
        reply = await request(caller, "POST", tunnel.public_url, "/hook?ok=1", headers=good, data=body)
        assert reply.status == 200, reply.body[:300]
        assert reply.body == body and "x-powered-by" not in reply.headers
    [(path, headers, received)] = hits
    assert path == "/hook?ok=1" and received == body
    assert headers["x-edge"] == "checked" and "authorization" not in headers

    # The agent's own counter: its first request event is the allowed one; the denials came as notices.
    first = tunnel.agent.wait_json(lambda d: d.get("event") in ("request", "request_denied"), 20)
    seen = [first]
    while seen[-1].get("event") != "request":
        seen.append(tunnel.agent.wait_json(lambda d: d.get("event") in ("request", "request_denied"), 20))
    assert [(e["event"], e.get("reason")) for e in seen] == [
        ("request_denied", "ip_denied"), ("request_denied", "basic_auth_required"),
        ("request_denied", "webhook_signature_invalid"), ("request", None)], json.dumps(seen)
    assert seen[-1]["path"] == "/hook" and seen[-1]["status"] == 200


async def test_allow_list_admits_only_its_addresses(counting_origin, agent_factory):
    port, hits = counting_origin
    tunnel = agent_factory(port, "--allow-ip", "127.0.0.3/32")
    async with session_from("127.0.0.3") as allowed, session_from("127.0.0.4") as other:
        assert (await request(other, "GET", tunnel.public_url, "/x")).status == 403
        reply = await request(allowed, "GET", tunnel.public_url, "/y")
        assert reply.status == 200
    assert [h[0] for h in hits] == ["/y"]
