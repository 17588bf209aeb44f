"""moto, hooked: the AWS endpoint of the local stack.

* A cheroot server (thread pool, keep-alive: :mod:`emulator.mock_aws.moto_speed`) on 127.0.0.1:<ephemeral>:
  in its own process for the stack (``emulator.mock_aws.moto_process``: moto's threads no longer share
  the gateway's GIL), or in this process (:class:`MotoService`, the emulator tests).
* ``/_emulator/...`` control routes (stats, faults, uploaded code) are answered before moto.
* Its WSGI app is wrapped to count DynamoDB calls by operation, apply the latency profile,
  inject ``ProvisionedThroughputExceededException`` at a configurable rate, and (fault
  ``gsi_lag_s``) keep a row written by PutItem out of GSI Query results for that long, as
  DynamoDB's eventually consistent indexes may. Calls made
  by the emulator itself (stream polling, TTL expiry) carry ``x-emulator-internal`` and are
  neither counted, delayed nor faulted.
* moto's own Lambda invocation is switched off (:func:`disable_moto_lambda_invoke`): moto would
  invoke a stream mapping's function synchronously inside PutItem (ignoring the filter, and,
  without Docker, failing and dropping the records), Lambda targets of EventBridge rules
  inside PutEvents, and receive an SQS mapping's messages inside SendMessage. The emulator
  delivers stream records, queue messages and schedules itself.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import threading
import time
import zlib
from typing import Any, Callable, Iterable

import boto3
from botocore.config import Config

from emulator.mock_aws.moto_speed import KeepAliveServer, speed_up_moto
from emulator.profiles import LatencyProfile
from emulator.stats import Faults, Stats

LOG = logging.getLogger("emulator.moto")
INTERNAL_HEADER = "x-emulator-internal"
DYNAMODB_TARGET = "DynamoDB_20120810."
THROTTLE_BODY = json.dumps({
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded "
               "(fault injected by the local emulator)",
}).encode()

_ORIGINAL_INVOKE: Callable[..., Any] | None = None
_ORIGINAL_SEND_DYNAMODB_ITEMS: Callable[..., Any] | None = None


def disable_moto_lambda_invoke() -> None:
    """Switch off moto's own Lambda invocation (the emulator delivers streams and schedules).

    * ``LambdaFunction.invoke`` -> a no-op returning b"" (falsy: stream records are kept).
    * ``LambdaBackend.send_dynamodb_items`` -> b"" without building the event. moto calls it from
      ``StreamShard.add`` on EVERY write to a table with a stream mapping, with ALL records the
      shard holds (they are only cleared when the invoke returns something truthy, which ours
      never does): it converted and ``json.dumps``-ed the whole stream history per write — O(n)
      per write, most of the stack's CPU under load, for an event that was then thrown away.
    """
    global _ORIGINAL_INVOKE, _ORIGINAL_SEND_DYNAMODB_ITEMS
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    if _ORIGINAL_INVOKE is not None:
        return
    _ORIGINAL_INVOKE = LambdaFunction.invoke
    _ORIGINAL_SEND_DYNAMODB_ITEMS = LambdaBackend.send_dynamodb_items

    def invoke(self: Any, body: str, request_headers: Any, response_headers: Any) -> bytes:
        LOG.debug(json.dumps({"event": "moto_invoke_suppressed", "function": self.function_name}))
        return b""

    def send_dynamodb_items(self: Any, function_arn: str, items: list[Any], source: str) -> bytes:
        return b""

    LambdaFunction.invoke = invoke  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = send_dynamodb_items  # type: ignore[method-assign]

    # An SQS mapping registers itself on its queue, and moto's Queue.add_message then RECEIVES the
    # queue's messages inside every SendMessage (for the invoke above, which does nothing): each receive
    # counts towards the redrive policy's maxReceiveCount and holds the message group in flight. The
    # mapping stays listed (discover reads it); emulator.mock_aws.queues delivers it.
    original_create = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = original_create(self, spec)
        from moto.sqs.models import sqs_backends

        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        return esm

    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]


def cache_moto_jsonpath() -> None:
    """moto's EventBridge builds a new jsonpath_ng parser (ply yacc tables) for every input path
    of every matched target on every PutEvents (``EventTemplateParser.parse`` calls
    ``jsonpath_ng.ext.parse``): ~9% of the stack's CPU under load. Parsed expressions are
    immutable, so the same expression text gets the same parsed object."""
    import functools

    import jsonpath_ng.ext

    if not hasattr(jsonpath_ng.ext.parse, "cache_info"):
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)


# Services whose moto backend follows from the SigV4 signing service (+ X-Amz-Target) alone:
# moto's own routing special-cases others by path/host (s3, sagemaker, ses, bedrock, ...).
FAST_ROUTED_SERVICES = frozenset({"dynamodb", "events", "logs", "lambda", "iam", "sts"})


class CachedDispatch:
    """moto's ``DomainDispatcherApplication``, with its routing decision remembered.

    moto re-derives the backend on every request under one global lock, and doing so lists
    moto's ~200 module folders (``list_of_moto_modules``) and may try hundreds of URL regexes:
    ~1 ms per call. For the services above the answer depends only on (signing service,
    region, X-Amz-Target prefix), so the first request of each kind goes through moto's routing
    and the Flask app it picked is reused for the next ones. Anything else: moto's routing.
    """

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        self.apps: dict[tuple[str, str, str], Any] = {}

    @staticmethod
    def route_key(environ: dict[str, Any]) -> tuple[str, str, str] | None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return None
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/moto-api", "/latest/", "/favicon.ico")):
            return None
        try:
            _, _, region, service, _ = auth.split(",")[0].split()[1].split("/")
        except (IndexError, ValueError):
            return None
        service = service.lower()
        if service not in FAST_ROUTED_SERVICES:
            return None
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        return service, region, target.split(".", 1)[0]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        key = self.route_key(environ)
        app = self.apps.get(key) if key is not None else None
        if app is None:
            app = self.dispatcher.get_application(environ)
            if key is not None:
                self.apps[key] = app
        return app(environ, start_response)


class FairLock:
    """A first-come, first-served lock. threading.Lock lets the releasing thread take it again at
    once and leaves waiters to chance: under load some DynamoDB calls starved for seconds and
    their requests ran past API Gateway's 30 s. Here the lock is handed to the oldest waiter."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: collections.deque[threading.Event] = collections.deque()
        self._held = False

    def __enter__(self) -> "FairLock":
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return self
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # set by __exit__ of the holder: the lock is ours, still marked held
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._held = False


