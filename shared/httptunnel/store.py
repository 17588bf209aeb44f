"""DynamoDB access for both tables (low-level client: thread-safe, unlike boto3 resources).

(Over 300 lines: every read and write of both tables in one place, so the key schema, the
conditions that guard ownership and the per-request call counter are read together.)

The client is created lazily once per process (real Lambda style: reused across warm
invocations); ``aws.reset()`` drops it (tests). Every DynamoDB call is counted per thread
(``calls()``) so forward can log how many calls one request cost.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

from botocore.exceptions import ClientError

from . import aws, config, dynamo_types, names

CONNECTION_TTL_S = 2 * 60 * 60 + 10 * 60  # max WebSocket age (2 h) + margin
RESERVATION_TTL_S = 7 * 24 * 60 * 60  # a tunnel id stays yours for 7 days after last use
ANSWER_TTL_S = 15 * 60  # an answer row outlives any wait (25 s) by far; TTL removes it
RESERVATION_PREFIX = "reservation#"

_COUNTER = threading.local()


def _client() -> Any:
    return aws.client("dynamodb")


def calls() -> int:
    """DynamoDB calls made by this thread so far (compare before/after a request)."""
    return getattr(_COUNTER, "n", 0)


def _call(op: str, **kwargs: Any) -> dict[str, Any]:
    _COUNTER.n = calls() + 1
    return getattr(_client(), op)(**kwargs)


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: dynamo_types.serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: dynamo_types.deserialize(v) for k, v in item.items()}


def _key(name: str, value: str) -> dict[str, Any]:
    return {name: {"S": value}}


# --------------------------------------------------------------------------- connections

@dataclass(frozen=True)
class Connection:
    connection_id: str
    tunnel_id: str
    connected_at: int  # unix ms
    domain_name: str = ""
    stage: str = ""
    subject: str | None = None
    subdomain: str | None = None
    rewrite: bool = True  # path-mode rewriting of answers; the agent can switch it off at connect
    rewrite_json: bool = False  # path-mode rewriting of JSON bodies too (ttf --rewrite-json)
    policy: str | None = None  # the edge policy's canonical JSON (httptunnel.policy), None = open
    capabilities: tuple[str, ...] = ()  # channel v2: what agent and server both speak (protocol.SERVER_CAPABILITIES)
    secret_version: int | None = None  # SSM version of the HS secret that verified the token (cleanup)
    sealed_hooks: bytes | None = None  # the policy's webhook secrets, KMS ciphertext (httptunnel.sealed)


def _connection_from(item: dict[str, Any]) -> Connection:
    return Connection(
        connection_id=item[names.CONN_PK],
        tunnel_id=item.get(names.CONN_TUNNEL_ID, ""),
        connected_at=int(item.get("connectedAt", 0)),
        domain_name=item.get("domainName", ""),
        stage=item.get("stage", ""),
        subject=item.get("subject"),
        subdomain=item.get("subdomain"),
        rewrite=item.get("rewrite") is not False,
        rewrite_json=item.get("rewriteJson") is True,
        policy=item.get("policy") or None,
        capabilities=tuple(c for c in str(item.get("capabilities") or "").split(",") if c),
        secret_version=int(item["secretVersion"]) if "secretVersion" in item else None,
        sealed_hooks=bytes(item[names.CONN_SEALED_HOOKS]) if names.CONN_SEALED_HOOKS in item else None,
    )


def put_connection(conn: Connection) -> None:
    _call("put_item", TableName=config.connections_table(), Item=_item({
        names.CONN_PK: conn.connection_id,
        names.CONN_TUNNEL_ID: conn.tunnel_id,
        "connectedAt": conn.connected_at,
        names.TTL_ATTRIBUTE: conn.connected_at // 1000 + CONNECTION_TTL_S,
        "domainName": conn.domain_name,
        "stage": conn.stage,
        "subject": conn.subject,
        "subdomain": conn.subdomain,
        "rewrite": None if conn.rewrite else False,  # stored only when switched off
        "rewriteJson": True if conn.rewrite and conn.rewrite_json else None,  # stored only when asked for
        "policy": conn.policy,  # without its webhook secrets when they are sealed (httptunnel.sealed)
        names.CONN_SEALED_HOOKS: conn.sealed_hooks,
        "capabilities": ",".join(conn.capabilities) or None,  # stored only when the agent announced some
        "secretVersion": conn.secret_version,
    }))


def get_connection(connection_id: str) -> Connection | None:
    out = _call("get_item", TableName=config.connections_table(),
                Key=_key(names.CONN_PK, connection_id), ConsistentRead=True)
    item = out.get("Item")
    if not item or RESERVATION_PREFIX in connection_id:
        return None
    return _connection_from(_plain(item))


def connection_exists(connection_id: str) -> bool:
    out = _call("get_item", TableName=config.connections_table(), Key=_key(names.CONN_PK, connection_id),
                ConsistentRead=True, ProjectionExpression="#pk", ExpressionAttributeNames={"#pk": names.CONN_PK})
    return "Item" in out


def delete_connection(connection_id: str) -> Connection | None:
    """Delete the row; returns what it held (ReturnValues=ALL_OLD: same call, same price), None if none."""
    out = _call("delete_item", TableName=config.connections_table(), Key=_key(names.CONN_PK, connection_id),
                ReturnValues="ALL_OLD")
    item = out.get("Attributes")
    if not item or RESERVATION_PREFIX in connection_id:
        return None
    return _connection_from(_plain(item))


def newest_connection_for_tunnel(tunnel_id: str) -> Connection | None:
    """The most recently connected agent of a tunnel (renewal keeps two alive for a while)."""
    out = _call("query", TableName=config.connections_table(), IndexName=names.TUNNEL_INDEX,
                KeyConditionExpression="#t = :t", ExpressionAttributeNames={"#t": names.CONN_TUNNEL_ID},
                ExpressionAttributeValues={":t": {"S": tunnel_id}})
    rows = [_connection_from(_plain(i)) for i in out.get("Items", [])]
    if not rows:
        return None
    return max(rows, key=lambda c: c.connected_at)


# --------------------------------------------------------------------------- reservations
# One row per tunnel id or name, keyed "reservation#<id>", kept 7 days after the last use.
# tokenHash: sha256 hex of the reclaim token the AGENT made and presented at $connect (the
# token itself is never stored). Rows written before agents made their own tokens carry
# reclaimHash instead (of a token that was also stored in plain text): no reclaim matches them.

@dataclass(frozen=True)
class Reservation:
    tunnel_id: str
    token_hash: str | None
    owner_sub: str | None
    ttl: int


def reservation_key(tunnel_id: str) -> str:
    return RESERVATION_PREFIX + tunnel_id


def get_reservation(tunnel_id: str) -> Reservation | None:
    out = _call("get_item", TableName=config.connections_table(),
                Key=_key(names.CONN_PK, reservation_key(tunnel_id)), ConsistentRead=True)
    item = out.get("Item")
    if not item:
        return None
    row = _plain(item)
    return Reservation(tunnel_id=row.get("reservedId", tunnel_id), token_hash=row.get("tokenHash"),
                       owner_sub=row.get("ownerSub"), ttl=int(row.get(names.TTL_ATTRIBUTE, 0)))


def _put_reservation(tunnel_id: str, token_hash: str | None, owner_sub: str | None, condition: str,
                     values: dict[str, Any]) -> bool:
    now = int(time.time())
    item = _item({
        names.CONN_PK: reservation_key(tunnel_id),
        "reservedId": tunnel_id,
        "tokenHash": token_hash,
        "ownerSub": owner_sub,
        names.TTL_ATTRIBUTE: now + RESERVATION_TTL_S,
    })
    attr_names = {"#pk": names.CONN_PK, "#ttl": names.TTL_ATTRIBUTE}
    try:
        _call("put_item", TableName=config.connections_table(), Item=item, ConditionExpression=condition,
              ExpressionAttributeNames={k: v for k, v in attr_names.items() if k in condition},
              ExpressionAttributeValues={":now": {"N": str(now)}, **values} if ":now" in condition else values)
    except ClientError as exc:
        if aws.is_conditional_failure(exc):
            return False
        raise
    return True


def take_new_id(tunnel_id: str, token_hash: str | None, owner_sub: str | None) -> bool:
    """Reserve a freshly generated id: only when no live reservation holds it."""
    return _put_reservation(tunnel_id, token_hash, owner_sub, "attribute_not_exists(#pk) OR #ttl < :now", {})


def reclaim_id(tunnel_id: str, token_hash: str, owner_sub: str | None) -> bool:
    """Keep an id the server handed out: the reservation must exist and hold this token's hash.

    With auth on (``owner_sub``) the reservation must also have no owner or this one, so a
    leaked reclaim token alone does not move a tunnel to another user. No reservation, no
    reclaim: a random-looking id can only be one the server generated.
    """
    condition = "attribute_exists(#pk) AND tokenHash = :hash"
    values: dict[str, Any] = {":hash": {"S": token_hash}}
    if owner_sub is not None:
        condition += " AND (attribute_not_exists(ownerSub) OR ownerSub = :sub)"
        values[":sub"] = {"S": owner_sub}
    return _put_reservation(tunnel_id, token_hash, owner_sub, condition, values)


def claim_name(name: str, owner_sub: str) -> bool:
    """Reserve a named subdomain for a JWT subject: free, expired, or already this subject's."""
    return _put_reservation(name, None, owner_sub, "attribute_not_exists(#pk) OR #ttl < :now OR ownerSub = :sub",
                            {":sub": {"S": owner_sub}})


