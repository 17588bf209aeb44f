"""The fixed battery `make smoke` runs through a tunnel's public URL.

Each check is a function ``(ctx) -> detail``; it raises :class:`CheckFailed` (or anything else)
to fail, :class:`NotCheckable` when this deployment cannot show what it checks (scripts/smoke/
verdict.py). :func:`run` times them, runs the 504 check (a 25 s wait) in a thread alongside the
others, then restarts the agent for the reconnect check once nothing is in flight. The swap
attempt (scripts/smoke/swap.py) brings its own hand-made agents, on tunnels of their own.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import string
import threading
import time
from typing import Callable
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from scripts.smoke import sockets, streaming, swap, throttle
from scripts.smoke.client import Client, Reply
from scripts.smoke.context import Context, Tunnel  # noqa: F401 - battery.Context / battery.Tunnel for callers
from scripts.smoke.origin import COOKIES, UTF8_VALUE, pattern, text_pattern
from scripts.smoke.verdict import FAILED, NOT_CHECKABLE, PASSED, CheckFailed, NotCheckable, Result, expect

MB = 1024 * 1024
ERROR_HEADER = "x-tunnel-error"  # httptunnel.names.ERROR_HEADER
FORWARD_WAIT_S = 25  # httptunnel: forward answers 504 after 25 s without an answer
BIG_DOWNLOAD = 8 * MB  # binary: over Lambda's 6 MB result once base64-encoded, so it must come via S3
# An encoded path whose decoded bytes are unambiguous: space, UTF-8, an encoded '#' and '/', '+'.
# No %25: an HTTP API decodes the path twice there, so "50%25/" is refused with 400 by AWS itself
# (live captures, hotsock/voker#8; README "What reaches the local app's URL").
ENCODED_PATH = "/echo/smoke%20test/caf%C3%A9/a%23b/a%2Fb/x+y"
QUERY = "q=smoke&sp=%20&sl=%2F&empty=&flag"


def expect_status(reply: Reply, status: int) -> None:
    if reply.status != status:
        code = reply.header(ERROR_HEADER)
        snippet = reply.body[:120].decode("utf-8", "replace").strip().replace("\n", " ")
        raise CheckFailed(f"status {reply.status}{f' ({code})' if code else ''}, expected {status}: {snippet!r}")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n} B"


def rate(n: int, seconds: float) -> str:
    return f"{size(n)} at {n / MB / max(seconds, 1e-6):.1f} MB/s"


def echoed(reply: Reply) -> dict:
    expect_status(reply, 200)
    try:
        return json.loads(reply.body)
    except ValueError:
        raise CheckFailed(f"the origin's echo is not JSON: {reply.body[:80]!r}") from None


# ---------------------------------------------------------------------------- checks

def check_get(ctx: Context) -> str:
    seen = echoed(ctx.http().request("GET", ctx.url(f"/echo?{QUERY}")))
    expect(seen["method"] == "GET", f"the origin saw {seen['method']}")
    expect(seen["target"] == f"/echo?{QUERY}", f"the origin saw {seen['target']!r}, sent /echo?{QUERY}")
    return "method, path and query byte-exact"


def check_post(ctx: Context) -> str:
    body = json.dumps({"smoke": "post ✓", "n": 1}, ensure_ascii=False).encode()
    seen = echoed(ctx.http().request("POST", ctx.url("/echo"), body, [("Content-Type", "application/json")]))
    expect(seen["method"] == "POST", f"the origin saw {seen['method']}")
    expect(seen["sha256"] == sha(body) and seen["text"] == body.decode(), "the origin got a different body")
    return f"{len(body)} B JSON body byte-exact"


def _upload(ctx: Context, body: bytes, content_type: str) -> str:
    reply = ctx.http().request("POST", ctx.url("/sha"), body, [("Content-Type", content_type)])
    expect_status(reply, 200)
    expect(reply.body.decode() == sha(body), "sha256 at the origin differs from what was sent")
    return f"sha256 ok, {rate(len(body), reply.seconds)}"


def _download(ctx: Context, path: str, expected: bytes) -> str:
    reply = ctx.http().request("GET", ctx.url(path))
    expect_status(reply, 200)
    expect(len(reply.body) == len(expected), f"got {len(reply.body)} bytes, expected {len(expected)}")
    expect(sha(reply.body) == sha(expected), "sha256 differs from the origin's body")
    return f"sha256 ok, {rate(len(expected), reply.seconds)}"


def check_binary_up(ctx: Context) -> str:
    return _upload(ctx, secrets.token_bytes(MB), "application/octet-stream")


def check_binary_down(ctx: Context) -> str:
    return _download(ctx, f"/bytes?n={MB}", pattern(MB))


def check_text_up(ctx: Context) -> str:
    return _upload(ctx, text_pattern(5 * MB)[::-1], "text/plain; charset=utf-8")


def check_text_down(ctx: Context) -> str:
    return _download(ctx, f"/text?n={5 * MB}", text_pattern(5 * MB))


def check_s3_download(ctx: Context) -> str:
    reply = ctx.http().request("GET", ctx.url(f"/bytes?n={BIG_DOWNLOAD}"))
    expect_status(reply, 307)
    expect(reply.header("x-tunnel-body") == "s3", f"x-tunnel-body is {reply.header('x-tunnel-body')!r}, expected s3")
    location = reply.header("Location") or ""
    s3 = Client()
    try:
        body = s3.request("GET", location)
    finally:
        s3.close()
    expect_status(body, 200)
    expect(len(body.body) == BIG_DOWNLOAD and sha(body.body) == sha(pattern(BIG_DOWNLOAD)),
           f"the S3 object is {len(body.body)} bytes with another sha256")
    return f"307 to {urlsplit(location).hostname}, sha256 ok, {rate(BIG_DOWNLOAD, reply.seconds + body.seconds)}"


def check_cookies(ctx: Context) -> str:
    reply = ctx.http().request("GET", ctx.url("/cookies"))
    expect_status(reply, 200)
    got = sorted(c.split(";", 1)[0].strip() for c in reply.all("Set-Cookie"))
    want = sorted(c.split(";", 1)[0] for c in COOKIES)
    expect(got == want, f"Set-Cookie values {got}, expected {want} as separate headers")
    return f"{len(want)} separate Set-Cookie headers"


def check_utf8_header(ctx: Context) -> str:
    """A local service's UTF-8 header bytes reach the caller unchanged (what API Gateway writes for a
    non-ASCII value has no documented source: emulator/README.md's fidelity table)."""
    reply = ctx.http().request("GET", ctx.url("/utf8-header"))
    expect_status(reply, 200)
    got = (reply.header("X-Smoke-Utf8") or "").encode("latin-1", "replace")  # http.client: one char a byte
    want = UTF8_VALUE.encode("utf-8")
    expect(got == want, f"X-Smoke-Utf8 arrived as bytes {got.hex(' ')}, sent {want.hex(' ')}")
    return f"{len(want)} bytes unchanged"


