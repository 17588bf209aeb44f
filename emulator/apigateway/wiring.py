"""What the emulator serves: APIs, routes, functions, stream mappings and schedules.

Built from what Terraform created (read back from moto, see :func:`emulator.mock_aws.discover.read_wiring`),
or by hand in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.apigateway.throttle import StageThrottles
from emulator.lambda_runtime.runtime import FunctionSpec


@dataclass(frozen=True)
class Route:
    route_key: str  # "$default", "$connect", "GET /items/{id}", "ANY /{proxy+}"
    function: str  # function name or ARN


@dataclass(frozen=True)
class ApiWiring:
    api_id: str
    stage: str
    routes: tuple[Route, ...]
    route_selection_expression: str = "$request.body.action"
    throttles: StageThrottles = StageThrottles()  # the stage's route throttling (none: account only)

    def route(self, key: str) -> Route | None:
        return next((r for r in self.routes if r.route_key == key), None)


@dataclass(frozen=True)
class StreamMapping:
    function: str
    stream_arn: str
    table_name: str
    batch_size: int = 100
    filters: tuple[dict[str, Any], ...] = ()  # parsed FilterCriteria patterns (any may match)
    report_batch_item_failures: bool = False
    max_retries: int = 3  # -1 in AWS means "until the record expires"; capped locally
    starting_position: str = "TRIM_HORIZON"
    enabled: bool = True


@dataclass(frozen=True)
class Schedule:
    rule_name: str
    rule_arn: str
    expression: str  # "rate(5 minutes)" / "cron(...)"
    function: str
    input: str | None = None  # constant JSON input of the target


@dataclass(frozen=True)
class Wiring:
    region: str
    account_id: str
    functions: tuple[FunctionSpec, ...]
    http: ApiWiring | None = None
    ws: ApiWiring | None = None
    callers: ApiWiring | None = None  # the caller WebSocket API (issue 24)
    streams: tuple[StreamMapping, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    tables: tuple[str, ...] = field(default_factory=tuple)