# --------------------------------------------------------------------------- answers
# The pending table holds ANSWER rows only, one per (request, answering connection), written
# once (conditional PutItem) by the response Lambda, or by forward when it gives up (timeout,
# agent gone) so a late answer cannot take the slot. Nothing is written before the post and
# nothing is deleted: rows expire by TTL. forward reads only the key of the connection it
# posted to, so an answer from any other connection (forged, or a confused agent) is never
# read and cannot displace the real one.

REQUEST_ID_RE_TEXT = r"[A-Za-z0-9_.-]{1,128}"  # what an agent-sent request id must look like to be stored
_REQUEST_ID_RE = re.compile(REQUEST_ID_RE_TEXT)


@dataclass(frozen=True)
class Answer:
    """An answer row (status completed or error)."""
    status: str
    status_code: int = 0
    headers_json: str = "{}"
    body_b64: str = ""
    body_uploaded: bool = False
    body_sha256: str | None = None
    response_bytes: int = 0
    processing_time_ms: int = 0
    error_code: str | None = None
    error_message: str | None = None


def broken_answer(message: str) -> Answer:
    """What an agent sent that cannot reach the caller (a bad status, body or size): the caller gets 502."""
    return Answer(status=names.STATUS_ERROR, error_code="internal_error", error_message=message)


