"""`make smoke`'s caller-WebSocket checks (issue 24 item 7; shared/README.md "Caller WebSockets").

A caller's socket is opened on the deployment's caller WebSocket API in the query form
(`<caller_ws_url>?tunnel=<id>`), through `ttf`, to the smoke origin's `/ws` (served here, stdlib
only, by :func:`serve`: the app speaks first with :data:`GREETING`, echoes every text message
but :data:`TARGET_ASK`, answers pings, and notes each caller close code, which `GET /ws-closes`
returns as JSON).

* ``caller WebSocket`` (pass/fail): the socket opens, the subprotocol :data:`SUBPROTOCOL` is
  negotiated with the app, the app's greeting and every text of :data:`TEXTS` (UTF-8 beyond the
  BMP, NUL) come back byte-exact, and a caller close code reaches the app within 5 s.
* ``caller WebSocket order`` (an observation): :data:`BURST` numbered frames sent at once (under a
  tunnel's default caller message budget: more would close the socket); the
  report says how many came back out of place or not at all. Each caller frame is numbered in the
  order the FIFO queue holds it, so this measures whether API Gateway's SendMessage calls for one
  connection keep the frames' order: AWS documents none (emulator/README.md, "order of one
  connection's SendMessage calls"). The app -> caller side is stop-and-wait, so the echoes keep
  the app's order. It fails only when the socket itself breaks.
* ``caller WebSocket through the domain`` (pass/fail, only with CloudFront in front of the tunnels'
  hostnames: ``Context.cloudfront``, terraform output ``cloudfront`` or ``--cloudfront``): the
  hostname form ``wss://<tunnel host>`` + :data:`DEEP_PATH` ``?`` :data:`DEEP_QUERY` (through the
  viewer-request function, terraform/modules/cloudfront/viewer_request.js), subprotocol, greeting
  and a UTF-8 echo; then :data:`TARGET_ASK`, which the origin answers with the target its upgrade
  came with. :func:`target_verdict` fails on what must hold (the path byte for byte, each key's
  decoded values in order, no key added) naming the first bytes that differ, and reports what
  ``request.querystring`` may change (a repeated key regrouped, ``k=`` as ``k``, the encoding).
* ``caller WebSocket idle with pings`` (opt-in, ``--socket-idle``: it takes 11 minutes): only
  WebSocket pings for :data:`IDLE_S` seconds, then one message; the report says whether the
  socket outlived API Gateway's 10-minute idle timeout, which pings may or may not reset (no
  source found).

Not observed here: whether PostToConnection of non-UTF-8 data reaches a caller as a binary frame.
Nothing in the tunnel posts such data (ttf ends a socket whose app sends a binary message, 1003),
so it would take a direct PostToConnection with the deployment's AWS credentials.

Every check is "not checkable" (it fails nothing), with the reason, when the deployment has no
caller WebSocket API (terraform output ``caller_ws_url``, deployed before issue 24) or the agent
has no ``ws`` capability (the handshake's 501).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import struct
import time
from typing import Any, BinaryIO
from urllib.parse import quote, unquote_to_bytes, urlsplit, urlunsplit

import aiohttp

from scripts.smoke.context import Context
from scripts.smoke.verdict import CheckFailed, NotCheckable, expect

SOCKET = "caller WebSocket"
ORDER = "caller WebSocket order"
IDLE = "caller WebSocket idle with pings"
DOMAIN = "caller WebSocket through the domain"
PATH = "/ws"
CLOSES_PATH = "/ws-closes"
SUBPROTOCOL = "smoke.v1"
OFFERED = ("smoke.v0-unknown", SUBPROTOCOL)
GREETING = "smoke origin speaks first: café ☕ 𝄞 \x00 end"
TEXTS = ("plain ASCII", "UTF-8 beyond the BMP: café ☕ 𝄞 ✓", "NUL \x00 in the middle \x00", "x" * 20_000)
BURST = 80  # under a tunnel's default caller message burst (100, terraform/fairness.tf): more closes the socket
CLOSE_WITHIN_S = 5.0
RECEIVE_S = 30.0  # one answer's wait: a cold caller_message Lambda included
IDLE_S = 660.0  # past API Gateway's 10-minute idle timeout
PING_EVERY_S = 30.0
NO_API = ("this deployment has no caller WebSocket API (terraform output caller_ws_url is missing: deployed "
          "before issue 24); pass --caller-ws-url to check one")
NO_WS = "the agent has no `ws` capability: the caller's handshake got 501"
OPT_IN = "opt-in: pass --socket-idle (it takes 11 minutes)"
# The hostname form through CloudFront: a path under /ws, a repeated key split by another, UTF-8
# percent-encoded, an empty value (what the viewer-request function may regroup or shorten)
DEEP_PATH = "/ws/deep/path"
DEEP_QUERY = "a=1&b=caf%C3%A9&a=2&empty="
DOMAIN_TEXT = "through the domain: café ☕ 𝄞 \x00 end"
TARGET_ASK = "smoke origin: which request target did you see?"  # the origin answers it, not echoes it
NO_CLOUDFRONT = ("this deployment has no CloudFront in front of the tunnels' hostnames (terraform output cloudfront "
                 "is null: no domain_name, or public_edge is not function_url), so callers use the query form only; "
                 "pass --cloudfront to try wss://<tunnel host>/... anyway")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 1024 * 1024

# ---------------------------------------------------------------------------- the origin's side


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324 - RFC 6455


def read_frame(rfile: BinaryIO) -> tuple[bool, int, bytes] | None:
    """(fin, opcode, unmasked payload) of the next frame; None at EOF or a frame over MAX_FRAME."""
    head = rfile.read(2)
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", rfile.read(8))[0]
    if length > MAX_FRAME:
        return None
    mask = rfile.read(4) if head[1] & 0x80 else b""
    data = rfile.read(length)
    if len(data) < length:
        return None
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bool(head[0] & 0x80), head[0] & 0x0F, data


def frame(opcode: int, data: bytes) -> bytes:
    """One unmasked, unfragmented server frame."""
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + data


def serve(handler: Any, closes: list[int]) -> None:
    """The origin's `/ws` on an http.server handler: handshake, greeting, echo, caller close codes
    appended to ``closes``. The one text :data:`TARGET_ASK` is answered, not echoed, with the request
    target the upgrade came with: a JSON string of one character per byte (:func:`seen_target`)."""
    key = handler.headers.get("Sec-WebSocket-Key")
    if not key or "websocket" not in handler.headers.get("Upgrade", "").lower():
        body = b"a WebSocket handshake is expected here"
        handler.send_response(400)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return
    offered = [p.strip() for p in handler.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    handler.close_connection = True
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    if SUBPROTOCOL in offered:
        handler.send_header("Sec-WebSocket-Protocol", SUBPROTOCOL)
    handler.end_headers()
    write = handler.wfile.write
    write(frame(0x1, GREETING.encode()))
    handler.wfile.flush()
    target = json.dumps(handler.path).encode()  # the raw target (http.server: one char a byte), JSON-quoted
    message, first = b"", 0
    while (got := read_frame(handler.rfile)) is not None:
        fin, opcode, data = got
        if opcode == 0x8:
            closes.append(struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005)
            write(frame(0x8, data[:2]))
            break
        if opcode == 0x9:
            write(frame(0xA, data))
        elif opcode in (0x0, 0x1, 0x2):
            message, first = message + data, first or opcode
            if fin:
                write(frame(first, target if first == 0x1 and message == TARGET_ASK.encode() else message))
                message, first = b"", 0
        handler.wfile.flush()


# ---------------------------------------------------------------------------- the caller's side


def caller_url(ctx: Context) -> str:
    if not ctx.caller_ws_url:
        raise NotCheckable(NO_API)
    base = ctx.caller_ws_url.rstrip("/")
    return f"{base}{'&' if '?' in base else '?'}tunnel={quote(ctx.tunnel.tunnel_id)}"


async def open_socket(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    try:
        return await session.ws_connect(url, protocols=OFFERED, **kwargs)
    except aiohttp.WSServerHandshakeError as exc:
        error = (exc.headers or {}).get("x-tunnel-error", "")
        if exc.status == 501:
            raise NotCheckable(f"{NO_WS}{f' ({error})' if error else ''}") from None
        raise CheckFailed(f"the caller's handshake got {exc.status}{f' ({error})' if error else ''}") from None


async def receive_text(ws: aiohttp.ClientWebSocketResponse, timeout: float = RECEIVE_S) -> str:
    try:
        msg = await ws.receive(timeout=timeout)
    except asyncio.TimeoutError:
        raise CheckFailed(f"no message within {timeout:g} s") from None
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise CheckFailed(f"expected a text message, got {msg.type.name} {str(msg.data)[:60]!r} "
                          f"(close code {ws.close_code})")
    return str(msg.data)


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))


def seen_closes(ctx: Context) -> list[int]:
    reply = ctx.http().request("GET", ctx.url(CLOSES_PATH))
    expect(reply.status == 200, f"GET {CLOSES_PATH} answered {reply.status}")
    return [int(c) for c in json.loads(reply.body)]


async def _socket(ctx: Context) -> str:
    code = 4000 + secrets.randbelow(1000)
    async with _session() as session:
        ws = await open_socket(session, caller_url(ctx))
        try:
            expect(ws.protocol == SUBPROTOCOL, f"subprotocol {ws.protocol!r}, expected {SUBPROTOCOL!r} (offered {OFFERED})")
            greeting = await receive_text(ws)
            expect(greeting == GREETING, f"the app's greeting arrived as {greeting[:60]!r}")
            for text in TEXTS:
                await ws.send_str(text)
                echoed = await receive_text(ws)
                expect(echoed == text, f"sent {text[:40]!r} ({len(text)} chars), got back {echoed[:40]!r} "
                                       f"({len(echoed)} chars)")
        finally:
            await ws.close(code=code)
    deadline = time.monotonic() + CLOSE_WITHIN_S
    while code not in (closes := await asyncio.to_thread(seen_closes, ctx)):
        if time.monotonic() > deadline:
            raise CheckFailed(f"close code {code} did not reach the app within {CLOSE_WITHIN_S:g} s (it saw {closes[-5:]})")
        await asyncio.sleep(0.2)
    return (f"subprotocol {SUBPROTOCOL}; app spoke first; {len(TEXTS)} texts echoed byte-exact (UTF-8, NUL, "
            f"{len(TEXTS[-1]) // 1000} KB); close code {code} reached the app")


def out_of_place(received: list[str], sent: list[str]) -> tuple[int, int]:
    """(received at another position than sent, never received)."""
    misplaced = sum(1 for i, text in enumerate(received) if i >= len(sent) or sent[i] != text)
    return misplaced, len(set(sent) - set(received))


async def _order(ctx: Context) -> str:
    sent = [f"burst {i:04d}" for i in range(BURST)]
    received: list[str] = []
    async with _session() as session:
        ws = await open_socket(session, caller_url(ctx))
        try:
            await receive_text(ws)  # the greeting
            started = time.monotonic()
            for text in sent:
                await ws.send_str(text)
            deadline = started + RECEIVE_S + BURST * 0.25
            while len(received) < BURST and time.monotonic() < deadline:
                try:
                    msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise CheckFailed(f"the socket ended ({msg.type.name}, close code {ws.close_code}) after "
                                      f"{len(received)} of {BURST} echoes (is the deployment's "
                                      f"tunnel_caller_message_burst_limit under {BURST}?)")
                received.append(str(msg.data))
            took = time.monotonic() - started
        finally:
            await ws.close()
    misplaced, missing = out_of_place(received, sent)
    return (f"observed: {BURST} frames sent at once, {misplaced} came back out of place, {missing} never "
            f"({len(received)} echoes in {took:.1f} s)")


async def _idle(ctx: Context) -> str:
    async with _session() as session:
        ws = await open_socket(session, caller_url(ctx), autoping=False)
        opened = time.monotonic()
        pings = pongs = 0
        try:
            await receive_text(ws)  # the greeting
            while (left := opened + IDLE_S - time.monotonic()) > 0:
                await ws.ping(b"smoke")
                pings += 1
                until = time.monotonic() + min(PING_EVERY_S, left)
                while (wait := until - time.monotonic()) > 0:
                    try:
                        msg = await ws.receive(timeout=wait)
                    except asyncio.TimeoutError:
                        break
                    if msg.type == aiohttp.WSMsgType.PONG:
                        pongs += 1
                    elif msg.type == aiohttp.WSMsgType.PING:
                        await ws.pong(msg.data)
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                        return (f"observed: closed (code {ws.close_code}) after {time.monotonic() - opened:.0f} s "
                                f"of pings only ({pings} pings, {pongs} pongs): pings do not keep a socket open")
            await ws.send_str("after the idle time")
            try:
                answer = await receive_text(ws)
            except CheckFailed as exc:
                return (f"observed: no answer after {IDLE_S:g} s of pings only ({pings} pings, {pongs} pongs; {exc}): "
                        "pings do not keep a socket open")
            return (f"observed: open after {IDLE_S:g} s of pings only ({pings} pings, {pongs} pongs), "
                    f"{'echo intact' if answer == 'after the idle time' else f'but echoed {answer[:40]!r}'}: "
                    "pings keep a socket open")
        finally:
            await ws.close()


def hostname_url(ctx: Context) -> str:
    """``wss://<tunnel host>/ws/deep/path?<DEEP_QUERY>``: the tunnel's public URL with the ws scheme."""
    if not ctx.cloudfront:
        raise NotCheckable(NO_CLOUDFRONT)
    parts = urlsplit(ctx.tunnel.public_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme)
    if scheme is None:
        raise CheckFailed(f"the tunnel's public URL {ctx.tunnel.public_url!r} is not http(s)")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + DEEP_PATH, DEEP_QUERY, ""))


