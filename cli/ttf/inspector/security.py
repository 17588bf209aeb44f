"""Who may talk to the inspector, and the headers every answer carries.

Captured requests come from the internet and hold secrets (Authorization, cookies):
- bound to loopback, a request whose Host is not the inspector's own address is refused
  (DNS rebinding); bound to any other address, every request needs the token ttf prints
  (`?token=` once on the page, which sets a SameSite=Strict cookie, or `Authorization: Bearer`);
- anything but GET/HEAD from another origin is refused (a web page cannot trigger replays),
  and so is a request the browser marks as cross-site (Sec-Fetch-Site);
- no page may frame the inspector (CSP frame-ancestors 'none' + X-Frame-Options: DENY);
- the page runs only its own script files: no inline script, no other origin.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Awaitable, Callable

from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COOKIE = "ttf_inspector_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class Guard:
    """The checks above, as an aiohttp middleware; `bind()` once the port is known."""

    def __init__(self) -> None:
        self.allowed_hosts: frozenset[str] | None = None
        self.token: str | None = None

    def bind(self, host: str, port: int) -> None:
        if is_loopback(host):
            names = {host, "localhost", "127.0.0.1", "::1"}
            self.allowed_hosts = frozenset(host_port(name, port) for name in names)
            self.token = None
        else:
            self.allowed_hosts = None
            self.token = secrets.token_urlsafe(24)

    def _has_token(self, request: web.Request) -> bool:
        assert self.token is not None
        offered = request.cookies.get(COOKIE, "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            offered = auth.removeprefix("Bearer ").strip()
        return hmac.compare_digest(offered.encode(), self.token.encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.allowed_hosts is not None and request.host.lower() not in self.allowed_hosts:
            return error(403, "this Host is not the inspector's address")
        if self.token is not None and not self._has_token(request):
            given = request.query.get("token", "")
            if request.path == "/" and given and hmac.compare_digest(given.encode(), self.token.encode()):
                page = web.Response(status=303, headers={"Location": "/"})  # the token leaves the address bar
                page.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
                return page
            return error(401, "this inspector needs its token: open the URL ttf printed (…/?token=…), "
                              "or send Authorization: Bearer <token>")
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("Origin")
            if origin is not None and origin.lower() != f"http://{request.host.lower()}":
                return error(403, "requests from another origin are refused")
            if request.headers.get("Sec-Fetch-Site", "same-origin") not in {"same-origin", "none"}:
                return error(403, "cross-site requests are refused")
        return await handler(request)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, errors and the event stream included."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers.setdefault("Cache-Control", "no-store")
