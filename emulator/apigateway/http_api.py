"""HTTP API (payload format 2.0) front door.

Limits (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html#http-api-quotas):
request body > 10 MB -> 413; request line + headers > 10,240 bytes -> 431 (AWS's status for it
was not found: our choice); Lambda event > 6 MB -> 413; Lambda result > 6 MB -> 502;
integration not answering within 30 s -> 503 ``{"message":"Service Unavailable"}`` (what HTTP
APIs answer: https://github.com/serverless/serverless/issues/11222,
https://github.com/anomalyco/sst/issues/2232); a handler error or a malformed result -> 500
``{"message":"Internal Server Error"}``; no matching route -> 404 ``{"message":"Not Found"}``;
a path the API refuses to decode (see :func:`emulator.apigateway.events.decode_raw_path`) -> 400.

Bodies are passed as received, whatever their Content-Encoding (aiohttp's ``auto_decompress``
is off): API Gateway does not decompress requests. Answers carry what the captures show API
Gateway adds (``apigw-requestid``, ``date``, its own ``content-length``) and no ``server``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.apigateway import events
from emulator.apigateway.throttle import Throttler
from emulator.lambda_runtime.runtime import LambdaService, PayloadTooLarge
from emulator.stats import Stats
from emulator.apigateway.wiring import ApiWiring, Route
from httptunnel.limits import (HTTP_INTEGRATION_TIMEOUT_S, HTTP_PAYLOAD_MAX,
                               HTTP_REQUEST_LINE_AND_HEADERS_MAX, LAMBDA_PAYLOAD_MAX)

LOG = logging.getLogger("emulator.http")
READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class HttpSettings:
    account_id: str = "123456789012"
    integration_timeout_s: float = HTTP_INTEGRATION_TIMEOUT_S
    payload_max: int = HTTP_PAYLOAD_MAX
    headers_max: int = HTTP_REQUEST_LINE_AND_HEADERS_MAX
    front_door_delay_s: float = 0.0  # latency profile (http_api_ms)


def message_response(status: int, message: str, request_id: str) -> web.Response:
    return GatewayResponse(status=status, text=json.dumps({"message": message}, separators=(",", ":")),
                           content_type="application/json",
                           headers={"apigw-requestid": request_id}, keep_server=False)


def match_route(api: ApiWiring, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    """API Gateway route selection: most specific "METHOD /path", then ANY, then $default."""
    candidates: list[tuple[int, Route, dict[str, str]]] = []
    for route in api.routes:
        if route.route_key == "$default" or " " not in route.route_key:
            continue
        route_method, template = route.route_key.split(" ", 1)
        if route_method not in (method, "ANY"):
            continue
        params = match_template(template, path)
        if params is None:
            continue
        greedy = template.endswith("+}")
        score = (0 if greedy else 2) + (1 if route_method == method else 0) + template.count("/") * 4
        candidates.append((score, route, params))
    if candidates:
        candidates.sort(key=lambda c: c[0], reverse=True)
        return candidates[0][1], candidates[0][2]
    return api.route("$default"), {}


def match_template(template: str, path: str) -> dict[str, str] | None:
    pattern, names = compile_template(template)
    found = pattern.fullmatch(path)
    if found is None:
        return None
    return dict(zip(names, found.groups(), strict=True))


@functools.lru_cache(maxsize=1024)
def compile_template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """Route template -> (regex, parameter names); cached, as routes are matched per request."""
    pattern = ""
    names: list[str] = []
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            greedy = name.endswith("+")
            names.append(name.rstrip("+"))
            pattern += "(.+)" if greedy else "([^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(pattern), tuple(names)


def head_size(request: web.BaseRequest) -> int:
    line = len(request.method) + 1 + len(request.raw_path) + len(" HTTP/1.1")
    return line + sum(len(name) + 4 + len(value) for name, value in request.raw_headers)


class HttpApi:
    def __init__(self, api: ApiWiring | None, lambdas: LambdaService, stats: Stats,
                 settings: HttpSettings = HttpSettings()) -> None:
        self.api = api
        self.lambdas = lambdas
        self.stats = stats
        self.settings = settings
        self.throttler = Throttler(enabled=False)  # the Gateway's, shared with the WebSocket API

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.payload_max + 1)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def read_body(self, request: web.Request) -> bytes | None:
        """The whole body, or None when it is over the payload limit."""
        limit = self.settings.payload_max
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = events.aws_id()
        self.stats.add("http_requests")
        if self.settings.front_door_delay_s:
            await asyncio.sleep(self.settings.front_door_delay_s)
        if head_size(request) > self.settings.headers_max:
            return message_response(431, "Request Header Fields Too Large", request_id)
        if self.api is None:
            return message_response(503, "Service Unavailable (stack starting)", request_id)
        body = await self.read_body(request)
        if body is None:
            return message_response(413, "Request Entity Too Large", request_id)
        wire_path, _, raw_query = request.raw_path.partition("?")
        try:
            raw_path = events.decode_raw_path(wire_path)
        except events.BadPath:
            return message_response(400, "Bad Request", request_id)
        route, params = match_route(self.api, request.method, self.strip_stage(raw_path))
        if route is None:
            return message_response(404, "Not Found", request_id)
        if not self.throttler.allow(self.api.api_id, route.route_key):
            return message_response(429, "Too Many Requests", request_id)
        source_ip = request.remote or "127.0.0.1"
        api = events.ApiContext(self.settings.account_id, self.api.api_id, self.api.stage,
                                request.host)
        event = events.http_event(api=api, method=request.method, raw_path=raw_path,
                                  raw_query=raw_query, headers=decode_headers(request.raw_headers),
                                  body=body, source_ip=source_ip, route_key=route.route_key,
                                  path_parameters=params, request_id=request_id,
                                  port=local_port(request), proto="http")
        return await self.integrate(route, event, request_id, request.method)

    def strip_stage(self, path: str) -> str:
        stage = self.api.stage
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            return path[len(stage) + 1:]
        return path

    async def integrate(self, route: Route, event: dict, request_id: str, method: str) -> web.StreamResponse:
        try:
            invocation = await asyncio.wait_for(self.lambdas.invoke(route.function, event),
                                                self.settings.integration_timeout_s)
        except PayloadTooLarge:
            return message_response(413, "Request Entity Too Large", request_id)
        except asyncio.TimeoutError:
            return message_response(503, "Service Unavailable", request_id)
        if not invocation.ok:
            log_event("lambda_error", request_id, route.function, invocation.error)
            return message_response(500, "Internal Server Error", request_id)
        assert invocation.payload is not None
        if len(invocation.payload.encode("utf-8")) > LAMBDA_PAYLOAD_MAX:
            log_event("lambda_result_too_large", request_id, route.function, None)
            return message_response(502, "Bad Gateway", request_id)
        try:
            result = events.http_result(invocation.result())
        except events.BadResult as exc:
            log_event("bad_lambda_result", request_id, route.function, {"errorMessage": str(exc)})
            return message_response(500, "Internal Server Error", request_id)
        return build_response(result, request_id, method)


def local_port(request: web.BaseRequest) -> int:
    """The port the caller connected to (X-Forwarded-Port): 443 on AWS, the emulator's here."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else 0


