"""The swap attempt (issue 12): a tunnel owner's own agent tries to change a big answer after
forward checked it, and to get past the limits of the upload form forward gave it.

forward hands every request a presigned S3 POST form (``response_upload``: key ``resp/<id>``,
``content-length-range`` 0..BODY_MAX, valid 300 s). An agent that uploads through it and answers
``body_uploaded`` gets the caller a 307 to a presigned GET of the VersionId forward checked. The
form stays valid after that, so the agent can upload again; the bucket is versioned, so that new
version must never reach the caller. Three checks, each with its own hand-made agent (its own
WebSocket and tunnel id, the deployment's token, as `ttf` presents it) and its own request
through that tunnel's public URL, so one failing says nothing about the others:

* :func:`check_swap`: the agent POSTs body A, answers with A's sha256, the caller gets a 307
  naming a VersionId; the agent then POSTs body B through the same form (S3 must take it: 204,
  else nothing was swapped); the caller's GET of the Location must return exactly A.
* :func:`check_upload_cap`: BODY_MAX + 1 bytes through the form: S3 400 ``EntityTooLarge``
  (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html,
  content-length-range; https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
* :func:`check_upload_tls`: the same form POSTed to the http:// form of its URL: 403
  ``AccessDenied`` from the body bucket's policy (Deny when ``aws:SecureTransport`` is false;
  terraform/modules/body_bucket).

The rule for "not checkable locally" (:func:`local_s3`): the form's S3 endpoint is a loopback
address (127.0.0.0/8, ::1, ``localhost``, ``*.localhost``), that is the local stack's moto.
moto enforces no POST policy and cannot evaluate ``aws:SecureTransport`` (the local stack
leaves the TLS-only policy out, and moto speaks plain HTTP anyway), so checks 2 and 3 report
:class:`NotCheckable` there, after taking the form, without uploading anything. Check 1 runs
everywhere: moto versions objects.

Time: every wait has a deadline (CHECK_TIMEOUT_S for the whole check, CONNECT_TIMEOUT_S for the
socket, FORWARD_WAIT_S + a margin for the caller); the agent's socket and its HTTP session are
closed when the check ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import secrets
import time
from typing import Any, Coroutine, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp

from httptunnel import limits, names, protocol
from scripts.smoke.client import Client, Reply
from scripts.smoke.context import Context
from scripts.smoke.verdict import CheckFailed, NotCheckable, expect

T = TypeVar("T")

SWAP = "big answer cannot be swapped"
UPLOAD_CAP = f"S3 refuses an upload over {limits.BODY_MAX // limits.MB} MB"
UPLOAD_TLS = "S3 refuses plain HTTP"

CHECK_TIMEOUT_S = 120.0  # one check, start to end; forward itself waits FORWARD_WAIT_S at most
CONNECT_TIMEOUT_S = 15.0  # WebSocket up and connection_established received
ROUTE_TIMEOUT_S = 10.0  # a new tunnel's first request may miss DynamoDB's GSI for a moment on AWS
ROUTE_RETRY_S = 0.5  # how often, within ROUTE_TIMEOUT_S, the caller tries again (forward caches a miss 1 s)
CALLER_TIMEOUT_S = limits.FORWARD_WAIT_S + 15.0  # the caller's socket: forward answers within FORWARD_WAIT_S
S3_TIMEOUT_S = 60.0
# Body A: binary and over what one Lambda result carries once base64-encoded (6 MB), so forward
# cannot return it inline and must answer 307 with the version it checked.
SWAP_BODY = 5 * limits.MB
MOTO_CAP = "S3 here is the local stack's moto ({where}), which does not enforce the form's content-length-range"
MOTO_TLS = ("S3 here is the local stack's moto ({where}): plain HTTP only, and no aws:SecureTransport policy "
            "(moto cannot evaluate it)")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- the rule

def local_s3(url: str) -> str | None:
    """The form's endpoint (host[:port]) when it is on this machine's loopback, which is where the
    local stack runs moto; None for anything else (a real S3 endpoint)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return parts.netloc
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return parts.netloc if loopback else None


