"""One `http_request` -> one call to the local service -> one outgoing frame.

Byte-exact: the uri goes out as received (no re-encoding), bodies are never decoded or
decompressed, repeated headers stay repeated, redirects are returned and not followed.
One deliberate change: an absolute ``Location``/``Content-Location`` that points at the local
target (``http://127.0.0.1:<port>/x``, as apps that build URLs from ``Host`` send) becomes the
public URL the caller used (``X-Forwarded-Proto``, the public ``Host``, ``X-Forwarded-Prefix``).
Errors: the frame's message is safe to show anyone (no local address, no errno); the detail goes
to this process's log and the inspector.
(A little over 300 lines: the whole byte-exact path of one request - check, fetch the body,
call the local service, build the frame or upload - reads best in one place.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import yarl
from multidict import CIMultiDict

from httptunnel import protocol
from httptunnel.limits import AGENT_MESSAGE_MAX, BODY_MAX, WS_FRAME_MAX
from httptunnel.protocol import Headers, HttpRequest, strip_hop_by_hop

from ttf.events import RequestDone

# Request headers aiohttp recomputes from the body we hand it.
_REQUEST_DROP = frozenset({"content-length", "expect"})
# Headers aiohttp would invent; the local service sees only what the caller sent.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_CHUNK = 64 * 1024
NO_DEADLINE_WAIT_S = 25.0  # a frame without time_left_ms (older servers): the HTTP API's wait
_ERROR_MESSAGE_MAX = 500

log = logging.getLogger("ttf")


class Failure(Exception):
    """The request cannot be answered with a response: becomes an `error` frame."""

    def __init__(self, code: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message[:_ERROR_MESSAGE_MAX]  # goes to the caller: nothing local in it
        self.detail = detail or message  # the log and the inspector only


@dataclass(frozen=True)
class Exchange:
    """One call to the local service and its answer, as the request inspector records it.

    request_headers are the headers as the tunnel delivered them (before the Host and
    hop-by-hop handling), so a replay goes through exactly the same path as the original.
    """

    started_at: float  # wall clock
    method: str
    uri: str
    request_headers: Headers
    request_body: bytes
    status: int
    response_headers: Headers
    response_body: bytes
    duration_ms: int
    error: str | None = None  # the error code answered instead of a response
    error_detail: str | None = None  # why (local addresses, errno): never sent through the tunnel


@dataclass(frozen=True)
class LocalAnswer:
    """What handle() made of one request: the frame to send back and the event to report."""

    frame: str  # the encoded frame to send (always <= WS_FRAME_MAX)
    event: RequestDone


def request_path(uri: str) -> str:
    return uri.split("?", 1)[0] or "/"


def check_request_line(method: str, uri: str) -> str:
    """Validate method and uri; returns the uri with non-ASCII characters and ``#`` percent-encoded
    (a request target has no fragment: a ``#`` can only be a decoded ``%23``, and sent as it is the
    HTTP client would cut the URL there)."""
    if not method or not set(method) <= _TOKEN_CHARS:
        raise Failure("invalid_request", f"bad method {method[:40]!r}")
    if not uri.startswith("/"):
        raise Failure("invalid_request", "uri must start with '/'")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in uri):
        raise Failure("invalid_request", "uri contains spaces or control characters")
    if uri.isascii() and "#" not in uri:
        return uri
    try:
        return "".join(ch if ch.isascii() and ch != "#" else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
                       for ch in uri)
    except UnicodeEncodeError:
        raise Failure("invalid_request", "uri is not valid Unicode") from None


def _decode_header(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header(headers: Headers, name: str) -> str:
    found = protocol.header_lookup(headers, name)
    return found[0].strip() if found else ""


def public_location(value: str, local: frozenset[str], public: str, proto: str, prefix: str) -> str:
    """``value`` pointed at the public URL when it is an absolute http(s) URL whose host:port is
    in ``local`` (lower-case); otherwise unchanged. The path gets ``prefix`` unless it has it."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.scheme.lower() not in ("http", "https") or parts.netloc.lower() not in local:
        return value
    path = parts.path or "/"
    if prefix and not (path == prefix or path.startswith(prefix + "/")):
        path = prefix + path
    return urlunsplit((proto, public, path, parts.query, parts.fragment))