def bad_status(status_code: int) -> Answer | None:
    """The answer in place of a head or whole answer whose status is outside 100-599; None if it is fine."""
    return None if 100 <= status_code <= 599 else broken_answer(f"agent sent invalid status code {status_code}")


@dataclass(frozen=True)
class RequestContext:
    """What forward knows about a request; put on the row only when forward writes it (give-up)."""
    tunnel_id: str
    method: str
    path: str
    created_at: int  # unix ms
    request_bytes: int


def answer_key(request_id: str, connection_id: str) -> str:
    return f"{request_id}:{connection_id}"


def valid_request_id(request_id: str) -> bool:
    return bool(_REQUEST_ID_RE.fullmatch(request_id))


def put_answer(request_id: str, connection_id: str, answer: Answer, context: RequestContext | None = None) -> bool:
    """Write the answer row once. False when a row for this (request, connection) exists already."""
    now_ms = int(time.time() * 1000)
    fields: dict[str, Any] = {
        names.PENDING_PK: answer_key(request_id, connection_id),
        names.ANSWER_REQUEST_ID: request_id,
        names.ANSWER_CONNECTION_ID: connection_id,
        names.PENDING_STATUS: answer.status,
        "completedAt": now_ms,
        names.TTL_ATTRIBUTE: now_ms // 1000 + ANSWER_TTL_S,
    }
    if answer.status in (names.STATUS_COMPLETED, names.STATUS_STREAMING):  # streaming: the head, body follows
        fields.update({
            "statusCode": answer.status_code,
            "responseHeaders": answer.headers_json,
            "responseBytes": answer.response_bytes,
            "processingTimeMs": answer.processing_time_ms,
            "bodyUploaded": answer.body_uploaded,
        })
        if answer.body_uploaded:
            fields["bodySha256"] = answer.body_sha256
        else:
            fields["responseBody"] = answer.body_b64
    else:
        fields["errorCode"] = answer.error_code or "internal_error"
        fields["errorMessage"] = (answer.error_message or "")[:1000]
    if context is not None:
        fields.update({"tunnelId": context.tunnel_id, "method": context.method, "path": context.path[:1024],
                       "createdAt": context.created_at, "requestBytes": context.request_bytes})
    return _put_once(fields)


