"""A small HTTP client for the battery (stdlib http.client): raw request targets, every header
kept with its repeats, no redirects followed, one kept-alive connection per client.

Hosts under ``localhost`` (the local stack's ``<id>.localhost:<port>`` URLs, RFC 6761) are
dialled on 127.0.0.1 with the public name as ``Host``; everything else resolves as usual.
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    seconds: float

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def split(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host to dial, port, Host header, request target) of an absolute URL, target raw."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    dial = "127.0.0.1" if parts.hostname == "localhost" or parts.hostname.endswith(".localhost") else parts.hostname
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, dial, port, parts.netloc, target


class Client:
    """Not thread-safe: one per thread."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._key: tuple[str, str, int] | None = None
        self._tls = ssl.create_default_context()

    def _connection(self, scheme: str, dial: str, port: int) -> tuple[http.client.HTTPConnection, bool]:
        key = (scheme, dial, port)
        if self._conn is not None and self._key == key:
            return self._conn, True
        self.close()
        if scheme == "https":
            self._conn = http.client.HTTPSConnection(dial, port, timeout=self.timeout, context=self._tls)
        else:
            self._conn = http.client.HTTPConnection(dial, port, timeout=self.timeout)
        self._key = key
        return self._conn, False

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: list[tuple[str, str]] | None = None) -> Reply:
        scheme, dial, port, host, target = split(url)
        all_headers = [("Host", host), ("Accept-Encoding", "identity")] + list(headers or [])
        for attempt in (1, 2):
            conn, reused = self._connection(scheme, dial, port)
            started = time.monotonic()
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in all_headers:
                    conn.putheader(name, value)
                if body is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body or b"")))
                try:
                    conn.endheaders(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the server stopped reading (a 413 for a big body): its answer may be there
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if reused and attempt == 1:  # a kept-alive connection the server had closed: once more
                    continue
                raise
            except BaseException:
                self.close()
                raise
            seconds = time.monotonic() - started
            if response.will_close:
                self.close()
            return Reply(response.status, tuple(response.getheaders()), data, seconds)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._key = None
