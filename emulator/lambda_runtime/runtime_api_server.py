"""A fake Lambda Runtime API (what Lambda's RAPID serves a runtime), for functions that stream.

A streaming function runs the very loop its zip ships (``httptunnel.runtime_api``, started by the
layer's ``runtime_bootstrap`` wrapper) against this server, so the local stack exercises the same
bytes AWS would receive. The server parses HTTP/1.1 itself and decodes streamed answers with
:mod:`emulator.lambda_runtime.stream_decode`, never with the layer's encoder.

``invoke(event)`` queues an invocation and returns a :class:`PendingInvocation` whose ``events``
queue receives, as they arrive: :class:`Head` (the prelude), :class:`Body` (caller bytes),
:class:`Done` (the stream ended; ``error`` from the trailers), or :class:`Buffered` (a buffered
answer) / :class:`Failed` (``/error``, ``/init/error``, or a malformed answer).

Like AWS, nothing tells the runtime that the caller went away: ``detach()`` only stops delivery,
and the runtime's POST is still read to its end (emulator/README.md, "Lambda response
streaming"). While a consumer is attached, a full ``events`` queue stops reading the runtime's
socket, so a slow caller slows the function (whether AWS does the same is unverified).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulator.lambda_runtime.stream_decode import (
    ChunkedDecoder, Data, End, PreludeSplitter, StreamFormatError, trailer_error,
)
from httptunnel.limits import LAMBDA_PAYLOAD_MAX

API = "/2018-06-01"
STREAM_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
STREAM_MAX = 200 * 1024 * 1024  # Lambda's streamed response cap (configuration-response-streaming)
HEAD_MAX = 64 * 1024
EVENTS_MAX = 64  # delivery queue per invocation: beyond it the runtime's socket is not read


@dataclass
class Head:
    status_code: int
    headers: dict[str, str]
    cookies: list[str]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Body:
    data: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Done:
    error: dict[str, Any] | None
    bytes: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class Buffered:
    payload: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failed:
    error: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


Event = Head | Body | Done | Buffered | Failed


class PendingInvocation:
    def __init__(self, request_id: str, event: bytes, deadline_ms: int, function_arn: str) -> None:
        self.request_id = request_id
        self.event = event
        self.deadline_ms = deadline_ms
        self.function_arn = function_arn
        self.events: asyncio.Queue[Event] = asyncio.Queue(EVENTS_MAX)
        self.attached = True
        self.answered = False

    async def deliver(self, event: Event) -> None:
        if self.attached:
            await self.events.put(event)  # waits while the consumer is slow: backpressure

    def detach(self) -> None:
        """The caller went away. The runtime is not told (as on AWS); what it sends is discarded."""
        self.attached = False
        while not self.events.empty():
            self.events.get_nowait()


class HttpError(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type = status, error_type


class FakeRuntimeApi:
    """One function's Runtime API on 127.0.0.1:<ephemeral port>."""

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:local") -> None:
        self.function_arn = function_arn
        self._ready: collections.deque[PendingInvocation] = collections.deque()  # invoked, no environment free
        self._idle: list[asyncio.Future[PendingInvocation]] = []  # environments waiting in /next, oldest first
        self._by_id: dict[str, PendingInvocation] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.init_error: dict[str, Any] | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, limit=HEAD_MAX)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def invoke(self, event: Any, timeout_s: float = 900.0) -> PendingInvocation:
        request_id = str(uuid.uuid4())
        pending = PendingInvocation(request_id, json.dumps(event).encode(),
                                    int((time.time() + timeout_s) * 1000), self.function_arn)
        self._by_id[request_id] = pending
        self._dispatch(pending)
        return pending

    def _dispatch(self, pending: PendingInvocation) -> None:
        """To the environment that became idle LAST: as on Lambda, sequential invocations stay on one
        warm environment, and more are used only while invocations overlap ("Lambda function
        scaling": https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html). A FIFO
        hand-out would rotate through every environment, each with cold caches."""
        while self._idle:
            waiter = self._idle.pop()
            if not waiter.done():
                waiter.set_result(pending)
                return
        self._ready.append(pending)

    def _redispatch(self, pending: PendingInvocation) -> None:
        while self._idle:
            waiter = self._idle.pop()
            if not waiter.done():
                waiter.set_result(pending)
                return
        self._ready.appendleft(pending)  # first in line: it was invoked before anything still queued

    async def _next(self) -> PendingInvocation:
        if self._ready:
            return self._ready.popleft()
        waiter: asyncio.Future[PendingInvocation] = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:  # the environment went away: what it was handed goes to another
            if waiter.done() and not waiter.cancelled():
                self._redispatch(waiter.result())
            raise
        finally:
            if waiter in self._idle:
                self._idle.remove(waiter)

    def forget(self, pending: PendingInvocation) -> None:
        self._by_id.pop(pending.request_id, None)

    # --- HTTP/1.1, by hand -------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return False  # the runtime closed its connection between requests
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = (lines[0].split(" ") + ["", ""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        try:
            status, body, extra = await self._route(method, path, headers, reader)
        except HttpError as exc:
            error = {"errorType": exc.error_type, "errorMessage": str(exc)}
            await self._respond(writer, exc.status, error)
            return False  # the request body may be unread: the connection cannot be reused
        await self._respond(writer, status, body, extra)
        return True

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: Any,
                       extra: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found",
                  413: "Request Entity Too Large", 500: "Internal Server Error"}.get(status, "")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
        writer.write(head.encode("latin-1") + b"\r\n" + data)
        await writer.drain()

    async def _route(self, method: str, path: str, headers: dict[str, str],
                     reader: asyncio.StreamReader) -> tuple[int, Any, dict[str, str]]:
        accepted: tuple[int, Any, dict[str, str]] = (202, {"status": "OK"}, {})
        if method == "GET" and path == f"{API}/runtime/invocation/next":
            queued = await self._next()
            return 200, queued.event, {
                "Lambda-Runtime-Aws-Request-Id": queued.request_id,
                "Lambda-Runtime-Deadline-Ms": str(queued.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": queued.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
            }
        if method == "POST" and path == f"{API}/runtime/init/error":
            body = await self._whole_body(headers, reader)
            self.init_error = _error_document(body, headers)
            for waiting in list(self._by_id.values()):
                await waiting.deliver(Failed(self.init_error))
            return accepted
        prefix = f"{API}/runtime/invocation/"
        if method == "POST" and path.startswith(prefix):
            request_id, _, action = path[len(prefix):].partition("/")
            pending = self._by_id.get(request_id)
            if pending is None or pending.answered:
                raise HttpError(400, "InvalidRequestID", f"unknown or already answered request id {request_id!r}")
            if action == "response":
                pending.answered = True
                if headers.get("lambda-runtime-function-response-mode", "").lower() == "streaming":
                    await self._streamed(pending, headers, reader)
                else:
                    body = await self._whole_body(headers, reader)
                    await pending.deliver(Buffered(body))
                return accepted
            if action == "error":
                pending.answered = True
                body = await self._whole_body(headers, reader)
                await pending.deliver(Failed(_error_document(body, headers)))
                return accepted
        raise HttpError(404, "NotFound", f"{method} {path}")

    async def _whole_body(self, headers: dict[str, str], reader: asyncio.StreamReader) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            decoder, parts, size = ChunkedDecoder(), [], 0
            while not decoder.done:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("the runtime closed its connection mid-body")
                for item in _decode(decoder, data):
                    if isinstance(item, Data):
                        size += len(item.data)
                        if size > LAMBDA_PAYLOAD_MAX:
                            raise HttpError(413, "RequestEntityTooLarge", "response over 6 MB")
                        parts.append(item.data)
            return b"".join(parts)
        length = int(headers.get("content-length") or 0)
        if length > LAMBDA_PAYLOAD_MAX:
            raise HttpError(413, "RequestEntityTooLarge", "response over 6 MB")
        return await reader.readexactly(length)

    async def _streamed(self, pending: PendingInvocation, headers: dict[str, str],
                        reader: asyncio.StreamReader) -> None:
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise HttpError(400, "InvalidStreamingOperation", "a streamed response must be chunked")
        http_answer = headers.get("content-type", "").split(";")[0].strip() == STREAM_CONTENT_TYPE
        decoder, splitter, sent = ChunkedDecoder(), PreludeSplitter(), 0
        while not decoder.done:
            data = await reader.read(65536)
            if not data:
                await pending.deliver(Failed({"errorType": "Runtime.ExitError",
                                              "errorMessage": "the runtime closed its stream before the end"}))
                raise ConnectionError("stream cut")
            try:
                items = _decode(decoder, data)
            except HttpError as exc:
                await pending.deliver(Failed({"errorType": exc.error_type, "errorMessage": str(exc)}))
                raise
            for item in items:
                if isinstance(item, End):
                    if http_answer and splitter.prelude is None:
                        await pending.deliver(Failed({"errorType": "Runtime.InvalidStreamingResponse",
                                                      "errorMessage": "stream ended before the prelude's delimiter"}))
                        continue
                    await pending.deliver(Done(trailer_error(item.trailers), sent))
                    continue
                body = item.data
                if http_answer:
                    try:
                        prelude, body = splitter.feed(body)
                    except StreamFormatError as exc:
                        await pending.deliver(Failed({"errorType": "Runtime.InvalidStreamingResponse",
                                                      "errorMessage": str(exc)}))
                        raise HttpError(400, "InvalidStreamingResponse", str(exc)) from None
                    if prelude is not None:
                        await pending.deliver(Head(prelude.status_code, prelude.headers, prelude.cookies))
                if body:
                    sent += len(body)
                    if sent > STREAM_MAX:
                        await pending.deliver(Failed({"errorType": "Function.ResponseSizeTooLarge",
                                                      "errorMessage": "streamed response over 200 MB"}))
                        raise HttpError(413, "RequestEntityTooLarge", "streamed response over 200 MB")
                    await pending.deliver(Body(body))


def _decode(decoder: ChunkedDecoder, data: bytes) -> list[Data | End]:
    try:
        return decoder.feed(data)
    except StreamFormatError as exc:
        raise HttpError(400, "InvalidChunkedBody", str(exc)) from None


def _error_document(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {"errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(document, dict):
        document = {"errorMessage": str(document)}
    document.setdefault("errorType", headers.get("lambda-runtime-function-error-type", "Unhandled"))
    return document