def seen_target(answer: str) -> bytes:
    """The raw request target the origin reports (serve's answer to TARGET_ASK)."""
    try:
        target = json.loads(answer)
        if not isinstance(target, str):
            raise ValueError(target)
        return target.encode("latin-1")
    except (ValueError, UnicodeEncodeError):
        raise CheckFailed(f"the app's answer to {TARGET_ASK!r} is not the target it saw: {answer[:60]!r}") from None


def query_fields(raw: bytes) -> list[tuple[bytes, bytes | None]]:
    """(name, value) of each ``&``-separated field, percent-decoded; None for a field without ``=``."""
    fields: list[tuple[bytes, bytes | None]] = []
    for field in raw.split(b"&"):
        if field:
            name, eq, value = field.partition(b"=")
            fields.append((unquote_to_bytes(name), unquote_to_bytes(value) if eq else None))
    return fields


def raw_fields(raw: bytes) -> list[bytes]:
    """The fields as written, ``k=`` as ``k``, sorted: what is left to differ once order and ``=`` are set aside."""
    return sorted(field.removesuffix(b"=") for field in raw.split(b"&") if field)


def bytes_differ(got: bytes, sent: bytes) -> str:
    """Where ``got`` first differs from ``sent``, and the bytes there."""
    at = next((i for i, (a, b) in enumerate(zip(got, sent, strict=False)) if a != b), min(len(got), len(sent)))
    return f"{got!r}, sent {sent!r}: from byte {at}, {got[at:at + 8]!r} where {sent[at:at + 8]!r} was sent"


