"""tunnels: a tunnel's newest connection (remembered per warm instance) and the post to it.

``CONNECTIONS`` keeps a tunnel's newest connection row for ``CONNECTION_CACHE_S`` and an unknown
tunnel as absent for ``ABSENT_CACHE_S`` (bounded, least recently used evicted first,
thread-safe). A 410 on the post drops the entry and asks the Query once more, so a reconnect
never costs the caller an error.

The GSI is eventually consistent: a request right after ``$connect`` can miss the new row. When
the Query finds nothing but the name's reservation was written in the last ``INDEX_LAG_WAIT_S``
(every ``$connect`` writes it just before the connection row), the Query is asked again until
the row shows or that window ends, and "absent" is not remembered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import ClientError

from . import log, management, routing, sealed, store
from .ttlmap import MISSING, TTLMap

CONNECTION_CACHE_S = 5.0  # a warm instance reuses a tunnel's connection row this long
ABSENT_CACHE_S = 1.0  # an unknown tunnel is answered 404 from memory at most this long
CACHE_MAX = 1024  # tunnels (connections) remembered per instance and map (least recently used dropped first)
RETRY_POST_S = 0.5
INDEX_LAG_WAIT_S = 2.0  # after a $connect, how long a missing GSI row is waited for
INDEX_POLL_S = (0.05, 0.1, 0.2, 0.3)  # the Query's retries while waiting (then every 0.3 s)


def _alive(connection_id: str, endpoint: str) -> bool:
    """GET @connections: only a 410 there proves the socket is gone (any other failure: assume alive)."""
    try:
        return management.connection_alive(connection_id, endpoint)
    except ClientError as exc:
        log.warning("liveness check failed", connection_id=connection_id, error=type(exc).__name__)
        return True


# tunnel id -> its newest connection row (None: no such tunnel). The whole ``store.Connection``
# is kept (everything forward reads per request, the edge policy included, its webhook secrets
# opened by ``sealed.opened``): a hit costs no AWS call.
CONNECTIONS: TTLMap[str, store.Connection | None] = TTLMap(CACHE_MAX)


def connection_for(tunnel_id: str, open_secrets: bool = True) -> store.Connection | None:
    """The tunnel's newest connection: remembered, or asked of the GSI and remembered.
    ``open_secrets=False`` (caller_connect: it refuses webhook tunnels and may not Decrypt): a row
    with sealed webhook secrets comes back as stored (``sealed_hooks`` set, the policy without
    them) and is not remembered, so ``CONNECTIONS`` only ever holds opened rows."""
    found = CONNECTIONS.get(tunnel_id, MISSING)
    if found is not MISSING:
        return found
    conn = _newest(tunnel_id, open_secrets)
    if conn is None:
        connecting_until = _connecting_until(tunnel_id)
        if connecting_until is not None:  # found or not: not remembered as absent
            return _wait_for_index(tunnel_id, connecting_until, open_secrets)
    _remember(tunnel_id, conn, CONNECTION_CACHE_S if conn is not None else ABSENT_CACHE_S, open_secrets)
    return conn


def _newest(tunnel_id: str, open_secrets: bool = True) -> store.Connection | None:
    """The tunnel's newest connection row from the GSI, its webhook secrets opened (unless
    ``open_secrets`` is False: then as stored)."""
    row = store.newest_connection_for_tunnel(tunnel_id)
    return sealed.opened(row) if open_secrets else row


def _remember(tunnel_id: str, conn: store.Connection | None, ttl_s: float, opened: bool) -> None:
    """Remember a row, unless it holds sealed secrets that were not opened (``connection_for``)."""
    if conn is not None and conn.sealed_hooks is not None and not opened:
        return
    CONNECTIONS.put(tunnel_id, conn, ttl_s=ttl_s)


def _connecting_until(tunnel_id: str) -> float | None:
    """The wall-clock end of the GSI lag window when the name's reservation was just written
    (an agent is connecting with it); None otherwise."""
    reservation = store.get_reservation(tunnel_id)
    if reservation is None:
        return None
    until = reservation.ttl - store.RESERVATION_TTL_S + INDEX_LAG_WAIT_S
    return until if until > time.time() else None


def _wait_for_index(tunnel_id: str, until: float, open_secrets: bool = True) -> store.Connection | None:
    attempt = 0
    while (left := until - time.time()) > 0:
        time.sleep(min(INDEX_POLL_S[min(attempt, len(INDEX_POLL_S) - 1)], left))  # GSI lag, bounded by `until`
        attempt += 1
        conn = _newest(tunnel_id, open_secrets)
        if conn is not None:
            _remember(tunnel_id, conn, CONNECTION_CACHE_S, open_secrets)
            return conn
    return None


def forget_connection(tunnel_id: str, connection_id: str) -> None:
    """Forget the tunnel's remembered connection, if it is still ``connection_id``."""
    CONNECTIONS.pop(tunnel_id, only_if=lambda conn: conn is not None and conn.connection_id == connection_id)


