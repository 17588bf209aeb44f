"""Attacks on the public edge (issue 12) through the running local stack.

Each test plays an attacker with only what that attacker has: a caller with the public URL, a
tunnel owner with their own agent (a hand-written one: it can send any frame), a local service
that answers whatever it likes, or a web page in the developer's browser. What the local stack
cannot show is tested elsewhere, and said so here:
  * S3 enforcing the upload policy's size cap and key, and refusing plain HTTP: moto enforces
    neither (tests/unit/test_edge_policy.py checks the policy documents, terraform test the
    bucket policies; `make smoke` tries both on a real deployment);
  * path_routing = false and disable_execute_api_endpoint: they need a custom domain
    (tests/unit/test_edge_policy.py, terraform/tests/wiring.tftest.hcl);
  * API Gateway throttles on their default values: the session's stack raises them for the suite's
    own traffic; tests/security/test_flood.py runs a stack on the defaults (issue 29).
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import boto3
import pytest

from httptunnel import limits, protocol
from scripts.harness.proc import Proc
from scripts.harness.stack import ttf_argv
from tests.e2e.client import request
from tests.e2e.conftest import StackInfo
from tests.e2e.origin import pattern

MB = 1024 * 1024
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202e]")
# What a caller can put in a path on AWS, where HTTP APIs hand Lambda a percent-DECODED rawPath.
HOSTILE_URI = "/\x1b]0;pwned\x07\x1b[2J[link=https://evil.example]x[/link][blink]b[/blink]\u202etxt.exe"


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


def agent_token(stack: StackInfo) -> str | None:
    """The token agents present, when the stack requires one (auth on); None otherwise."""
    return stack.token if stack.auth else None


class FakeAgent:
    """A tunnel owner's own agent: connects like ttf, then sends whatever frames it likes."""

    def __init__(self, session: aiohttp.ClientSession, stack: StackInfo) -> None:
        self.session = session
        self.stack = stack
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.established: protocol.ConnectionEstablished | None = None

    async def __aenter__(self) -> "FakeAgent":
        token = agent_token(self.stack)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.ws = await self.session.ws_connect(self.stack.ws_url, headers=headers)
        await self.ws.send_str(protocol.encode(protocol.Ready()))
        message = protocol.decode((await self.ws.receive(timeout=15)).data)
        assert isinstance(message, protocol.ConnectionEstablished), message
        self.established = message
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None
        await self.ws.close()

    @property
    def public_url(self) -> str:
        assert self.established is not None
        return self.established.public_url

    async def next_request(self, timeout: float = 15) -> dict[str, Any]:
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            data = json.loads(frame.data)
            if data.get("type") == "http_request":
                return data

    async def send(self, message: protocol.Message) -> None:
        assert self.ws is not None
        await self.ws.send_str(protocol.encode(message))


async def post_form(session: aiohttp.ClientSession, form: dict[str, Any], body: bytes) -> int:
    data = aiohttp.FormData()
    for name, value in form["fields"].items():
        data.add_field(name, value)
    data.add_field("file", body, filename="body", content_type="application/octet-stream")
    async with session.post(form["url"], data=data) as resp:
        await resp.read()
        return resp.status


