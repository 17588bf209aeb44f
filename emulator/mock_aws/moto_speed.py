"""Make moto cheaper per call without changing a byte of what its clients parse.

Measured with ``python -m scripts.bench.perf --py-spy moto.txt --spy-target moto --spy-gil`` (moto
5.2.5, 32 callers): per tunnelled request moto spent ~15 ms of CPU on ~6 DynamoDB calls plus
the stream poller's GetRecords, and under the one-at-a-time DynamoDB gate that CPU is the
stack's ceiling. Where it went, and what is done here:

* 28 %: moto's shape-driven response serializer (a botocore-model walk per attribute value).
  For the hot DynamoDB / DynamoDB Streams operations the JSON protocol's answer is the result
  dict itself with bytes in base64, datetimes as epoch seconds and no ``None`` members:
  :func:`fast_json_results` writes that directly. Only successful results of the operations in
  :data:`FAST_OPERATIONS` take this path; errors and everything else stay moto's.
  tests/emulator/test_moto_speed.py checks that botocore parses both to the same thing.
* 3.5 %: ``method_names_from_class`` runs ``inspect.getmembers`` over the handler class on every
  call; a class's functions do not change while moto runs, so it is memoised per class.
* ~20 %: werkzeug's development server (a new thread and a new TCP connection per call, since it
  always answers ``Connection: close``, then up to 10 ms draining each socket).
  :class:`KeepAliveServer` serves the same app with cheroot: a thread pool and HTTP/1.1
  keep-alive, so boto3's pooled connections are reused.

The Lambdas, the layer and their AWS calls are untouched: this only makes the fake AWS cheaper.
"""

from __future__ import annotations

import base64
import calendar
import functools
import json
import logging
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

LOG = logging.getLogger("emulator.moto")

# (service name as in botocore's model, operation) answered by the direct JSON writer.
FAST_OPERATIONS = frozenset({
    ("dynamodb", "GetItem"), ("dynamodb", "PutItem"), ("dynamodb", "UpdateItem"),
    ("dynamodb", "DeleteItem"), ("dynamodb", "Query"), ("dynamodb", "Scan"),
    ("dynamodb", "BatchWriteItem"), ("dynamodb", "BatchGetItem"),
    ("dynamodbstreams", "GetRecords"), ("dynamodbstreams", "GetShardIterator"),
})

_ORIGINAL_EXECUTE_RESULT: Any = None


def plain(value: Any) -> Any:
    """The JSON-protocol form of a moto result: what the shape serializer would emit."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):  # as moto's unixtimestamp: UTC fields, truncated to the ms
        seconds = calendar.timegm(value.timetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def fast_json_results() -> None:
    """Route successful results of :data:`FAST_OPERATIONS` around moto's shape serializer."""
    global _ORIGINAL_EXECUTE_RESULT
    from moto.core.responses import ActionResult

    if _ORIGINAL_EXECUTE_RESULT is not None:
        return
    original = ActionResult.execute_result
    _ORIGINAL_EXECUTE_RESULT = original

    def execute_result(self: Any, context: Any) -> Any:
        result = self.result
        service = context.service_model.service_name
        if (isinstance(result, Exception)
                or (service, context.operation_model.name) not in FAST_OPERATIONS
                or getattr(context.response, "RESPONSE_KEY_PATH_TO_TRANSFORMER", None)):
            return original(self, context)
        version = context.service_model.metadata.get("jsonVersion", "1.0")
        body = json.dumps(plain(result), separators=(",", ":"))
        return 200, {"Content-Type": f"application/x-amz-json-{version}"}, body

    ActionResult.execute_result = execute_result  # type: ignore[method-assign]


def cache_method_names() -> None:
    """Memoise ``method_names_from_class`` where moto's dispatch looks it up."""
    import moto.core.responses as responses

    if not hasattr(responses.method_names_from_class, "cache_info"):
        responses.method_names_from_class = functools.lru_cache(maxsize=None)(
            responses.method_names_from_class)


# Bounded memory for a stack left running (moto keeps both of these forever).
STREAM_RECORDS_KEPT = 10_000  # per shard (~6 KB each); when exceeded, the oldest are dropped down to:
STREAM_RECORDS_TRIM_TO = 8_000
SHARD_ITERATOR_TTL_S = 15 * 60  # as in AWS: a shard iterator expires after 15 minutes


