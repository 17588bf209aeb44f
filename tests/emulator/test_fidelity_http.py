"""The HTTP API fidelity audit (emulator/README.md "Fidelity"): one test per row, each against
what AWS does according to the source cited in the table and in emulator/apigateway/events.py."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re

import aiohttp
import pytest
from yarl import URL

from emulator.apigateway import events
from emulator.apigateway.http_api import match_route
from emulator.apigateway.wiring import ApiWiring, Route

AWS_ID = re.compile(r"[A-Za-z0-9+/]{15}=")


async def call(gateway, method: str, path: str, **kwargs) -> tuple[int, aiohttp.typedefs.LooseHeaders, bytes]:
    """Send ``path`` exactly as written (no client-side re-encoding)."""
    async with aiohttp.ClientSession() as session:
        url = URL(gateway.ports.http_url + path, encoded=True)
        async with session.request(method, url, **kwargs) as resp:
            return resp.status, resp.headers, await resp.read()


async def event_for(gateway, path: str, **kwargs) -> dict:
    status, _, body = await call(gateway, kwargs.pop("method", "GET"), path, **kwargs)
    assert status == 200, body[:300]
    return json.loads(body)


# Live captures of a real HTTP API (us-west-2, 2026-07-10): sent path -> rawPath, or None when
# AWS refused it with 400. https://github.com/hotsock/voker/blob/a1c00bf491e026f81917cc2edfdaca03eabc7518/vokerhttp/testdata/ingress-paths.json
VOKER_CAPTURES = [
    ("/capture/plain", "/capture/plain"),
    ("/capture/space%20value", "/capture/space value"),
    ("/capture/question%3Fvalue", "/capture/question"),
    ("/capture/percent%25done", None),
    ("/capture/hash%23value", "/capture/hash#value"),
    ("/capture/slash%2Fvalue", "/capture/slash/value"),
    ("/capture/unicode-%CE%BB-%E4%B8%96%E7%95%8C", "/capture/unicode-λ-世界"),
    ("/capture/literal%252Fvalue", "/capture/literal/value"),
    ("/capture/literal%253Fvalue", "/capture/literal?value"),
    ("/capture/literal%2525value", "/capture/literal%value"),
]
QUERY = "marker=path-probe&value=a%3Fb%25c%23d&repeat=one&repeat=two"


@pytest.mark.parametrize("sent,expected", VOKER_CAPTURES)
async def test_raw_path_is_decoded_as_the_live_captures_show(gateway, sent, expected):
    status, _, body = await call(gateway, "GET", f"{sent}?{QUERY}")
    if expected is None:
        assert status == 400 and json.loads(body) == {"message": "Bad Request"}
        return
    assert status == 200, body[:300]
    event = json.loads(body)
    assert event["rawPath"] == expected
    assert event["requestContext"]["http"]["path"] == expected
    assert event["rawQueryString"] == QUERY  # the real query survives the decoded '?'
    assert event["queryStringParameters"] == {"marker": "path-probe", "value": "a?b%c#d", "repeat": "one,two"}


def test_decode_raw_path_rules():
    assert events.decode_raw_path("/RSC/%40id%2Fassets%2Frsf0.js%23save.txt") == "/RSC/@id/assets/rsf0.js#save.txt"
    assert events.decode_raw_path("/a+b") == "/a+b"  # path decoding, not form decoding: no capture says otherwise
    for refused in ("/a%zz", "/a%", "/a%FF"):  # malformed or not UTF-8: assumed 400 (no capture)
        with pytest.raises(events.BadPath):
            events.decode_raw_path(refused)


def test_routes_match_the_decoded_path():
    api = ApiWiring("a", "$default", (Route("GET /files/{name}", "f"), Route("$default", "d")))
    route, params = match_route(api, "GET", events.decode_raw_path("/files/a%20b"))
    assert route.route_key == "GET /files/{name}" and params == {"name": "a b"}
    route, _ = match_route(api, "GET", events.decode_raw_path("/files/a%2Fb"))  # two segments once decoded
    assert route.route_key == "$default"


async def test_headers_lowercased_and_repeated_ones_comma_joined(gateway):
    event = await event_for(gateway, "/x", headers=[("X-Multi", "one"), ("X-Multi", "two"), ("X-Case", "MiXeD")])
    assert event["headers"]["x-multi"] == "one,two"  # "first,second" in the capture: no space
    assert event["headers"]["x-case"] == "MiXeD"
    assert all(name == name.lower() for name in event["headers"])


async def test_cookies_array_in_the_request(gateway):
    event = await event_for(gateway, "/x", headers=[("Cookie", "a=1; b=2"), ("Cookie", "c=3")])
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]


async def test_cookies_array_in_the_response_becomes_set_cookie_headers(gateway):
    status, headers, _ = await call(gateway, "GET", "/binary")
    assert status == 201 and headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2"]


@pytest.mark.parametrize("content_type,as_text", [
    ("text/plain", True), ("text/html; charset=utf-8", True), ("application/json", True),
    ("Application/JSON; charset=UTF-8", True), ("application/xml", True), ("application/javascript", True),
    ("application/x-www-form-urlencoded", False), ("multipart/form-data; boundary=x", False),
    ("application/octet-stream", False), (None, False), ("application/ld+json", False),
    ("image/svg+xml", False)])
async def test_which_content_types_arrive_base64(gateway, content_type, as_text):
    body = b"a=1&b=\xc3\xa9"
    headers = {"Content-Type": content_type} if content_type else {}
    event = await event_for(gateway, "/x", method="POST", data=body, headers=headers,
                            skip_auto_headers=["Content-Type"])
    assert event["isBase64Encoded"] is (not as_text)
    raw = event["body"].encode() if as_text else base64.b64decode(event["body"])
    assert raw == body


async def test_raw_query_string_is_as_sent_and_parameters_are_decoded(gateway):
    query = "repeat=one&repeat=two&redirect=https%3A%2F%2Fexample.com%2Fa%2Fb&literalPlus=a+b&encodedPlus=a%2Bb&empty="
    event = await event_for(gateway, f"/x?{query}")
    assert event["rawQueryString"] == query
    assert event["queryStringParameters"] == {  # the live capture's values
        "repeat": "one,two", "redirect": "https://example.com/a/b", "literalPlus": "a b",
        "encodedPlus": "a+b", "empty": ""}


async def test_head_reaches_the_lambda_and_keeps_its_content_length(gateway):
    status, headers, body = await call(gateway, "HEAD", "/head")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == "1234"  # the Lambda's; no source for AWS (fidelity table)
    status, headers, body = await call(gateway, "GET", "/head")
    assert body == b"full" and headers["Content-Length"] == "4"


async def test_result_without_status_code_or_base64_flag(gateway):
    status, headers, body = await call(gateway, "GET", "/bare-string")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body == b"Hello from Lambda!"  # the docs' example: the string itself, not its JSON
    status, headers, body = await call(gateway, "GET", "/bare")
    assert status == 200 and json.loads(body) == {"hello": "world"}
    status, _, body = await call(gateway, "GET", "/no-flag")
    assert status == 200 and body == b"aGk="  # no isBase64Encoded: the body is text, not decoded


async def test_multi_value_headers_are_ignored_in_payload_2(gateway):
    status, headers, body = await call(gateway, "GET", "/multi")
    assert status == 200 and body == b"m" and headers["x-one"] == "1"
    assert "x-multi" not in headers


async def test_what_api_gateway_adds_to_and_strips_from_responses(gateway):
    status, headers, _ = await call(gateway, "GET", "/no-type")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert AWS_ID.fullmatch(headers["apigw-requestid"]) and "Date" in headers
    assert "Server" not in headers
    status, headers, body = await call(gateway, "GET", "/empty")
    assert status == 204 and body == b"" and "Content-Type" not in headers
    _, headers, _ = await call(gateway, "GET", "/server")
    assert headers["Server"] == "mine"  # the Lambda's own is kept
    status, headers, _ = await call(gateway, "GET", "/error")
    assert status == 500 and "Server" not in headers and AWS_ID.fullmatch(headers["apigw-requestid"])


async def test_request_id_format_matches_the_header(gateway):
    status, headers, body = await call(gateway, "GET", "/x")
    event = json.loads(body)
    assert event["requestContext"]["requestId"] == headers["apigw-requestid"]
    assert AWS_ID.fullmatch(event["requestContext"]["requestId"])


async def test_forwarded_headers_api_gateway_adds_with_the_callers_chain_in_front(gateway):
    event = await event_for(gateway, "/x", headers=[("X-Forwarded-For", "203.0.113.7, 198.51.100.2"),
                                                     ("X-Forwarded-Port", "1"), ("X-Forwarded-Proto", "https")])
    headers = event["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.7, 198.51.100.2, 127.0.0.1"
    assert headers["x-forwarded-port"] == str(gateway.ports.http_port)
    assert headers["x-forwarded-proto"] == "http"  # the local stack serves plain HTTP; AWS says https
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["x-amzn-trace-id"])
    plain = await event_for(gateway, "/x")
    assert plain["headers"]["x-forwarded-for"] == "127.0.0.1"


async def test_gzip_request_body_passes_byte_for_byte(gateway):
    raw = gzip.compress(b"compressed payload " * 100)
    status, _, body = await call(gateway, "PUT", "/sha", data=raw,
                                 headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert status == 200
    assert body.decode() == hashlib.sha256(raw).hexdigest()  # not the decompressed bytes


async def test_body_limit_counts_the_bytes_sent(gateway):
    raw = b"\x00" * (10 * 1024 * 1024 + 1)
    status, _, _ = await call(gateway, "POST", "/x", data=raw, headers={"Content-Encoding": "gzip"})
    assert status == 413
