"""What AWS does in the background: stream delivery, schedules, TTL expiry.

* Streams: like Lambda's poller — DescribeStream, GetShardIterator, GetRecords in a loop;
  records matching the mapping's filter (Lambda event filtering syntax) are batched up to
  BatchSize and sent to the function; with ReportBatchItemFailures, the batch is retried
  from the first failed sequence number (up to max_retries), a handler error retries the
  whole batch; then the records are dropped with a log line.
  Lambda's parameters: https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html;
  filtering (records matching no filter are dropped before batching, filters are ORed):
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html.
* Schedules: ``rate(N unit)`` rules fire their Lambda targets with a "Scheduled Event". Only
  expressions EventBridge accepts are run: a positive whole number of minutes, hours or days,
  singular for 1 (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html),
  so nothing runs more often than once a minute. ``--cleanup-interval`` overrides every rate
  with seconds, a local-only shortcut for tests. ``cron(...)`` is not parsed: such rules fire
  every 60 s (logged).
* TTL: moto never expires rows, and DynamoDB deletes expired items "typically within two days"
  while they "still show up in reads, queries, and scans"
  (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTimeToLive.html):
  nothing may depend on it, so the stack does not expire rows unless asked
  (``--ttl-interval S``: every S seconds the tables with TTL enabled are scanned and rows whose
  TTL attribute is in the past are deleted; REMOVE stream records follow, as in DynamoDB).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from emulator.mock_aws.moto_local import internal_client
from emulator.lambda_runtime.runtime import LambdaService
from emulator.apigateway.wiring import Schedule, StreamMapping

LOG = logging.getLogger("emulator.mock_aws.background")
POLL_IDLE_S = 0.05
RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"rate\(([1-9][0-9]*) (minute|hour|day)(s?)\)")


def log(event: str, **fields: Any) -> None:
    LOG.info(json.dumps({"event": event, **fields}))


# ---- Lambda event filtering (EventBridge pattern syntax) --------------------------------
def matches(pattern: dict[str, Any], event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    for key, condition in pattern.items():
        value = event.get(key, _MISSING)
        if isinstance(condition, dict):
            if not matches(condition, value if value is not _MISSING else {}):
                return False
        elif isinstance(condition, list):
            if not any(matches_value(c, value) for c in condition):
                return False
        else:
            raise ValueError(f"filter condition for {key!r} must be a list or an object")
    return True


class _Missing:
    pass


_MISSING = _Missing()


def matches_value(condition: Any, value: Any) -> bool:
    if isinstance(value, list):
        return any(matches_value(condition, v) for v in value)
    if not isinstance(condition, dict):
        return value is not _MISSING and value == condition
    if "exists" in condition:
        return (value is not _MISSING) == bool(condition["exists"])
    if value is _MISSING:
        return False
    if "prefix" in condition:
        return isinstance(value, str) and value.startswith(condition["prefix"])
    if "suffix" in condition:
        return isinstance(value, str) and value.endswith(condition["suffix"])
    if "equals-ignore-case" in condition:
        return isinstance(value, str) and value.lower() == str(condition["equals-ignore-case"]).lower()
    if "anything-but" in condition:
        excluded = condition["anything-but"]
        if isinstance(excluded, dict):
            return not matches_value(excluded, value)
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return value not in excluded
    if "numeric" in condition:
        return matches_numeric(condition["numeric"], value)
    raise ValueError(f"unsupported filter operator {condition!r}")


def matches_numeric(spec: list[Any], value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    ops = {"<": number.__lt__, "<=": number.__le__, "=": number.__eq__, ">": number.__gt__,
           ">=": number.__ge__}
    for op, operand in zip(spec[::2], spec[1::2], strict=False):  # an odd tail is ignored, as before
        if not ops[op](float(operand)):
            return False
    return True


def passes_filters(filters: tuple[dict[str, Any], ...], record: dict[str, Any]) -> bool:
    return not filters or any(matches(f, record) for f in filters)


# ---- stream delivery --------------------------------------------------------------------
def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it (epoch seconds, eventSourceARN)."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {"eventID": record.get("eventID", uuid.uuid4().hex), "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
            "awsRegion": region, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


def failed_index(response: Any, batch: list[dict[str, Any]]) -> int | None:
    """Index of the first record to retry, from a ReportBatchItemFailures response."""
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures") or []
    sequence_numbers = [r["dynamodb"].get("SequenceNumber") for r in batch]
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier in sequence_numbers:
            indexes.append(sequence_numbers.index(identifier))
        else:  # an unknown identifier: Lambda treats the whole batch as failed
            return 0
    return min(indexes) if indexes else None


class StreamPoller:
    def __init__(self, mapping: StreamMapping, lambdas: LambdaService, endpoint: str, region: str,
                 delivery_delay_s: float = 0.0) -> None:
        self.mapping = mapping
        self.lambdas = lambdas
        self.client = internal_client("dynamodbstreams", endpoint, region)
        self.region = region
        self.delivery_delay_s = delivery_delay_s
        self.delivered = 0

    async def call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, method), **kwargs)

    async def shard_iterators(self, iterators: dict[str, str | None]) -> None:
        description = await self.call("describe_stream", StreamArn=self.mapping.stream_arn)
        for shard in description["StreamDescription"].get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id in iterators:
                continue
            found = await self.call("get_shard_iterator", StreamArn=self.mapping.stream_arn,
                                    ShardId=shard_id, ShardIteratorType=self.mapping.starting_position)
            iterators[shard_id] = found["ShardIterator"]

    async def run(self) -> None:
        iterators: dict[str, str | None] = {}
        while True:
            try:
                await self.shard_iterators(iterators)
                busy = False
                for shard_id, iterator in list(iterators.items()):
                    if iterator is None:
                        continue
                    page = await self.call("get_records", ShardIterator=iterator, Limit=1000)
                    iterators[shard_id] = page.get("NextShardIterator")
                    records = page.get("Records", [])
                    busy = busy or bool(records)
                    await self.deliver(records)
                if not busy:
                    await asyncio.sleep(POLL_IDLE_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the poller must survive moto hiccups
                log("stream_poll_failed", stream=self.mapping.stream_arn, error=str(exc))
                await asyncio.sleep(1.0)

    async def deliver(self, records: list[dict[str, Any]]) -> None:
        selected = [lambda_record(r, self.mapping.stream_arn, self.region) for r in records]
        selected = [r for r in selected if passes_filters(self.mapping.filters, r)]
        size = max(1, self.mapping.batch_size)
        for start in range(0, len(selected), size):
            await self.deliver_batch(selected[start:start + size])

    async def deliver_batch(self, batch: list[dict[str, Any]]) -> None:
        attempts = 0
        while batch:
            if self.delivery_delay_s:
                await asyncio.sleep(self.delivery_delay_s)
            invocation = await self.lambdas.invoke(self.mapping.function, {"Records": batch})
            if not invocation.ok:
                retry_from: int | None = 0
            elif self.mapping.report_batch_item_failures:
                retry_from = failed_index(invocation.result(), batch)
            else:
                retry_from = None
            self.delivered += len(batch) if retry_from is None else retry_from
            if retry_from is None:
                return
            attempts += 1
            if attempts > self.mapping.max_retries:
                log("stream_records_dropped", function=self.mapping.function, count=len(batch) - retry_from)
                return
            batch = batch[retry_from:]
            await asyncio.sleep(min(0.1 * 2 ** attempts, 2.0))


# ---- schedules --------------------------------------------------------------------------
def schedule_interval(expression: str) -> float:
    """Seconds between runs of a schedule expression EventBridge accepts. ``rate()``: a positive
    number and a unit, singular exactly when the number is 1 (``rate(1 minutes)`` and
    ``rate(30 seconds)`` are refused); ``cron()``: not parsed, every 60 s. Raises ValueError
    for anything else (AWS refuses it at PutRule; moto does not)."""
    if expression.startswith("cron(") and expression.endswith(")"):
        log("schedule_not_parsed", expression=expression, fallback_s=60)
        return 60.0
    found = _RATE.fullmatch(expression)
    if found is None or (found.group(1) == "1") == (found.group(3) == "s"):
        raise ValueError(f"{expression!r} is not a schedule expression EventBridge accepts")
    return int(found.group(1)) * RATE_UNITS[found.group(2)]


def scheduled_event(schedule: Schedule, account_id: str, region: str) -> Any:
    if schedule.input:
        return json.loads(schedule.input)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": account_id,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [schedule.rule_arn], "detail": {}}


async def run_schedule(schedule: Schedule, lambdas: LambdaService, account_id: str, region: str,
                       interval_override: float | None) -> None:
    try:
        interval = schedule_interval(schedule.expression)
    except ValueError as exc:
        log("schedule_invalid", rule=schedule.rule_name, error=str(exc))  # AWS would not have created it
        return
    interval = interval_override or interval
    while True:
        await asyncio.sleep(interval)
        invocation = await lambdas.invoke(schedule.function, scheduled_event(schedule, account_id, region))
        log("schedule_fired", rule=schedule.rule_name, ok=invocation.ok)


# ---- TTL --------------------------------------------------------------------------------
class TtlReaper:
    def __init__(self, tables: tuple[str, ...], endpoint: str, region: str) -> None:
        self.tables = tables
        self.client = internal_client("dynamodb", endpoint, region)
        self.deleted = 0

    def ttl_attribute(self, table: str) -> str | None:
        description = self.client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if description.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            return None
        return description.get("AttributeName")

    def key_names(self, table: str) -> list[str]:
        schema = self.client.describe_table(TableName=table)["Table"]["KeySchema"]
        return [k["AttributeName"] for k in schema]

    def expire_table(self, table: str, now: int) -> int:
        attribute = self.ttl_attribute(table)
        if attribute is None:
            return 0
        keys = self.key_names(table)
        deleted = 0
        paginator = self.client.get_paginator("scan")
        pages = paginator.paginate(TableName=table, FilterExpression="#t < :now",
                                   ExpressionAttributeNames={"#t": attribute},
                                   ExpressionAttributeValues={":now": {"N": str(now)}})
        for page in pages:
            for item in page.get("Items", []):
                self.client.delete_item(TableName=table, Key={k: item[k] for k in keys})
                deleted += 1
        return deleted

    def expire_once(self, now: int | None = None) -> int:
        now = int(time.time()) if now is None else now
        deleted = sum(self.expire_table(table, now) for table in self.tables)
        self.deleted += deleted
        if deleted:
            log("ttl_expired", rows=deleted)
        return deleted

    async def run(self, interval_s: float) -> None:
        """Expire rows every ``interval_s`` seconds; 0 (the stack's default) never does."""
        if interval_s <= 0:
            return
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.expire_once)
            except Exception as exc:  # noqa: BLE001 - keep expiring on the next round
                log("ttl_expiry_failed", error=str(exc))