def bound_stream_memory() -> None:
    """Keep moto's memory bounded (model instance tracking off; DynamoDB Streams trimmed).

    * Every GetRecords makes a new shard iterator that moto stores for ever: the stream poller,
      asking every 50 ms while idle, grew an idle stack by ~60 MB an hour. Iterators now expire
      after 15 minutes, as AWS's do (the poller uses each one within milliseconds).
    * Every write appends a stream record (with the item's old and new images) that moto never
      drops: ~19 KB per tunnelled request. A shard keeps the newest :data:`STREAM_RECORDS_KEPT`
      records (AWS keeps 24 hours; at 80 req/s that is ~40 s of writes); the stream poller reads
      within milliseconds of a write, so only records it already delivered are dropped. An
      iterator that points before the oldest kept record reads from the oldest one on, with a
      warning in the log (AWS would say TrimmedDataAccessException).
    """
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

    if getattr(StreamShard.add, "bounded", False):
        return
    original_add, original_get = StreamShard.add, StreamShard.get
    original_init, original_get_records = ShardIterator.__init__, DynamoDBStreamsBackend.get_records

    def add(self: Any, old: Any, new: Any) -> None:
        original_add(self, old, new)
        if len(self.items) > STREAM_RECORDS_KEPT:
            drop = len(self.items) - STREAM_RECORDS_TRIM_TO
            del self.items[:drop]
            self.starting_sequence_number += drop  # sequence numbers stay what they were

    def get(self: Any, start: int, quantity: int) -> Any:
        if start < self.starting_sequence_number:
            LOG.warning("stream reader behind the oldest kept record: %d records skipped",
                        self.starting_sequence_number - start)
            start = self.starting_sequence_number
        return original_get(self, start, quantity)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.born = time.monotonic()

    def get_records(self: Any, iterator_arn: str, limit: int) -> Any:
        result = original_get_records(self, iterator_arn, limit)
        iterators, now = self.shard_iterators, time.monotonic()
        while iterators:  # insertion order is creation order: expired ones are at the front
            arn, oldest = next(iter(iterators.items()))
            if now - getattr(oldest, "born", now) < SHARD_ITERATOR_TTL_S:
                break
            del iterators[arn]
        return result

    # moto's BaseModel.__new__ also appends EVERY model instance it ever makes (each item
    # version, stream record and shard iterator) to a per-class list that only its dashboard
    # (/moto-api/data.json) reads; nothing could ever be freed while that list held it.
    from moto.core.common_models import BaseModel

    def untracked_new(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, cls).__new__(cls)

    BaseModel.__new__ = staticmethod(untracked_new)  # type: ignore[assignment]
    add.bounded = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]
    StreamShard.get = get  # type: ignore[method-assign]
    ShardIterator.__init__ = init  # type: ignore[method-assign]
    DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]


def speed_up_moto() -> None:
    fast_json_results()
    cache_method_names()
    bound_stream_memory()


class KeepAliveServer:
    """``app`` served by cheroot (CherryPy's server: a pool of worker threads, HTTP/1.1 keep-alive,
    idle connections parked in a selector), with what the stack used of werkzeug's server:
    ``serve_forever``, ``shutdown`` (from another thread), ``server_close``, ``server_address``
    and ``app``.

    ``threads`` is large enough that the latency profile's per-call sleeps (which run before the
    DynamoDB gate, as the service's own latency would) never queue behind each other. waitress
    was tried first: its single I/O loop asks every open connection ``readable()/writable()`` on
    every event, and with 128 callers (a few hundred connections) moto's CPU per request tripled.
    """

    def __init__(self, host: str, port: int, app: Any, threads: int = 128) -> None:
        from cheroot import wsgi

        self.app = app
        self.server = wsgi.Server((host, port), app, numthreads=threads, server_name="moto",
                                  request_queue_size=1024, timeout=120, shutdown_timeout=5)
        self.server.prepare()  # binds: an ephemeral port is known from here on
        self.server_address = self.server.bind_addr

    def serve_forever(self) -> None:
        self.server.serve()  # returns after shutdown()

    def shutdown(self) -> None:
        self.server.stop()

    def server_close(self) -> None:
        self.server.stop()  # idempotent