def header_pairs(echoed: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in json.loads(echoed)["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


# --------------------------------------------------------------------------- 1. cookies

@pytest.mark.parametrize("mode", ["subdomain", "path"])
async def test_a_tunnel_cannot_set_cookies_for_the_other_tunnels(session, tunnel, mode):
    """The local service tries cookie tossing: Set-Cookie with Domain= the shared parent domain."""
    base = tunnel.public_url if mode == "subdomain" else tunnel.path_based_url
    planted = ["sid=evil; Domain=localhost; Path=/", "x=1; Path=/; domain=.localhost; HttpOnly", "plain=2"]
    query = "&".join("c=" + quote(c, safe="") for c in planted)
    reply = await request(session, "GET", base, f"/set-cookie?{query}")
    assert reply.status == 200, reply.body[:300]
    cookies = reply.headers.getall("Set-Cookie")
    assert len(cookies) == 3 and not any("domain" in c.lower() for c in cookies), cookies
    for raw in cookies:  # what a browser then stores: host-only cookies, sent to this tunnel's host alone
        morsel = next(iter(SimpleCookie(raw).values()))
        assert morsel["domain"] == ""


async def test_no_rewrite_does_not_let_domain_cookies_through(session, agent_factory, origin):
    plain = agent_factory(origin, "--no-rewrite")
    reply = await request(session, "GET", plain.path_based_url, "/set-cookie?c=" + quote("a=1; Domain=localhost; Path=/"))
    assert reply.headers.getall("Set-Cookie") == ["a=1; Path=/"]  # Path untouched (no rewrite), Domain gone


# --------------------------------------------------------------------------- 4. proxy headers

FORGED = {"Forwarded": "for=10.6.6.6;host=evil.example;proto=https", "X-Real-IP": "10.6.6.6",
          "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "6666", "X-Forwarded-Proto": "gopher",
          "X-Forwarded-Prefix": "/evil", "X-Original-URL": "/admin", "True-Client-IP": "10.6.6.6",
          "X-Forwarded-For": "10.6.6.6"}


@pytest.mark.parametrize("mode", ["subdomain", "path"])
async def test_a_caller_cannot_choose_the_proxy_headers_the_app_trusts(session, stack, tunnel, mode):
    base = tunnel.public_url if mode == "subdomain" else tunnel.path_based_url
    reply = await request(session, "GET", base, "/echo", headers=FORGED)
    assert reply.status == 200, reply.body[:300]
    seen = header_pairs(reply.body)
    flat = json.dumps(seen)
    for forged in ("evil.example", "6666", "gopher", "/evil", "/admin"):
        assert forged not in flat, (forged, seen)
    host = f"{tunnel.tunnel_id}.localhost" if mode == "subdomain" else "127.0.0.1"
    port = str(stack.http_port)
    assert seen["x-forwarded-host"] == [host]
    assert seen["x-forwarded-proto"] == ["http"] and seen["x-forwarded-port"] == [port]
    assert seen["x-real-ip"] == ["127.0.0.1"]
    assert seen["forwarded"] == [f'for=127.0.0.1;host="{host}:{port}";proto=http']
    assert seen["x-forwarded-for"][0].split(", ")[-1] == "127.0.0.1"  # the last hop is the one API Gateway saw
    assert "true-client-ip" not in seen and "x-original-url" not in seen
    if mode == "path":
        assert seen["x-forwarded-prefix"] == [f"/{tunnel.tunnel_id}"]
    else:
        assert "x-forwarded-prefix" not in seen


# --------------------------------------------------------------------------- 2. big bodies

async def test_an_agent_cannot_swap_a_big_answer_after_it_was_checked(session, stack):
    """The agent uploads what forward checks, gets the caller a 307, then uploads something else
    through the same (still valid) form: the caller downloads the checked bytes."""
    checked = os.urandom(5 * MB)
    async with FakeAgent(session, stack) as agent:
        call = asyncio.create_task(request(session, "GET", agent.public_url, "/download"))
        msg = await agent.next_request()
        form = msg["response_upload"]
        assert "response_upload_url" not in msg  # no unbounded PUT URL is handed out any more
        policy = json.loads(base64.b64decode(form["fields"]["policy"]))
        assert ["content-length-range", 0, limits.BODY_MAX] in policy["conditions"]
        assert {"key": f"resp/{msg['request_id']}"} in policy["conditions"]
        assert await post_form(session, form, checked) == 204
        await agent.send(protocol.HttpResponse(
            request_id=msg["request_id"], status_code=200, headers={"content-type": ["application/octet-stream"]},
            body_uploaded=True, body_size=len(checked), body_sha256=hashlib.sha256(checked).hexdigest()))
        reply = await asyncio.wait_for(call, 30)
        assert reply.status == 307 and reply.headers["x-tunnel-body"] == "s3", reply.body[:300]
        assert "versionId=" in reply.headers["Location"]
        swapped = b"swapped after the check " * 1000
        assert await post_form(session, form, swapped) == 204  # moto accepts it: the key now holds other bytes
        async with session.get(reply.headers["Location"]) as resp:
            downloaded = await resp.read()
    assert resp.status == 200
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(checked).digest()
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = (await asyncio.to_thread(lambda: json.loads(Path(stack.state_file).read_text())))["body_bucket"]
    current = await asyncio.to_thread(
        lambda: s3.get_object(Bucket=bucket, Key=f"resp/{msg['request_id']}")["Body"].read())
    assert current == swapped  # the swap really happened; it just never reached the caller


async def test_an_oversized_upload_is_refused_not_served(session, stack):
    """moto does not enforce the form's size cap, so the agent can store 10 MB + 1 here; forward
    still checks the size of the version it reads before reading it: 502, nothing truncated."""
    async with FakeAgent(session, stack) as agent:
        call = asyncio.create_task(request(session, "GET", agent.public_url, "/huge"))
        msg = await agent.next_request()
        body = pattern(limits.BODY_MAX + 1)
        assert await post_form(session, msg["response_upload"], body) == 204
        await agent.send(protocol.HttpResponse(request_id=msg["request_id"], status_code=200, body_uploaded=True,
                                               body_sha256=hashlib.sha256(body).hexdigest()))
        reply = await asyncio.wait_for(call, 30)
    assert reply.status == 502 and reply.headers["x-tunnel-error"] == "response_too_large"


# --------------------------------------------------------------------------- 3. the bill: time left, tunnel_busy

async def test_requests_say_how_long_the_edge_still_waits(session, stack):
    async with FakeAgent(session, stack) as agent:
        call = asyncio.create_task(request(session, "GET", agent.public_url, "/t"))
        msg = await agent.next_request()
        await agent.send(protocol.HttpResponse(request_id=msg["request_id"], status_code=204))
        assert (await asyncio.wait_for(call, 30)).status == 204
    assert 0 < msg["time_left_ms"] <= limits.FORWARD_WAIT_S * 1000
    assert msg["deadline_ms"] > msg["timestamp"] > 0  # the absolute fields stay for older agents


async def test_a_busy_agent_turns_into_a_prompt_429(session, stack):
    async with FakeAgent(session, stack) as agent:
        started = time.monotonic()
        call = asyncio.create_task(request(session, "GET", agent.public_url, "/flood"))
        msg = await agent.next_request()
        await agent.send(protocol.Error(request_id=msg["request_id"], code="tunnel_busy", message="queue full"))
        reply = await asyncio.wait_for(call, 30)
    assert reply.status == 429 and reply.headers["x-tunnel-error"] == "tunnel_busy"
    assert time.monotonic() - started < 10  # not held for the 25 s wait


# --------------------------------------------------------------------------- 5. terminal and inspector

def _connection_of(stack: StackInfo, tunnel_id: str) -> str:
    ddb = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    rows = [i for i in ddb.scan(TableName=stack.connections_table)["Items"]
            if i.get("tunnelId", {}).get("S") == tunnel_id]
    return max(rows, key=lambda i: int(i["connectedAt"]["N"]))["connectionId"]["S"]


async def _deliver_hostile_request(session: aiohttp.ClientSession, stack: StackInfo, tunnel_id: str) -> None:
    """What forward sends on AWS for a caller's /%1B]0;pwned%07...: the decoded path, delivered
    down the agent's socket by the local WebSocket API."""
    connection_id = await asyncio.to_thread(_connection_of, stack, tunnel_id)
    frame = protocol.encode(protocol.HttpRequest(request_id="hostile-1", method="GET", uri=HOSTILE_URI))
    async with session.post(f"{stack.management_url}/@connections/{connection_id}", data=frame.encode()) as resp:
        assert resp.status == 200, await resp.text()


def _ttf(stack: StackInfo, port: int, tmp: Path, *extra: str) -> list[str]:
    token = agent_token(stack)
    return [*ttf_argv(), "-e", stack.ws_url, "-p", str(port), "--host", "127.0.0.1", "--state-dir",
            str(tmp / "ttf-state"), *(["-t", token] if token else []), *extra]


async def test_hostile_paths_reach_log_lines_and_the_inspector_as_plain_text(session, stack, origin, tmp_path):
    agent = Proc(_ttf(stack, origin, tmp_path, "--inspect", "0.0.0.0:0"), "ttf-lines",
                 tmp_path / "ttf.log").start()
    try:
        inspector_line = await asyncio.to_thread(agent.wait_line, lambda l: "request inspector: http" in l, 30)
        established = await asyncio.to_thread(agent.wait_line, lambda l: "tunnel established:" in l, 30)
        tunnel_id = re.search(r"\(tunnel id ([a-z0-9-]+)\)", established).group(1)
        await _deliver_hostile_request(session, stack, tunnel_id)
        line = await asyncio.to_thread(agent.wait_line, lambda l: "pwned" in l, 20)
        url = re.search(r"(http://0\.0\.0\.0:(\d+)/\?token=([A-Za-z0-9_-]+))", inspector_line)
        assert url, inspector_line
        base, token = f"http://127.0.0.1:{url.group(2)}", url.group(3)
        async with session.get(base + "/api/requests") as resp:
            refused = (resp.status, resp.headers.get("X-Frame-Options"))
        async with session.get(base + "/api/requests", headers={"Authorization": f"Bearer {token}"}) as resp:
            listed = (resp.status, resp.headers.get("X-Frame-Options"), resp.headers.get("Content-Security-Policy"),
                      await resp.json())
    finally:
        agent.stop()
    assert not RAW_CONTROLS.search(line), repr(line)
    assert "\\x1b]0;pwned\\x07\\x1b[2J[link=https://evil.example]x[/link]" in line and "\\u202etxt.exe" in line
    assert refused == (401, "DENY")  # off loopback, no token: nothing, and never in a frame
    status, frame_options, csp, data = listed
    assert status == 200 and frame_options == "DENY" and "frame-ancestors 'none'" in csp
    assert [e["uri"] for e in data["requests"]] == [HOSTILE_URI]  # kept exactly; the page shows it escaped


CSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")  # rich's own colours and cursor moves
TUNNEL_ROW = re.compile(rb"Tunnel id\s+([a-z0-9]{12})\b")


def _read_pty(fd: int, sink: bytearray, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        sink.extend(chunk)


SHOWN_AS_TYPED = (b"\\x1b]0;pwned\\x07", b"[link=https://evil.example]")  # escaped, and markup as text


async def test_hostile_paths_reach_the_dashboard_as_plain_text(session, stack, origin, tmp_path):
    """ttf on a terminal (a pty): rich markup in a path is shown, never applied; controls escaped."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 250, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "250", "LINES": "60"}
    with open(tmp_path / "ttf.log", "ab") as log:
        child = subprocess.Popen(_ttf(stack, origin, tmp_path, "--inspect", "off"), stdin=slave,
                                 stdout=slave, stderr=log, env=env, start_new_session=True)
    os.close(slave)
    output = bytearray()
    stop = threading.Event()
    reader = threading.Thread(target=_read_pty, args=(master, output, stop), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not (shown := TUNNEL_ROW.search(CSI.sub(b"", bytes(output)))):
            assert time.monotonic() < deadline and child.poll() is None, bytes(output)[-2000:]
            await asyncio.sleep(0.2)
        tunnel_id = shown.group(1).decode()
        await _deliver_hostile_request(session, stack, tunnel_id)
        deadline = time.monotonic() + 20
        while not all(shown in bytes(output) for shown in SHOWN_AS_TYPED):  # the whole row drawn
            assert time.monotonic() < deadline, bytes(output)[-3000:]
            await asyncio.sleep(0.2)
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=5)
        stop.set()
        os.close(master)
        reader.join(timeout=5)
    screen = bytes(output).decode("utf-8", "replace")
    for raw in ("\x1b]0;pwned", "\x07", "\x1b]8;", "\u202e", "\x1b[5m"):
        assert raw not in screen, repr(raw)  # no title change, bell, hyperlink, reordering or blink
    assert all(shown.decode() in screen for shown in SHOWN_AS_TYPED)
