"""HTTP API front door: payload 2.0 events, results, limits — through real worker subprocesses."""

from __future__ import annotations

import base64
import hashlib
import json

import aiohttp
import pytest


async def call(gateway, method: str, path: str, **kwargs) -> tuple[int, aiohttp.typedefs.LooseHeaders, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, gateway.ports.http_url + path, **kwargs) as resp:
            return resp.status, resp.headers, await resp.read()


async def test_event_shape_is_payload_2(gateway):
    status, _, body = await call(
        gateway, "POST", "/some/path%2Fx?b=2&a=1&a=%20two&empty=",
        data=b'{"k": "v"}',
        headers=[("Content-Type", "application/json"), ("X-Multi", "one"), ("X-Multi", "two"),
                 ("Cookie", "c1=v1; c2=v2"), ("User-Agent", "toy-agent/1")])
    assert status == 200
    event = json.loads(body)
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path/x"  # decoded, as HTTP APIs do (test_fidelity_http.py)
    assert event["rawQueryString"] == "b=2&a=1&a=%20two&empty="
    assert event["queryStringParameters"] == {"b": "2", "a": "1, two", "empty": ""}
    assert event["headers"]["x-multi"] == "one,two"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["body"] == '{"k": "v"}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["userAgent"] == "toy-agent/1"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["domainName"] == "127.0.0.1"
    assert context["apiId"] == "httpapi1" and context["stage"] == "$default"
    assert context["accountId"] == "123456789012"
    assert isinstance(context["timeEpoch"], int) and context["requestId"]


async def test_subdomain_host_reaches_the_event(gateway):
    port = gateway.ports.http_port
    _, _, body = await call(gateway, "GET", "/x", headers={"Host": f"abc123.localhost:{port}"})
    event = json.loads(body)
    assert event["headers"]["host"] == f"abc123.localhost:{port}"
    assert event["requestContext"]["domainName"] == "abc123.localhost"
    assert event["requestContext"]["domainPrefix"] == "abc123"
    assert "body" not in event and "queryStringParameters" not in event
    assert "cookies" not in event


async def test_binary_body_is_base64_and_byte_exact(gateway):
    raw = bytes(range(256)) * 1000
    status, _, body = await call(gateway, "PUT", "/sha", data=raw,
                                 headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    assert body.decode() == hashlib.sha256(raw).hexdigest()


async def test_form_and_invalid_utf8_text_are_base64(gateway):
    _, _, body = await call(gateway, "POST", "/x", data=b"a=1&b=2",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"a=1&b=2"
    _, _, body = await call(gateway, "POST", "/x", data=b"\xff\xfe", headers={"Content-Type": "text/plain"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\xfe"


async def test_result_headers_cookies_and_binary_body(gateway):
    status, headers, body = await call(gateway, "GET", "/binary")
    assert status == 201
    assert body == bytes(range(256))
    assert headers["x-one"] == "1"
    assert headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert headers["apigw-requestid"]


async def test_bare_result_becomes_json_200(gateway):
    status, headers, body = await call(gateway, "GET", "/bare")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"hello": "world"}


@pytest.mark.parametrize("path", ["/error", "/bad"])
async def test_handler_error_or_bad_result_is_500(gateway, path):
    status, _, body = await call(gateway, "GET", path)
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}


async def test_result_over_6mb_is_502(gateway):
    status, _, body = await call(gateway, "GET", "/big-result")
    assert status == 502


async def test_event_over_6mb_is_413(gateway):
    status, _, body = await call(gateway, "POST", "/x", data=b"\x00" * (5 * 1024 * 1024),
                                 headers={"Content-Type": "application/octet-stream"})
    assert status == 413  # 5 MB binary is ~6.7 MB of base64 in the event


async def test_body_over_10mb_is_413(gateway):
    status, _, body = await call(gateway, "POST", "/x", data=b"a" * (10 * 1024 * 1024 + 1))
    assert status == 413
    assert json.loads(body) == {"message": "Request Entity Too Large"}


async def test_headers_over_10240_bytes_is_431(gateway):
    status, _, _ = await call(gateway, "GET", "/x", headers={"X-Big": "v" * 10_300})
    assert status == 431
    status, _, _ = await call(gateway, "GET", "/x", headers={"X-Big": "v" * 9_000})
    assert status == 200


async def test_integration_timeout_is_503(short_gateway):
    status, _, body = await call(short_gateway, "GET", "/sleep?s=2.5")
    assert status == 503
    assert json.loads(body) == {"message": "Service Unavailable"}


async def test_worker_is_isolated_and_gets_terraform_env(gateway):
    status, _, body = await call(gateway, "GET", "/env")
    assert status == 200
    info = json.loads(body)
    env = info["env"]
    assert env["TOY_SETTING"] == "from-terraform"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "toy-http"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] == gateway.ports.management_url
    assert "VIRTUAL_ENV" not in env and "PYTEST_CURRENT_TEST" not in env
    assert info["modules"] == {"boto3": True, "aiohttp": False, "moto": False, "pytest": False}
    assert info["cwd"].endswith("toys/http")
    assert info["function_name"] == "toy-http"
    assert 0 < info["remaining"] <= 5000


async def test_many_slow_invocations_run_concurrently(gateway):
    import asyncio
    import time

    started = time.monotonic()
    results = await asyncio.gather(*(call(gateway, "GET", "/sleep?s=1") for _ in range(40)))
    assert [r[0] for r in results] == [200] * 40
    assert time.monotonic() - started < 1.9  # serialised they would take 40 s
