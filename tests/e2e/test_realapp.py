"""A real app through the tunnel (issue 14): httpbin (tests/e2e/realapp.py) gets one battery of
requests directly, through the subdomain URL and through the path URL; the answers must match
once the differences the README's limits table names are taken out (``normalise``), and nothing
else may differ."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any, Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.e2e.client import request
from tests.e2e.conftest import StackInfo, Tunnel, start_agent
from tests.e2e.realapp import start_httpbin

JSON = {"content-type": "application/json"}
# (method, path, headers, body): 60 requests over every httpbin feature a proxy can disturb
BATTERY: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/get?a=1&a=2&b=%2F&c=caf%C3%A9&d=+x", {}, None),
    ("GET", "/get", {"X-Custom": "one", "Accept-Language": "fr"}, None),
    ("GET", "/headers", {"X-Utf8": "café ☕"}, None),
    ("GET", "/headers?show_env=1", {"X-Forwarded-For": "203.0.113.7"}, None),
    ("GET", "/anything/x%20y/%CE%BB?q=/etc/passwd", {}, None),
    ("POST", "/post", JSON, b'{"p": "/etc/passwd", "n": [1, "/a"], "k": {"/key": "/v"}}'),
    ("POST", "/post", {"content-type": "application/x-www-form-urlencoded"}, b"a=%2Fx&b=2&b=3"),
    ("POST", "/post", {"content-type": "multipart/form-data; boundary=XyZ"},
     b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n"
     b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\xff/x\r\n--XyZ--\r\n"),
    ("POST", "/anything", {"content-type": "application/octet-stream"}, bytes(range(256)) * 40),
    ("POST", "/anything", {"content-type": "text/plain", "content-encoding": "gzip"}, gzip.compress(b"/hello " * 50)),
    ("PUT", "/put", JSON, b'{"a": 1}'),
    ("PATCH", "/patch", {"content-type": "text/plain; charset=utf-8"}, "héllo /x".encode()),
    ("DELETE", "/delete?x=1", {}, None),
    ("POST", "/post", {}, b""),
    *[("GET", f"/status/{code}", {}, None) for code in (200, 201, 202, 204, 301, 302, 304, 400, 401, 403,
                                                         404, 405, 418, 429, 500, 502, 503)],
    ("GET", "/redirect/2", {}, None),
    ("GET", "/relative-redirect/2", {}, None),
    ("GET", "/absolute-redirect/2", {}, None),
    ("GET", "/redirect-to?url=/get&status_code=307", {}, None),
    ("GET", "/redirect-to?url=https://example.com/x", {}, None),
    ("GET", "/cookies/set?a=1&b=%2Fx", {}, None),
    ("GET", "/cookies", {"Cookie": "a=1; b=2"}, None),
    ("GET", "/cookies/delete?a", {"Cookie": "a=1"}, None),
    ("GET", "/response-headers?X-One=1&X-Two=a&freeform=%2Fp", {}, None),
    ("GET", "/bytes/4096?seed=7", {}, None),
    ("GET", "/stream-bytes/5000?seed=3&chunk_size=700", {}, None),
    ("GET", "/stream/5", {}, None),
    ("GET", "/range/2000", {"Range": "bytes=10-99"}, None),
    ("GET", "/gzip", {"Accept-Encoding": "gzip"}, None),
    ("GET", "/deflate", {"Accept-Encoding": "deflate"}, None),
    ("GET", "/gzip", {"Accept-Encoding": "gzip, br"}, None),
    ("GET", "/response-headers?X-Utf8=caf%C3%A9%20%E2%98%95&Content-Type=text/plain", {}, None),
    ("GET", "/html", {}, None),
    ("GET", "/links/4/1", {}, None),
    ("GET", "/json", {}, None),
    ("GET", "/xml", {}, None),
    ("GET", "/robots.txt", {}, None),
    ("GET", "/deny", {}, None),
    ("GET", "/encoding/utf8", {}, None),
    ("GET", "/image/png", {"Accept": "image/png"}, None),
    ("GET", "/image/svg", {"Accept": "image/svg+xml"}, None),
    ("GET", "/base64/SGVsbG8gd29ybGQ%3D", {}, None),
    ("GET", "/etag/abc", {"If-None-Match": '"abc"'}, None),
    ("GET", "/etag/abc", {}, None),
    ("GET", "/cache", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, None),
    ("GET", "/cache/60", {}, None),
    ("GET", "/basic-auth/u/p", {"Authorization": "Basic dTpw"}, None),
    ("GET", "/basic-auth/u/p", {}, None),
    ("GET", "/bearer", {"Authorization": "Bearer t0k"}, None),
    ("GET", "/user-agent", {"User-Agent": "realapp-battery/1"}, None),
    ("GET", "/delay/0", {}, None),
    ("GET", "/drip?duration=0&numbytes=7&code=200", {}, None),
    ("HEAD", "/get", {}, None),
    ("HEAD", "/bytes/100?seed=1", {}, None),
    ("OPTIONS", "/get", {"Origin": "https://x.example", "Access-Control-Request-Method": "PUT"}, None),
    ("GET", "/get/", {}, None),
]

# Request headers the tunnel sets (README limits: Forwarded, X-Real-IP, X-Forwarded-*, the trace
# id), which httpbin echoes.
ADDED_REQUEST_HEADERS = {"forwarded", "x-real-ip", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto",
                         "x-forwarded-host", "x-forwarded-prefix", "x-amzn-trace-id"}
# Response headers that differ for reasons the README names: the date, the connection, API
# Gateway's request id; a streamed (chunked) answer arrives with a Content-Length instead.
VOLATILE_RESPONSE_HEADERS = {"date", "connection", "keep-alive", "apigw-requestid", "transfer-encoding",
                             "content-length", "server"}


def _strip_echo(value: Any) -> Any:
    """httpbin's echo of the request: drop the headers the tunnel adds and the caller's address."""
    if isinstance(value, dict):
        out = {k: _strip_echo(v) for k, v in value.items() if k != "origin"}
        if isinstance(out.get("headers"), dict):
            out["headers"] = {k: v for k, v in out["headers"].items() if k.lower() not in ADDED_REQUEST_HEADERS}
        return out
    return value


def normalise(status: int, headers: Any, body: bytes, base: str, prefix: str, local: str) -> dict[str, Any]:
    """What must match: status, every response header but the volatile ones (with the caller's
    base URL and path-mode prefix taken out of Location/Set-Cookie/links), the body (JSON echoes
    without the added request headers; HTML with the path-mode link prefix taken out). ``local``:
    without --keep-host the app sees its local address as Host, so URLs it echoes name it."""
    kept: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in VOLATILE_RESPONSE_HEADERS:
            continue
        if lower in ("location", "content-location"):
            value = value.replace(base + prefix, "<base>").replace(base, "<base>").replace(local, "<base>")
            value = value[len(prefix):] if prefix and value.startswith(prefix + "/") else value
        if lower == "set-cookie" and prefix:
            value = value.replace(f"Path={prefix}/", "Path=/")
        kept.setdefault(lower, []).append(value)
    # API Gateway joins repeated headers (payload 2.0 has no multiValueHeaders) except Set-Cookie
    merged = {k: ", ".join(v) if k != "set-cookie" else sorted(v) for k, v in kept.items()}
    ctype = merged.get("content-type", "")
    encoding = merged.get("content-encoding", "")
    parsed: Any = body
    if encoding in ("gzip", "deflate"):
        body = zlib.decompress(body, 47 if encoding == "gzip" else 15)  # compare what the bytes say
    if "json" in ctype and body:
        try:
            parsed = [_strip_echo(json.loads(body))]
        except ValueError:  # /stream/n: one JSON document a line
            parsed = [_strip_echo(json.loads(line)) for line in body.splitlines() if line.strip()]
    elif "text/html" in ctype and prefix:
        parsed = body.replace(f'href="{prefix}/'.encode(), b'href="/').replace(f"href='{prefix}/".encode(), b"href='/")
    for doc in parsed if isinstance(parsed, list) else []:
        if isinstance(doc, dict) and isinstance(doc.get("url"), str):
            doc["url"] = doc["url"].replace(base, "<base>").replace(local, "<base>")
    return {"status": status, "headers": merged, "body": parsed}


@pytest.fixture(scope="module")
def httpbin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_httpbin(tmp_path_factory.mktemp("httpbin"))
    try:
        yield port
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def app_tunnel(stack: StackInfo, httpbin: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    tunnel = start_agent(stack, httpbin, tmp_path_factory.mktemp("realapp-agent"))
    try:
        yield tunnel
    finally:
        tunnel.agent.stop()


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False,
                                     skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                                     cookie_jar=aiohttp.DummyCookieJar()) as s:
        yield s


async def _run(session: aiohttp.ClientSession, base: str, prefix: str, case: tuple, local: str) -> dict[str, Any]:
    method, path, headers, body = case
    reply = await request(session, method, base, path, headers=headers, data=body)
    return normalise(reply.status, reply.headers, reply.body, _base(base), prefix, local)


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.mark.parametrize("case", BATTERY, ids=[f"{m} {p}" for m, p, _, _ in BATTERY])
async def test_httpbin_answers_the_same_directly_and_through_both_url_forms(session, httpbin, app_tunnel, case):
    local = f"http://127.0.0.1:{httpbin}"
    direct = await _run(session, local, "", case, local)
    subdomain = await _run(session, app_tunnel.public_url, "", case, local)
    path = await _run(session, app_tunnel.path_based_url, f"/{app_tunnel.tunnel_id}", case, local)
    for tunnelled in (subdomain, path):
        if "content-type" not in direct["headers"] and direct["body"]:
            # API Gateway gives a body without a Content-Type this one (README limits table)
            assert tunnelled["headers"].pop("content-type") == "text/plain; charset=utf-8"
    assert subdomain == direct
    assert path == direct


def test_the_battery_is_large_enough():
    assert len(BATTERY) >= 60, len(BATTERY)


async def test_keep_host_makes_the_app_build_public_urls(session, stack, httpbin, agent_factory):
    """With --keep-host httpbin sees the public host and builds its URLs from it; with or
    without it, an absolute redirect comes back pointing at the public URL."""
    kept = agent_factory(httpbin, "--keep-host")
    for url, prefix in ((kept.public_url, ""), (kept.path_based_url, f"/{kept.tunnel_id}")):
        base = _base(url)
        reply = await request(session, "GET", url, "/get")
        assert json.loads(reply.body)["headers"]["Host"] == urlsplit(url).netloc
        reply = await request(session, "GET", url, "/absolute-redirect/1")
        assert reply.status == 302 and reply.headers["Location"] == f"{base}{prefix}/get"
        assert urlsplit(reply.headers["Location"]).scheme == "http"  # what the caller used locally


async def test_head_keeps_content_length_and_proto_is_what_the_caller_used(session, httpbin, app_tunnel):
    direct = await request(session, "HEAD", f"http://127.0.0.1:{httpbin}", "/bytes/100?seed=1")
    assert direct.headers["Content-Length"] == "100"
    for url in (app_tunnel.public_url, app_tunnel.path_based_url):
        reply = await request(session, "HEAD", url, "/bytes/100?seed=1")
        assert (reply.status, reply.headers.get("Content-Length"), reply.body) == (200, "100", b"")
        echoed = json.loads((await request(session, "GET", url, "/headers?show_env=1")).body)["headers"]
        assert echoed["X-Forwarded-Proto"] == "http"  # the local stack serves plain HTTP