def plain_http(url: str) -> str:
    """The http:// form of an https:// URL (same host and path; an explicit :443 is dropped)."""
    parts = urlsplit(url)
    netloc = parts.netloc[:-len(":443")] if parts.port == 443 else parts.netloc
    return urlunsplit(parts._replace(scheme="http", netloc=netloc))


# ---------------------------------------------------------------------------- S3's answers

def s3_code(reply: Reply) -> str:
    """The <Code> of S3's XML error body, "" when there is none."""
    found = re.search(rb"<Code>([^<]{1,64})</Code>", reply.body)
    return found.group(1).decode("ascii", "replace") if found else ""


def said(reply: Reply) -> str:
    code = s3_code(reply)
    return f"{reply.status} {code}" if code else str(reply.status)


def judge_cap(reply: Reply) -> str:
    """Check 2's verdict on S3's answer to BODY_MAX + 1 bytes."""
    if reply.status in (200, 201, 204):
        raise CheckFailed(f"S3 took {limits.BODY_MAX + 1} bytes ({reply.status}): the form's size cap is not enforced")
    expect(reply.status == 400 and s3_code(reply) == "EntityTooLarge",
           f"S3 answered {said(reply)} to {limits.BODY_MAX + 1} bytes, expected 400 EntityTooLarge")
    return f"400 EntityTooLarge for BODY_MAX + 1 = {limits.BODY_MAX + 1} bytes"


def judge_tls(reply: Reply, url: str) -> str:
    """Check 3's verdict on S3's answer to the form POSTed over plain HTTP."""
    if reply.status in (200, 201, 204):
        raise CheckFailed(f"S3 took the upload over plain HTTP ({reply.status}) at {url}: no aws:SecureTransport deny")
    expect(reply.status == 403 and s3_code(reply) == "AccessDenied",
           f"S3 answered {said(reply)} over plain HTTP, expected 403 AccessDenied")
    return f"403 AccessDenied at {urlsplit(url).scheme}://{urlsplit(url).netloc}/"


# ---------------------------------------------------------------------------- HTTP (stdlib client, in threads)

def form_body(fields: dict[str, str], body: bytes) -> tuple[bytes, str]:
    """multipart/form-data as S3 wants it: the form's fields in order, then the body as ``file``.
    Returns (bytes, Content-Type)."""
    boundary = "smoke-" + secrets.token_hex(16)
    out = bytearray()
    for name, value in fields.items():
        if re.search(r'["\r\n]', name) or re.search(r"[\r\n]", value):
            raise CheckFailed(f"the upload form has a field that cannot be sent as a form part: {name!r}")
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="body"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    out += body
    out += f"\r\n--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _request(method: str, url: str, body: bytes | None = None, headers: list[tuple[str, str]] | None = None,
             timeout: float = S3_TIMEOUT_S) -> Reply:
    client = Client(timeout=timeout)
    try:
        return client.request(method, url, body, headers)
    finally:
        client.close()


async def post_form(form: dict[str, Any], body: bytes, url: str | None = None) -> Reply:
    data, content_type = form_body(form["fields"], body)
    return await asyncio.to_thread(_request, "POST", url or form["url"], data, [("Content-Type", content_type)])


async def get(url: str, timeout: float = S3_TIMEOUT_S) -> Reply:
    return await asyncio.to_thread(_request, "GET", url, None, None, timeout)


# ---------------------------------------------------------------------------- the hand-made agent

