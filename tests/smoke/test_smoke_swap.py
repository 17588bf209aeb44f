"""scripts/smoke/swap.py without a stack: the rule that makes a check "not checkable locally",
S3's answers judged, the form as S3 wants it, the hand-made agent's bounded connect, and the
three checks against an in-process fake deployment (one that pins the checked version, one that
does not). tests/e2e/test_smoke.py runs them through the local stack."""

from __future__ import annotations

import asyncio
import socket
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from httptunnel import limits, protocol
from scripts.smoke import battery, swap
from scripts.smoke.client import Reply


@pytest.mark.parametrize("url,where", [
    ("http://127.0.0.1:38091/body-bucket", "127.0.0.1:38091"),   # the local stack's moto
    ("http://127.8.9.10/b", "127.8.9.10"),                         # all of 127.0.0.0/8
    ("http://[::1]:9000/b", "[::1]:9000"),
    ("http://localhost:4566/b", "localhost:4566"),                 # LocalStack's usual address
    ("http://s3.localhost:4566/b", "s3.localhost:4566"),
    ("https://p-bodies.s3.amazonaws.com/", None),                  # real S3
    ("https://p-bodies.s3.eu-west-1.amazonaws.com/", None),
    ("http://10.0.0.5:9000/b", None),                              # a private address is not this machine
    ("http://localhost.example.com/b", None),
])
def test_only_a_loopback_s3_endpoint_is_not_checkable(url, where):
    assert swap.local_s3(url) == where


def test_the_plain_http_form_of_the_upload_url():
    assert swap.plain_http("https://b.s3.amazonaws.com/") == "http://b.s3.amazonaws.com/"
    assert swap.plain_http("https://b.s3.amazonaws.com:443/x?y=1") == "http://b.s3.amazonaws.com/x?y=1"
    assert swap.plain_http("https://[2001:db8::1]:443/b") == "http://[2001:db8::1]/b"


def s3_error(status: int, code: str) -> Reply:
    return Reply(status, (), f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message></Error>".encode(), 0.1)


def test_the_size_cap_passes_only_on_entity_too_large():
    assert "400 EntityTooLarge" in swap.judge_cap(s3_error(400, "EntityTooLarge"))
    with pytest.raises(battery.CheckFailed, match="size cap is not enforced"):
        swap.judge_cap(Reply(204, (), b"", 0.1))
    with pytest.raises(battery.CheckFailed, match="answered 403 AccessDenied .* expected 400 EntityTooLarge"):
        swap.judge_cap(s3_error(403, "AccessDenied"))


def test_plain_http_passes_only_on_access_denied():
    assert swap.judge_tls(s3_error(403, "AccessDenied"), "http://b.s3.amazonaws.com/") \
        == "403 AccessDenied at http://b.s3.amazonaws.com/"
    with pytest.raises(battery.CheckFailed, match="no aws:SecureTransport deny"):
        swap.judge_tls(Reply(204, (), b"", 0.1), "http://b/")
    with pytest.raises(battery.CheckFailed, match="answered 307 TemporaryRedirect"):
        swap.judge_tls(s3_error(307, "TemporaryRedirect"), "http://b/")


def test_the_form_body_is_the_fields_in_order_then_the_file():
    body = bytes(range(256)) * 4 + b"\r\n--not-the-boundary\r\n"
    data, content_type = swap.form_body({"key": "resp/abc", "policy": "eyJ9", "x-amz-signature": "f00"}, body)
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + data)
    parts = list(message.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "key", "policy", "x-amz-signature", "file"]
    assert [p.get_content() for p in parts[:3]] == ["resp/abc", "eyJ9", "f00"]
    assert parts[3].get_payload(decode=True) == body
    with pytest.raises(battery.CheckFailed, match="cannot be sent"):
        swap.form_body({'na"me': "v"}, b"")


# --------------------------------------------------------------------------- a fake deployment

