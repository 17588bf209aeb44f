"""Wire protocol between the server (Lambdas) and the agent (`ttf`).

JSON text frames tagged by ``type`` (snake_case), compatible with the original
http-tunnel. Unknown fields are ignored; unknown types and malformed frames raise
:class:`ProtocolError` (callers log and drop, never crash).

Extensions (all optional, ignored by the original agent/server):

* ``connection_established``: ``subdomain`` (the reserved name, when one was granted).
  ``reclaim_token`` is legacy: servers before agent-made reclaim tokens sent one (and kept it in
  plain text); today's server sends none (the agent makes its own and presents it at $connect),
  and an agent talking to an older server adopts the one it is sent.
* ``http_request``: ``body_url`` (presigned S3 GET when the body is too big to ride
  inline; ``body`` is then ""), ``body_size``, ``body_sha256`` (hex, of the raw body),
  ``response_upload`` (``{"url": ..., "fields": {...}}``: a presigned S3 POST form the agent
  may use for a big response body; its policy caps the object at ``BODY_MAX`` bytes and pins
  the key), ``deadline_ms`` (unix ms after which nobody waits for the answer; needs a synced
  clock), ``time_left_ms`` (milliseconds the server still waits for the answer, counted when
  the request was sent: immune to clock skew, prefer it to ``deadline_ms``).
  ``response_upload_url`` (a presigned PUT, no size limit) is no longer sent: an agent that
  only knows it answers big bodies with an ``error`` (the caller gets 502).
* ``request_denied`` (server -> agent, informational, no answer expected): a request for this
  tunnel that the edge refused before it reached the agent (``method``, ``uri``, ``status``,
  ``reason`` = the ``x-tunnel-error`` code, optional ``headers``, ``timestamp`` unix ms). The
  agent shows it in its request inspector; an agent that does not know it logs and drops it.
* ``http_response``: ``body_uploaded`` (true when the body was uploaded through
  ``response_upload``; ``body`` is then ""), ``body_size``, ``body_sha256``.
* ``error``: the code ``tunnel_busy`` (the agent refused the request at once because its
  queue is full; the caller gets 429).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

# name -> list of values, order preserved (repeated headers such as Set-Cookie).
Headers = dict[str, list[str]]

ERROR_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "timeout": 504,
    "local_service_unavailable": 503,
    "local_service_error": 502,
    "internal_error": 502,
    "tunnel_busy": 429,  # the agent's queue is full: it refused at once instead of queueing
}


class ProtocolError(ValueError):
    """A frame that is not valid JSON, has an unknown type, or misses/mistypes a field."""


@dataclass(frozen=True)
class Ready:
    type = "ready"


@dataclass(frozen=True)
class Ping:
    type = "ping"


@dataclass(frozen=True)
class Pong:
    type = "pong"


@dataclass(frozen=True)
class ConnectionEstablished:
    connection_id: str
    tunnel_id: str
    public_url: str
    subdomain_url: str | None = None
    path_based_url: str | None = None
    reclaim_token: str | None = None
    subdomain: str | None = None
    type = "connection_established"


@dataclass(frozen=True)
class HttpRequest:
    request_id: str
    method: str
    uri: str
    headers: Headers = field(default_factory=dict)
    body: str = ""  # standard base64 of the raw body, "" if none (or if body_url is set)
    timestamp: int = 0  # unix ms
    body_url: str | None = None
    body_size: int | None = None
    body_sha256: str | None = None
    response_upload_url: str | None = None  # old agents only; the server no longer sends it
    deadline_ms: int | None = None
    time_left_ms: int | None = None
    response_upload: dict[str, Any] | None = None  # {"url": str, "fields": {str: str}}
    type = "http_request"


@dataclass(frozen=True)
class HttpResponse:
    request_id: str
    status_code: int
    headers: Headers = field(default_factory=dict)
    body: str = ""  # standard base64, "" if none (or if body_uploaded)
    processing_time_ms: int = 0
    body_uploaded: bool = False
    body_size: int | None = None
    body_sha256: str | None = None
    type = "http_response"


@dataclass(frozen=True)
class Error:
    request_id: str
    code: str
    message: str = ""
    type = "error"


@dataclass(frozen=True)
class RequestDenied:
    method: str
    uri: str
    status: int
    reason: str  # the x-tunnel-error code the caller got
    headers: Headers = field(default_factory=dict)
    timestamp: int = 0  # unix ms
    count: int = 1  # denials this notice stands for (the edge rate-limits notices and counts the rest in)
    type = "request_denied"


Message = Union[Ready, Ping, Pong, ConnectionEstablished, HttpRequest, HttpResponse, Error, RequestDenied]

_TYPES: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (Ready, Ping, Pong, ConnectionEstablished, HttpRequest, HttpResponse, Error, RequestDenied)
}

# field -> (python types accepted, required)
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "ready": {},
    "ping": {},
    "pong": {},
    "connection_established": {
        "connection_id": ((str,), True),
        "tunnel_id": ((str,), True),
        "public_url": ((str,), True),
        "subdomain_url": ((str, type(None)), False),
        "path_based_url": ((str, type(None)), False),
        "reclaim_token": ((str, type(None)), False),
        "subdomain": ((str, type(None)), False),
    },
    "http_request": {
        "request_id": ((str,), True),
        "method": ((str,), True),
        "uri": ((str,), True),
        "headers": ((dict,), False),
        "body": ((str,), False),
        "timestamp": ((int,), False),
        "body_url": ((str, type(None)), False),
        "body_size": ((int, type(None)), False),
        "body_sha256": ((str, type(None)), False),
        "response_upload_url": ((str, type(None)), False),
        "deadline_ms": ((int, type(None)), False),
        "time_left_ms": ((int, type(None)), False),
        "response_upload": ((dict, type(None)), False),
    },
    "http_response": {
        "request_id": ((str,), True),
        "status_code": ((int,), True),
        "headers": ((dict,), False),
        "body": ((str,), False),
        "processing_time_ms": ((int,), False),
        "body_uploaded": ((bool,), False),
        "body_size": ((int, type(None)), False),
        "body_sha256": ((str, type(None)), False),
    },
    "error": {
        "request_id": ((str,), True),
        "code": ((str,), True),
        "message": ((str,), False),
    },
    "request_denied": {
        "method": ((str,), True),
        "uri": ((str,), True),
        "status": ((int,), True),
        "reason": ((str,), True),
        "headers": ((dict,), False),
        "timestamp": ((int,), False),
        "count": ((int,), False),
    },
}


def _headers(value: Any) -> Headers:
    """Accept name -> [values] (and, leniently, name -> value)."""
    out: Headers = {}
    for name, values in value.items():
        if isinstance(values, str):
            out[name] = [values]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            out[name] = list(values)
        else:
            raise ProtocolError(f"header {name!r}: values must be strings")
    return out


def decode(frame: Union[str, bytes]) -> Message:
    """Parse one text frame. Raises ProtocolError on anything not understood."""
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except RecursionError:  # a deeply nested document: json gives up past the recursion limit
        raise ProtocolError("not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError("frame is not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ProtocolError(f"unknown message type: {kind!r}")
    kwargs: dict[str, Any] = {}
    for name, (types, required) in _SCHEMA[kind].items():
        if name not in data:
            if required:
                raise ProtocolError(f"{kind}: missing field {name!r}")
            continue
        value = data[name]
        # bool is an int subclass: never accept true/false for an integer field.
        if isinstance(value, bool) and bool not in types:
            raise ProtocolError(f"{kind}: field {name!r} has the wrong type")
        if not isinstance(value, types):
            raise ProtocolError(f"{kind}: field {name!r} has the wrong type")
        if name == "headers":
            value = _headers(value)
        elif name == "response_upload" and isinstance(value, dict):
            value = _upload_form(value)
        kwargs[name] = value
    return _TYPES[kind](**kwargs)


def _upload_form(value: dict[str, Any]) -> dict[str, Any]:
    """``{"url": str, "fields": {str: str}}`` (a presigned S3 POST), nothing else."""
    url, fields = value.get("url"), value.get("fields")
    if not isinstance(url, str) or not isinstance(fields, dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise ProtocolError("http_request: response_upload must be {url: string, fields: {string: string}}")
    return {"url": url, "fields": dict(fields)}


def encode(message: Message) -> str:
    """Serialise a message to one compact JSON text frame. None-valued optionals are left out."""
    data: dict[str, Any] = {"type": message.type}
    for name in _SCHEMA[message.type]:
        value = getattr(message, name)
        if value is None:
            continue
        if name == "body_uploaded" and value is False:
            continue
        data[name] = value
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict standard base64 (raises ProtocolError on bad input)."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ProtocolError(f"body is not valid base64: {exc}") from None


def header_lookup(headers: Mapping[str, list[str]], name: str) -> list[str]:
    """All values of a header, case-insensitively, in order."""
    lower = name.lower()
    out: list[str] = []
    for key, values in headers.items():
        if key.lower() == lower:
            out.extend(values)
    return out


# Headers that describe one connection, never forwarded by a proxy (RFC 9110 §7.6.1), plus
# the legacy ones proxies still meet. The server (both ways) and the agent strip the same set.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})


def strip_hop_by_hop(headers: Mapping[str, list[str]], also: Iterable[str] = ()) -> Headers:
    """Drop hop-by-hop headers, those the Connection header names, and any lower-case names in also."""
    named = {token.strip().lower() for value in header_lookup(headers, "connection")
             for token in value.split(",") if token.strip()}
    drop = HOP_BY_HOP | named | frozenset(also)
    return {name: list(values) for name, values in headers.items() if name.lower() not in drop}
