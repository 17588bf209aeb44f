"""stream_holds: how many function URL requests one tunnel holds open at once, counted across
execution environments (issue 29: a streaming tunnel must not starve the others).

On the function URL edge every request is a streamed invocation, and Lambda runs one invocation
per execution environment at a time ("for each concurrent request, Lambda provisions a separate
instance of your execution environment": https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html), so a request
that lasts (an SSE stream, a download, an agent that never answers) holds one environment of
forward_stream's reserved concurrency for up to ``max_stream_seconds``. ``fairness``'s in-flight
count lives in one environment and therefore sees one request at most: it cannot bound this. The
count here is shared: one item per tunnel in the pending table,

    requestId = "holds#<tunnel id>", leases = {<lease id>: <expiry, unix s>}, ttl = <latest expiry>

and one per agent token (``TOKEN_MAX_OPEN_STREAMS``: a holder with k tunnels would otherwise hold
k x ``TUNNEL_MAX_OPEN_STREAMS`` environments), the same lease under the same id on

    requestId = "holds#sub#<SHA-256 of the connection's subject, 64 hex>"

(``subject_item``: hashed, so any ``sub`` a JWT may carry, of any length or code point, is a short
key; ``#`` is in no tunnel id, ``routing.TUNNEL_ID_RE`` [a-z0-9]{12}, nor name, so no tunnel's item
can be a token's). A tunnel whose agent connected without a token (no subject) is counted per
tunnel only. The tunnel's lease is taken first, then the token's; refused the token's, the
tunnel's goes back (one more write) and the caller gets the same 429 naming the token's limit.
Two UpdateItems in a row rather than one TransactWriteItems: a transaction costs 2 WRU per item
(4 for the take, 6-8 with the give-back) against 2 + 2 here, and two transactions on one item at
once cancel each other (``TransactionConflict``) where conditional UpdateItems are serialized
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html, "Capacity
management for transactions" and "Transaction conflict handling");
what the order gives up is atomicity for a few milliseconds: a tunnel lease held by a request
its token then refuses, which can only refuse another request of that tunnel, never admit one
past a limit.

Only a tunnel that exists is counted (``tunnels.connection_for``, the lookup exchange makes next,
remembered in the warm instance either way): a flood of unknown ids costs no write and leaves no
item. In path mode a request for an unknown id that the Referer fallback sends to another tunnel
(single-tenant deployments only) is not counted. ``take`` adds a lease with one conditional
UpdateItem (``size(leases) < :max``: DynamoDB evaluates the condition and the update atomically,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html;
``size`` of a map is its number of child elements,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.OperatorsAndFunctions.html;
``attribute_exists`` first, since moto errs on ``size`` of a missing attribute)
and ``give_back`` removes it with another when the request ends. An environment that dies
mid-stream never gives its lease back, so every lease carries an expiry past the longest an
invocation can live (``max_stream_seconds`` + the function's 15 s margin + ``EXPIRY_MARGIN_S``);
a take that finds an item (tunnel's or token's) full reads it, removes the expired leases and
tries once more. Past ``TUNNEL_MAX_OPEN_STREAMS`` or ``TOKEN_MAX_OPEN_STREAMS``: 429
``tunnel_rate_limited`` with ``Retry-After``, and the environment remembers for ``FULL_MEMORY_S``
that the tunnel (or token: then all its tunnels) is full, so a flood of a full tunnel or token
costs at most one write per environment and second, not one per request.

The lease is lazy (``Lazy``): forward_stream asks for it only for a request still open after
``waiting.HOLD_AFTER_S`` (``waiting.wait_for_answer``'s ``on_long`` hook; refused, the slot is given
up as on a timeout, so a late answer is refused, and the caller gets the 429) or at a streamed
answer's head (refused: the agent gets ``stream_cancel`` ``gave_up``), and gives it back after
the answer is written, the caller's stream already closed. Once an environment has needed one
of a tunnel's leases, it takes the next ones before the post (``Lazy.take_early``, ``due_early``):
for ``FULL_MEMORY_S`` after finding the tunnel full (then it refuses before the post, without a
write), and for ``RECENT_MEMORY_S`` after taking or being refused a lease (the tunnel streams, or
its answers are slow). So a flood that slows a tunnel's own answers is counted from its first
slow request in each environment; with a lease only past 1 s and no memory, answers slowed to
~0.5 s by the agent's pacing were never counted and held every environment (README "Fair under
flood", 2026-12-07 13:20 UTC: the other tunnel 53 % errors).

Cost: two writes per function URL request that lasts past ``waiting.HOLD_AFTER_S``, streams, or
is ``due_early`` (take, give back; $1.25 per million such requests at $0.625 per million WRU) for
each limit that is on (Terraform ``tunnel_max_open_streams`` and ``token_max_open_streams``, 0 =
off): with both on (the defaults) and a token, 4 WRU, $2.50 per million counted requests; a
refusal by the token costs 3 writes and a consistent read at most, then none for a second in
that environment; none for a quick tunnel's buffered answer. The HTTP
API edge (``forward``) does not use it: its requests last at most 25 s and API Gateway's stage
throttle bounds them. The row is not in the connections table, so the GSI, cleanup's liveness
probes and the traffic log (``status`` absent: the stream filter drops it) never see it; cleanup
deletes it once expired, as any other row of the table. A store that fails open: when DynamoDB
refuses the take for any other reason than the condition, the request goes on, logged
(availability first; the reservation still bounds the whole function).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from botocore.exceptions import ClientError

from . import aws, config, log, names, store, tunnels
from .replies import ForwardResult, fail
from .ttlmap import TTLMap

PREFIX = "holds#"
SUBJECT_PREFIX = "sub#"  # a token's item: "holds#sub#<sha256 of its sub>" ('#' is never in a tunnel id)
LEASES = "leases"
FUNCTION_MARGIN_S = 15  # forward_stream's timeout is max_stream_seconds + this (terraform/main.tf)
EXPIRY_MARGIN_S = 30  # a lease outlives its invocation by this much at least
FULL_MEMORY_S = 1.0  # after a refusal, this environment refuses the tunnel (or token) without a write for this long
RECENT_MEMORY_S = 10.0  # after a lease taken or refused, this environment takes the tunnel's leases before the post
TUNNELS_MAX = 4096
REFUSED = "this tunnel has as many open requests as its limit allows"
REFUSED_TOKEN = "the tunnels of this tunnel's token have as many open requests as the token's limit allows"


@dataclass(frozen=True)
class Hold:
    """A lease taken (``lease_id``, held on each of ``items``: the tunnel id and/or the token's
    ``subject_item``), or none needed (``lease_id`` empty: the limits are off)."""
    tunnel_id: str
    lease_id: str = ""
    items: tuple[str, ...] = ()


# item ("<tunnel id>" or "sub#<digest>") -> when it was found full
FULL: TTLMap[str, float] = TTLMap(TUNNELS_MAX, ttl_s=FULL_MEMORY_S)
RECENT: TTLMap[str, float] = TTLMap(TUNNELS_MAX, ttl_s=RECENT_MEMORY_S)  # tunnel -> when a Lazy last needed a lease


def subject_item(subject: str) -> str:
    """The token's item: its ``sub`` hashed, so any string a JWT carries (any length, any code
    point, a lone surrogate included) is a short key of [0-9a-f], and never a tunnel id's."""
    return SUBJECT_PREFIX + hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()


