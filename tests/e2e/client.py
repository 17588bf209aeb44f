"""A real HTTP client aimed at a tunnel's public URL (subdomain form, resolved to 127.0.0.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Any  # CIMultiDictProxy: repeated headers kept
    body: bytes
    seconds: float


def target(public_url: str, path: str) -> tuple[str, str]:
    """(URL on 127.0.0.1, Host header): *.localhost does not resolve everywhere."""
    parts = urlsplit(public_url)
    return f"http://127.0.0.1:{parts.port}{parts.path.rstrip('/')}{path}", parts.netloc


async def request(session: aiohttp.ClientSession, method: str, public_url: str, path: str = "/",
                  headers: Any = None, **kwargs: Any) -> Reply:
    import time

    url, host = target(public_url, path)
    all_headers = [("Host", host)] + (list(headers.items()) if isinstance(headers, dict) else list(headers or []))
    started = time.monotonic()
    async with session.request(method, aiohttp.client.URL(url, encoded=True), headers=all_headers,
                               allow_redirects=False, **kwargs) as resp:
        body = await resp.read()
        return Reply(resp.status, resp.headers, body, time.monotonic() - started)
