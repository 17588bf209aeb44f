"""The Lambda Runtime API, spoken by hand: the loop a streaming function runs under.

Python's managed runtimes have no streaming handler (only Node.js streams natively), so a
function that streams its answer runs this loop instead of the runtime's own: its
``AWS_LAMBDA_EXEC_WRAPPER`` script (``lambda_runtime_bootstrap`` beside this module) execs
``python -m httptunnel.runtime_api``. Standard library only (``http.client``), small and dull,
like awslambdaric's loop: ask for the next invocation, call the handler, post its answer, and
never let one invocation end the loop.

A handler is ``handler(event, context)``. It either returns a value (posted as the buffered JSON
answer, as on any runtime) or calls ``context.open_stream(status_code, headers, cookies)`` and
writes the body to the :class:`ResponseStream` it gets. Streamed, the POST to
``/runtime/invocation/<id>/response`` carries ``Lambda-Runtime-Function-Response-Mode:
streaming``, ``Transfer-Encoding: chunked``, ``Content-Type:
application/vnd.awslambda.http-integration-response`` and ``Trailer`` naming the two error
trailers; its body is the JSON prelude and 8 NUL bytes, sent as soon as the stream opens (a
caller sees the status and headers before the first body byte), then one HTTP chunk per
``write``. An error after the stream opened is sent as the ``Lambda-Runtime-Function-Error-Type``
/ ``-Body`` trailers (base64 of ``{"errorType", "errorMessage", "trace"}``, as AWS's Node.js
client sends them). Sources: shared/README.md, "The live web: the streaming edge (design)".
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

API_VERSION = "2018-06-01"
STREAM_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
USER_AGENT = "httptunnel-runtime/1"
_ERROR_TYPE_CHARS = re.compile(r"[^A-Za-z0-9._:-]")


class RuntimeApiError(Exception):
    """The Runtime API refused a call. ``fatal`` when it answered 5xx: AWS says the runtime must exit."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def fatal(self) -> bool:
        return self.status >= 500


@dataclass(frozen=True)
class Invocation:
    """What ``GET /runtime/invocation/next`` hands over: the event bytes and its headers."""

    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str
    event: bytes
    client_context: str | None = None
    cognito_identity: str | None = None


def error_payload(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """The error document the Runtime API takes (``/error``, ``/init/error``), like awslambdaric's."""
    return {"errorMessage": str(exc), "errorType": error_type or type(exc).__name__,
            "stackTrace": traceback.format_exception(exc)[1:]}


def error_type_header(error_type: str) -> str:
    """An error type safe as a header or trailer value (no CR/LF/spaces), never empty."""
    return _ERROR_TYPE_CHARS.sub("_", error_type)[:128] or "Unhandled"


def prelude(status_code: int, headers: Mapping[str, str] | None = None,
            cookies: Sequence[str] | None = None) -> bytes:
    """The JSON prelude and its 8-NUL delimiter: what opens an http-integration-response stream.

    ``json.dumps`` escapes control characters, so the prelude itself never holds a NUL byte.
    """
    if isinstance(status_code, bool) or not isinstance(status_code, int) or not 100 <= status_code <= 599:
        raise ValueError(f"status_code must be an integer 100-599, not {status_code!r}")
    head = dict(headers or {})
    jar = list(cookies or [])
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in head.items()):
        raise ValueError("headers must map str to str (join repeated values with ', ')")
    if not all(isinstance(c, str) for c in jar):
        raise ValueError("cookies must be strings")
    document = {"statusCode": status_code, "headers": head, "cookies": jar}
    return json.dumps(document, separators=(",", ":")).encode() + DELIMITER


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (RFC 9112 section 7.1): hex size, CRLF, the bytes, CRLF."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: Mapping[str, str] | None = None) -> bytes:
    """The zero-size chunk that ends a chunked body, with its trailer fields."""
    fields = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in (trailers or {}).items())
    return b"0\r\n" + fields + b"\r\n"


def error_trailers(error_type: str, message: str, trace: Sequence[str] = ()) -> dict[str, str]:
    """The two trailers that report an error after the first byte (as AWS's Node.js client sends them)."""
    body = json.dumps({"errorType": error_type, "errorMessage": message, "trace": list(trace)})
    return {ERROR_TYPE_HEADER: error_type_header(error_type),
            ERROR_BODY_TRAILER: base64.b64encode(body.encode()).decode()}


