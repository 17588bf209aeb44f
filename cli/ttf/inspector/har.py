"""HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) out of and into the history.

Export keeps the bytes: text bodies as text, others base64 (`content.encoding` for answers;
`postData._encoding` for requests, a custom field, since HAR 1.2 has none there). An answer with
a Content-Encoding (gzip, deflate, br) is stored decoded, as the spec asks ("HTTP decoded text"),
with `content.compression` the bytes saved and `bodySize` the bytes sent; `_ttf.response_encoded`
keeps the bytes as sent, so ttf's own import restores them exactly. Each request's URL is the one
its caller used (Host, X-Forwarded-Proto, and X-Forwarded-Prefix for the path-based URL), else
its tunnel's public URL. What ttf knows besides (its id, replay link, error, truncation) rides in
`_ttf`. Import checks the whole file before it adds anything: a malformed or oversized file
changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from httptunnel.protocol import Headers, header_lookup

from ttf._version import __version__
from ttf.inspector.edit import EditError, check_header, check_method, check_uri
from ttf.inspector.history import Entry, capture
from ttf.inspector.views import decoded_for_display, media_type

HAR_MAX = 20 * 1024 * 1024
_TUNNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # a config file's tunnel name, or a tunnel id
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


class HarError(ValueError):
    """Not a HAR we can take: the message says where."""


def _text_or_base64(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def _headers_out(headers: Headers) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, values in headers.items() for value in values]


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def export(entries: list[Entry], base_url: str | Callable[[Entry], str]) -> dict[str, Any]:
    """base_url: one for all, or each entry's (its tunnel's public URL, several tunnels in one ttf)."""
    base = base_url if callable(base_url) else (lambda _entry: base_url)
    return {"log": {"version": "1.2", "creator": {"name": "ttf", "version": __version__},
                    "entries": [_entry_out(e, base(e)) for e in entries]}}


def caller_base(headers: Headers) -> str | None:
    """scheme://host[/prefix] as the caller addressed the tunnel, from the headers the edge sets; None
    when they are missing or malformed (an imported or hand-made entry)."""
    host, proto = header_lookup(headers, "host"), header_lookup(headers, "x-forwarded-proto")
    if not host or not proto:
        return None
    scheme = proto[-1].split(",")[-1].strip().lower()
    prefix = (header_lookup(headers, "x-forwarded-prefix") or [""])[0].rstrip("/")
    if scheme not in {"http", "https"} or not _HOST.match(host[0]) or (prefix and not _PREFIX.match(prefix)):
        return None
    return f"{scheme}://{host[0]}{prefix}"


def _entry_out(entry: Entry, base_url: str) -> dict[str, Any]:
    url = (caller_base(entry.request_headers) or base_url).rstrip("/") + entry.uri
    request: dict[str, Any] = {
        "method": entry.method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": _headers_out(entry.request_headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
        "headersSize": -1, "bodySize": entry.request.size,
    }
    if entry.request.data:
        text, b64 = _text_or_base64(entry.request.data)
        request["postData"] = {"mimeType": media_type(entry.request_headers)[0], "text": text}
        if b64:
            request["postData"]["_encoding"] = "base64"
    content: dict[str, Any] = {"size": entry.response.size, "mimeType": media_type(entry.response_headers)[0]}
    meta: dict[str, Any] = {}
    _, decoded = decoded_for_display(entry.response.data, entry.response_headers, entry.response.truncated)
    if decoded is not None:  # HTTP decoded text, the bytes saved, and the bytes as sent for ttf's import
        content.update(size=len(decoded), compression=len(decoded) - entry.response.size)
        meta["response_encoded"] = base64.b64encode(entry.response.data).decode("ascii")
    shown = entry.response.data if decoded is None else decoded
    if shown:
        content["text"], b64 = _text_or_base64(shown)
        if b64:
            content["encoding"] = "base64"
    response = {"status": entry.status, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [],
                "headers": _headers_out(entry.response_headers), "content": content, "redirectURL": "",
                "headersSize": -1, "bodySize": entry.response.size}
    return {"startedDateTime": _iso(entry.at), "time": entry.duration_ms, "request": request, "response": response,
            "cache": {}, "timings": {"send": 0, "wait": entry.duration_ms, "receive": 0},
            "_ttf": {"id": entry.id, "uri": entry.uri, "source": entry.source, "replay_of": entry.replay_of,
                     "error": entry.error, "tunnel": entry.tunnel,
                     "request_truncated": entry.request.truncated, "response_truncated": entry.response.truncated,
                     **meta}}


# ---- import ------------------------------------------------------------------------------

_KINDS = {dict: "an object", list: "a list", str: "a string", int: "a whole number", float: "a number"}


def _need(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise HarError(f"{where}: expected {' or '.join(_KINDS[k] for k in kinds)}")
    return value


def _headers_in(raw: Any, where: str) -> Headers:
    out: Headers = {}
    for i, item in enumerate(_need(raw if raw is not None else [], list, where)):
        _need(item, dict, f"{where}[{i}]")
        name = _need(item.get("name"), str, f"{where}[{i}].name")
        value = _need(item.get("value"), str, f"{where}[{i}].value")
        try:
            check_header(name, value)
        except EditError as exc:
            raise HarError(f"{where}[{i}]: {exc}") from None
        out.setdefault(name, []).append(value)
    return out


def _body_in(holder: Any, where: str, encoding_key: str) -> bytes:
    if holder is None:
        return b""
    _need(holder, dict, where)
    if holder.get("text") is None:
        return b""
    text: str = _need(holder["text"], str, f"{where}.text")
    encoding = holder.get(encoding_key) or holder.get("encoding") or holder.get("_encoding")
    if encoding in (None, ""):
        return text.encode("utf-8")
    if encoding != "base64":
        raise HarError(f"{where}: unknown encoding {encoding!r} (only base64)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HarError(f"{where}.text: not valid base64") from None


def _uri(url: str, where: str) -> str:
    parts = urlsplit(url)
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not uri.startswith("/") or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in uri):
        raise HarError(f"{where}: {url[:80]!r} has no usable path")
    return uri


def _at(raw: Any, where: str) -> float:
    _need(raw, str, where)
    try:
        stamp = datetime.fromisoformat(raw)
    except ValueError:
        raise HarError(f"{where}: {raw[:40]!r} is not an ISO 8601 date") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def parse(raw: bytes, cap: int, room: int) -> list[Entry]:
    """The entries of a HAR file, oldest first (ids 0: the history assigns them). Raises HarError."""
    if len(raw) > HAR_MAX:
        raise HarError(f"the HAR file is {len(raw)} bytes; the inspector takes at most {HAR_MAX}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HarError(f"not a HAR file: not JSON ({exc})") from None
    except RecursionError:
        raise HarError("not a HAR file: JSON nested too deeply") from None
    log = _need(_need(data, dict, "the file").get("log"), dict, "log")
    entries = _need(log.get("entries"), list, "log.entries")
    if len(entries) > room:
        raise HarError(f"the HAR file has {len(entries)} entries and the history keeps {room}: "
                       "raise the history size first, or export fewer")
    out = [_entry_in(item, f"log.entries[{i}]", cap) for i, item in enumerate(entries)]
    return sorted(out, key=lambda e: e.at)


def _entry_in(item: Any, where: str, cap: int) -> Entry:
    _need(item, dict, where)
    request = _need(item.get("request"), dict, f"{where}.request")
    method = _need(request.get("method"), str, f"{where}.request.method")
    try:
        check_method(method)
    except EditError as exc:
        raise HarError(f"{where}.request.method: {exc}") from None
    uri = _uri(_need(request.get("url"), str, f"{where}.request.url"), f"{where}.request.url")
    meta = item.get("_ttf") if isinstance(item.get("_ttf"), dict) else {}
    if isinstance(meta.get("uri"), str):  # ttf's own export: the uri as the local service got it
        try:
            uri = check_uri(meta["uri"])
        except EditError as exc:
            raise HarError(f"{where}._ttf.uri: {exc}") from None
    request_body = _body_in(request.get("postData"), f"{where}.request.postData", "_encoding")
    response = item.get("response") or {}
    _need(response, dict, f"{where}.response")
    status = response.get("status", 0)
    _need(status, int, f"{where}.response.status")
    if not 0 <= status <= 999:
        raise HarError(f"{where}.response.status: {status} is not an HTTP status")
    response_body = _body_in(response.get("content"), f"{where}.response.content", "encoding")
    if isinstance(meta.get("response_encoded"), str):  # ttf's own export: the bytes as the app sent them
        response_body = _body_in({"text": meta["response_encoded"], "encoding": "base64"},
                                 f"{where}._ttf.response_encoded", "encoding")
    duration = item.get("time", 0)
    _need(duration, (int, float), f"{where}.time")
    return Entry(
        id=0, at=_at(item.get("startedDateTime"), f"{where}.startedDateTime"), method=method, uri=uri,
        request_headers=_headers_in(request.get("headers"), f"{where}.request.headers"),
        request=capture(request_body, cap, _real_size(request, meta.get("request_truncated"))),
        status=status, response_headers=_headers_in(response.get("headers"), f"{where}.response.headers"),
        response=capture(response_body, cap, _real_size(response, meta.get("response_truncated"))),
        duration_ms=max(0, int(duration)),
        error=meta.get("error") if isinstance(meta.get("error"), str) else None, source="imported",
        tunnel=_tunnel_in(meta.get("tunnel")),
    )


def _tunnel_in(value: Any) -> str | None:
    """ttf's own export names the tunnel (a config file's name, or an id): replays go back there."""
    return value if isinstance(value, str) and _TUNNEL.match(value) else None


def _real_size(message: dict[str, Any], truncated: Any) -> int | None:
    """A body ttf exported truncated keeps its real size (bodySize) and stays marked truncated."""
    size = message.get("bodySize")
    return size if truncated is True and isinstance(size, int) and not isinstance(size, bool) else None
