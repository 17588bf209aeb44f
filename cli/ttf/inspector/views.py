"""How a captured body is shown: decoded for display only, and laid out by its type.

Nothing here changes what is kept or forwarded: a gzip/deflate (or br, when a brotli module
is importable) body is inflated into a separate copy for the page, capped at DECODED_MAX so a
compression bomb costs nothing, and the page says "decoded for display". Forms and multipart
parts become tables; everything else is labelled json, text, image or binary for the page.
"""

from __future__ import annotations

import importlib
import json
import zlib
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

from httptunnel.protocol import Headers, b64encode, header_lookup

DECODED_MAX = 4 * 1024 * 1024
PARTS_MAX = 200
PART_PREVIEW = 4096
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/x-icon",
                         "image/vnd.microsoft.icon", "image/avif", "image/svg+xml"})


def _brotli() -> ModuleType | None:
    for name in ("brotli", "brotlicffi"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


BROTLI = _brotli()


def media_type(headers: Headers) -> tuple[str, dict[str, str]]:
    """('application/json', {'charset': 'utf-8'}) from Content-Type; ('', {}) without one."""
    found = header_lookup(headers, "content-type")
    if not found:
        return "", {}
    kind, *params = found[0].split(";")
    out: dict[str, str] = {}
    for param in params:
        key, _, value = param.strip().partition("=")
        out[key.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), out


def _inflate(data: bytes, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, DECODED_MAX + 1)
    if len(out) > DECODED_MAX:
        raise ValueError(f"more than {DECODED_MAX} bytes once decoded")
    return out


def decode(data: bytes, encoding: str) -> bytes:
    """One content coding undone; ValueError when it cannot be (or would be too big)."""
    if encoding in {"gzip", "x-gzip"}:
        return _inflate(data, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return _inflate(data, zlib.MAX_WBITS)  # RFC 9110 deflate is zlib-wrapped...
        except zlib.error:
            return _inflate(data, -zlib.MAX_WBITS)  # ...but some servers send raw deflate
    if encoding == "br":
        if BROTLI is None:
            raise ValueError("no brotli module is installed (pip install brotli to see br bodies)")
        inflater = BROTLI.Decompressor()
        try:  # never more than the display limit in memory: a few KB of br can decode to gigabytes
            out = bytes(inflater.process(data, output_buffer_limit=DECODED_MAX + 1))
        except TypeError:  # brotli/brotlicffi older than 1.2 cannot stop early: do not try
            raise ValueError("the installed brotli module cannot limit its output (brotli or brotlicffi >= 1.2 can)"
                             ) from None
        if len(out) > DECODED_MAX:
            raise ValueError(f"more than {DECODED_MAX} bytes once decoded")
        return out
    raise ValueError(f"unknown content coding {encoding!r}")


def decoded_for_display(data: bytes, headers: Headers, truncated: bool) -> tuple[dict[str, Any] | None, bytes | None]:
    """(None, None) when the body has no content coding; else (what the page is told, the decoded bytes)."""
    codings = [c.strip().lower() for v in header_lookup(headers, "content-encoding") for c in v.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings or not data:
        return None, None
    label = ", ".join(codings)
    if truncated:
        return {"encoding": label, "error": "the capture was truncated, so it cannot be decoded"}, None
    body = data
    try:
        for coding in reversed(codings):  # the last coding applied is undone first
            body = decode(body, coding)
    except (ValueError, zlib.error) as exc:
        return {"encoding": label, "error": f"not decoded: {exc}"}, None
    return {"encoding": label, "body": b64encode(body), "size": len(body)}, body


def is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(ch) < 0x20 and ch not in "\t\r\n\f" for ch in text[:4096])


def layout(data: bytes, headers: Headers, truncated: bool) -> dict[str, Any]:
    """{"kind": json|form|multipart|image|text|binary|empty, ...}: how the page lays this body out."""
    kind, params = media_type(headers)
    if not data:
        return {"kind": "empty", "media_type": kind}
    base: dict[str, Any] = {"media_type": kind}
    if kind in IMAGE_TYPES and not truncated:
        return base | {"kind": "image"}
    if kind == "application/x-www-form-urlencoded" and is_text(data):
        fields = parse_qsl(data.decode("utf-8"), keep_blank_values=True)
        return base | {"kind": "form", "fields": [[k, v] for k, v in fields[:PARTS_MAX]],
                       "more": max(0, len(fields) - PARTS_MAX)}
    if kind.startswith("multipart/") and params.get("boundary"):
        parts = multipart(data, params["boundary"])
        if parts is not None:
            return base | {"kind": "multipart", "parts": parts}
    if is_text(data):
        if kind == "application/json" or kind.endswith("+json") or (not kind and data.lstrip()[:1] in (b"{", b"[")):
            try:
                json.loads(data)
                return base | {"kind": "json"}
            except (ValueError, RecursionError):
                pass  # shown as text: truncated, or not JSON after all
        return base | {"kind": "text"}
    return base | {"kind": "binary"}


def multipart(data: bytes, boundary: str) -> list[dict[str, Any]] | None:
    """The parts of a multipart body (headers, name, filename, size, text or a note); None if malformed."""
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    chunks = data.split(delimiter)
    if len(chunks) < 3:
        return None
    parts: list[dict[str, Any]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--") or len(parts) >= PARTS_MAX:
            break
        chunk = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, content = chunk, b""
        part_headers: list[list[str]] = []
        for line in head.split(b"\r\n"):
            name, colon, value = line.decode("utf-8", "replace").partition(":")
            if colon:
                part_headers.append([name.strip(), value.strip()])
        disposition = next((v for n, v in part_headers if n.lower() == "content-disposition"), "")
        params = {k.strip().lower(): v.strip().strip('"') for k, _, v in
                  (p.partition("=") for p in disposition.split(";")[1:])}
        text = content[:PART_PREVIEW].decode("utf-8") if is_text(content[:PART_PREVIEW]) else None
        parts.append({"headers": part_headers, "name": params.get("name"), "filename": params.get("filename"),
                      "size": len(content), "text": text, "more": len(content) > PART_PREVIEW})
    return parts


def body_view(data: bytes, headers: Headers, truncated: bool) -> dict[str, Any]:
    """The layout of the body as shown: of the decoded copy when there is one."""
    info, decoded = decoded_for_display(data, headers, truncated)
    if decoded is not None:
        return {"decoded": info, "layout": layout(decoded, headers, False)}
    return {"decoded": info, "layout": layout(data, headers, truncated)}