def _send(conn: store.Connection, frame: str) -> bool:
    """Post the request to the agent. A 410 on the post removes the connection row only when
    GET @connections agrees the socket is gone; a live socket gets the post retried briefly.
    (Deleting a live agent's row would leave its tunnel answering 404 until it reconnects.)"""
    endpoint = management.management_endpoint(conn.domain_name, conn.stage)
    try:
        management.post_to_connection(conn.connection_id, frame, endpoint)
        return True
    except management.Gone:
        pass
    if not _alive(conn.connection_id, endpoint):
        store.delete_connection(conn.connection_id)
        log.info("stale connection removed", connection_id=conn.connection_id, tunnel_id=conn.tunnel_id)
        return False
    try:
        management.post_with_retry(conn.connection_id, frame, endpoint, budget_s=RETRY_POST_S)
        return True
    except (management.Gone, ClientError) as exc:
        log.warning("post refused by a live connection", connection_id=conn.connection_id, error=type(exc).__name__)
        return False


def tell(conn: store.Connection, frame: str) -> bool:
    """Post an informational frame (``stream_ack``, ``stream_cancel``) to the agent; False when the
    socket is gone or refused it (nothing is retried: the next ack says more, the agent's own
    deadline ends what a lost cancel would have)."""
    try:
        management.post_to_connection(conn.connection_id, frame, management.management_endpoint(conn.domain_name,
                                                                                                   conn.stage))
        return True
    except management.Gone:
        return False
    except ClientError as exc:
        log.warning("post to the agent failed", connection_id=conn.connection_id, error=type(exc).__name__)
        return False


@dataclass(frozen=True)
class Unsent:
    """The tunnel reconnected with another edge policy: nothing was posted. The caller checks the
    request against ``fresh`` and builds the frame again (its header rules may differ too)."""
    fresh: store.Connection


def post(route: routing.Route, conn: store.Connection, frame: str | Callable[[store.Connection], str],
         open_secrets: bool = True) -> store.Connection | Unsent | None:
    """Post to the tunnel's (cached) connection; a refused post drops the cached entry and goes
    once more through the Query (a reconnected agent has a new row by then). Returns the
    connection that took the request, None when none did, ``Unsent`` when the new connection
    carries a policy other than the one the request was checked against (or, with
    ``open_secrets=False``, sealed webhook secrets). ``frame`` may be made per connection
    (request ids are bound to the connection they are posted to)."""
    def made(c: store.Connection) -> str:
        return frame(c) if callable(frame) else frame
    if _send(conn, made(conn)):
        return conn
    forget_connection(route.tunnel_id, conn.connection_id)
    fresh = connection_for(route.tunnel_id, open_secrets)
    if fresh is None or fresh.connection_id == conn.connection_id:
        return None
    if fresh.policy != conn.policy or (fresh.sealed_hooks is not None and not open_secrets):
        return Unsent(fresh)
    return fresh if _send(fresh, made(fresh)) else None