def _put_once(fields: dict[str, Any]) -> bool:
    """One conditional PutItem into the answers table: False when the key is taken already."""
    try:
        _call("put_item", TableName=config.pending_table(), Item=_item(fields),
              ConditionExpression="attribute_not_exists(#pk)", ExpressionAttributeNames={"#pk": names.PENDING_PK})
    except ClientError as exc:
        if aws.is_conditional_failure(exc):
            return False
        raise
    return True


def answer_exists(request_id: str, connection_id: str) -> bool:
    """Whether ``connection_id`` has answered ``request_id``: one consistent GetItem (1 RRU up to
    4 KB, billed on the whole item), cheaper than a refused conditional write (the item's WRU)."""
    out = _call("get_item", TableName=config.pending_table(), Key=_key(names.PENDING_PK, answer_key(request_id, connection_id)),
                ConsistentRead=True, ProjectionExpression="#pk", ExpressionAttributeNames={"#pk": names.PENDING_PK})
    return "Item" in out


def get_answer(request_id: str, connection_id: str) -> Answer | None:
    """The answer the connection ``connection_id`` gave to ``request_id``; None while there is none."""
    out = _call("get_item", TableName=config.pending_table(),
                Key=_key(names.PENDING_PK, answer_key(request_id, connection_id)), ConsistentRead=True)
    item = out.get("Item")
    if not item:
        return None
    row = _plain(item)
    return Answer(
        status=str(row.get(names.PENDING_STATUS)),
        status_code=int(row.get("statusCode", 0)),
        headers_json=row.get("responseHeaders", "{}"),
        body_b64=row.get("responseBody", ""),
        body_uploaded=bool(row.get("bodyUploaded", False)),
        body_sha256=row.get("bodySha256"),
        response_bytes=int(row.get("responseBytes", 0)),
        processing_time_ms=int(row.get("processingTimeMs", 0)),
        error_code=row.get("errorCode"),
        error_message=row.get("errorMessage"),
    )


# --------------------------------------------------------------------------- streamed answer frames
# A streamed answer (issue 23, shared/README.md "The chunk channel"): its head is the answer row
# above (status "streaming", written once, so forward's give-up write refuses a late head); every
# later frame is an item of its own, "<request id>:<connection id>#<seq>", written once (a resend
# is a no-op), deleted by forward once read, TTL as the backstop. Frame items carry no ``status``:
# the traffic log's stream filter never sees them. Inline bytes are stored as binary (a 22 KB
# chunk is 22 WRU, not the 30 of its base64).

@dataclass(frozen=True)
class Frame:
    """One stored frame after the head: body bytes, a segment notice, or the end."""
    seq: int
    body: bytes = b""
    segment: str | None = None  # the S3 key of a bulk-lane segment
    size: int = 0  # the segment's size
    sha256: str | None = None  # the segment's hex SHA-256
    end: bool = False
    total: int = 0  # the end's count of body bytes
    error: str | None = None  # the end's error code (the local answer broke mid-body)


def frame_key(request_id: str, connection_id: str, seq: int) -> str:
    return f"{answer_key(request_id, connection_id)}#{seq}"


def put_frame(request_id: str, connection_id: str, frame: Frame) -> bool:
    """Write one frame once (False: already stored, the frame was a resend)."""
    fields: dict[str, Any] = {
        names.PENDING_PK: frame_key(request_id, connection_id, frame.seq),
        names.ANSWER_REQUEST_ID: request_id,
        names.ANSWER_CONNECTION_ID: connection_id,
        "seq": frame.seq,
        names.TTL_ATTRIBUTE: int(time.time()) + ANSWER_TTL_S,
    }
    if frame.end:
        fields.update({"end": True, "endBytes": frame.total, "endError": frame.error})
    elif frame.segment is not None:
        fields.update({"segment": frame.segment, "segmentSize": frame.size, "segmentSha256": frame.sha256})
    else:
        fields["chunk"] = frame.body
    return _put_once(fields)


