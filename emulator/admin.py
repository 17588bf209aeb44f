"""Admin API of the local stack (benchmarks, load and fault tests).

GET  /stats        -> {"lambda_invocations": {fn: n}, "lambda_billed_ms": {fn: ms},
                       "dynamodb_calls": {operation: n}, "post_to_connection": n,
                       "ws_messages": {"agent_to_api": n, "api_to_agent": n}, "http_requests": n}
POST /stats/reset  -> zeroes every counter
POST /faults       {"dynamodb_throttle_rate": 0..1, "post_to_connection_gone_rate": 0..1, "gsi_lag_s": 0..1} (0 clears)
GET  /faults       -> current rates
POST /lambdas/recycle {"functions": [names]} (optional; default all) -> {"recycled": {fn: bool}}:
                      each idle worker is dropped, as Lambda reclaims an idle sandbox, so the next
                      invocation is a cold start (false for a worker with invocations in flight)
GET  /health       -> {"ok": true}
Function keys are the short names (forward, connect, ...). When moto runs in its own process
(``emulator.mock_aws.moto_process``), its DynamoDB call counts are merged into /stats, /stats/reset
resets them there too, and fault settings are pushed to it (it applies the throttle).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from aiohttp import web

from emulator.lambda_runtime.runtime import LambdaService
from emulator.stats import Faults, Stats


class MotoControl(Protocol):
    def dynamodb_calls(self) -> dict[str, int]: ...
    def reset_stats(self) -> None: ...
    def push_faults(self, settings: dict[str, Any]) -> dict[str, Any]: ...


class AdminApi:
    def __init__(self, stats: Stats, faults: Faults, lambdas: LambdaService,
                 moto: MotoControl | None = None) -> None:
        self.stats = stats
        self.faults = faults
        self.lambdas = lambdas
        self.moto = moto

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stats", self.get_stats)
        app.router.add_post("/stats/reset", self.reset)
        app.router.add_post("/faults", self.set_faults)
        app.router.add_get("/faults", self.get_faults)
        app.router.add_post("/lambdas/recycle", self.recycle)
        app.router.add_get("/health", self.health)
        return app

    async def snapshot(self) -> dict[str, Any]:
        data = self.stats.snapshot()
        if self.moto is not None:
            remote = await asyncio.to_thread(self.moto.dynamodb_calls)
            merged = dict(data["dynamodb_calls"])
            for operation, n in remote.items():
                merged[operation] = merged.get(operation, 0) + n
            data["dynamodb_calls"] = merged
        data["lambda_invocations"] = dict(self.lambdas.invocations)
        data["lambda_billed_ms"] = dict(self.lambdas.billed_ms)
        data["lambda_cold_starts"] = self.lambdas.cold_starts()
        return data

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self.snapshot())

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.reset()
        self.lambdas.reset_stats()
        if self.moto is not None:
            await asyncio.to_thread(self.moto.reset_stats)
        return web.json_response(await self.snapshot())

    async def recycle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            names = body.get("functions") if isinstance(body, dict) else None
            if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise ValueError("functions must be a list of function names")
            recycled = await self.lambdas.recycle(names)
        except (ValueError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"recycled": recycled})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.faults.settings.__dict__))

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            settings = self.faults.update(body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if self.moto is not None:
            await asyncio.to_thread(self.moto.push_faults, dict(settings.__dict__))
        return web.json_response(dict(settings.__dict__))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})