class FakeDeployment:
    """forward + S3 in memory: a versioned key, a 307 naming the version the agent's sha256 matched,
    and a GET that serves that version (pinned) or whatever was uploaded last (not pinned)."""

    def __init__(self, form_url: str, pinned: bool = True) -> None:
        self.form_url, self.pinned = form_url, pinned
        self.versions: list[bytes] = []
        self.posts: list[tuple[str, int]] = []
        self.s3_answer: Reply | None = None  # what S3 says to a POST (None: store it, 204)
        self.caller: asyncio.Future[Reply] | None = None

    def agent(self, endpoint: str, token: str) -> Any:
        deployment = self

        class Agent:
            public_url = "https://abc.t.example.com"

            async def __aenter__(self) -> Any:
                return self

            async def __aexit__(self, *exc: object) -> None:
                pass

            async def send(self, message: protocol.Message) -> None:
                assert isinstance(message, protocol.HttpResponse) and deployment.caller is not None
                if message.body_uploaded:
                    version = str(len(deployment.versions) - 1)
                    location = f"https://s3.example.com/resp/r1?versionId={version}&X-Amz-Signature=s"
                    deployment.caller.set_result(Reply(307, (("Location", location), ("x-tunnel-body", "s3")), b"", 0.1))
                else:
                    deployment.caller.set_result(Reply(message.status_code, (), b"", 0.1))

        return Agent()

    async def take_request(self, agent: Any, path: str) -> tuple[protocol.HttpRequest, Any]:
        self.caller = asyncio.get_running_loop().create_future()
        form = {"url": self.form_url, "fields": {"key": "resp/r1"}}
        return protocol.HttpRequest(request_id="r1", method="GET", uri=path, response_upload=form), self.caller

    async def post_form(self, form: dict[str, Any], body: bytes, url: str | None = None) -> Reply:
        self.posts.append((url or form["url"], len(body)))
        if self.s3_answer is not None:
            return self.s3_answer
        self.versions.append(body)
        return Reply(204, (), b"", 0.1)

    async def get(self, url: str, timeout: float = 0) -> Reply:
        version = int(parse_qs(urlsplit(url).query)["versionId"][0])
        return Reply(200, (), self.versions[version] if self.pinned else self.versions[-1], 0.1)


@pytest.fixture
def deployment(monkeypatch):
    def make(form_url: str = "https://p-bodies.s3.amazonaws.com/", pinned: bool = True) -> FakeDeployment:
        fake = FakeDeployment(form_url, pinned)
        monkeypatch.setattr(swap, "HandAgent", fake.agent)
        monkeypatch.setattr(swap, "take_request", fake.take_request)
        monkeypatch.setattr(swap, "post_form", fake.post_form)
        monkeypatch.setattr(swap, "get", fake.get)
        return fake
    return make


def ctx() -> battery.Context:
    def no_restart() -> battery.Tunnel:
        raise AssertionError("not restarted here")
    return battery.Context(battery.Tunnel("t", "https://t.example.com"), no_restart, endpoint="wss://x/prod", token="jwt")


def test_the_swap_check_passes_when_the_caller_gets_the_checked_version(deployment):
    fake = deployment(pinned=True)
    result = battery.one(swap.SWAP, swap.check_swap, ctx())
    assert result.ok, result.detail
    assert "B uploaded after the check (204)" in result.detail and "the caller got A" in result.detail
    assert [size for _, size in fake.posts] == [swap.SWAP_BODY, swap.SWAP_BODY]  # A, then B, same form
    assert fake.versions[0] != fake.versions[1]


def test_the_swap_check_fails_when_the_caller_gets_what_was_uploaded_after_the_check(deployment):
    deployment(pinned=False)
    result = battery.one(swap.SWAP, swap.check_swap, ctx())
    assert result.failed and "the caller got B" in result.detail


def test_the_swap_check_fails_when_s3_refuses_the_second_upload(deployment, monkeypatch):
    fake = deployment()

    async def second_refused(form: dict[str, Any], body: bytes, url: str | None = None) -> Reply:
        return await fake.post_form(form, body, url) if not fake.versions else s3_error(403, "AccessDenied")

    monkeypatch.setattr(swap, "post_form", second_refused)
    result = battery.one(swap.SWAP, swap.check_swap, ctx())
    assert result.failed and "403 AccessDenied to the upload of B" in result.detail and "nothing was swapped" in result.detail