def get_frame(request_id: str, connection_id: str, seq: int) -> Frame | None:
    """Frame ``seq`` of the answer ``connection_id`` streams for ``request_id`` (consistent read)."""
    out = _call("get_item", TableName=config.pending_table(),
                Key=_key(names.PENDING_PK, frame_key(request_id, connection_id, seq)), ConsistentRead=True)
    item = out.get("Item")
    if not item:
        return None
    row = _plain(item)
    return Frame(seq=seq, body=bytes(row.get("chunk", b"")), segment=row.get("segment"),
                 size=int(row.get("segmentSize", 0)), sha256=row.get("segmentSha256"), end=bool(row.get("end")),
                 total=int(row.get("endBytes", 0)), error=row.get("endError"))


FRAME_DELETE_BATCH = 25  # BatchWriteItem's limit


def delete_frames(request_id: str, connection_id: str, seqs: list[int]) -> int:
    """Delete frames that were read (BatchWriteItem, 25 a call; unprocessed items retried a few
    times, then left to TTL). Returns how many were left."""
    table = config.pending_table()
    left = 0
    for start in range(0, len(seqs), FRAME_DELETE_BATCH):
        requests: list[dict[str, Any]] = [
            {"DeleteRequest": {"Key": _key(names.PENDING_PK, frame_key(request_id, connection_id, s))}}
            for s in seqs[start:start + FRAME_DELETE_BATCH]]
        for _ in range(3):
            out = _call("batch_write_item", RequestItems={table: requests})
            requests = out.get("UnprocessedItems", {}).get(table, [])
            if not requests:
                break
        left += len(requests)
    return left


def tunnels_of(connection_ids: list[str]) -> dict[str, str]:
    """connection id -> tunnel id for the rows that still exist (BatchGetItem, 100 keys a call).

    Used by stream_notifier (traffic log on) to name the tunnel of an answer row from the
    authoritative connection row, never from anything the agent sent."""
    out: dict[str, str] = {}
    wanted = [c for c in dict.fromkeys(connection_ids) if c and RESERVATION_PREFIX not in c]
    table = config.connections_table()
    for start in range(0, len(wanted), 100):
        keys: list[dict[str, Any]] = [_key(names.CONN_PK, c) for c in wanted[start:start + 100]]
        for _ in range(5):  # unprocessed keys (throttling) are retried a few times, then left unnamed
            got = _call("batch_get_item", RequestItems={table: {
                "Keys": keys, "ProjectionExpression": "#pk, #t",
                "ExpressionAttributeNames": {"#pk": names.CONN_PK, "#t": names.CONN_TUNNEL_ID}}})
            for item in got.get("Responses", {}).get(table, []):
                row = _plain(item)
                out[str(row[names.CONN_PK])] = str(row.get(names.CONN_TUNNEL_ID, ""))
            keys = got.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not keys:
                break
    return out


# --------------------------------------------------------------------------- cleanup scans

def scan_pages(table: str, start_key: dict[str, Any] | None = None, page_size: int = 100,
               attributes: tuple[str, ...] = ()) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """Yield (plain rows, LastEvaluatedKey) one page at a time; only ``attributes`` when given."""
    key = start_key
    while True:
        kwargs: dict[str, Any] = {"TableName": table, "Limit": page_size}
        if attributes:
            kwargs["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(attributes)))
            kwargs["ExpressionAttributeNames"] = {f"#a{i}": name for i, name in enumerate(attributes)}
        if key:
            kwargs["ExclusiveStartKey"] = key
        out = _call("scan", **kwargs)
        key = out.get("LastEvaluatedKey")
        yield [_plain(i) for i in out.get("Items", [])], key
        if not key:
            return


def delete_row(table: str, pk_name: str, pk: str) -> None:
    _call("delete_item", TableName=table, Key=_key(pk_name, pk))


def delete_expired(table: str, pk_name: str, pk: str, now_s: int) -> None:
    """Delete only if still expired (raises ClientError ConditionalCheckFailed otherwise)."""
    _call("delete_item", TableName=table, Key=_key(pk_name, pk), ConditionExpression="#ttl < :now",
          ExpressionAttributeNames={"#ttl": names.TTL_ATTRIBUTE},
          ExpressionAttributeValues={":now": {"N": str(now_s)}})