def target_verdict(seen: bytes, path: str = DEEP_PATH, query: str = DEEP_QUERY) -> tuple[list[str], list[str]]:
    """(what must hold and does not, what came through otherwise than sent but may) for the request
    target the app saw. Must hold: the path byte for byte; each key's decoded values, in order; no
    key the caller did not send. May differ (CloudFront's ``request.querystring``, README "Not yet
    verified on AWS"): the keys' order (a repeated key regrouped), ``k=`` as ``k``, the encoding."""
    broken: list[str] = []
    seen_path, _, seen_query = seen.partition(b"?")
    if seen_path != path.encode():
        broken.append(f"path {bytes_differ(seen_path, path.encode())}")
    sent, got = query_fields(query.encode()), query_fields(seen_query)
    names = list(dict.fromkeys(name for name, _ in sent))
    for name in names:
        want = [value or b"" for n, value in sent if n == name]
        have = [value or b"" for n, value in got if n == name]
        if len(have) != len(want):
            broken.append(f"key {name!r}: values {have}, sent {want}")
        broken += [f"key {name!r} value {i + 1}: {bytes_differ(h, w)}"
                   for i, (h, w) in enumerate(zip(have, want, strict=False)) if h != w]
    extra = [name for name in dict.fromkeys(n for n, _ in got) if name not in names]
    if extra:
        broken.append(f"keys the caller never sent: {extra}")
    differs: list[str] = []
    if not broken and seen_query != query.encode():
        if [n for n, _ in got] != [n for n, _ in sent]:
            differs.append(f"keys in another order: {b'&'.join(n for n, _ in got)!r}, sent {b'&'.join(n for n, _ in sent)!r}")
        bare = [n for n in names if any(v is None for m, v in got if m == n)
                and not any(v is None for m, v in sent if m == n)]
        if bare:
            differs.append(f"without '=': {bare}")
        if raw_fields(seen_query) != raw_fields(query.encode()):
            differs.append("encoded otherwise, same decoded bytes")
    return broken, differs


