"""API Gateway event shapes (HTTP API payload 2.0, WebSocket API) and result handling.

What AWS does, with the source of each rule (the fidelity table in emulator/README.md lists
the rest, and where the emulator differs):

* ``rawPath`` arrives percent-DECODED, and is cut at a decoded ``?``; ``%25`` is decoded twice
  (``%2525`` -> ``%``; ``%25`` followed by no hex pair -> 400). Live captures from a real HTTP
  API: https://github.com/hotsock/voker/blob/a1c00bf491e026f81917cc2edfdaca03eabc7518/vokerhttp/testdata/ingress-paths.json
  (https://github.com/hotsock/voker/pull/8), summarised in https://github.com/middleapi/standard-server/pull/93; user
  reports https://github.com/honojs/hono/issues/2156, https://github.com/wakujs/waku/pull/458.
* Header names are lower-cased; repeated headers are joined with ``,``; all ``cookie``
  headers go to ``cookies``; repeated query keys are joined with ``,`` in
  ``queryStringParameters`` (decoded, ``+`` is a space) while ``rawQueryString`` is the query as
  sent: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
  and the live capture https://github.com/hotsock/voker/blob/7e397613eaf1da718392c5f50e0221ae2309dda9/vokerhttp/testdata/apigwv2-request.json
* API Gateway adds ``x-forwarded-for`` (the caller's chain, then the source IP), ``x-forwarded-port``,
  ``x-forwarded-proto`` and ``x-amzn-trace-id`` (the same capture; the chain rule:
  https://github.com/ustayready/fireprox/issues/12). Here proto is ``http`` and the port is the
  emulator's: the local stack serves plain HTTP.
* The body is text (``isBase64Encoded: false``) only for ``text/*``, ``application/json``,
  ``application/xml`` and ``application/javascript``; everything else (no Content-Type, form
  posts, ``+json``) is base64, verified against AWS in
  https://github.com/ministackorg/ministack/pull/766. Text that is not valid UTF-8 is base64 here
  (no source: JSON cannot carry it otherwise). No body: the ``body`` key is absent.
* A result without ``statusCode`` is a 200 ``application/json`` whose body is the result itself
  when it is a string, else its JSON (doc above, "Lambda function response for format 2.0").
  Payload 2.0 results have no ``multiValueHeaders``; API Gateway ignores them:
  https://github.com/aws/serverless-java-container/issues/377 (answer from the API Gateway team).
* Request ids and WebSocket connection ids are 16 characters of base64 (11 bytes), e.g.
  ``L0SM9cOFvHcCIhw=`` (AWS docs) and ``ATfSmjLgPHcESJw=`` (the capture above).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qsl

TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8"  # what HTTP APIs answer when the result has none

Pairs = list[tuple[str, str]]
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


class BadResult(ValueError):
    """A Lambda result API Gateway cannot turn into a response (-> 500)."""


class BadPath(ValueError):
    """A request path an HTTP API refuses with 400 before invoking anything."""


def aws_id() -> str:
    """An id shaped like API Gateway's request and connection ids: base64 of 11 bytes (16 chars)."""
    return base64.b64encode(os.urandom(11)).decode("ascii")


def trace_id(now: float) -> str:
    """An X-Ray trace header value as API Gateway adds it: ``Root=1-<epoch hex>-<96 random bits>``."""
    return f"Root=1-{int(now):08x}-{os.urandom(12).hex()}"


def _percent_decode(raw: bytes) -> bytes:
    if b"%" in _PERCENT.sub(b"", raw):
        raise BadPath("malformed percent-encoding in the path")
    return _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def decode_raw_path(wire_path: str) -> str:
    """``rawPath`` as an HTTP API hands it to Lambda, from the path as the caller sent it.

    Reproduces the live captures of hotsock/voker#8: the path is percent-decoded, cut at the
    first decoded ``?``, then decoded once more (``%252F`` -> ``/``, ``%2525`` -> ``%``,
    ``%253F`` -> ``?`` without a cut); a ``%`` that is left without two hex digits makes the
    API answer 400 (``/percent%25done`` is refused). Not UTF-8 after decoding: 400 too (no
    capture; an assumption). ``%2F`` becomes ``/``: the caller's ``%2F`` cannot be told apart.
    """
    first = _percent_decode(wire_path.encode("utf-8", "surrogateescape"))
    cut = first.split(b"?", 1)[0]
    try:
        return _percent_decode(cut).decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("path is not UTF-8 once decoded") from None


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
    return main.startswith("text/") or main in TEXT_TYPES