def check_encoded_path(ctx: Context) -> str:
    """The origin's request target decodes to the same bytes as the caller's path. (An HTTP API
    hands Lambda the path decoded; forward re-encodes it: only the decoded bytes are promised.)"""
    seen = echoed(ctx.http().request("GET", ctx.url(ENCODED_PATH)))
    received = seen["target"].split("?", 1)[0]
    expect(unquote_to_bytes(received) == unquote_to_bytes(ENCODED_PATH),
           f"the origin got {received!r}, which does not decode to the bytes of {ENCODED_PATH!r}")
    return f"origin got {received}"


def unknown_tunnel_url(tunnel: Tunnel) -> str:
    """The public URL with the tunnel id (a host label or the first path segment) swapped for a random one."""
    other = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))
    parts = urlsplit(tunnel.public_url)
    if parts.hostname and parts.hostname.startswith(tunnel.tunnel_id + "."):
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(tunnel.tunnel_id, other, 1)))
    segments = parts.path.split("/")
    if tunnel.tunnel_id not in segments:
        raise CheckFailed(f"tunnel id {tunnel.tunnel_id} is neither in the host nor the path of {tunnel.public_url}")
    segments[segments.index(tunnel.tunnel_id)] = other
    return urlunsplit(parts._replace(path="/".join(segments)))


def _tunnel_error(reply: Reply, status: int, code: str | None) -> str:
    expect_status(reply, status)
    if code is not None:
        expect(reply.header(ERROR_HEADER) == code, f"{ERROR_HEADER} is {reply.header(ERROR_HEADER)!r}, expected {code}")
    return f"{status} {reply.header(ERROR_HEADER) or '(no ' + ERROR_HEADER + ')'} in {reply.seconds:.2f} s"


def check_404(ctx: Context) -> str:
    reply = ctx.http().request("GET", unknown_tunnel_url(ctx.tunnel) + "/echo")
    return _tunnel_error(reply, 404, "tunnel_not_found")


def check_413(ctx: Context) -> str:
    # API Gateway refuses a body over 10 MB itself (no x-tunnel-error then).
    reply = ctx.http().request("POST", ctx.url("/sha"), b"z" * (10 * MB + 1), [("Content-Type", "text/plain")])
    return _tunnel_error(reply, 413, None)


def check_502(ctx: Context) -> str:
    # 5 MB of binary is ~6.7 MB in base64: over Lambda's result limit, and a POST cannot be redirected.
    reply = ctx.http().request("POST", ctx.url(f"/bytes?n={5 * MB}"), b"")
    return _tunnel_error(reply, 502, "response_too_large")


