"""stream_notifier: completed pending rows (DynamoDB Stream) -> EventBridge events.

Only MODIFY records whose new status is completed/error become events (the event source
mapping filters the same way; this re-check keeps unfiltered local delivery correct).
Event detail never carries bodies or headers, so each entry stays far below 256 KB.
Records that fail to publish are reported as ``batchItemFailures`` (their SequenceNumber).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from boto3.dynamodb.types import TypeDeserializer

from . import aws, config, log, names

PUT_EVENTS_MAX = 10
_DE = TypeDeserializer()


def _boto_events() -> Any:
    return aws.client("events")


_events: Callable[[], Any] = _boto_events  # tests may substitute a fake


def reset_clients() -> None:
    aws.reset()


@dataclass(frozen=True)
class Pending:
    sequence: str
    entry: dict[str, Any]


def _image(record: dict[str, Any]) -> dict[str, Any]:
    raw = (record.get("dynamodb") or {}).get("NewImage") or {}
    return {k: _DE.deserialize(v) for k, v in raw.items()}


def _num(row: dict[str, Any], key: str) -> int | None:
    value = row.get(key)
    return int(value) if value is not None else None


def detail(row: dict[str, Any]) -> dict[str, Any]:
    created, completed = _num(row, "createdAt"), _num(row, "completedAt")
    return {
        "request_id": row.get(names.PENDING_PK),
        "tunnel_id": row.get("tunnelId"),
        "connection_id": row.get("connectionId"),
        "method": row.get("method"),
        "path": row.get("path"),
        "status": row.get(names.PENDING_STATUS),
        "status_code": _num(row, "statusCode"),
        "error_code": row.get("errorCode"),
        "request_bytes": _num(row, "requestBytes"),
        "response_bytes": _num(row, "responseBytes"),
        "duration_ms": completed - created if created is not None and completed is not None else None,
    }


def _to_entry(record: dict[str, Any]) -> dict[str, Any] | None:
    if record.get("eventName") != "MODIFY":
        return None
    row = _image(record)
    if row.get(names.PENDING_STATUS) not in (names.STATUS_COMPLETED, names.STATUS_ERROR):
        return None
    return {"Source": names.EVENT_SOURCE, "DetailType": names.EVENT_DETAIL_TYPE,
            "Detail": json.dumps(detail(row), separators=(",", ":")), "EventBusName": config.event_bus_name()}


def _publish(batch: list[Pending]) -> list[str]:
    """PutEvents one batch; returns the sequence numbers that failed."""
    try:
        out = _events().put_events(Entries=[p.entry for p in batch])
    except Exception as exc:  # the whole call failed: every record of the batch is retried
        log.error("put_events failed", error=type(exc).__name__, records=len(batch))
        return [p.sequence for p in batch]
    results = out.get("Entries", [])
    return [p.sequence for p, r in zip(batch, results, strict=False) if r.get("ErrorCode")] + \
        [p.sequence for p in batch[len(results):]]


def notify(event: Any) -> dict[str, Any]:
    records = event.get("Records", []) if isinstance(event, dict) else []
    todo: list[Pending] = []
    for record in records:
        try:
            entry = _to_entry(record)
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("skipped malformed stream record", error=str(exc)[:200])
            continue
        if entry is not None:
            todo.append(Pending(str((record.get("dynamodb") or {}).get("SequenceNumber", "")), entry))
    failed: list[str] = []
    for start in range(0, len(todo), PUT_EVENTS_MAX):
        failed += _publish(todo[start:start + PUT_EVENTS_MAX])
    log.info("stream batch", records=len(records), published=len(todo) - len(failed), failed=len(failed))
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
