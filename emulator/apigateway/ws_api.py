"""WebSocket API ($connect / $default / $disconnect) and the @connections management API.

Both on one port, as in AWS: ``ws://127.0.0.1:<port>/<stage>`` for agents, and
``POST|GET|DELETE [/<stage>]/@connections/{id}`` for the Lambdas (botocore's
apigatewaymanagementapi client). Errors carry ``x-amzn-ErrorType`` so botocore raises
``GoneException`` (410), ``PayloadTooLargeException`` (413), ``ForbiddenException`` (403).

Limits (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html): an agent
message bigger than 32 KB closes the socket with 1009 (aiohttp checks the whole message, so a
fragmented message is held to 32 KB too — stricter than AWS's 128 KB for fragmented
messages); PostToConnection payload > 128 KB -> 413; idle 10 min and max age 2 h close the
socket with 1001 (both configurable; the close code is not documented). A binary frame closes
the socket with 1003, as AWS does
(https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-binary-media-types.html).
DELETE @connections closes with 1000 (the $disconnect AWS logs for it:
https://github.com/aws/chalice/issues/2060). Status codes and error types of the management
API are botocore's model of it (botocore/data/apigatewaymanagementapi/2018-11-29/service-2.json):
POST 200, GET 200, DELETE 204; 410 GoneException, 413 PayloadTooLargeException,
403 ForbiddenException. A connection only accepts posts once its $connect handler returned 2xx
and the upgrade completed (before that: 410).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import WSMsgType, web

from emulator.apigateway import events
from emulator.apigateway.http_api import decode_headers, local_port
from emulator.apigateway.throttle import Throttler
from emulator.lambda_runtime.runtime import LambdaService, PayloadTooLarge
from emulator.stats import Faults, Stats
from emulator.apigateway.wiring import ApiWiring
from httptunnel.limits import (WS_FRAME_MAX, WS_IDLE_TIMEOUT_S, WS_MAX_CONNECTION_AGE_S,
                               WS_MESSAGE_MAX)

LOG = logging.getLogger("emulator.ws")
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003


@dataclass(frozen=True)
class WsSettings:
    account_id: str = "123456789012"
    idle_timeout_s: float = WS_IDLE_TIMEOUT_S
    max_age_s: float = WS_MAX_CONNECTION_AGE_S
    frame_max: int = WS_FRAME_MAX
    message_max: int = WS_MESSAGE_MAX
    post_delay_s: float = 0.0  # latency profile (post_to_connection_ms)
    route_delay_s: float = 0.0  # latency profile (websocket_api_ms)
    # Faults.ws_jitter_s delays this API's $default invocations (the agents' API); the caller API's
    # frames are invoked in arrival order (emulator/README.md "Caller WebSocket API")
    route_jitter: bool = True
    label: str = "agents"  # which API (logs)


@dataclass
class Connection:
    connection_id: str
    ws: web.WebSocketResponse
    headers: list[tuple[str, str]]
    source_ip: str
    user_agent: str
    connected_at_ms: int
    last_active: float = field(default_factory=time.monotonic)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closing_reason: str = ""
    server_close_code: int | None = None  # set when the API (not the client) closes


def new_connection_id() -> str:
    """Same shape as AWS: 16 characters, base64 of 11 bytes (``L0SM9cOFvHcCIhw=`` and
    ``R0oXAdfD0kwCH6w=`` in the API Gateway developer guide)."""
    return events.aws_id()


def aws_error(status: int, error_type: str, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"message": message}),
                        content_type="application/json",
                        headers={"x-amzn-ErrorType": error_type})


def iso(ts_ms: int | float) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def select_route(api: ApiWiring, body: str) -> str:
    """Route selection: ``$request.body.<field>`` when the message is JSON and a route matches."""
    expression = api.route_selection_expression or ""
    prefix = "$request.body."
    if expression.startswith(prefix):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        value: Any = data
        for part in expression[len(prefix):].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and api.route(value) is not None:
            return value
    return "$default"


class WebSocketApi:
    def __init__(self, api: ApiWiring | None, lambdas: LambdaService, stats: Stats, faults: Faults,
                 settings: WsSettings = WsSettings()) -> None:
        self.api = api
        self.lambdas = lambdas
        self.stats = stats
        self.faults = faults
        self.settings = settings
        self.connections: dict[str, Connection] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.domain_name = "127.0.0.1"
        self.throttler = Throttler(enabled=False)  # the Gateway's, shared with the other APIs
        # Other WebSocket APIs whose connections this port's @connections also serves: the Lambdas get
        # one AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI (AWS: one endpoint per API; connection ids never collide)
        self.peers: list[WebSocketApi] = []
        self.stopping = False  # close_all ran: the gateway is going away

    def find(self, connection_id: str) -> Connection | None:
        for api in (self, *self.peers):
            found = api.connections.get(connection_id)
            if found is not None:
                return found
        return None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.message_max * 2)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_shutdown.append(self.close_all)
        return app

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.split("/@connections/", 1)
        if len(parts) == 2 and parts[1]:
            return await self.management(request, parts[1])
        if self.api is None:
            return aws_error(503, "ServiceUnavailableException", "stack starting")
        if request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.websocket(request)
        return aws_error(403, "ForbiddenException", "Forbidden")

    # ---- management API -------------------------------------------------------------
    async def management(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        connection = self.find(connection_id)
        if request.method == "POST":
            return await self.post_to_connection(request, connection)
        if connection is None:
            return aws_error(410, "GoneException", f"Connection {connection_id} is gone")
        if request.method == "GET":
            return web.json_response({
                "connectedAt": iso(connection.connected_at_ms),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                "lastActiveAt": iso((time.time() - (time.monotonic() - connection.last_active)) * 1000),
            })
        if request.method == "DELETE":
            connection.closing_reason = "Connection Closed Normally"
            connection.server_close_code = NORMAL_CLOSURE
            self.spawn(connection.ws.close(code=NORMAL_CLOSURE))
            return web.Response(status=204)
        return aws_error(405, "MethodNotAllowedException", "Method not allowed")

    async def post_to_connection(self, request: web.Request,
                                 connection: Connection | None) -> web.StreamResponse:
        data = await request.read()
        self.stats.add("post_to_connection")
        delay = self.settings.post_delay_s + self.faults.jitter(self.faults.settings.ws_jitter_s)
        if delay:
            await asyncio.sleep(delay)
        if len(data) > self.settings.message_max:
            return aws_error(413, "PayloadTooLargeException",
                             f"Message too long: {len(data)} bytes > {self.settings.message_max}")
        gone = self.faults.hit(self.faults.settings.post_to_connection_gone_rate)
        if connection is None or connection.ws.closed or gone:
            return aws_error(410, "GoneException", "Connection is gone")
        try:
            async with connection.send_lock:
                await self.send(connection, data)
        except (ConnectionError, RuntimeError):
            return aws_error(410, "GoneException", "Connection is gone")
        self.stats.add("api_to_agent")
        return web.Response(status=200)

    async def send(self, connection: Connection, data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            await connection.ws.send_bytes(data)
            return
        await connection.ws.send_str(text)

    # ---- WebSocket API --------------------------------------------------------------
    def api_context(self, request: web.Request) -> events.ApiContext:
        return events.ApiContext(self.settings.account_id, self.api.api_id, self.api.stage,
                                 request.host.rsplit(":", 1)[0] if request.host else self.domain_name)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.throttler.allow(self.api.api_id, "$connect", new_connection=True):
            # a throttled $connect never reaches the connect Lambda: the upgrade is refused with 429
            # (terraform-aws-modules/terraform-aws-apigateway-v2#8); the body: no source found
            return web.json_response({"message": "Too Many Requests"}, status=429)
        connection_id = new_connection_id()
        connected_at = int(time.time() * 1000)
        source_ip = request.remote or "127.0.0.1"
        headers = events.ws_handshake_headers(decode_headers(request.raw_headers), source_ip,
                                              local_port(request), "http")
        api = self.api_context(request)
        accepted = await self.run_connect(api, connection_id, connected_at, headers,
                                          request.query_string, source_ip)
        if isinstance(accepted, web.StreamResponse):
            return accepted
        # A subprotocol is agreed by the $connect result's Sec-WebSocket-Protocol header (AWS:
        # websocket-connect-route-subprotocol); without it none is, whatever the client offered.
        ws = web.WebSocketResponse(max_msg_size=self.settings.frame_max, autoping=True,
                                   compress=False, autoclose=True, protocols=(accepted,) if accepted else ())
        await ws.prepare(request)
        user_agent = request.headers.get("User-Agent", "")
        connection = Connection(connection_id, ws, headers, source_ip, user_agent, connected_at)
        self.connections[connection_id] = connection
        try:
            await self.receive_loop(api, connection)
        finally:
            self.connections.pop(connection_id, None)
            code = connection.server_close_code or ws.close_code or 1006
            reason = connection.closing_reason or f"Client closed the connection ({code})"
            if not self.stopping:  # the emulator going away invokes nothing more (close_all)
                await self.run_disconnect(api, connection, code, reason)
        return ws

    async def run_connect(self, api: events.ApiContext, connection_id: str, connected_at: int,
                          headers: list[tuple[str, str]], raw_query: str,
                          source_ip: str) -> web.StreamResponse | str:
        """The subprotocol the handler agreed ("" for none) when the connection is accepted, else the refusal."""
        route = self.api.route("$connect")
        if route is None:
            return ""
        event = events.ws_connect_event(api=api, connection_id=connection_id,
                                        connected_at=connected_at, headers=headers,
                                        raw_query=raw_query, source_ip=source_ip)
        try:
            invocation = await self.lambdas.invoke(route.function, event)
        except PayloadTooLarge:
            return aws_error(413, "PayloadTooLargeException", "Request too large")
        if not invocation.ok:
            LOG.warning(json.dumps({"event": "connect_handler_failed", "connection_id": connection_id,
                                    "error": (invocation.error or {}).get("errorMessage")}))
            return aws_error(500, "InternalServerErrorException", "Internal server error")
        result = invocation.result()
        try:
            status = events.ws_connect_status(result)
        except events.BadResult:
            return aws_error(500, "InternalServerErrorException", "Internal server error")
        if 200 <= status < 300:
            return events.ws_connect_protocol(result)
        body = result.get("body") if isinstance(result, dict) else None
        return web.Response(status=status, text=body if isinstance(body, str) else None,
                            headers=events.ws_connect_headers(result))

    def deadline(self, connection: Connection) -> tuple[float, str]:
        idle_at = connection.last_active + self.settings.idle_timeout_s
        age_at = connection.connected_at_ms / 1000 - time.time() + time.monotonic() + self.settings.max_age_s
        if idle_at <= age_at:
            return idle_at, "Idle timeout"
        return age_at, "Maximum connection age"

    async def receive_loop(self, api: events.ApiContext, connection: Connection) -> None:
        ws = connection.ws
        while not ws.closed:
            deadline, why = self.deadline(connection)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                connection.closing_reason = f"Going away: {why}"
                connection.server_close_code = GOING_AWAY
                await ws.close(code=GOING_AWAY, message=b"Going away")
                return
            try:
                message = await ws.receive(timeout=remaining)
            except asyncio.TimeoutError:
                continue
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if message.type == WSMsgType.ERROR:
                connection.closing_reason = f"Frame error: {message.data}"
                connection.server_close_code = ws.close_code
                return
            connection.last_active = time.monotonic()
            if message.type == WSMsgType.TEXT:
                self.stats.add("agent_to_api")
                throttled = not self.throttler.allow(self.api.api_id, select_route(self.api, message.data))
                if throttled or self.faults.hit(self.faults.settings.agent_message_throttle_rate):
                    await self.refuse_throttled(connection)
                    continue
                self.spawn(self.route_message(api, connection, message.data))
            elif message.type == WSMsgType.BINARY:
                connection.closing_reason = "Binary frames are not supported"
                connection.server_close_code = UNSUPPORTED_DATA
                await ws.close(code=UNSUPPORTED_DATA, message=b"Binary frames are not supported")
                return

    async def refuse_throttled(self, connection: Connection) -> None:
        """A throttled agent message: no route runs, and the client gets an error frame (AWS: "clients
        may receive 429 Too Many Requests"; the frame's shape: no source found, modelled on API
        Gateway's other WebSocket error frames). Its requestId is API Gateway's, not the agent's."""
        notice = {"message": "Too Many Requests", "connectionId": connection.connection_id,
                  "requestId": events.aws_id()}
        async with connection.send_lock:
            await connection.ws.send_str(json.dumps(notice))

    async def route_message(self, api: events.ApiContext, connection: Connection, body: str) -> None:
        delay = self.settings.route_delay_s
        if self.settings.route_jitter:
            delay += self.faults.jitter(self.faults.settings.ws_jitter_s)
        if delay:
            await asyncio.sleep(delay)
        route_key = select_route(self.api, body)
        route = self.api.route(route_key)
        if route is None:
            return
        event = events.ws_message_event(api=api, route_key=route_key,
                                        connection_id=connection.connection_id,
                                        connected_at=connection.connected_at_ms, body=body,
                                        is_base64=False, source_ip=connection.source_ip,
                                        user_agent=connection.user_agent)
        invocation = await self.lambdas.invoke(route.function, event)
        if not invocation.ok:
            LOG.warning(json.dumps({"event": "route_handler_failed", "route": route_key,
                                    "connection_id": connection.connection_id,
                                    "error": (invocation.error or {}).get("errorMessage")}))

    async def run_disconnect(self, api: events.ApiContext, connection: Connection, code: int,
                             reason: str) -> None:
        route = self.api.route("$disconnect")
        if route is None:
            return
        event = events.ws_disconnect_event(api=api, connection_id=connection.connection_id,
                                           connected_at=connection.connected_at_ms,
                                           headers=connection.headers, source_ip=connection.source_ip,
                                           status_code=code, reason=reason)
        invocation = await self.lambdas.invoke(route.function, event)
        if not invocation.ok:
            LOG.warning(json.dumps({"event": "disconnect_handler_failed",
                                    "connection_id": connection.connection_id,
                                    "error": (invocation.error or {}).get("errorMessage")}))

    async def close_all(self, app: web.Application | None = None) -> None:
        # No $disconnect invocations from here on: a handler running one in its finally while the
        # loop tore down started a worker process there and never finished (a stalled test run)
        self.stopping = True
        for connection in list(self.connections.values()):
            connection.closing_reason = "Server shutting down"
            connection.server_close_code = GOING_AWAY
            await connection.ws.close(code=GOING_AWAY, message=b"Going away")
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