class ResponseStream:
    """One streamed answer: an open chunked POST. ``write`` sends at once; ``close`` or ``fail`` ends it."""

    def __init__(self, connection: http.client.HTTPConnection, on_end: Callable[[bool], None]) -> None:
        self._connection = connection
        self._on_end = on_end
        self.closed = False
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ValueError("write to a closed response stream")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"a response stream takes bytes, not {type(data).__name__}")
        if len(data):  # a zero-size chunk would end the body
            self._connection.send(chunk(bytes(data)))
            self.bytes_written += len(data)

    def close(self) -> None:
        """End the body normally."""
        self._end(None)

    def fail(self, error_type: str, message: str, trace: Sequence[str] = ()) -> None:
        """End the body with the error trailers: the caller's answer is cut, Lambda logs the error."""
        self._end(error_trailers(error_type, message, trace))

    def _end(self, trailers: Mapping[str, str] | None) -> None:
        if self.closed:
            return
        self.closed = True
        clean = False
        try:
            self._connection.send(last_chunk(trailers))
            answer = self._connection.getresponse()
            answer.read()
            if answer.status >= 300:
                raise RuntimeApiError(f"streamed response refused: {answer.status} {answer.reason}", answer.status)
            clean = True
        finally:
            self._on_end(clean)


class Client:
    """The Runtime API at ``address`` (``host:port`` from ``AWS_LAMBDA_RUNTIME_API``), one kept-alive connection."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"Runtime API address must be host:port, not {address!r}")
        self.host, self.port = host, int(port)
        self._connection: http.client.HTTPConnection | None = None

    def _conn(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port)  # no timeout: /next blocks
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _call(self, method: str, path: str, body: bytes | None = None,
              headers: Mapping[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self._conn()
        try:
            conn.request(method, f"/{API_VERSION}{path}", body=body,
                         headers={"User-Agent": USER_AGENT, **(headers or {})})
            answer = conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            self._drop()
            raise
        if answer.status >= 300:
            raise RuntimeApiError(f"{method} {path}: {answer.status} {answer.reason}", answer.status)
        return answer, data

    def next(self) -> Invocation:
        answer, event = self._call("GET", "/runtime/invocation/next")
        head = answer.headers
        request_id = head.get("Lambda-Runtime-Aws-Request-Id", "")
        if not request_id:
            raise RuntimeApiError("next invocation without Lambda-Runtime-Aws-Request-Id", 500)
        return Invocation(
            request_id=request_id,
            deadline_ms=int(head.get("Lambda-Runtime-Deadline-Ms") or 0),
            function_arn=head.get("Lambda-Runtime-Invoked-Function-Arn", ""),
            trace_id=head.get("Lambda-Runtime-Trace-Id", ""),
            client_context=head.get("Lambda-Runtime-Client-Context"),
            cognito_identity=head.get("Lambda-Runtime-Cognito-Identity"),
            event=event,
        )

    def respond(self, request_id: str, payload: bytes) -> None:
        self._call("POST", f"/runtime/invocation/{request_id}/response", payload,
                   {"Content-Type": "application/json"})

    def invocation_error(self, request_id: str, error: Mapping[str, Any]) -> None:
        self._call("POST", f"/runtime/invocation/{request_id}/error", json.dumps(error).encode(),
                   {"Content-Type": "application/json",
                    ERROR_TYPE_HEADER: error_type_header(str(error.get("errorType", "")))})

    def init_error(self, error: Mapping[str, Any]) -> None:
        self._call("POST", "/runtime/init/error", json.dumps(error).encode(),
                   {"Content-Type": "application/json",
                    ERROR_TYPE_HEADER: error_type_header(str(error.get("errorType", "")))})

    def open_stream(self, request_id: str, status_code: int = 200, headers: Mapping[str, str] | None = None,
                    cookies: Sequence[str] | None = None) -> ResponseStream:
        """Start the streamed answer: headers, then the prelude and its delimiter at once."""
        opening = prelude(status_code, headers, cookies)  # refuse bad input before anything is sent
        conn = self._conn()
        try:
            conn.putrequest("POST", f"/{API_VERSION}/runtime/invocation/{request_id}/response",
                            skip_accept_encoding=True)
            for name, value in (("User-Agent", USER_AGENT), (RESPONSE_MODE_HEADER, "streaming"),
                                ("Transfer-Encoding", "chunked"), ("Content-Type", STREAM_CONTENT_TYPE),
                                ("Trailer", f"{ERROR_TYPE_HEADER}, {ERROR_BODY_TRAILER}")):
                conn.putheader(name, value)
            conn.endheaders()
            conn.send(chunk(opening))
        except (OSError, http.client.HTTPException):
            self._drop()
            raise
        return ResponseStream(conn, on_end=self._after_stream)

    def _after_stream(self, clean: bool) -> None:
        """A stream that ended badly leaves the connection in an unknown state: start afresh."""
        if not clean:
            self._drop()


class Context:
    """The Lambda context handlers use, plus ``open_stream`` for a streamed answer."""

    def __init__(self, client: Client, invocation: Invocation, environ: Mapping[str, str]) -> None:
        self._client = client
        self._invocation = invocation
        self.aws_request_id = invocation.request_id
        self.invoked_function_arn = invocation.function_arn
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.stream: ResponseStream | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._invocation.deadline_ms - int(time.time() * 1000))

    def open_stream(self, status_code: int = 200, headers: Mapping[str, str] | None = None,
                    cookies: Sequence[str] | None = None) -> ResponseStream:
        if self.stream is not None:
            raise RuntimeError("the response stream is already open")
        self.stream = self._client.open_stream(self.aws_request_id, status_code, headers, cookies)
        return self.stream


Handler = Callable[[Any, Context], Any]


def load_handler(spec: str) -> Handler:
    """``module.function`` (``_HANDLER``) to the callable, as the managed runtime resolves it."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise ValueError(f"bad handler {spec!r}: expected <module>.<function>")
    handler = getattr(importlib.import_module(module_name.replace("/", ".")), function_name, None)
    if not callable(handler):
        raise AttributeError(f"handler {function_name!r} missing on module {module_name!r}")
    return handler  # type: ignore[no-any-return]