def _key(item: str) -> dict[str, Any]:
    return {names.PENDING_PK: {"S": PREFIX + item}}


def lease_seconds() -> int:
    """How long a lease lasts if never given back: past the longest invocation of forward_stream."""
    return int(math.ceil(config.max_stream_seconds())) + FUNCTION_MARGIN_S + EXPIRY_MARGIN_S


def _add(item: str, lease_id: str, limit: int, expiry: int) -> bool:
    """One conditional UpdateItem: the lease is added when fewer than ``limit`` are held."""
    try:
        store._call("update_item", TableName=config.pending_table(), Key=_key(item),
                    UpdateExpression="SET #l.#id = :exp, #ttl = :exp",
                    ConditionExpression="attribute_exists(#l) AND size(#l) < :max",
                    ExpressionAttributeNames={"#l": LEASES, "#id": lease_id, "#ttl": names.TTL_ATTRIBUTE},
                    ExpressionAttributeValues={":exp": {"N": str(expiry)}, ":max": {"N": str(limit)}})
    except ClientError as exc:
        if aws.is_conditional_failure(exc):
            return False
        raise
    return True


def _tidy(item: str, now_s: int, expiry: int) -> None:
    """Make the item able to take a lease: create it when missing (an empty map, conditional, so
    two environments cannot overwrite each other's leases), else remove the expired leases."""
    got = store._call("get_item", TableName=config.pending_table(), Key=_key(item), ConsistentRead=True)
    found = got.get("Item")
    if found is None or LEASES not in found:
        try:
            store._call("put_item", TableName=config.pending_table(),
                        Item={**_key(item), LEASES: {"M": {}}, names.TTL_ATTRIBUTE: {"N": str(expiry)}},
                        ConditionExpression="attribute_not_exists(#l)", ExpressionAttributeNames={"#l": LEASES})
        except ClientError as exc:
            if not aws.is_conditional_failure(exc):
                raise
        return
    expired = [lease for lease, value in found[LEASES].get("M", {}).items() if int(value.get("N", "0")) < now_s]
    if not expired:
        return
    attr_names = {"#l": LEASES, **{f"#e{i}": lease for i, lease in enumerate(expired)}}
    store._call("update_item", TableName=config.pending_table(), Key=_key(item),
                UpdateExpression="REMOVE " + ", ".join(f"#l.#e{i}" for i in range(len(expired))),
                ConditionExpression="attribute_exists(#l)", ExpressionAttributeNames=attr_names)
    log.info("stream leases expired (an environment ended without giving them back)", item=item,
             expired=len(expired))


