"""stream_notifier (only with ``traffic_log = true``): new answer rows (DynamoDB Stream) -> EventBridge events.

Only INSERT records whose status is completed/error become events (the event source mapping
filters the same way; this re-check keeps unfiltered local delivery correct). The tunnel id
comes from the answering connection's row (one BatchGetItem per batch), never from the agent;
rows forward wrote when it gave up (timeout, agent gone) carry tunnel, method, path and
created time themselves. Answer rows of other connections for the same request (forged or
late) are events too: ``connection_id`` says who answered.
Event detail never carries bodies or headers, so each entry stays far below 256 KB.
Records that fail to publish are reported as ``batchItemFailures`` (their SequenceNumber).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from . import aws, config, dynamo_types, log, names, store

PUT_EVENTS_MAX = 10


def _boto_events() -> Any:
    return aws.client("events")


_events: Callable[[], Any] = _boto_events  # tests may substitute a fake


@dataclass(frozen=True)
class TrafficEvent:
    """One PutEvents entry and the stream record (SequenceNumber) it came from."""
    sequence: str
    entry: dict[str, Any]


def _image(record: dict[str, Any]) -> dict[str, Any]:
    raw = (record.get("dynamodb") or {}).get("NewImage") or {}
    return {k: dynamo_types.deserialize(v) for k, v in raw.items()}


def _num(row: dict[str, Any], key: str) -> int | None:
    value = row.get(key)
    return int(value) if value is not None else None


def detail(row: dict[str, Any], tunnel_id: str | None = None) -> dict[str, Any]:
    created, completed = _num(row, "createdAt"), _num(row, "completedAt")
    return {
        "request_id": row.get(names.ANSWER_REQUEST_ID),
        "tunnel_id": row.get("tunnelId") or tunnel_id,
        "connection_id": row.get(names.ANSWER_CONNECTION_ID),
        "method": row.get("method"),
        "path": row.get("path"),
        "status": row.get(names.PENDING_STATUS),
        "status_code": _num(row, "statusCode"),
        "error_code": row.get("errorCode"),
        "request_bytes": _num(row, "requestBytes"),
        "response_bytes": _num(row, "responseBytes"),
        "processing_time_ms": _num(row, "processingTimeMs"),
        "completed_at": completed,
        "duration_ms": completed - created if created is not None and completed is not None else None,
    }


def _answer_row(record: dict[str, Any]) -> dict[str, Any] | None:
    if record.get("eventName") != "INSERT":
        return None
    row = _image(record)
    if row.get(names.PENDING_STATUS) not in (names.STATUS_COMPLETED, names.STATUS_ERROR):
        return None
    return row


def _to_entry(row: dict[str, Any], tunnels: dict[str, str]) -> dict[str, Any]:
    tunnel = tunnels.get(str(row.get(names.ANSWER_CONNECTION_ID, "")))
    return {"Source": names.EVENT_SOURCE, "DetailType": names.EVENT_DETAIL_TYPE,
            "Detail": json.dumps(detail(row, tunnel), separators=(",", ":")), "EventBusName": config.event_bus_name()}


def _publish(batch: list[TrafficEvent]) -> list[str]:
    """PutEvents one batch; returns the sequence numbers that failed."""
    try:
        out = _events().put_events(Entries=[p.entry for p in batch])
    except Exception as exc:  # the whole call failed: every record of the batch is retried
        log.error("put_events failed", error=type(exc).__name__, records=len(batch))
        return [p.sequence for p in batch]
    results = out.get("Entries", [])
    return [p.sequence for p, r in zip(batch, results, strict=False) if r.get("ErrorCode")] + \
        [p.sequence for p in batch[len(results):]]


def _tunnels(rows: list[dict[str, Any]]) -> dict[str, str]:
    wanted = [str(r.get(names.ANSWER_CONNECTION_ID, "")) for r in rows if not r.get("tunnelId")]
    if not wanted:
        return {}
    try:
        return store.tunnels_of(wanted)
    except Exception as exc:  # the events still go out, without the tunnel id
        log.warning("tunnel lookup failed", error=type(exc).__name__, records=len(wanted))
        return {}


def notify(event: Any) -> dict[str, Any]:
    records = event.get("Records", []) if isinstance(event, dict) else []
    rows: list[tuple[str, dict[str, Any]]] = []
    for record in records:
        try:
            row = _answer_row(record)
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("skipped malformed stream record", error=str(exc)[:200])
            continue
        if row is not None:
            rows.append((str((record.get("dynamodb") or {}).get("SequenceNumber", "")), row))
    tunnels = _tunnels([r for _, r in rows])
    todo = [TrafficEvent(seq, _to_entry(row, tunnels)) for seq, row in rows]
    failed: list[str] = []
    for start in range(0, len(todo), PUT_EVENTS_MAX):
        failed += _publish(todo[start:start + PUT_EVENTS_MAX])
    log.info("stream batch", records=len(records), published=len(todo) - len(failed), failed=len(failed))
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