class HandAgent:
    """A tunnel owner's own agent: connects as `ttf` does (Bearer token, `ready`), then sends
    whatever frames it likes. One reader task queues the requests; pings are answered."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint, self.token = endpoint, token
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.requests: asyncio.Queue[protocol.HttpRequest] = asyncio.Queue()
        self.established: protocol.ConnectionEstablished | None = None

    async def __aenter__(self) -> HandAgent:
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self) -> None:
        headers = {"User-Agent": "http-tunnel-smoke (hand-made agent)"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.http = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                self.ws = await self.http.ws_connect(self.endpoint, headers=headers, autoping=True)
                await self.ws.send_str(protocol.encode(protocol.Ready()))
                self.established = await self._established(self.ws)
        except TimeoutError:
            what = "no connection_established" if self.ws is not None else "no WebSocket"
            raise CheckFailed(f"hand-made agent: {what} within {CONNECT_TIMEOUT_S:g} s") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise CheckFailed(f"hand-made agent: the endpoint refused the WebSocket (HTTP {exc.status})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise CheckFailed(f"hand-made agent: cannot reach {self.endpoint}: {exc}") from None
        self.reader = asyncio.create_task(self._read(self.ws), name="smoke-hand-agent")

    async def _established(self, ws: aiohttp.ClientWebSocketResponse) -> protocol.ConnectionEstablished:
        async for frame in ws:
            message = await self._handle(ws, frame)
            if isinstance(message, protocol.ConnectionEstablished):
                return message
        raise CheckFailed(f"hand-made agent: the socket closed before connection_established (code {ws.close_code})")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            await self._handle(ws, frame)

    async def _handle(self, ws: aiohttp.ClientWebSocketResponse, frame: aiohttp.WSMessage) -> protocol.Message | None:
        if frame.type != aiohttp.WSMsgType.TEXT:
            return None
        try:
            message = protocol.decode(frame.data)
        except protocol.ProtocolError:
            return None  # not ours to judge here: ttf logs and drops such frames
        if isinstance(message, protocol.HttpRequest):
            self.requests.put_nowait(message)
        elif isinstance(message, protocol.Ping):
            await ws.send_str(protocol.encode(protocol.Pong()))
        return message

    @property
    def public_url(self) -> str:
        assert self.established is not None
        return self.established.public_url

    async def send(self, message: protocol.Message) -> None:
        assert self.ws is not None
        await self.ws.send_str(protocol.encode(message))

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        try:
            if self.ws is not None:
                await self.ws.close()  # aiohttp waits 10 s at most for the server's close frame
        except (aiohttp.ClientError, ConnectionError, OSError):
            pass  # the socket is gone either way
        finally:
            if self.http is not None:
                await self.http.close()


def left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


async def take_request(agent: HandAgent, path: str) -> tuple[protocol.HttpRequest, asyncio.Task[Reply]]:
    """GET the agent's public URL + path (in a thread) until the request reaches the agent: the
    frame, and the caller's task still waiting for its answer. A 404 tunnel_not_found is tried
    again for ROUTE_TIMEOUT_S (DynamoDB's GSI can lag the new connection row on AWS)."""
    url = agent.public_url.rstrip("/") + path
    deadline = time.monotonic() + ROUTE_TIMEOUT_S
    while True:
        caller = asyncio.create_task(get(url, CALLER_TIMEOUT_S))
        taken = asyncio.create_task(agent.requests.get())
        done, _ = await asyncio.wait({caller, taken}, timeout=limits.FORWARD_WAIT_S + 5,
                                     return_when=asyncio.FIRST_COMPLETED)
        if taken in done:
            return taken.result(), caller
        taken.cancel()
        if caller not in done:
            raise CheckFailed(f"no request reached the hand-made agent within {limits.FORWARD_WAIT_S + 5} s")
        reply = caller.result()
        code = reply.header(names.ERROR_HEADER)
        if reply.status == 404 and code == "tunnel_not_found" and left(deadline) > ROUTE_RETRY_S:
            await asyncio.sleep(ROUTE_RETRY_S)  # the interval of a deadline-bounded poll, as in wait_until
            continue
        raise CheckFailed(f"the caller got {reply.status}{f' ({code})' if code else ''} "
                          f"before the request reached the hand-made agent")


def upload_form(request: protocol.HttpRequest) -> dict[str, Any]:
    form = request.response_upload
    if not form:
        raise CheckFailed("forward sent no response_upload form (is the deployment's body bucket set?)")
    return form


async def answered(caller: asyncio.Task[Reply]) -> Reply:
    try:
        return await asyncio.wait_for(caller, CALLER_TIMEOUT_S)
    except TimeoutError:
        raise CheckFailed(f"the caller had no answer within {CALLER_TIMEOUT_S:g} s") from None


# ---------------------------------------------------------------------------- the checks

async def _swap(ctx: Context) -> str:
    first, second = secrets.token_bytes(SWAP_BODY), secrets.token_bytes(SWAP_BODY)  # A, then B
    async with HandAgent(ctx.endpoint, ctx.token) as agent:
        request, caller = await take_request(agent, "/smoke-swap")
        form = upload_form(request)
        stored = await post_form(form, first)
        expect(stored.status == 204, f"S3 answered {said(stored)} to the upload of A, expected 204")
        await agent.send(protocol.HttpResponse(
            request_id=request.request_id, status_code=200, headers={"content-type": ["application/octet-stream"]},
            body_uploaded=True, body_size=len(first), body_sha256=sha(first)))
        reply = await answered(caller)
        code = reply.header(names.ERROR_HEADER)
        expect(reply.status == 307, f"the caller got {reply.status}{f' ({code})' if code else ''}, expected 307 to S3")
        location = reply.header("Location") or ""
        version = parse_qs(urlsplit(location).query).get("versionId", [""])[0]
        expect(bool(version), f"the 307's Location names no versionId: {location[:120]!r}")
        swapped = await post_form(form, second)
        expect(swapped.status == 204, f"S3 answered {said(swapped)} to the upload of B through the same form, "
                                      "expected 204: nothing was swapped, so nothing is shown")
    download = await get(location)
    expect(download.status == 200, f"the caller's GET of the Location got {said(download)}")
    got = sha(download.body)
    expect(got != sha(second), "the caller got B, uploaded AFTER forward checked A: the answer was swapped")
    expect(got == sha(first), f"the caller got {len(download.body)} bytes that are neither A nor B")
    return (f"307 to versionId {version[:12]}…; B uploaded after the check (204); "
            f"the caller got A ({len(first) // limits.MB} MB, sha256 ok)")


async def _form(ctx: Context, path: str) -> dict[str, Any]:
    """A form of a request of its own, that request answered at once (204) so no caller waits."""
    async with HandAgent(ctx.endpoint, ctx.token) as agent:
        request, caller = await take_request(agent, path)
        form = upload_form(request)
        await agent.send(protocol.HttpResponse(request_id=request.request_id, status_code=204))
        reply = await answered(caller)
        expect(reply.status == 204, f"the caller got {reply.status} for the agent's 204")
    return form


async def _upload_cap(ctx: Context) -> str:
    form = await _form(ctx, "/smoke-upload-cap")
    where = local_s3(form["url"])
    if where:
        raise NotCheckable(MOTO_CAP.format(where=where))
    return judge_cap(await post_form(form, bytes(limits.BODY_MAX + 1)))


async def _upload_tls(ctx: Context) -> str:
    form = await _form(ctx, "/smoke-upload-tls")
    where = local_s3(form["url"])
    if where:
        raise NotCheckable(MOTO_TLS.format(where=where))
    url = plain_http(form["url"])
    return judge_tls(await post_form(form, b"plain http must not get here\n", url), url)


def bounded(check: Coroutine[Any, Any, T]) -> T:
    """Run one check on its own event loop, CHECK_TIMEOUT_S at most."""
    async def run() -> T:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S) as timer:
                return await check
        except TimeoutError:
            if timer.expired():
                raise CheckFailed(f"did not finish within {CHECK_TIMEOUT_S:g} s") from None
            raise
    return asyncio.run(run())


def _needs_endpoint(ctx: Context) -> None:
    if not ctx.endpoint:
        raise CheckFailed("no agent endpoint to connect a hand-made agent to")


def check_swap(ctx: Context) -> str:
    _needs_endpoint(ctx)
    return bounded(_swap(ctx))


def check_upload_cap(ctx: Context) -> str:
    _needs_endpoint(ctx)
    return bounded(_upload_cap(ctx))


def check_upload_tls(ctx: Context) -> str:
    _needs_endpoint(ctx)
    return bounded(_upload_tls(ctx))