async def _domain(ctx: Context) -> str:
    url = hostname_url(ctx)
    async with _session() as session:
        ws = await open_socket(session, url)
        try:
            expect(ws.protocol == SUBPROTOCOL, f"subprotocol {ws.protocol!r}, expected {SUBPROTOCOL!r} (offered {OFFERED})")
            greeting = await receive_text(ws)
            expect(greeting == GREETING, f"the app's greeting arrived as {greeting[:60]!r}")
            await ws.send_str(DOMAIN_TEXT)
            echoed = await receive_text(ws)
            expect(echoed == DOMAIN_TEXT, f"sent {DOMAIN_TEXT!r}, got back {echoed[:60]!r}")
            await ws.send_str(TARGET_ASK)
            seen = seen_target(await receive_text(ws))
        finally:
            await ws.close()
    broken, differs = target_verdict(seen)
    shown = seen.decode("utf-8", "backslashreplace")
    expect(not broken, f"the app saw {shown}: {'; '.join(broken)}")
    return (f"subprotocol {SUBPROTOCOL}, greeting and UTF-8 echo byte-exact; the app saw {shown} "
            f"({'; '.join(differs) if differs else 'as sent'})")


def check_socket(ctx: Context) -> str:
    return asyncio.run(_socket(ctx))


def check_order(ctx: Context) -> str:
    return asyncio.run(_order(ctx))


def check_domain(ctx: Context) -> str:
    return asyncio.run(_domain(ctx))


def check_idle(ctx: Context) -> str:
    if not ctx.socket_idle:
        raise NotCheckable(OPT_IN)
    return asyncio.run(_idle(ctx))