def _take_one(item: str, lease_id: str, limit: int, now_s: int, expiry: int) -> bool:
    """The lease on one item: added, or (full) the expired ones removed and added once more."""
    if _add(item, lease_id, limit, expiry):
        return True
    _tidy(item, now_s, expiry)
    return _add(item, lease_id, limit, expiry)


def refused(retry_after_s: int, message: str = REFUSED) -> ForwardResult:
    refused = fail(429, "tunnel_rate_limited", message)
    refused.result["headers"]["retry-after"] = str(retry_after_s)
    return refused


def _counted(tunnel_id: str) -> list[tuple[str, int, str]]:
    """The items a lease of this tunnel's request goes on, with their limits and refusals: the
    tunnel's (``TUNNEL_MAX_OPEN_STREAMS``), then its token's (``TOKEN_MAX_OPEN_STREAMS``, only
    for a connection with a subject). None when both are off or the tunnel does not exist."""
    tunnel_limit, token_limit = config.tunnel_max_open_streams(), config.token_max_open_streams()
    if tunnel_limit <= 0 and token_limit <= 0:
        return []
    conn = tunnels.connection_for(tunnel_id)
    if conn is None:
        return []  # an unknown tunnel (exchange answers 404) costs no write and leaves no item
    counted = [(tunnel_id, tunnel_limit, REFUSED)] if tunnel_limit > 0 else []
    if token_limit > 0 and conn.subject:  # an anonymous agent's tunnel is counted per tunnel only
        counted.append((subject_item(conn.subject), token_limit, REFUSED_TOKEN))
    return counted


