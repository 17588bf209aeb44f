"""The API Gateway emulator as one object: HTTP API + WebSocket API ports and the Lambda runtime.

Ports are bound first (Terraform needs the public URL and the management endpoint in the
functions' environment), the wiring is attached once known (after ``terraform apply``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aiohttp import web

from emulator.apigateway.http_api import HttpApi, HttpSettings, serve
from emulator.apigateway.throttle import Throttler
from emulator.lambda_runtime.runtime import LambdaService, RuntimeConfig
from emulator.stats import Faults, Stats
from emulator.apigateway.wiring import Wiring
from emulator.apigateway.ws_api import WebSocketApi, WsSettings


@dataclass(frozen=True)
class GatewayPorts:
    host: str
    http_port: int
    ws_port: int
    caller_ws_port: int = 0  # the caller WebSocket API (issue 24)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def management_url(self) -> str:
        """Management endpoint (any stage prefix, or none, is accepted)."""
        return f"http://{self.host}:{self.ws_port}"


class Gateway:
    def __init__(self, runtime: RuntimeConfig, *, host: str = "127.0.0.1",
                 http_settings: HttpSettings | None = None, ws_settings: WsSettings | None = None,
                 stats: Stats | None = None, faults: Faults | None = None,
                 invoke_delay_s: float = 0.0) -> None:
        self.host = host
        self.stats = stats or Stats()
        self.faults = faults or Faults()
        self.lambdas = LambdaService(runtime, invoke_delay_s=invoke_delay_s)
        self.http = HttpApi(None, self.lambdas, self.stats, http_settings or HttpSettings())
        self.ws = WebSocketApi(None, self.lambdas, self.stats, self.faults, ws_settings or WsSettings())
        # The caller WebSocket API: the same emulation with AWS's same limits, on its own port; its
        # frames are invoked in arrival order (no jitter) and either port's @connections serves both.
        self.callers = WebSocketApi(None, self.lambdas, self.stats, self.faults,
                                    dataclasses.replace(self.ws.settings, route_jitter=False, label="callers"))
        self.ws.peers.append(self.callers)
        self.callers.peers.append(self.ws)
        # one account: the three APIs share its buckets (throttle.py), the 500 new connections/s included
        self.throttler = Throttler()
        self.http.throttler = self.ws.throttler = self.callers.throttler = self.throttler
        self.runners: list[web.AppRunner] = []
        self.ports: GatewayPorts | None = None
        self.wiring: Wiring | None = None

    async def bind(self, http_port: int = 0, ws_port: int = 0, caller_ws_port: int = 0) -> GatewayPorts:
        http_runner, bound_http = await serve(self.http.app(), self.host, http_port)
        self.runners.append(http_runner)
        ws_runner, bound_ws = await serve(self.ws.app(), self.host, ws_port)
        self.runners.append(ws_runner)
        callers_runner, bound_callers = await serve(self.callers.app(), self.host, caller_ws_port)
        self.runners.append(callers_runner)
        self.ports = GatewayPorts(self.host, bound_http, bound_ws, bound_callers)
        self.lambdas.config = dataclasses.replace(self.lambdas.config,
                                                  management_endpoint=self.ports.management_url)
        return self.ports

    def attach(self, wiring: Wiring) -> None:
        """Serve what Terraform created: functions, routes."""
        self.wiring = wiring
        for spec in wiring.functions:
            self.lambdas.add(spec)
        self.http.api = wiring.http
        self.ws.api = wiring.ws
        self.callers.api = wiring.callers
        for api in (wiring.http, wiring.ws, wiring.callers):
            if api is not None:
                self.throttler.configure(api.api_id, api.throttles)
        self.ws.settings = dataclasses.replace(self.ws.settings, account_id=wiring.account_id)
        self.callers.settings = dataclasses.replace(self.callers.settings, account_id=wiring.account_id)
        self.http.settings = dataclasses.replace(self.http.settings, account_id=wiring.account_id)

    @property
    def ws_url(self) -> str:
        assert self.ports is not None
        stage = self.wiring.ws.stage if self.wiring and self.wiring.ws else ""
        if not stage or stage == "$default":
            return self.ports.ws_base
        return f"{self.ports.ws_base}/{stage}"

    @property
    def caller_ws_url(self) -> str:
        """The caller API's stage URL on 127.0.0.1 (query form: ``?tunnel=<id>``)."""
        assert self.ports is not None
        stage = self.wiring.callers.stage if self.wiring and self.wiring.callers else ""
        return f"ws://{self.host}:{self.ports.caller_ws_port}" + (f"/{stage}" if stage and stage != "$default" else "")

    async def stop(self) -> None:
        await self.callers.close_all()
        await self.ws.close_all()
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners.clear()
        await self.lambdas.stop_all()
