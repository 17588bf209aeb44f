"""A Lambda function URL in RESPONSE_STREAM mode, as the emulator serves it (issue 23's edge).

The caller's request becomes a function URL event (payload format 2.0, like an HTTP API's, but
``rawPath`` keeps the caller's percent-encoding, ``routeKey`` and ``stage`` are ``$default`` and
``accountId`` is ``anonymous`` for auth type NONE: the AWS sample events in
https://github.com/aws/aws-lambda-go/blob/main/events/testdata/lambda-urls-request.json and
Powertools' LambdaFunctionUrlSchema; voker-paths for the encoding). The function runs under the
fake Runtime API and its streamed answer reaches the caller piece by piece: the prelude's status,
headers and cookies (each a ``Set-Cookie``), then each body piece as it arrives, chunked.

Not wired into the stack yet: ``FunctionUrl(runtime).handle`` is an aiohttp handler that a
server mounts. A caller that goes away is not signalled to the function (``detach``), as on AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from emulator.apigateway.events import ApiContext, BadResult, http_event, http_result
from emulator.lambda_runtime.runtime_api_server import Body, Buffered, Done, Failed, FakeRuntimeApi, Head

LOG = logging.getLogger("emulator.apigateway.function_url")
REQUEST_MAX = 6 * 1024 * 1024  # the synchronous invoke payload (the event, after base64)
HOP_BY_HOP = {"connection", "transfer-encoding", "content-length", "keep-alive"}


@dataclass(frozen=True)
class StreamBandwidth:
    """Lambda's bandwidth rule for a streamed response: ``free_bytes`` uncapped, then ``bytes_per_s``."""

    free_bytes: int
    bytes_per_s: float


# "The first 6 MB of your function's response payload has uncapped bandwidth. After this initial
# burst, Lambda streams your response at a maximum rate of 2 MBps" (Bandwidth limits for response
# streaming: https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html).
# MB read as MiB, as Lambda's 6 MB payload limit is 6,291,456 bytes. The aws profile applies it.
AWS_STREAM_BANDWIDTH = StreamBandwidth(free_bytes=6 * 1024 * 1024, bytes_per_s=2 * 1024 * 1024)


class Pacer:
    """How long each piece must wait so a stream keeps to a :class:`StreamBandwidth` (pure; clock injected)."""

    def __init__(self, rule: StreamBandwidth, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self.clock = clock
        self.sent = 0
        self._capped_since: float | None = None

    def delay(self, size: int) -> float:
        """Seconds before ``size`` more bytes may go out: 0 within the free bytes, then at the capped rate."""
        self.sent += size
        over = self.sent - self.rule.free_bytes
        if over <= 0:
            return 0.0
        now = self.clock()
        if self._capped_since is None:
            self._capped_since = now
        return max(0.0, self._capped_since + over / self.rule.bytes_per_s - now)


def function_url_event(request: web.Request, body: bytes, url_id: str, port: int) -> dict[str, Any]:
    """The payload 2.0 event a function URL hands the function: the path as the caller sent it."""
    api = ApiContext(account_id="anonymous", api_id=url_id, stage="$default",
                     domain_name=f"{url_id}.lambda-url.us-east-1.on.aws")
    raw_path = request.raw_path.split("?", 1)[0]
    return http_event(api=api, method=request.method, raw_path=raw_path, raw_query=request.query_string,
                      headers=list(request.headers.items()), body=body, source_ip=request.remote or "127.0.0.1",
                      port=port, proto="http")


def throttled() -> web.Response:
    """Every reserved environment is busy: Lambda throttles the invocation, 429 TooManyRequestsException
    ("Rate exceeded" / TooManyRequestsException: https://repost.aws/knowledge-center/lambda-troubleshoot-throttling;
    the Reason values are botocore's model of the exception:
    https://docs.aws.amazon.com/botocore/latest/reference/services/lambda/client/exceptions/TooManyRequestsException.html).
    The body a function URL caller gets: no source found (the Invoke API's fields here)."""
    return web.json_response({"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
                              "message": "Rate Exceeded."}, status=429,
                             headers={"x-amzn-ErrorType": "TooManyRequestsException"})


class FunctionUrl:
    def __init__(self, runtime: FakeRuntimeApi, url_id: str = "localfunctionurl", timeout_s: float = 900.0,
                 bandwidth: StreamBandwidth | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, reserved: int | None = None) -> None:
        self.runtime = runtime
        self.reserved = reserved  # the function's reserved concurrency (None: unreserved)
        self.in_flight = 0
        self.url_id = url_id
        self.timeout_s = timeout_s
        self.bandwidth = bandwidth  # None: as fast as the caller reads (the local profile)
        self._sleep = sleep

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.reserved is not None and self.in_flight >= self.reserved:
            return throttled()
        self.in_flight += 1
        try:
            return await self._handle(request)
        finally:
            self.in_flight -= 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        port = request.url.port or 80
        event = function_url_event(request, body, self.url_id, port)
        if len(json.dumps(event)) > REQUEST_MAX:
            return web.json_response({"Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"},
                                     status=413)
        pending = self.runtime.invoke(event, self.timeout_s)
        pacer = Pacer(self.bandwidth) if self.bandwidth is not None else None
        response: web.StreamResponse | None = None
        try:
            while True:
                item = await asyncio.wait_for(pending.events.get(), self.timeout_s)
                if isinstance(item, Head):
                    response = web.StreamResponse(status=item.status_code)
                    for name, value in item.headers.items():
                        if name.lower() not in HOP_BY_HOP:
                            response.headers.add(name, value)
                    for cookie in item.cookies:
                        response.headers.add("Set-Cookie", cookie)
                    response.enable_chunked_encoding()
                    await response.prepare(request)
                elif isinstance(item, Body) and response is not None:
                    wait = pacer.delay(len(item.data)) if pacer is not None else 0.0
                    if wait:
                        await self._sleep(wait)  # rate limiting: the wait is the behaviour modelled
                    await response.write(item.data)
                elif isinstance(item, Done):
                    if response is None:  # a stream with no prelude: no source found, answer 502
                        return web.json_response({"Message": "Internal Server Error"}, status=502)
                    if item.error is not None:  # cut the answer: the caller sees an unfinished chunked body
                        LOG.warning("function URL stream failed: %s", item.error.get("errorType"))
                        if request.transport is not None:
                            request.transport.close()
                        return response
                    await response.write_eof()
                    return response
                elif isinstance(item, Buffered):
                    return self._buffered(item.payload)
                elif isinstance(item, Failed):
                    if response is not None:
                        if request.transport is not None:
                            request.transport.close()
                        return response
                    return web.json_response({"Message": "Internal Server Error"}, status=502)
        except (ConnectionResetError, asyncio.CancelledError):
            pending.detach()  # the caller went away; the function is not told
            raise
        except asyncio.TimeoutError:
            pending.detach()
            if response is None:
                return web.json_response({"Message": "Endpoint request timed out"}, status=504)
            if request.transport is not None:
                request.transport.close()
            return response
        finally:
            with contextlib.suppress(Exception):
                if pending.answered:
                    self.runtime.forget(pending)

    @staticmethod
    def _buffered(payload: bytes) -> web.Response:
        """A function that answered without streaming: read as a payload 2.0 result (no source for RESPONSE_STREAM)."""
        try:
            result = http_result(json.loads(payload))
        except (ValueError, BadResult):
            return web.json_response({"Message": "Internal Server Error"}, status=502)
        response = web.Response(status=result.status, body=result.body)
        for name, value in result.headers:
            response.headers.add(name, value)
        return response
