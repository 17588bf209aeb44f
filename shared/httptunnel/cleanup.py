"""cleanup: scheduled removal of expired rows (both tables) and of connections whose socket is gone.

Paginated Scan, bounded per run (``MAX_DELETES`` deletes, ``MAX_PROBES`` liveness probes and a
time budget from the Lambda context). Expired rows are deleted with a ``ttl < now`` condition,
so a row renewed meanwhile (a reclaimed reservation) survives; running twice is harmless.
Reservation rows are only removed once expired. moto and DynamoDB Local never expire TTL rows;
real DynamoDB does within ~48 h, this makes it prompt and deterministic.

Secret rotation: a connection row records the SSM version of the HS secret that verified its
token (``secretVersion``); a row of an older version than the parameter's current one has its
socket closed and is deleted (its agent reconnects and meets the new secret). With connect's
secret cache (``auth.SECRET_CACHE_S``, 5 min) a rotation reaches every socket within 5 min plus
the next run and its scan. JWKS tokens carry no version: key rotation at the IdP is unchanged.

Each run logs one "cleanup run" line; its ``live_connections`` (connection rows neither expired
nor found stale, counted only when ``complete``) is the dashboard's active-tunnels gauge
(terraform/modules/observability).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from . import auth, aws, config, log, management, names, store

MAX_DELETES = 500
MAX_PROBES = 200
SAFETY_MARGIN_MS = 5_000
STALE_GRACE_MS = 60_000  # never probe a connection younger than this (it may still be handshaking)


@dataclass
class Summary:
    scanned: int = 0
    expired_deleted: int = 0
    stale_deleted: int = 0
    rotated_closed: int = 0  # connections whose token an older HS secret verified (jwt_secret_version raised)
    probed: int = 0
    live_connections: int = 0  # connection rows neither expired nor found stale: the active tunnels gauge
    complete: bool = True
    errors: int = 0
    tables: list[str] = field(default_factory=list)

    def budget_left(self) -> bool:
        return self.expired_deleted + self.stale_deleted + self.rotated_closed < MAX_DELETES


def _expired(row: dict[str, Any], now_s: int) -> bool:
    ttl = row.get(names.TTL_ATTRIBUTE)
    return ttl is not None and int(ttl) < now_s


def _delete_expired(table: str, pk_name: str, pk: str, now_s: int) -> bool:
    try:
        store.delete_expired(table, pk_name, pk, now_s)
    except ClientError as exc:
        if aws.is_conditional_failure(exc):
            return False
        raise
    return True


def _stale(row: dict[str, Any], now_ms: int, summary: Summary) -> bool:
    """True when the row's socket answers 410 on GET @connections."""
    pk = str(row[names.CONN_PK])
    if pk.startswith((store.RESERVATION_PREFIX, names.SOCKET_PREFIX)) or summary.probed >= MAX_PROBES:
        return False  # a caller socket's row (issue 24) lives on the caller API: TTL removes it
    if now_ms - int(row.get("connectedAt", 0)) < STALE_GRACE_MS:
        return False
    summary.probed += 1
    endpoint = management.management_endpoint(str(row.get("domainName", "")), str(row.get("stage", "")))
    return not management.connection_alive(pk, endpoint)


# What cleanup reads of a row: never the edge policy (basic-auth hashes, webhook secrets), the
# subject or anything else a sweep does not need.
SCANNED_ATTRIBUTES = ("connectedAt", "domainName", "stage", names.TTL_ATTRIBUTE, "secretVersion")


def _secret_version_now(summary: Summary) -> int | None:
    """The HS secret's SSM version (None without one, or when SSM cannot say: nothing is closed)."""
    try:
        return auth.current_secret_version()
    except ClientError as exc:
        summary.errors += 1
        log.warning("secret version unreadable: no row closed for rotation", error=type(exc).__name__)
        return None


def _rotated_out(row: dict[str, Any], version: int | None) -> bool:
    """A connection whose token was verified with an older HS secret than the current one."""
    held = row.get("secretVersion")
    return version is not None and held is not None and int(held) < version


def _sweep(table: str, pk_name: str, is_connections: bool, summary: Summary, time_left_ms: Any) -> None:
    version = _secret_version_now(summary) if is_connections else None
    for rows, _ in store.scan_pages(table, attributes=(pk_name, *SCANNED_ATTRIBUTES)):
        for row in rows:
            if not summary.budget_left() or time_left_ms() < SAFETY_MARGIN_MS:
                summary.complete = False
                return
            summary.scanned += 1
            now_s, now_ms = int(time.time()), int(time.time() * 1000)
            pk = str(row[pk_name])
            if _expired(row, now_s):
                summary.expired_deleted += int(_delete_expired(table, pk_name, pk, now_s))
                continue
            if not is_connections:
                continue
            if _rotated_out(row, version):
                _close_rotated(table, pk_name, pk, row)
                summary.rotated_closed += 1
                continue
            try:
                stale = _stale(row, now_ms, summary)
            except ClientError as exc:
                summary.errors += 1
                summary.live_connections += 1  # not proven gone: still counted as active
                log.warning("liveness probe failed", connection_id=pk, error=type(exc).__name__)
                continue
            if stale:
                store.delete_row(table, pk_name, pk)
                summary.stale_deleted += 1
            elif not pk.startswith((store.RESERVATION_PREFIX, names.SOCKET_PREFIX)):
                summary.live_connections += 1


def _close_rotated(table: str, pk_name: str, pk: str, row: dict[str, Any]) -> None:
    """Close the socket (its agent reconnects and presents its token to the new secret) and
    delete the row, so forward stops routing to it at once."""
    endpoint = management.management_endpoint(str(row.get("domainName", "")), str(row.get("stage", "")))
    try:
        management.close_connection(pk, endpoint)
    except ClientError as exc:
        log.warning("closing a rotated-out connection failed; its row goes anyway", connection_id=pk,
                    error=type(exc).__name__)
    store.delete_row(table, pk_name, pk)
    log.info("connection closed: its token predates the secret rotation", connection_id=pk)


def run(context: Any = None) -> dict[str, Any]:
    started = time.monotonic()

    def time_left_ms() -> float:
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            return float(context.get_remaining_time_in_millis())
        return 60_000 - (time.monotonic() - started) * 1000

    summary = Summary()
    for table, pk_name, is_conn in ((config.connections_table(), names.CONN_PK, True),
                                    (config.pending_table(), names.PENDING_PK, False)):
        summary.tables.append(table)
        _sweep(table, pk_name, is_conn, summary, time_left_ms)
    result = {k: v for k, v in summary.__dict__.items()}
    log.info("cleanup run", **result)
    return result