def take(tunnel_id: str, clock: Callable[[], float] = time.time) -> Hold | ForwardResult:
    """A lease for this request (forward_stream asks through ``Lazy``) (``give_back`` it when the
    request ends) on the tunnel's item, then on its token's, or the 429 the caller gets. Both
    limits off, or no such tunnel: a Hold without a lease."""
    counted = _counted(tunnel_id)
    if not counted:
        return Hold(tunnel_id)
    for item, _, message in counted:
        if FULL.get(item) is not None:
            return refused(1, message)
    now = clock()
    expiry = int(now) + lease_seconds()
    lease_id = secrets.token_hex(8)
    taken: list[str] = []
    try:
        for item, limit, message in counted:
            if not _take_one(item, lease_id, limit, int(now), expiry):
                _remove(taken, lease_id, tunnel_id)  # the token is full: the tunnel's lease goes back
                FULL.put(item, now)
                log.info("tunnel over its open streams" if item == tunnel_id else "token over its open streams",
                         tunnel_id=tunnel_id, item=item, limit=limit)
                return refused(1, message)
            taken.append(item)
    except ClientError as exc:  # fail open: the reservation still bounds the function
        log.warning("stream lease not taken: request goes on uncounted", tunnel_id=tunnel_id,
                    error=aws.error_code(exc))
    return Hold(tunnel_id, lease_id, tuple(taken)) if taken else Hold(tunnel_id)


def due_early(tunnel_id: str) -> bool:
    """Whether this environment expects the tunnel's next request to need its lease: it found the
    tunnel (or its token) full, or needed one of its leases, lately (module docstring)."""
    if FULL.get(tunnel_id) is not None or RECENT.get(tunnel_id) is not None:
        return True
    return len(FULL) > 0 and any(FULL.get(item) is not None for item, _, _ in _counted(tunnel_id) if item != tunnel_id)


class Lazy:
    """One request's lease, taken only when needed (a quick buffered answer of a quick tunnel
    writes nothing): ``take_early`` before the post, ``take`` as ``waiting.wait_for_answer``'s
    ``on_long`` hook (a wait past ``waiting.HOLD_AFTER_S``) and again at a streamed answer's head
    (each asks DynamoDB once at most); ``give_back`` once the answer is written."""

    def __init__(self, tunnel_id: str = "") -> None:
        self.tunnel_id = tunnel_id  # forward_stream sets it once the request is routed
        self.held: Hold | None = None
        self.refusal: ForwardResult | None = None

    def take_early(self) -> bool:
        """Before the post: the lease now when ``due_early``; False: refused (``refusal``)."""
        return not due_early(self.tunnel_id) or self.take()

    def take(self) -> bool:
        """True when the request holds a lease (or needs none); False: refused (``refusal``)."""
        if self.held is None and self.refusal is None:
            got = take(self.tunnel_id)
            if isinstance(got, ForwardResult):
                self.refusal = got
            else:
                self.held = got
            if isinstance(got, ForwardResult) or got.lease_id:  # counted: its next requests here count before the post
                RECENT.put(self.tunnel_id, time.monotonic())
        return self.held is not None

    def give_back(self) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            give_back(held)


def _remove(items: list[str] | tuple[str, ...], lease_id: str, tunnel_id: str) -> None:
    """Remove the lease from each item (one UpdateItem each); a failure leaves it to expire."""
    for item in items:
        FULL.pop(item)
        try:
            store._call("update_item", TableName=config.pending_table(), Key=_key(item),
                        UpdateExpression="REMOVE #l.#id", ConditionExpression="attribute_exists(#l)",
                        ExpressionAttributeNames={"#l": LEASES, "#id": lease_id})
        except ClientError as exc:
            if not aws.is_conditional_failure(exc):
                log.warning("stream lease not given back: it expires", tunnel_id=tunnel_id, item=item,
                            error=aws.error_code(exc))


def give_back(hold: Hold) -> None:
    """End the request's lease on each item it holds (one UpdateItem each); never raises."""
    if hold.lease_id:
        _remove(hold.items, hold.lease_id, hold.tunnel_id)
