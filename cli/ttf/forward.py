"""One `http_request` -> one call to the local service -> one outgoing frame.

Byte-exact: the uri goes out as received (no re-encoding), bodies are never decoded or
decompressed, repeated headers stay repeated, redirects are returned and not followed.
(A little over 300 lines: the whole byte-exact path of one request - check, fetch the body,
call the local service, build the frame or upload - reads best in one place.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Callable

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
_ERROR_MESSAGE_MAX = 500

log = logging.getLogger("ttf")


class Failure(Exception):
    """The request cannot be answered with a response: becomes an `error` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message[:_ERROR_MESSAGE_MAX]


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
    request_timeout: float = 25.0
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
        try:
            uri = check_request_line(req.method, req.uri)
            body = await self._request_body(req)
            status, headers, answer = await self._call_local(req.method, uri, req.headers, body)
            elapsed_ms = int((self.clock() - started) * 1000)
            frame = await self._response_frame(req, status, headers, answer, elapsed_ms)
            error = None
        except Failure as failure:
            frame = error_frame(req.request_id, failure.code, failure.message)
            status = protocol.ERROR_STATUS.get(failure.code, 502)
            error = failure.code
        duration_ms = int((self.clock() - started) * 1000)
        self._observe(Exchange(started_at, req.method, req.uri, req.headers, body, status, headers, answer,
                               duration_ms, error))
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
        try:
            status, answer_headers, answer = await self._call_local(
                method, check_request_line(method, uri), headers, body)
            error = None
        except Failure as failure:
            status = protocol.ERROR_STATUS.get(failure.code, 502)
            error = failure.code
        duration_ms = int((self.clock() - started) * 1000)
        return Exchange(started_at, method, uri, headers, body, status, answer_headers, answer, duration_ms, error)

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
            async with asyncio.timeout(self.request_timeout):
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

    async def _call_local(self, method: str, uri: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        url = yarl.URL(f"http://{self.target}{uri}", encoded=True)
        try:
            async with asyncio.timeout(self.request_timeout):
                async with self.local.request(
                    method,
                    url,
                    headers=self._local_headers(headers),
                    data=body if body else None,
                    allow_redirects=False,
                ) as resp:
                    answer = await read_capped(resp.content, "response body")
                    return resp.status, response_headers(resp.raw_headers), answer
        except TimeoutError:
            raise Failure("timeout", f"local service did not answer within {self.request_timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise Failure("local_service_unavailable", f"cannot connect to {self.target}: {exc.os_error}") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise Failure("internal_error", f"local service error: {exc!r}") from None

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
        if not req.response_upload_url:
            raise Failure("internal_error", f"response too large ({len(body)} bytes) and no upload URL")
        await self._upload(req.response_upload_url, body)
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

    async def _upload(self, url: str, body: bytes) -> None:
        try:
            async with asyncio.timeout(self.request_timeout):
                async with self.remote.put(yarl.URL(url, encoded=True), data=body, allow_redirects=False) as resp:
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

