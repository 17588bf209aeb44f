"""An edited request, checked before it is sent: every mistake is a 400 that names its field.

The JSON the API takes (every key optional; what is left out is taken from the original):
  {"method": "POST", "uri": "/path?q=1",
   "headers": [["Name", "value"], ...]          (a list keeps order and repeats; or {"Name": ["v", ...]})
   "body": "text" | "body_base64": "..."}       (the body's exact bytes: text is sent as UTF-8)
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from httptunnel.limits import BODY_MAX
from httptunnel.protocol import Headers

TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# RFC 9110 5.5: a field value is visible ASCII, obs-text, space and tab; never CR, LF or NUL.
_BAD_VALUE_CHARS = frozenset(chr(c) for c in range(0x20) if c != 0x09) | {"\x7f"}
HEADER_VALUE_MAX = 16 * 1024
HEADERS_MAX = 200
URI_MAX = 16 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class EditError(ValueError):
    """Bad edited request: `field` (and `header`, when it is one) say where."""

    def __init__(self, message: str, field: str, header: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.header = header

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": str(self), "field": self.field}
        if self.header is not None:
            out["header"] = self.header
        return out


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    headers: Headers
    body: bytes


def idempotent(method: str) -> bool:
    return method.upper() in IDEMPOTENT


def check_method(method: object) -> str:
    if not isinstance(method, str) or not method or not set(method) <= TOKEN_CHARS or len(method) > 32:
        raise EditError(f"method {str(method)[:40]!r} is not an HTTP method (letters and token characters)", "method")
    return method


def check_uri(uri: object) -> str:
    if not isinstance(uri, str) or not uri.startswith("/"):
        raise EditError("uri must be a path starting with '/' (and an optional ?query)", "uri")
    if len(uri) > URI_MAX:
        raise EditError(f"uri is longer than {URI_MAX} characters", "uri")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in uri):
        raise EditError("uri contains spaces or control characters (percent-encode them)", "uri")
    return uri


def check_header(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or not name or not set(name) <= TOKEN_CHARS:
        shown = name if isinstance(name, str) else repr(name)
        raise EditError(f"header {shown!r}: the name is not a valid header name (RFC 9110 token)", "headers",
                        shown if isinstance(shown, str) else None)
    if not isinstance(value, str):
        raise EditError(f"header {name!r}: the value must be a string", "headers", name)
    if _BAD_VALUE_CHARS.intersection(value):
        raise EditError(f"header {name!r}: the value contains CR, LF or another control character", "headers", name)
    if len(value) > HEADER_VALUE_MAX:
        raise EditError(f"header {name!r}: the value is longer than {HEADER_VALUE_MAX} characters", "headers", name)
    return name, value


def check_headers(raw: object) -> Headers:
    pairs: list[tuple[object, object]]
    if isinstance(raw, list):
        if not all(isinstance(p, list) and len(p) == 2 for p in raw):
            raise EditError("headers must be a list of [name, value] pairs", "headers")
        pairs = [(p[0], p[1]) for p in raw]
    elif isinstance(raw, dict):
        pairs = []
        for name, values in raw.items():
            pairs += [(name, v) for v in (values if isinstance(values, list) else [values])]
    else:
        raise EditError("headers must be a list of [name, value] pairs", "headers")
    if len(pairs) > HEADERS_MAX:
        raise EditError(f"more than {HEADERS_MAX} headers", "headers")
    out: Headers = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        checked_name, checked_value = check_header(name, value)
        key = spelling.setdefault(checked_name.lower(), checked_name)
        out.setdefault(key, []).append(checked_value)
    return out


def check_body(data: dict[str, Any]) -> bytes | None:
    """The edited body's bytes, or None (keep the original)."""
    if "body" in data and "body_base64" in data:
        raise EditError("give body or body_base64, not both", "body")
    if "body" in data:
        if not isinstance(data["body"], str):
            raise EditError("body must be a string (use body_base64 for bytes)", "body")
        body = data["body"].encode("utf-8")
    elif "body_base64" in data:
        if not isinstance(data["body_base64"], str):
            raise EditError("body_base64 must be a base64 string", "body_base64")
        try:
            body = base64.b64decode(data["body_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise EditError("body_base64 is not valid base64", "body_base64") from None
    else:
        return None
    if len(body) > BODY_MAX:
        raise EditError(f"body is larger than {BODY_MAX} bytes", "body")
    return body


def edited(original: Request, data: object) -> Request:
    """The original with what `data` changes; raises EditError naming the bad field."""
    if not isinstance(data, dict):
        raise EditError("the edited request must be a JSON object", "request")
    unknown = set(data) - {"method", "uri", "headers", "body", "body_base64"}
    if unknown:
        raise EditError(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    method = check_method(data["method"]) if "method" in data else original.method
    uri = check_uri(data["uri"]) if "uri" in data else original.uri
    headers = check_headers(data["headers"]) if "headers" in data else original.headers
    body = check_body(data)
    return Request(method, uri, headers, original.body if body is None else body)
