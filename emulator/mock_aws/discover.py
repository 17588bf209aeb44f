"""Read what ``terraform apply`` created back from the AWS endpoint (moto) into a :class:`Wiring`.

routes -> integrations -> functions; each function's handler, env, timeout, memory, runtime,
layers; stream event source mappings (filter, batch size, response types); EventBridge
schedule rules -> Lambda targets. Code bytes are what Terraform uploaded, asked from moto's
``/_emulator/code`` control route (moto runs in its own process), falling back to the build
folder's zips when the endpoint is not our moto (LocalStack).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from emulator.lambda_runtime.buildinfo import BuildInfo
from emulator.mock_aws.moto_local import internal_client
from emulator.mock_aws.moto_process import fetch_code
from emulator.lambda_runtime.runtime import FunctionSpec, unzip
from emulator.apigateway.throttle import stage_throttles
from emulator.apigateway.wiring import ApiWiring, Route, Schedule, StreamMapping, Wiring

LOG = logging.getLogger("emulator.mock_aws.discover")


class WiringError(RuntimeError):
    """What Terraform created cannot be served (missing function, route without integration...)."""


def function_arn_from_uri(uri: str) -> str:
    """An integration URI is the function ARN or ``arn:aws:apigateway:...:path/2015-03-31/functions/<arn>/invocations``."""
    if "/functions/" in uri:
        return uri.split("/functions/", 1)[1].split("/invocations", 1)[0]
    return uri


def read_api(client: Any, api_id: str, stage: str) -> ApiWiring:
    api = client.get_api(ApiId=api_id)
    integrations = {i["IntegrationId"]: i for i in client.get_integrations(ApiId=api_id)["Items"]}
    routes = []
    for route in client.get_routes(ApiId=api_id)["Items"]:
        target = route.get("Target", "")
        integration = integrations.get(target.split("/", 1)[-1]) if target else None
        if integration is None:
            raise WiringError(f"route {route['RouteKey']!r} of API {api_id} has no integration")
        routes.append(Route(route["RouteKey"], function_arn_from_uri(integration["IntegrationUri"])))
    return ApiWiring(api_id=api_id, stage=stage, routes=tuple(routes),
                     route_selection_expression=api.get("RouteSelectionExpression", "$request.body.action"),
                     throttles=stage_throttles(client.get_stage(ApiId=api_id, StageName=stage)))


def reserved_concurrency(endpoint: str, region: str, function: str) -> int | None:
    """The function's reserved concurrency as Terraform set it (None: unreserved)."""
    found = internal_client("lambda", endpoint, region).get_function_concurrency(FunctionName=function)
    value = found.get("ReservedConcurrentExecutions")
    return None if value is None else int(value)


def read_function(client: Any, name: str, label: str, build: BuildInfo, work_dir: Path,
                  region: str, account_id: str, endpoint: str) -> FunctionSpec:
    config = client.get_function_configuration(FunctionName=name)
    code_dir = work_dir / "functions" / name
    data = fetch_code(endpoint, account_id, region, function=name)
    unzip(build.function_zips.get(label) if data is None else None, data, code_dir)
    layer_dirs = []
    for index, layer in enumerate(config.get("Layers", [])):
        layer_dir = work_dir / "layers" / f"{name}-{index}"
        layer_data = fetch_code(endpoint, account_id, region, layer=layer["Arn"])
        unzip(build.layer_zip if layer_data is None else None, layer_data, layer_dir)
        layer_dirs.append(layer_dir)
    return FunctionSpec(
        name=name, label=label, handler=config["Handler"], code_dir=code_dir,
        layer_dirs=tuple(layer_dirs),
        environment=config.get("Environment", {}).get("Variables", {}),
        timeout_s=float(config.get("Timeout", 3)), memory_mb=int(config.get("MemorySize", 128)),
        runtime=config.get("Runtime", build.runtime), arn=config["FunctionArn"])


def parse_filters(criteria: dict[str, Any] | None) -> tuple[dict[str, Any], ...]:
    patterns = []
    for item in (criteria or {}).get("Filters", []):
        try:
            patterns.append(json.loads(item["Pattern"]))
        except (KeyError, ValueError) as exc:
            raise WiringError(f"bad filter pattern {item!r}: {exc}") from None
    return tuple(patterns)


def read_streams(client: Any) -> tuple[StreamMapping, ...]:
    mappings = []
    for esm in client.list_event_source_mappings().get("EventSourceMappings", []):
        source = esm.get("EventSourceArn", "")
        if ":dynamodb:" not in source or "/stream/" not in source:
            continue
        retries = int(esm.get("MaximumRetryAttempts", -1))
        mappings.append(StreamMapping(
            function=esm["FunctionArn"], stream_arn=source,
            table_name=source.split(":table/", 1)[1].split("/stream/", 1)[0],
            batch_size=int(esm.get("BatchSize", 100)),
            filters=parse_filters(esm.get("FilterCriteria")),
            report_batch_item_failures="ReportBatchItemFailures" in esm.get("FunctionResponseTypes", []),
            max_retries=3 if retries < 0 else min(retries, 10),
            starting_position=esm.get("StartingPosition", "TRIM_HORIZON"),
            enabled=esm.get("State", "Enabled") not in ("Disabled", "Disabling")))
    return tuple(mappings)


def read_schedules(client: Any) -> tuple[Schedule, ...]:
    schedules = []
    for bus in client.list_event_buses().get("EventBuses", []):
        for rule in client.list_rules(EventBusName=bus["Name"]).get("Rules", []):
            if not rule.get("ScheduleExpression") or rule.get("State") == "DISABLED":
                continue
            targets = client.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"])
            for target in targets.get("Targets", []):
                if ":lambda:" in target["Arn"]:
                    schedules.append(Schedule(rule["Name"], rule["Arn"], rule["ScheduleExpression"],
                                              target["Arn"], target.get("Input")))
    return tuple(schedules)


def read_wiring(endpoint: str, region: str, outputs: dict[str, Any], build: BuildInfo,
                work_dir: Path) -> Wiring:
    lambda_client = internal_client("lambda", endpoint, region)
    apis = internal_client("apigatewayv2", endpoint, region)
    functions = []
    for label, name in sorted(outputs["function_names"].items()):
        arn = lambda_client.get_function_configuration(FunctionName=name)["FunctionArn"]
        account_id = arn.split(":")[4]
        functions.append(read_function(lambda_client, name, label, build, work_dir, region, account_id,
                                       endpoint))
    if not functions:
        raise WiringError("terraform created no functions")
    account_id = functions[0].arn.split(":")[4]
    http = read_api(apis, outputs["http_api_id"], outputs.get("http_stage_name", "$default"))
    ws = read_api(apis, outputs["websocket_api_id"], outputs.get("websocket_stage_name", "prod"))
    callers = read_api(apis, outputs["caller_websocket_api_id"], outputs.get("caller_websocket_stage_name", "live")) \
        if outputs.get("caller_websocket_api_id") else None
    tables = tuple(outputs[k] for k in ("connections_table_name", "pending_table_name") if k in outputs)
    return Wiring(region=region, account_id=account_id, functions=tuple(functions), http=http, ws=ws, callers=callers,
                  streams=read_streams(lambda_client),
                  schedules=read_schedules(internal_client("events", endpoint, region)),
                  tables=tables)
