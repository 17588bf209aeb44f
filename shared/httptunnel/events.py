"""API Gateway's side of an invocation: the events it hands a Lambda and the results it expects back.

WebSocket route events (``$connect``, ``$disconnect``, ``$default``) become :class:`WsEvent`,
HTTP API payload 2.0 events :class:`HttpEvent` (path decoded), function URL events too (path as
sent: ``parse_function_url_event``); anything not of that shape is :class:`BadEvent`
(the edge decorator answers it). Results: ``ws_response`` for WebSocket routes, ``http_response``
and ``error_response`` for the public HTTP API. Posting to a socket is ``management``'s job.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import names


class BadEvent(ValueError):
    """The event does not have the API Gateway shape we expect."""


# --------------------------------------------------------------------------- WebSocket events

@dataclass(frozen=True)
class WsEvent:
    connection_id: str
    route_key: str
    domain_name: str
    stage: str
    request_id: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    query: dict[str, str] = field(default_factory=dict)
    body: str = ""
    source_ip: str = ""  # requestContext.identity.sourceIp (set by API Gateway, not the client)


def parse_ws_event(event: Any) -> WsEvent:
    if not isinstance(event, dict):
        raise BadEvent("event is not an object")
    ctx = event.get("requestContext")
    if not isinstance(ctx, dict) or not isinstance(ctx.get("connectionId"), str):
        raise BadEvent("requestContext.connectionId missing")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    body = event.get("body") or ""
    if event.get("isBase64Encoded") and body:
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            body = ""
    return WsEvent(
        connection_id=ctx["connectionId"],
        route_key=str(ctx.get("routeKey", "")),
        domain_name=str(ctx.get("domainName", "")),
        stage=str(ctx.get("stage", "")),
        request_id=str(ctx.get("requestId", "")),
        headers=headers,
        query=query,
        body=body if isinstance(body, str) else "",
        source_ip=str((ctx.get("identity") or {}).get("sourceIp", "")) if isinstance(ctx.get("identity"), dict) else "",
    )


def ws_response(status: int, body: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"statusCode": status}
    if body:
        out["body"] = body
    return out


# --------------------------------------------------------------------------- HTTP API events (payload 2.0)

@dataclass(frozen=True)
class HttpEvent:
    method: str
    raw_path: str  # percent-DECODED by HTTP APIs (routing.request_target re-encodes it)
    raw_query: str
    headers: dict[str, str]  # lower-cased names, repeated values comma-joined by API Gateway
    cookies: tuple[str, ...]
    body: bytes
    source_ip: str
    domain_name: str
    request_id: str
    path_encoded: bool = False  # True for function URL events: raw_path is as the caller sent it


def parse_http_event(event: Any) -> HttpEvent:
    """Parse an HTTP API payload 2.0 event. Raises BadEvent on anything malformed."""
    if not isinstance(event, dict):
        raise BadEvent("event is not an object")
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    method = http.get("method")
    if not isinstance(method, str) or not method:
        raise BadEvent("requestContext.http.method missing")
    raw_path = event.get("rawPath") or http.get("path") or "/"
    if not isinstance(raw_path, str) or not raw_path.startswith("/"):
        raise BadEvent("rawPath must be a string starting with '/'")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    cookies = tuple(str(c) for c in (event.get("cookies") or []))
    body_field = event.get("body")
    if body_field is None:
        body = b""
    elif not isinstance(body_field, str):
        raise BadEvent("body is not a string")
    elif event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body_field, validate=True)
        except ValueError:
            raise BadEvent("body is not valid base64") from None
    else:
        body = body_field.encode("utf-8", "surrogatepass")
    domain = str(ctx.get("domainName") or headers.get("host") or "")
    return HttpEvent(
        method=method,
        raw_path=raw_path,
        raw_query=str(event.get("rawQueryString") or ""),
        headers=headers,
        cookies=cookies,
        body=body,
        source_ip=str(http.get("sourceIp") or ""),
        domain_name=domain,
        request_id=str(ctx.get("requestId") or ""),
    )


def parse_function_url_event(event: Any) -> HttpEvent:
    """Parse a Lambda function URL event: payload 2.0 like an HTTP API's, except that ``rawPath``
    keeps the caller's percent-encoding (``/a%2Fb`` stays ``/a%2Fb``), so the request target is
    built from it as sent (``routing.encoded_request_target``). Raises BadEvent on anything malformed."""
    parsed = parse_http_event(event)
    return dataclasses.replace(parsed, path_encoded=True)


_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/ecmascript",
               "application/x-www-form-urlencoded", "application/graphql", "image/svg+xml")


def is_textual(content_type: str) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    return (ct.startswith("text/") or ct in _TEXT_TYPES or ct.endswith("+json") or ct.endswith("+xml"))


def encode_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """(body field, isBase64Encoded): textual types valid as UTF-8 go as a plain string."""
    if not body:
        return "", False
    if is_textual(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def http_response(status: int, headers: Mapping[str, list[str]], body: bytes, force_base64: bool = False
                  ) -> dict[str, Any]:
    """Payload 2.0 result. Set-Cookie values go to ``cookies`` (one each); other repeated
    headers are joined with ", " (2.0 has no multiValueHeaders)."""
    out_headers: dict[str, str] = {}
    cookies: list[str] = []
    content_type = ""
    for name, values in headers.items():
        lower = name.lower()
        if lower == "set-cookie":
            cookies.extend(values)
            continue
        if lower == "content-type" and values:
            content_type = values[0]
        joined = ", ".join(values)
        if lower in {k.lower() for k in out_headers}:
            key = next(k for k in out_headers if k.lower() == lower)
            out_headers[key] = out_headers[key] + ", " + joined
        else:
            out_headers[name] = joined
    text, b64 = encode_body(body, "" if force_base64 else content_type)
    out: dict[str, Any] = {"statusCode": status, "headers": out_headers, "body": text, "isBase64Encoded": b64}
    if cookies:
        out["cookies"] = cookies
    return out


def result_size(result: dict[str, Any]) -> int:
    """Bytes of the Lambda result as the runtime serialises it (json.dumps, ASCII-escaped: worst case)."""
    return len(json.dumps(result))


def error_response(status: int, code: str, message: str) -> dict[str, Any]:
    """A tunnel-produced error: short plain text plus the x-tunnel-error header."""
    return {
        "statusCode": status,
        "headers": {"content-type": "text/plain; charset=utf-8", names.ERROR_HEADER: code},
        "body": message.rstrip("\n") + "\n",
        "isBase64Encoded": False,
    }
