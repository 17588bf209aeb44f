"""API Gateway event shapes (HTTP API payload 2.0, WebSocket API) and result handling.

Choices where AWS documentation leaves room (see emulator/README.md):

* HTTP request header names are lower-cased; repeated headers are joined with ``,``;
  the ``cookie`` header is moved to ``cookies`` (split on ``;``) and not repeated in headers.
* ``rawQueryString`` is the query exactly as received (without ``?``); the
  ``queryStringParameters`` values are URL-decoded and repeated keys comma-joined.
* The request body is passed as text (``isBase64Encoded: false``) only when the content
  type is textual (``text/*``, JSON, XML, JavaScript, and their ``+json``/``+xml`` kinds)
  AND the bytes are valid UTF-8; everything else (form posts included, as HTTP APIs do)
  is base64. No body: the ``body`` key is absent.
* A Lambda result without ``statusCode`` (a bare dict, list, string, number) becomes a
  200 ``application/json`` response whose body is the result's JSON text.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qsl

TEXT_TYPES = ("application/json", "application/xml", "application/javascript",
              "application/ecmascript", "application/x-javascript")

Pairs = list[tuple[str, str]]


class BadResult(ValueError):
    """A Lambda result API Gateway cannot turn into a response (-> 500)."""


@dataclass(frozen=True)
class ApiContext:
    account_id: str
    api_id: str
    stage: str
    domain_name: str


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: Pairs = field(default_factory=list)
    body: bytes = b""


def is_textual(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    if not main:
        return False
    if main.startswith("text/") or main in TEXT_TYPES:
        return True
    return main.endswith("+json") or main.endswith("+xml")


def request_time(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


def joined_headers(pairs: Iterable[tuple[str, str]], lower: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def multi_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def query_parameters(raw_query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def multi_query_parameters(raw_query: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return out


def split_cookies(values: Iterable[str]) -> list[str]:
    return [c.strip() for value in values for c in value.split(";") if c.strip()]


def encode_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """(body text, isBase64Encoded) following the rule in the module docstring."""
    if is_textual(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def http_event(*, api: ApiContext, method: str, raw_path: str, raw_query: str, headers: Pairs,
               body: bytes, source_ip: str, route_key: str = "$default",
               path_parameters: dict[str, str] | None = None, now: float | None = None,
               request_id: str | None = None) -> dict[str, Any]:
    """An HTTP API payload format 2.0 event."""
    now = time.time() if now is None else now
    cookies = split_cookies(v for n, v in headers if n.lower() == "cookie")
    plain = [(n, v) for n, v in headers if n.lower() != "cookie"]
    lowered = joined_headers(plain, lower=True)
    host = lowered.get("host", api.domain_name)
    domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": api.account_id,
            "apiId": api.api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lowered.get("user-agent", "")},
            "requestId": request_id or base64.b32encode(uuid.uuid4().bytes)[:16].decode().lower(),
            "routeKey": route_key,
            "stage": api.stage,
            "time": request_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = query_parameters(raw_query)
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"], event["isBase64Encoded"] = encode_body(body, lowered.get("content-type", ""))
    return event


def http_result(result: Any) -> HttpResult:
    """Turn a payload 2.0 Lambda result into a response, as API Gateway does."""
    if not isinstance(result, dict) or "statusCode" not in result:
        import json

        return HttpResult(200, [("content-type", "application/json")],
                          json.dumps(result, separators=(",", ":")).encode("utf-8"))
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadResult(f"statusCode must be an integer HTTP status, got {status!r}")
    headers: Pairs = []
    for name, value in (result.get("headers") or {}).items():
        if not isinstance(value, (str, int, float, bool)):
            raise BadResult(f"header {name!r} must be a string")
        headers.append((str(name), str(value) if not isinstance(value, bool) else str(value).lower()))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    for cookie in result.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))
    return HttpResult(status, headers, result_body(result))


def result_body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadResult("body must be a string")
    if not result.get("isBase64Encoded"):
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise BadResult(f"isBase64Encoded body is not base64: {exc}") from None


def ws_request_context(*, api: ApiContext, route_key: str, event_type: str, connection_id: str,
                       connected_at: int, source_ip: str, user_agent: str,
                       now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    request_id = base64.b32encode(uuid.uuid4().bytes)[:16].decode()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": connected_at,
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": connection_id,
        "apiId": api.api_id,
    }


def ws_connect_event(*, api: ApiContext, connection_id: str, connected_at: int, headers: Pairs,
                     raw_query: str, source_ip: str) -> dict[str, Any]:
    """$connect: headers keep their case as sent (WebSocket APIs do not lower-case them)."""
    user_agent = next((v for n, v in headers if n.lower() == "user-agent"), "")
    event: dict[str, Any] = {
        "headers": joined_headers(headers, lower=False),
        "multiValueHeaders": multi_headers(headers),
        "requestContext": ws_request_context(api=api, route_key="$connect", event_type="CONNECT",
                                             connection_id=connection_id, connected_at=connected_at,
                                             source_ip=source_ip, user_agent=user_agent),
        "isBase64Encoded": False,
    }
    if raw_query:
        event["queryStringParameters"] = {k: v[-1] for k, v in multi_query_parameters(raw_query).items()}
        event["multiValueQueryStringParameters"] = multi_query_parameters(raw_query)
    return event


def ws_message_event(*, api: ApiContext, route_key: str, connection_id: str, connected_at: int,
                     body: str, is_base64: bool, source_ip: str, user_agent: str) -> dict[str, Any]:
    context = ws_request_context(api=api, route_key=route_key, event_type="MESSAGE",
                                 connection_id=connection_id, connected_at=connected_at,
                                 source_ip=source_ip, user_agent=user_agent)
    context["messageId"] = base64.b32encode(uuid.uuid4().bytes)[:16].decode()
    return {"requestContext": context, "body": body, "isBase64Encoded": is_base64}


def ws_disconnect_event(*, api: ApiContext, connection_id: str, connected_at: int, headers: Pairs,
                        source_ip: str, status_code: int, reason: str) -> dict[str, Any]:
    user_agent = next((v for n, v in headers if n.lower() == "user-agent"), "")
    context = ws_request_context(api=api, route_key="$disconnect", event_type="DISCONNECT",
                                 connection_id=connection_id, connected_at=connected_at,
                                 source_ip=source_ip, user_agent=user_agent)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {"headers": joined_headers(headers, lower=False),
            "multiValueHeaders": multi_headers(headers),
            "requestContext": context, "isBase64Encoded": False}


def ws_connect_status(result: Any) -> int:
    """Status a $connect result asks for: no statusCode means 200 (connection accepted)."""
    if isinstance(result, dict) and "statusCode" in result:
        status = result["statusCode"]
        if isinstance(status, int) and not isinstance(status, bool):
            return status
        raise BadResult(f"statusCode must be an integer, got {status!r}")
    return 200
