"""The local service `make smoke` tunnels to (stdlib only, 127.0.0.1, ephemeral port).

    python -m scripts.smoke.origin [--port 0]    # prints {"event": "listening", "port": N}

Every body is deterministic, so the caller checks it byte for byte:
  *    /echo...      text/plain JSON: method, the raw request target, body size and sha256
                     (text/plain, so path-mode rewriting never touches it)
  POST /sha          sha256 hex of the request body
  *    /bytes?n=N    N bytes of pattern(N) (application/octet-stream)
  GET  /text?n=N     N bytes of text_pattern(N) (text/plain; charset=utf-8)
  GET  /cookies      three Set-Cookie headers (COOKIES)
  GET  /utf8-header  X-Smoke-Utf8: UTF8_VALUE, written as its UTF-8 bytes
  GET  /sleep?s=S    "slept" after S seconds
  GET  /sse?n=N&ms=M N server-sent events M ms apart (chunked, one chunk each), each `data:
                     {"i": i, "t": <time.time() when written>}` (scripts/smoke/streaming.py)
  GET  /ws           a WebSocket (so is any other path asked to upgrade: a caller API passes no path):
                     greets, echoes, notes the caller's close code, answers sockets.TARGET_ASK with
                     the request target of its upgrade (scripts/smoke/sockets.py)
  GET  /ws-closes    the close codes /ws saw, as a JSON list
It exits when its parent process goes away, so a killed `make smoke` leaves nothing behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from scripts.smoke import sockets

MAX_BODY = 16 * 1024 * 1024
COOKIES = ("smoke_a=1; Path=/", "smoke_b=2; HttpOnly", "smoke_c=3; Max-Age=600; SameSite=Lax")
UTF8_VALUE = "café ☕"  # a response header value that is not ASCII (issue 30 item 16)
SOCKET_CLOSES: list[int] = []  # the close codes /ws saw


def pattern(n: int) -> bytes:
    """n deterministic bytes, every byte value present."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


def text_pattern(n: int) -> bytes:
    """n bytes of ASCII text in numbered lines."""
    line = "{:08d} the quick brown fox jumps over the lazy dog 0123456789 ~\n"
    count = n // len(line.format(0)) + 1
    return "".join(line.format(i) for i in range(count)).encode()[:n]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "smoke-origin"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def _send(self, status: int, body: bytes, content_type: str, extra: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        path = parts.path
        if path == "/echo" or path.startswith("/echo/"):
            seen = {"method": self.command, "target": self.path, "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "text": body.decode("utf-8", "replace") if len(body) <= 1024 else None}
            self._send(200, json.dumps(seen).encode(), "text/plain; charset=utf-8")
        elif path == "/sha":
            self._send(200, hashlib.sha256(body).hexdigest().encode(), "text/plain")
        elif path == "/bytes":
            self._send(200, pattern(int(query.get("n", ["0"])[0])), "application/octet-stream")
        elif path == "/text":
            self._send(200, text_pattern(int(query.get("n", ["0"])[0])), "text/plain; charset=utf-8")
        elif path == "/cookies":
            self._send(200, b"cookies", "text/plain", [("Set-Cookie", c) for c in COOKIES])
        elif path == "/utf8-header":  # http.server writes header values as Latin-1: these are the UTF-8 bytes
            self._send(200, b"utf8", "text/plain", [("X-Smoke-Utf8", UTF8_VALUE.encode("utf-8").decode("latin-1"))])
        elif path == "/sse":
            self._sse(int(query.get("n", ["20"])[0]), int(query.get("ms", ["200"])[0]))
        elif path == sockets.PATH or self.headers.get("Upgrade", "").lower() == "websocket":
            sockets.serve(self, SOCKET_CLOSES)  # any path: a caller API's $connect passes none (the app sees /)
        elif path == sockets.CLOSES_PATH:
            self._send(200, json.dumps(SOCKET_CLOSES).encode(), "application/json")
        elif path == "/sleep":
            time.sleep(float(query.get("s", ["1"])[0]))
            self._send(200, b"slept", "text/plain")
        else:
            self._send(404, b"no such route on the smoke origin", "text/plain")

    def _sse(self, n: int, ms: int) -> None:
        if not (1 <= n <= 1000 and 0 <= ms <= 60_000):
            self._send(400, b"n must be 1..1000, ms 0..60000", "text/plain")
            return
        self.send_response(200)
        for name, value in (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                            ("Transfer-Encoding", "chunked")):
            self.send_header(name, value)
        self.end_headers()
        started = time.monotonic()
        for i in range(n):
            time.sleep(max(0.0, started + i * ms / 1000 - time.monotonic()))  # on a schedule, as a live feed
            event = f"id: {i}\ndata: {json.dumps({'i': i, 't': time.time()})}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


def watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.smoke.origin", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