def request_time(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


def joined_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Payload 2.0: names lower-cased, repeated headers joined with ","."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def last_value_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """WebSocket (payload 1.0 shape): names as sent, the last value of a repeated header (the
    REST/1.0 input example: ``header2`` is ``value2`` in ``headers``, both in ``multiValueHeaders``)."""
    return {name: value for name, value in pairs}


def forwarded_headers(pairs: Pairs, source_ip: str, port: int, proto: str, now: float,
                      names: tuple[str, str, str, str]) -> Pairs:
    """The headers with those API Gateway sets: X-Forwarded-For (the caller's chain, then the
    source IP), X-Forwarded-Port/-Proto (replacing the caller's) and X-Amzn-Trace-Id (kept when
    the caller sent one). ``names`` spells them (lower-case for HTTP APIs, as in the WebSocket docs)."""
    xff_name, port_name, proto_name, trace_name = names
    chain = [v for n, v in pairs if n.lower() == "x-forwarded-for"]
    has_trace = any(n.lower() == "x-amzn-trace-id" for n, _ in pairs)
    out = [(n, v) for n, v in pairs if n.lower() not in ("x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")]
    out.append((xff_name, ", ".join(chain + [source_ip])))
    out.append((port_name, str(port)))
    out.append((proto_name, proto))
    if not has_trace:
        out.append((trace_name, trace_id(now)))
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
               request_id: str | None = None, port: int = 443, proto: str = "https") -> dict[str, Any]:
    """An HTTP API payload format 2.0 event. ``raw_path`` is already decoded (:func:`decode_raw_path`)."""
    now = time.time() if now is None else now
    headers = forwarded_headers(headers, source_ip, port, proto, now,
                                ("x-forwarded-for", "x-forwarded-port", "x-forwarded-proto", "x-amzn-trace-id"))
    cookies = split_cookies(v for n, v in headers if n.lower() == "cookie")
    plain = [(n, v) for n, v in headers if n.lower() != "cookie"]
    lowered = joined_headers(plain)
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
            "requestId": request_id or aws_id(),
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
    """Turn a payload 2.0 Lambda result into a response, as API Gateway does.

    No ``statusCode``: 200 ``application/json`` whose body is the result (a string as it is,
    anything else as JSON). ``multiValueHeaders`` are ignored (payload 2.0 has none). A body
    without a content-type header is answered as ``text/plain; charset=utf-8``, an empty one
    without any (captures: https://aasisodiya.github.io/nodejs/nodejs-aws/nodejs-aws-apigw and
    https://github.com/awslabs/aws-lambda-go-api-proxy/issues/75)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        text = result if isinstance(result, str) else json.dumps(result, separators=(",", ":"))
        return HttpResult(200, [("content-type", "application/json")], text.encode("utf-8"))
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise BadResult(f"statusCode must be an integer HTTP status, got {status!r}")
    headers: Pairs = []
    for name, value in (result.get("headers") or {}).items():
        if not isinstance(value, (str, int, float, bool)):
            raise BadResult(f"header {name!r} must be a string")
        headers.append((str(name), str(value) if not isinstance(value, bool) else str(value).lower()))
    for cookie in result.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))
    body = result_body(result)
    if body and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("content-type", DEFAULT_CONTENT_TYPE))
    return HttpResult(status, headers, body)


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
    request_id = aws_id()
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


def ws_handshake_headers(headers: Pairs, source_ip: str, port: int, proto: str, now: float | None = None) -> Pairs:
    """$connect headers: as sent (case kept), plus the X-Forwarded-* and X-Amzn-Trace-Id API Gateway
    adds (their spelling as in https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html)."""
    now = time.time() if now is None else now
    return forwarded_headers(headers, source_ip, port, proto, now,
                             ("X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto", "X-Amzn-Trace-Id"))


def ws_connect_event(*, api: ApiContext, connection_id: str, connected_at: int, headers: Pairs,
                     raw_query: str, source_ip: str) -> dict[str, Any]:
    """$connect: headers keep their case as sent (WebSocket APIs do not lower-case them);
    ``headers`` holds the last value of a repeated header, ``multiValueHeaders`` all of them."""
    user_agent = next((v for n, v in headers if n.lower() == "user-agent"), "")
    event: dict[str, Any] = {
        "headers": last_value_headers(headers),
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
    context["messageId"] = aws_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": is_base64}


def ws_disconnect_event(*, api: ApiContext, connection_id: str, connected_at: int, headers: Pairs,
                        source_ip: str, status_code: int, reason: str) -> dict[str, Any]:
    user_agent = next((v for n, v in headers if n.lower() == "user-agent"), "")
    context = ws_request_context(api=api, route_key="$disconnect", event_type="DISCONNECT",
                                 connection_id=connection_id, connected_at=connected_at,
                                 source_ip=source_ip, user_agent=user_agent)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {"headers": last_value_headers(headers),
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


def ws_connect_headers(result: Any) -> dict[str, str]:
    """Headers of a $connect result (string values only; anything else is dropped)."""
    headers = result.get("headers") if isinstance(result, dict) else None
    if not isinstance(headers, dict):
        return {}
    return {str(k): v for k, v in headers.items() if isinstance(v, str) and "\n" not in v and "\r" not in v}


def ws_connect_protocol(result: Any) -> str:
    """The subprotocol an accepting $connect result agreed (its ``Sec-WebSocket-Protocol`` header), or ""."""
    for name, value in ws_connect_headers(result).items():
        if name.lower() == "sec-websocket-protocol":
            return value.strip()
    return ""