def decode_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_headers(raw_headers: tuple[tuple[bytes, bytes], ...]) -> list[tuple[str, str]]:
    """Headers as sent, in order, repeated ones kept (UTF-8, else Latin-1)."""
    return [(decode_text(name), decode_text(value)) for name, value in raw_headers]


def log_event(name: str, request_id: str, function: str, error: dict | None) -> None:
    record = {"event": name, "request_id": request_id, "function": function}
    if error:
        record["error_type"] = error.get("errorType")
        record["error"] = error.get("errorMessage")
    LOG.warning(json.dumps(record))


class GatewayResponse(web.Response):
    """aiohttp adds ``Server``; API Gateway's answers have none (captures in events.http_result)."""

    def __init__(self, *, keep_server: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keep_server = keep_server

    async def _prepare_headers(self) -> None:  # aiohttp is pinned (pyproject): tested in tests/emulator
        await super()._prepare_headers()
        if not self._keep_server:
            self.headers.popall("Server", None)


def build_response(result: events.HttpResult, request_id: str, method: str = "GET") -> web.Response:
    """The caller's answer. API Gateway sets its own Content-Length (the Lambda's is dropped),
    except for HEAD, whose empty body cannot say the length: there the Lambda's Content-Length
    is kept (no source found for what AWS does; see the fidelity table)."""
    keep_server = any(name.lower() == "server" for name, _ in result.headers)
    response = GatewayResponse(status=result.status, body=result.body, keep_server=keep_server)
    response.headers.popall("Content-Type", None)
    for name, value in result.headers:
        lower = name.lower()
        if lower == "content-length" and method == "HEAD" and not result.body:
            response.headers[name] = value
            continue
        if lower in ("content-length", "transfer-encoding", "connection"):
            continue
        response.headers.add(name, value)
    response.headers["apigw-requestid"] = request_id
    return response


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start an app on host:port (0 = ephemeral); returns the runner and the bound port.
    Request bodies are never decompressed (``auto_decompress=False``): API Gateway passes bytes."""
    runner = web.AppRunner(app, access_log=None, max_line_size=65536, max_field_size=65536,
                           max_headers=1024, shutdown_timeout=1.0, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, bound