CONTROL_PREFIX = "/_emulator/"


def code_bytes(account_id: str, region: str, function: str | None, layer: str | None) -> bytes | None:
    """The zip Terraform uploaded for a function (by name) or a layer version (by ARN), from moto's
    backend in THIS process; None when there is none."""
    from moto.awslambda.utils import get_backend

    try:
        backend = get_backend(account_id, region)
        if function:
            return backend.get_function(function).code_bytes or None
        for entry in backend._layers._layers.values():
            for version in entry.layer_versions.values():
                if version.arn == layer:
                    return version.code_bytes or None
    except Exception:  # noqa: BLE001 - unknown function/layer, or no zip
        return None
    return None


def build_app(stats: Stats, faults: Faults, profile: LatencyProfile) -> "GatedApp":
    """moto's WSGI app with every hook: Lambda invoke off, jsonpath cache, cached routing, the gate."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    disable_moto_lambda_invoke()
    cache_moto_jsonpath()
    speed_up_moto()
    return GatedApp(CachedDispatch(DomainDispatcherApplication(create_backend_app)), stats, faults, profile)


class GatedApp:
    """WSGI middleware around moto: counting, latency, faults for DynamoDB calls."""

    def __init__(self, app: Callable[..., Iterable[bytes]], stats: Stats, faults: Faults,
                 profile: LatencyProfile) -> None:
        self.app = app
        self.stats = stats
        self.faults = faults
        self.profile = profile
        self.dynamodb_lock = FairLock()
        self.recent_puts: dict[tuple[str, str], float] = {}  # (table, item) -> monotonic time, for gsi_lag_s

    def dynamodb(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """One DynamoDB (or Streams) call at a time: DynamoDB applies each write atomically, moto
        mutates the stored item attribute by attribute, so a GetItem running in another thread
        could see an UpdateItem half-applied (e.g. ``status`` already ``completed`` but no
        ``responseBody`` yet: a 200 with an empty body). Flask materialises the body inside."""
        with self.dynamodb_lock:
            return list(self.app(environ, start_response))

    def control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """``/_emulator/...``: the stack's view into this moto (stats, faults, uploaded code).

        GET /_emulator/stats, POST /_emulator/stats/reset -> {"dynamodb_calls": {...}}
        GET|POST /_emulator/faults (POST body: FaultSettings fields) -> current settings
        GET /_emulator/code?account=&region=&function=NAME | &layer=ARN -> the zip bytes (404: none)
        """
        from urllib.parse import parse_qs

        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        status, ctype, body = "404 Not Found", "application/json", b'{"error": "not found"}'
        try:
            if path == "/_emulator/stats":
                body = json.dumps({"dynamodb_calls": self.stats.snapshot()["dynamodb_calls"]}).encode()
                status = "200 OK"
            elif path == "/_emulator/stats/reset" and method == "POST":
                self.stats.reset()
                status, body = "200 OK", b'{"dynamodb_calls": {}}'
            elif path == "/_emulator/faults":
                if method == "POST":
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                    self.faults.update(json.loads(environ["wsgi.input"].read(length) or b"{}"))
                status, body = "200 OK", json.dumps(dict(self.faults.settings.__dict__)).encode()
            elif path == "/_emulator/code":
                query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
                data = code_bytes(query.get("account", ""), query.get("region", ""),
                                  query.get("function"), query.get("layer"))
                if data:
                    status, ctype, body = "200 OK", "application/zip", data
        except (ValueError, TypeError) as exc:
            status, body = "400 Bad Request", json.dumps({"error": str(exc)}).encode()
        start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        internal = "HTTP_X_EMULATOR_INTERNAL" in environ
        if not target.startswith(DYNAMODB_TARGET) or internal:
            if target.startswith("DynamoDB"):
                return self.dynamodb(environ, start_response)
            return self.app(environ, start_response)
        operation = target[len(DYNAMODB_TARGET):]
        self.stats.count_dynamodb(operation)
        delay_ms = self.profile.dynamodb(operation)
        if delay_ms:
            time.sleep(delay_ms / 1000)  # a server pool thread: never the event loop
        if self.faults.hit(self.faults.settings.dynamodb_throttle_rate):
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                               ("Content-Length", str(len(THROTTLE_BODY)))])
            return [THROTTLE_BODY]
        if self.faults.settings.gsi_lag_s > 0 and operation in ("PutItem", "Query"):
            return self.lagging_index(operation, environ, start_response)
        return self.dynamodb(environ, start_response)

    def lagging_index(self, operation: str, environ: dict[str, Any],
                      start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Fault ``gsi_lag_s``: remember when PutItem wrote each item; a Query on an index leaves
        out the items written less than that long ago (an UpdateItem since makes the item visible)."""
        lag = self.faults.settings.gsi_lag_s
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        request = json.loads(raw or b"{}")
        table = str(request.get("TableName", ""))
        now = time.monotonic()
        if operation == "PutItem":
            for key in [k for k, at in self.recent_puts.items() if now - at > 10 * lag]:
                self.recent_puts.pop(key, None)
            self.recent_puts[(table, json.dumps(request.get("Item"), sort_keys=True))] = now
            return self.dynamodb(environ, start_response)
        if not request.get("IndexName"):
            return self.dynamodb(environ, start_response)
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            seen.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(self.dynamodb(environ, capture))
        if seen["status"].startswith("200"):
            out = json.loads(body)
            items = out.get("Items", [])
            kept = [i for i in items if now - self.recent_puts.get((table, json.dumps(i, sort_keys=True)), -lag) >= lag]
            if len(kept) != len(items):
                out.update(Items=kept, Count=len(kept))
                body = json.dumps(out).encode()
        fixed = {"content-length": str(len(body)), "x-amz-crc32": str(zlib.crc32(body))}
        start_response(seen["status"], [(k, fixed.get(k.lower(), v)) for k, v in seen["headers"]])
        return [body]


class MotoService:
    def __init__(self, stats: Stats, faults: Faults, profile: LatencyProfile,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.stats = stats
        self.faults = faults
        self.profile = profile
        self.host = host
        self.port = port
        self.server: Any = None
        self.thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}"

    def start(self) -> str:
        app = build_app(self.stats, self.faults, self.profile)
        self.server = KeepAliveServer(self.host, self.port, app)
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto", daemon=True)
        self.thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.server = None


def internal_client(service: str, endpoint: str, region: str) -> Any:
    """A boto3 client for the emulator's own calls (marked so moto's gate ignores them)."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=region)
    client = session.client(service, endpoint_url=endpoint,
                            config=Config(retries={"max_attempts": 2, "mode": "standard"},
                                          max_pool_connections=20))

    def mark(request: Any, **_: Any) -> None:
        request.headers[INTERNAL_HEADER] = "1"

    client.meta.events.register("before-send", mark)
    return client