def serve(client: Client, handler: Handler, invocation: Invocation,
          environ: Mapping[str, str] | None = None) -> None:
    """Run one invocation and report its outcome. Raises only what the Runtime API calls fatal."""
    context = Context(client, invocation, os.environ if environ is None else environ)
    try:
        result = handler(json.loads(invocation.event or b"null"), context)
        stream = context.stream
        if stream is None:
            try:
                payload = json.dumps(result, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                _report(client, context, exc, "Runtime.MarshalError")
                return
            client.respond(invocation.request_id, payload)
        elif not stream.closed:
            stream.close()
    except RuntimeApiError as exc:
        if exc.fatal:
            raise
        _report(client, context, exc, "Runtime.ResponseRefused")
    except Exception as exc:  # noqa: BLE001 - a handler's error is data for Lambda, never the loop's end
        _report(client, context, exc, None)


def _report(client: Client, context: Context, exc: Exception, error_type: str | None) -> None:
    traceback.print_exception(exc, file=sys.stderr)
    error = error_payload(exc, error_type)
    try:
        stream = context.stream
        if stream is None:
            client.invocation_error(context.aws_request_id, error)
        elif not stream.closed:
            stream.fail(error["errorType"], error["errorMessage"], error["stackTrace"])
        # a stream that already ended cannot carry the error any more: the log line above is all
    except RuntimeApiError as refused:
        if refused.fatal:
            raise
        print(f"error report refused: {refused}", file=sys.stderr, flush=True)
    except (OSError, http.client.HTTPException) as lost:
        print(f"error report lost: {lost!r}", file=sys.stderr, flush=True)


def run(client: Client, handler: Handler, environ: Mapping[str, str] | None = None,
        invocations: int | None = None) -> None:
    """The loop: ``invocations`` of them (None: until the Runtime API says to stop)."""
    served = 0
    while invocations is None or served < invocations:
        invocation = client.next()
        if environ is None:  # the X-Ray header of this invocation, where the SDKs look for it
            os.environ["_X_AMZN_TRACE_ID"] = invocation.trace_id
        try:
            serve(client, handler, invocation, environ)
        except (OSError, http.client.HTTPException) as exc:  # the connection broke mid-answer
            print(f"invocation {invocation.request_id}: answer lost: {exc!r}", file=sys.stderr, flush=True)
        served += 1


def main(environ: Mapping[str, str] | None = None) -> int:
    """Entry point (``python -m httptunnel.runtime_api``): the variables Lambda injects into every runtime."""
    env = os.environ if environ is None else environ
    address, spec = env.get("AWS_LAMBDA_RUNTIME_API", ""), env.get("_HANDLER", "")
    if not address:
        print("AWS_LAMBDA_RUNTIME_API is not set: this runs inside Lambda (or the emulator)", file=sys.stderr)
        return 2
    client = Client(address)
    try:
        handler = load_handler(spec)
    except Exception as exc:  # noqa: BLE001 - reported as Lambda's init error, then exit as AWS asks
        traceback.print_exception(exc, file=sys.stderr)
        try:
            client.init_error(error_payload(exc, "Runtime.ImportModuleError"))
        except (RuntimeApiError, OSError, http.client.HTTPException) as lost:
            print(f"init error report lost: {lost!r}", file=sys.stderr)
        return 1
    try:
        run(client, handler)
    except RuntimeApiError as exc:
        print(f"Runtime API: {exc}; exiting", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