def check_504(ctx: Context) -> str:
    client = Client(timeout=FORWARD_WAIT_S + 30)
    try:
        reply = client.request("GET", ctx.url(f"/sleep?s={FORWARD_WAIT_S + 10}"))
    finally:
        client.close()
    detail = _tunnel_error(reply, 504, "timeout")
    expect(FORWARD_WAIT_S - 5 <= reply.seconds < FORWARD_WAIT_S + 5,
           f"504 after {reply.seconds:.1f} s, expected about {FORWARD_WAIT_S} s")
    return detail


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def check_latency(ctx: Context) -> str:
    client = ctx.http()
    expect_status(client.request("GET", ctx.url("/echo?warmup")), 200)  # connection set up, not counted
    times = []
    for i in range(ctx.latency_requests):
        reply = client.request("GET", ctx.url(f"/echo?i={i}"))
        expect_status(reply, 200)
        times.append(reply.seconds * 1000)
    p50, p90 = percentile(times, 50), percentile(times, 90)
    detail = f"p50 {p50:.0f} ms, p90 {p90:.0f} ms ({len(times)} sequential GETs, one connection)"
    if ctx.max_p90_ms is not None:
        expect(p90 <= ctx.max_p90_ms, f"{detail}: p90 over --max-p90-ms {ctx.max_p90_ms:g}")
    return detail


def check_reconnect(ctx: Context) -> str:
    before = ctx.tunnel
    started = time.monotonic()
    after = ctx.restart()
    took = time.monotonic() - started
    ctx.tunnel = after
    expect(after.tunnel_id == before.tunnel_id and after.public_url == before.public_url,
           f"the restarted agent got {after.public_url}, was {before.public_url}")
    seen = echoed(ctx.http().request("GET", ctx.url("/echo?after-restart")))
    expect(seen["target"] == "/echo?after-restart", f"the origin saw {seen['target']!r}")
    return f"ttf restarted: same URL, serving again after {took:.1f} s"


# ---------------------------------------------------------------------------- running

QUICK: tuple[tuple[str, Callable[[Context], str]], ...] = (
    ("GET", check_get),
    ("POST", check_post),
    ("1 MB binary up", check_binary_up),
    ("1 MB binary down", check_binary_down),
    ("5 MB text up", check_text_up),
    ("5 MB text down", check_text_down),
    ("8 MB binary down via S3", check_s3_download),
    (swap.SWAP, swap.check_swap),
    (swap.UPLOAD_CAP, swap.check_upload_cap),
    (swap.UPLOAD_TLS, swap.check_upload_tls),
    ("several Set-Cookie", check_cookies),
    ("UTF-8 header value", check_utf8_header),
    ("encoded path", check_encoded_path),
    ("404 unknown tunnel", check_404),
    ("413 body over 10 MB", check_413),
    ("502 answer too large", check_502),
)
SLOW = ("504 no answer in 25 s", check_504)
AFTER = (("latency", check_latency), (streaming.STREAMING, streaming.check_stream),
         ("reconnect keeps the URL", check_reconnect),
         (sockets.SOCKET, sockets.check_socket), (sockets.ORDER, sockets.check_order),
         (sockets.DOMAIN, sockets.check_domain),
         (throttle.THROTTLE, throttle.check_throttle_frame))  # last: it spends the $default budget
NAMES = tuple(name for name, _ in QUICK) + (SLOW[0],) + tuple(name for name, _ in AFTER)


def one(name: str, check: Callable[[Context], str], ctx: Context) -> Result:
    started = time.monotonic()
    try:
        detail, status = check(ctx), PASSED
    except NotCheckable as exc:
        detail, status = str(exc), NOT_CHECKABLE
    except CheckFailed as exc:
        detail, status = str(exc), FAILED
    except Exception as exc:  # noqa: BLE001 - any error is this check's failure, reported in one line
        detail, status = f"{type(exc).__name__}: {exc}".strip(), FAILED
    return Result(name, status, detail.replace("\n", " "), time.monotonic() - started)


def run(ctx: Context, progress: Callable[[str], None] = lambda name: None) -> list[Result]:
    """Every check, in NAMES order. The 504 check waits in its own thread while the quick ones
    run; the latency and reconnect checks come after it, when no request is in flight."""
    slow: list[Result] = []
    slow_ctx = Context(ctx.tunnel, ctx.restart)
    waiter = threading.Thread(target=lambda: slow.append(one(*SLOW, slow_ctx)), name="smoke-504", daemon=True)
    waiter.start()
    results = []
    for name, check in QUICK:
        progress(name)
        results.append(one(name, check, ctx))
    progress(SLOW[0])
    waiter.join()
    results += slow
    for name, check in AFTER:
        progress(name)
        results.append(one(name, check, ctx))
    if ctx.socket_idle:  # opt-in: 11 minutes
        progress(sockets.IDLE)
        results.append(one(sockets.IDLE, sockets.check_idle, ctx))
    if ctx.client is not None:
        ctx.client.close()
    return results