def response_headers(raw_headers: tuple[tuple[bytes, bytes], ...]) -> Headers:
    """name -> [values] in arrival order; the first spelling of a name is kept."""
    out: Headers = {}
    spelling: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name = _decode_header(raw_name)
        key = spelling.setdefault(name.lower(), name)
        out.setdefault(key, []).append(_decode_header(raw_value))
    return strip_hop_by_hop(out)


async def read_capped(content: aiohttp.StreamReader, what: str) -> bytes:
    body = bytearray()
    async for chunk in content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > BODY_MAX:
            raise Failure("internal_error", f"{what} is larger than {BODY_MAX} bytes")
    return bytes(body)


def error_frame(request_id: str, code: str, message: str) -> str:
    return protocol.encode(protocol.Error(request_id=request_id, code=code, message=message[:_ERROR_MESSAGE_MAX]))


@dataclass
class Forwarder:
    local: aiohttp.ClientSession  # pooled, to the local service
    remote: aiohttp.ClientSession  # presigned body URLs
    host: str
    port: int
    keep_host: bool = False
    request_timeout: float = 900.0  # the most we wait for the local service; the edge's deadline ends it sooner
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    observer: Callable[[Exchange], object] | None = None  # sees every tunnelled request (the inspector)

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def handle(self, req: HttpRequest) -> LocalAnswer:
        started, started_at = self.clock(), self.wall()
        body = answer = b""
        headers: Headers = {}
        status = 0
        detail = None
        try:
            uri, body = await self.prepare(req)
            status, headers, answer = await self._call_local(req.method, uri, req.headers, body, self.local_limit(req))
            elapsed_ms = int((self.clock() - started) * 1000)
            sent = self.public_locations(req.headers, headers)
            frame = await self._response_frame(req, status, sent, answer, elapsed_ms)
            error = None
        except Failure as failure:
            frame = error_frame(req.request_id, failure.code, failure.message)
            status = protocol.ERROR_STATUS.get(failure.code, 502)
            error, detail = failure.code, failure.detail
            log.warning("%s %s: %s (%s)", req.method, request_path(req.uri)[:200], failure.code, detail)
        duration_ms = int((self.clock() - started) * 1000)
        self._observe(Exchange(started_at, req.method, req.uri, req.headers, body, status, headers, answer,
                               duration_ms, error, detail))
        event = RequestDone(
            method=req.method,
            path=request_path(req.uri),
            status=status,
            duration_ms=duration_ms,
            bytes_in=len(body),
            bytes_out=len(answer),
            error=error,
        )
        return LocalAnswer(frame=frame, event=event)

    def public_locations(self, request_headers: Headers, headers: Headers) -> Headers:
        """Absolute Location/Content-Location pointing at the local target -> the public URL.
        With --keep-host the app builds URLs from the public host itself; those get the scheme
        the caller used and, in path mode, the /<id> prefix."""
        public = _header(request_headers, "host") or _header(request_headers, "x-forwarded-host")
        if not public:
            return headers
        local = {self.target.lower(), f"localhost:{self.port}"}
        if self.port == 80:
            local.add(self.target.lower().rsplit(":", 1)[0])
        if self.keep_host:
            local.add(public.lower())
        proto = _header(request_headers, "x-forwarded-proto").split(",")[-1].strip().lower()
        proto = proto if proto in ("http", "https") else "https"
        prefix = _header(request_headers, "x-forwarded-prefix")
        prefix = prefix if prefix.startswith("/") and "/" not in prefix[1:] else ""
        out: Headers = {}
        for name, values in headers.items():
            if name.lower() in ("location", "content-location"):
                values = [public_location(v, frozenset(local), public, proto, prefix) for v in values]
            out[name] = values
        return out

    def _observe(self, exchange: Exchange) -> None:
        if self.observer is None:
            return
        try:
            self.observer(exchange)
        except Exception:  # the inspector must never cost a request its answer
            log.exception("request inspector failed")

    async def replay(self, method: str, uri: str, headers: Headers, body: bytes) -> Exchange:
        """Send a recorded request to the local service again, the same way handle() did."""
        started, started_at = self.clock(), self.wall()
        answer_headers: Headers = {}
        answer = b""
        detail = None
        try:
            status, answer_headers, answer = await self._call_local(
                method, check_request_line(method, uri), headers, body, min(self.request_timeout, NO_DEADLINE_WAIT_S))
            error = None
        except Failure as failure:
            status = protocol.ERROR_STATUS.get(failure.code, 502)
            error, detail = failure.code, failure.detail
        duration_ms = int((self.clock() - started) * 1000)
        return Exchange(started_at, method, uri, headers, body, status, answer_headers, answer, duration_ms, error,
                        detail)

    async def prepare(self, req: HttpRequest) -> tuple[str, bytes]:
        """The request line checked and the request body fetched (raises Failure): what handle() and a
        streamed answer (ttf.streaming) do before they call the local service."""
        return check_request_line(req.method, req.uri), await self._request_body(req)

    def open_local(self, method: str, uri: str, headers: Headers, body: bytes) -> Any:
        """The local request, as an ``async with`` context giving the aiohttp response (byte-exact as
        handle(); errors go through ``local_failure``)."""
        return self.local.request(method, yarl.URL(f"http://{self.target}{uri}", encoded=True),
                                  headers=self._local_headers(headers), data=body if body else None,
                                  allow_redirects=False)

    def local_failure(self, exc: BaseException, limit: float) -> Failure:
        """What an exception of the local call becomes (the caller's message never names the local address)."""
        if isinstance(exc, TimeoutError):
            return Failure("timeout", f"local service did not answer within {limit:g} s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return Failure("local_service_unavailable", "the local service is not reachable",
                           f"cannot connect to {self.target}: {exc.os_error}")
        if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
            return Failure("local_service_error", "the local service closed the connection without a complete answer",
                           f"local service at {self.target}: {exc!r}")
        return Failure("internal_error", "the local service could not be called", f"local service at {self.target}: {exc!r}")

    async def _request_body(self, req: HttpRequest) -> bytes:
        if not req.body_url:
            try:
                body = protocol.b64decode(req.body)
            except protocol.ProtocolError as exc:
                raise Failure("invalid_request", str(exc)) from None
        else:
            body = await self._fetch_body(req.body_url)
        if len(body) > BODY_MAX:
            raise Failure("invalid_request", f"request body is larger than {BODY_MAX} bytes")
        if req.body_size is not None and req.body_size != len(body):
            raise Failure("internal_error", f"request body has {len(body)} bytes, expected {req.body_size}")
        if req.body_sha256 and hashlib.sha256(body).hexdigest() != req.body_sha256.lower():
            raise Failure("internal_error", "request body does not match its sha256")
        return body

    async def _fetch_body(self, url: str) -> bytes:
        try:
            async with asyncio.timeout(min(self.request_timeout, NO_DEADLINE_WAIT_S)):  # body transfers, as before
                async with self.remote.get(yarl.URL(url, encoded=True), allow_redirects=False) as resp:
                    if resp.status != 200:
                        raise Failure("internal_error", f"request body download failed: HTTP {resp.status}")
                    return await read_capped(resp.content, "request body")
        except (aiohttp.ClientError, ValueError) as exc:
            raise Failure("internal_error", f"request body download failed: {exc!r}") from None
        except TimeoutError:
            raise Failure("timeout", "request body download timed out") from None

    def _local_headers(self, headers: Headers) -> CIMultiDict[str]:
        out: CIMultiDict[str] = CIMultiDict()
        for name, values in strip_hop_by_hop(headers).items():
            if name.lower() in _REQUEST_DROP or (name.lower() == "host" and not self.keep_host):
                continue
            for value in values:
                out.add(name, value)
        if not self.keep_host:
            original = protocol.header_lookup(headers, "host")
            if original and "X-Forwarded-Host" not in out:
                out["X-Forwarded-Host"] = original[0]
            out["Host"] = self.target
        return out

    def local_limit(self, req: HttpRequest) -> float:
        """Seconds the local service may take: until the edge stops waiting (``time_left_ms``: 25 s
        on the HTTP API, up to 15 min on the function URL), never past ``request_timeout``; an edge
        that does not say gets the HTTP API's 25 s."""
        edge_wait = req.time_left_ms / 1000 if req.time_left_ms is not None else NO_DEADLINE_WAIT_S
        return max(0.0, min(self.request_timeout, edge_wait))

    async def _call_local(self, method: str, uri: str, headers: Headers, body: bytes,
                          limit: float) -> tuple[int, Headers, bytes]:
        try:
            async with asyncio.timeout(limit):
                async with self.open_local(method, uri, headers, body) as resp:
                    answer = await read_capped(resp.content, "response body")
                    return resp.status, response_headers(resp.raw_headers), answer
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise self.local_failure(exc, limit) from None

    async def _response_frame(self, req: HttpRequest, status: int, headers: Headers, body: bytes, elapsed_ms: int) -> str:
        if len(body) <= AGENT_MESSAGE_MAX:
            inline = protocol.encode(
                protocol.HttpResponse(
                    request_id=req.request_id,
                    status_code=status,
                    headers=headers,
                    body=protocol.b64encode(body),
                    processing_time_ms=elapsed_ms,
                )
            )
            if len(inline.encode("utf-8")) <= AGENT_MESSAGE_MAX:
                return inline
        if req.response_upload is not None:
            await self.upload_form(req.response_upload, body)
        elif req.response_upload_url:  # a server from before presigned POST forms
            await self._upload(req.response_upload_url, body)
        else:
            raise Failure("internal_error", f"response too large ({len(body)} bytes) and no upload URL")
        frame = protocol.encode(
            protocol.HttpResponse(
                request_id=req.request_id,
                status_code=status,
                headers=headers,
                body="",
                processing_time_ms=elapsed_ms,
                body_uploaded=True,
                body_size=len(body),
                body_sha256=hashlib.sha256(body).hexdigest(),
            )
        )
        if len(frame.encode("utf-8")) > WS_FRAME_MAX:
            raise Failure("internal_error", "response headers too large for one frame")
        return frame

    async def upload_form(self, form: dict[str, Any], body: bytes) -> None:
        """S3 POST upload: the presigned fields, then the body as the last part, named `file`
        (S3 ignores fields after it). The policy caps the size; S3 answers 204."""
        data = aiohttp.FormData(quote_fields=False)
        for name, value in form["fields"].items():
            data.add_field(name, value)
        data.add_field("file", body, filename="body", content_type="application/octet-stream")
        payload = data()  # the remote session skips auto headers: name the multipart type here
        await self._upload(form["url"], payload, method="POST", headers={"Content-Type": payload.content_type})

    async def _upload(self, url: str, body: Any, method: str = "PUT", headers: dict[str, str] | None = None) -> None:
        try:
            async with asyncio.timeout(min(self.request_timeout, NO_DEADLINE_WAIT_S)):  # body transfers, as before
                async with self.remote.request(method, yarl.URL(url, encoded=True), data=body, headers=headers,
                                               allow_redirects=False) as resp:
                    await resp.read()
                    if not 200 <= resp.status < 300:
                        raise Failure("internal_error", f"response body upload failed: HTTP {resp.status}")
        except (aiohttp.ClientError, ValueError) as exc:
            raise Failure("internal_error", f"response body upload failed: {exc!r}") from None
        except TimeoutError:
            raise Failure("timeout", "response body upload timed out") from None


def local_session(max_concurrency: int) -> aiohttp.ClientSession:
    """The pooled client to one tunnel's local service: never decompresses, never invents headers."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_concurrency),
        auto_decompress=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def remote_session() -> aiohttp.ClientSession:
    """The client to presigned body URLs (one per process): likewise byte-exact."""
    return aiohttp.ClientSession(
        auto_decompress=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
    )

