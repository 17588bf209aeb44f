"""The emulator's function URL (RESPONSE_STREAM): the event the function gets, and a streamed answer
reaching an HTTP caller piece by piece, through the layer's own Runtime API loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aiohttp import ClientPayloadError, web

from emulator.apigateway.function_url import AWS_STREAM_BANDWIDTH, FunctionUrl, Pacer, StreamBandwidth
from emulator.lambda_runtime.runtime_api_server import FakeRuntimeApi
from httptunnel import runtime_api

WAIT_S = 10.0


@pytest.fixture
async def stack(aiohttp_client):
    """A function URL on an ephemeral port, its fake Runtime API, and a place for the handler."""
    runtime = FakeRuntimeApi()
    await runtime.start()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", FunctionUrl(runtime, url_id="abcdefurlid").handle)
    client = await aiohttp_client(app)
    loops: list[asyncio.Future] = []

    def serve(handler, invocations: int) -> None:
        client_api = runtime_api.Client(runtime.address)
        loops.append(asyncio.ensure_future(asyncio.to_thread(runtime_api.run, client_api, handler, {}, invocations)))

    yield client, serve
    await asyncio.wait_for(asyncio.gather(*loops), WAIT_S)
    await runtime.close()


async def test_the_function_gets_a_function_url_event_with_the_path_still_encoded(stack) -> None:
    client, serve = stack
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: runtime_api.Context) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "body": "ok"}

    serve(handler, 1)
    answer = await client.post("/t1/a%2Fb/100%25done?x=1&x=2", data=b"\x00\xff",
                               headers={"Cookie": "a=1; b=2", "X-Multi": "1", "Content-Type": "application/octet-stream"})
    assert answer.status == 200 and await answer.text() == "ok"
    event = seen[0]
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/t1/a%2Fb/100%25done"  # function URLs keep the encoding (HTTP APIs decode it)
    assert event["rawQueryString"] == "x=1&x=2" and event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["a=1", "b=2"] and event["headers"]["x-multi"] == "1"
    context = event["requestContext"]
    assert (context["accountId"], context["apiId"], context["stage"]) == ("anonymous", "abcdefurlid", "$default")
    assert context["http"]["method"] == "POST" and context["http"]["path"] == "/t1/a%2Fb/100%25done"
    assert event["isBase64Encoded"] is True and event["body"] == "AP8="


async def test_a_streamed_answer_reaches_the_caller_as_it_is_written(stack) -> None:
    client, serve = stack
    caller_has: list[threading.Event] = [threading.Event() for _ in range(3)]

    def handler(event: dict[str, Any], context: runtime_api.Context) -> None:
        stream = context.open_stream(200, {"content-type": "text/event-stream"}, ["seen=1; Path=/"])
        for i, got in enumerate(caller_has):
            stream.write(f"data: {i}\n\n".encode())
            assert got.wait(WAIT_S), f"event {i} never reached the caller on its own"

    serve(handler, 1)
    answer = await client.get("/t1/events")
    assert answer.status == 200 and answer.headers["content-type"] == "text/event-stream"
    assert answer.headers.getall("set-cookie") == ["seen=1; Path=/"]
    received = b""
    for i, got in enumerate(caller_has):
        expected = f"data: {i}\n\n".encode()
        while not received.endswith(expected):
            received += await asyncio.wait_for(answer.content.readany(), WAIT_S)
        got.set()  # only now does the function write the next event
    assert await asyncio.wait_for(answer.content.read(), WAIT_S) == b""
    assert received == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_an_error_mid_stream_cuts_the_callers_answer(stack) -> None:
    client, serve = stack

    def handler(event: dict[str, Any], context: runtime_api.Context) -> None:
        context.open_stream(200).write(b"half")
        raise RuntimeError("local app died")

    serve(handler, 1)
    answer = await client.get("/t1/x")
    assert answer.status == 200
    with pytest.raises(ClientPayloadError):  # the chunked body never ends properly
        await asyncio.wait_for(answer.content.read(), WAIT_S)


async def test_a_function_error_before_the_stream_is_a_502(stack) -> None:
    client, serve = stack

    def handler(event: dict[str, Any], context: runtime_api.Context) -> None:
        raise ValueError("no tunnel")

    serve(handler, 1)
    answer = await client.get("/nope")
    assert answer.status == 502


def test_the_bandwidth_rule_is_free_for_6_mb_then_2_mb_per_second() -> None:
    now = [100.0]
    pacer = Pacer(AWS_STREAM_BANDWIDTH, clock=lambda: now[0])
    mib = 1024 * 1024
    assert pacer.delay(4 * mib) == 0.0  # within the first 6 MB
    assert pacer.delay(2 * mib) == 0.0  # exactly 6 MB: still free
    assert pacer.delay(2 * mib) == pytest.approx(1.0)  # 2 MB past the burst at 2 MB/s
    now[0] += 1.0
    assert pacer.delay(1 * mib) == pytest.approx(0.5)
    now[0] += 10.0  # a pause earns no burst back: the cap is a rate from the moment it began
    assert pacer.delay(2 * mib) == 0.0


async def test_a_function_url_with_the_aws_bandwidth_waits_past_the_free_bytes(aiohttp_client) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    runtime = FakeRuntimeApi()
    await runtime.start()
    app = web.Application()
    url = FunctionUrl(runtime, bandwidth=StreamBandwidth(free_bytes=10, bytes_per_s=100.0), sleep=record)
    app.router.add_route("*", "/{tail:.*}", url.handle)
    client = await aiohttp_client(app)

    def handler(event: dict[str, Any], context: runtime_api.Context) -> None:
        stream = context.open_stream(200)
        stream.write(b"0123456789")  # the free bytes
        stream.write(b"x" * 50)  # half a second at 100 B/s

    loop = asyncio.ensure_future(asyncio.to_thread(runtime_api.run, runtime_api.Client(runtime.address), handler, {}, 1))
    try:
        answer = await client.get("/t1/big")
        assert await asyncio.wait_for(answer.read(), WAIT_S) == b"0123456789" + b"x" * 50
        assert len(waits) == 1 and waits[0] == pytest.approx(0.5, abs=0.05)
        await asyncio.wait_for(loop, WAIT_S)
    finally:
        await runtime.close()


async def test_past_the_reserved_concurrency_the_url_answers_429(aiohttp_client) -> None:
    """forward_reserved_concurrency is the function URL edge's only ceiling (issue 29): with one
    environment reserved and busy, the next caller gets Lambda's throttle at once."""
    runtime = FakeRuntimeApi()
    await runtime.start()
    app = web.Application()
    url = FunctionUrl(runtime, url_id="abcdefurlid", reserved=1)
    app.router.add_route("*", "/{tail:.*}", url.handle)
    client = await aiohttp_client(app)
    release = threading.Event()

    def handler(event: dict[str, Any], context: runtime_api.Context) -> dict[str, Any]:
        release.wait(WAIT_S)
        return {"statusCode": 200, "body": "held"}

    loop = asyncio.ensure_future(asyncio.to_thread(runtime_api.run, runtime_api.Client(runtime.address), handler, {}, 2))
    try:
        held = asyncio.ensure_future(client.get("/slow"))
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while url.in_flight < 1 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # polling the emulator's own counter until the first request holds the environment
        refused = await client.get("/second")
        assert refused.status == 429
        assert refused.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
        assert (await refused.json())["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        release.set()
        first = await held
        assert first.status == 200 and await first.text() == "held"
        release.clear()
        threading.Timer(0.05, release.set).start()
        again = await client.get("/third")  # the reservation is free again
        assert again.status == 200
    finally:
        release.set()
        await asyncio.wait_for(loop, WAIT_S)
        await runtime.close()