def test_on_a_real_s3_the_cap_and_tls_checks_upload_and_judge(deployment):
    fake = deployment("https://p-bodies.s3.amazonaws.com/")
    fake.s3_answer = s3_error(400, "EntityTooLarge")
    cap = battery.one(swap.UPLOAD_CAP, swap.check_upload_cap, ctx())
    assert cap.ok, cap.detail
    assert fake.posts == [("https://p-bodies.s3.amazonaws.com/", limits.BODY_MAX + 1)]
    fake.s3_answer = s3_error(403, "AccessDenied")
    tls = battery.one(swap.UPLOAD_TLS, swap.check_upload_tls, ctx())
    assert tls.ok, tls.detail
    assert fake.posts[1][0] == "http://p-bodies.s3.amazonaws.com/"
    fake.s3_answer = Reply(204, (), b"", 0.1)  # a bucket without the policies
    assert battery.one(swap.UPLOAD_CAP, swap.check_upload_cap, ctx()).failed
    assert battery.one(swap.UPLOAD_TLS, swap.check_upload_tls, ctx()).failed


def test_on_the_local_stack_the_cap_and_tls_checks_are_not_checkable_and_upload_nothing(deployment):
    fake = deployment("http://127.0.0.1:38091/p-bodies")
    for name, check in ((swap.UPLOAD_CAP, swap.check_upload_cap), (swap.UPLOAD_TLS, swap.check_upload_tls)):
        result = battery.one(name, check, ctx())
        assert result.status == battery.NOT_CHECKABLE
        assert result.detail.startswith("S3 here is the local stack's moto (127.0.0.1:38091)")
    assert "content-length-range" in battery.one("c", swap.check_upload_cap, ctx()).detail
    assert "aws:SecureTransport" in battery.one("t", swap.check_upload_tls, ctx()).detail
    assert fake.posts == []


def test_no_form_from_forward_is_a_failure_not_a_skip(deployment, monkeypatch):
    fake = deployment()

    async def no_form(agent: Any, path: str) -> tuple[protocol.HttpRequest, Any]:
        request, caller = await fake.take_request(agent, path)
        return protocol.HttpRequest(request_id="r1", method="GET", uri=path), caller

    monkeypatch.setattr(swap, "take_request", no_form)
    for check in (swap.check_swap, swap.check_upload_cap, swap.check_upload_tls):
        result = battery.one("x", check, ctx())
        assert result.failed and "no response_upload form" in result.detail


def test_without_an_endpoint_the_checks_fail():
    bare = battery.Context(battery.Tunnel("t", "https://t.example.com"), lambda: battery.Tunnel("t", ""))
    assert "no agent endpoint" in battery.one("x", swap.check_swap, bare).detail


# --------------------------------------------------------------------------- the hand-made agent's connect

async def _serve(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/prod", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"ws://127.0.0.1:{port}/prod"


async def test_a_refused_handshake_is_one_line():
    async def refuse(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer jwt"
        return web.Response(status=401)

    runner, url = await _serve(refuse)
    try:
        with pytest.raises(battery.CheckFailed, match=r"refused the WebSocket \(HTTP 401\)"):
            async with swap.HandAgent(url, "jwt"):
                pass
    finally:
        await runner.cleanup()


async def test_a_silent_endpoint_is_given_up_on_in_time(monkeypatch):
    monkeypatch.setattr(swap, "CONNECT_TIMEOUT_S", 0.5)

    async def silent(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:  # reads `ready`, never answers connection_established
            pass
        return ws

    runner, url = await _serve(silent)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(battery.CheckFailed, match="no connection_established within 0.5 s"):
            async with swap.HandAgent(url, ""):
                pass
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await runner.cleanup()


def test_an_unreachable_endpoint_fails_the_check_in_one_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = ctx()
    context.endpoint = f"ws://127.0.0.1:{port}/prod"
    result = battery.one("x", swap.check_swap, context)
    assert result.failed and "cannot reach" in result.detail and "\n" not in result.detail
