"""The emulator's own reading of a streamed Runtime API answer (never the layer's encoder).

A runtime that streams POSTs ``/runtime/invocation/<id>/response`` with ``Transfer-Encoding:
chunked``; for an HTTP answer (``Content-Type: application/vnd.awslambda.http-integration-response``)
the body is a JSON prelude (``statusCode``, ``headers``, ``cookies``), 8 NUL bytes, then the
caller's body; an error after the first byte arrives as the ``Lambda-Runtime-Function-Error-Type``
/ ``-Body`` trailers. Sources: emulator/README.md, "Lambda response streaming".

Both decoders here are incremental and pure: ``feed(bytes)`` returns what became known, so the
fake Runtime API can pass each piece on the moment it arrives and tests can feed golden bytes
one at a time. Malformed input raises :class:`StreamFormatError` with what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

DELIMITER = b"\0" * 8
MAX_LINE = 8192  # a chunk-size line or a trailer line longer than this is refused
MAX_PRELUDE = 64 * 1024  # a prelude with no delimiter within this many bytes is refused
ERROR_TYPE = "lambda-runtime-function-error-type"
ERROR_BODY = "lambda-runtime-function-error-body"


class StreamFormatError(ValueError):
    """The bytes are not a well-formed chunked body or prelude."""


@dataclass
class Data:
    data: bytes


@dataclass
class End:
    trailers: dict[str, str] = field(default_factory=dict)  # names lower-cased


class ChunkedDecoder:
    """HTTP/1.1 chunked transfer coding (RFC 9112 section 7.1), trailers included."""

    def __init__(self) -> None:
        self._buffer = b""
        self._state = "size"  # size -> data -> data_end -> size ... -> trailers -> done
        self._remaining = 0
        self._trailers: dict[str, str] = {}
        self.done = False

    def feed(self, data: bytes) -> list[Data | End]:
        if self.done and data:
            raise StreamFormatError("bytes after the end of the chunked body")
        self._buffer += data
        out: list[Data | End] = []
        while not self.done:
            if self._state == "size":
                line = self._line()
                if line is None:
                    break
                size_text = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
                try:
                    if not size_text or size_text.startswith((b"+", b"-")):
                        raise ValueError
                    self._remaining = int(size_text, 16)
                except ValueError:
                    raise StreamFormatError(f"bad chunk size line {line[:40]!r}") from None
                self._state = "data" if self._remaining else "trailers"
            elif self._state == "data":
                if not self._buffer:
                    break
                piece, self._buffer = self._buffer[:self._remaining], self._buffer[self._remaining:]
                self._remaining -= len(piece)
                out.append(Data(piece))
                if not self._remaining:
                    self._state = "data_end"
            elif self._state == "data_end":
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise StreamFormatError("chunk data not followed by CRLF")
                self._buffer = self._buffer[2:]
                self._state = "size"
            else:  # trailers: field lines until an empty line
                line = self._line()
                if line is None:
                    break
                if not line:
                    self.done = True
                    out.append(End(dict(self._trailers)))
                    break
                name, sep, value = line.partition(b":")
                if not sep or not name.strip() or name != name.strip():
                    raise StreamFormatError(f"bad trailer line {line[:40]!r}")
                self._trailers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
        if self.done and self._buffer:
            raise StreamFormatError("bytes after the end of the chunked body")
        return out

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE:
                raise StreamFormatError("line too long (no CRLF)")
            return None
        if end > MAX_LINE:
            raise StreamFormatError("line too long")
        line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
        return line


@dataclass
class Prelude:
    status_code: int
    headers: dict[str, str]
    cookies: list[str]


class PreludeSplitter:
    """Splits an http-integration-response body into its prelude and the caller's bytes."""

    def __init__(self) -> None:
        self._head = b""
        self.prelude: Prelude | None = None

    def feed(self, data: bytes) -> tuple[Prelude | None, bytes]:
        """Returns (the prelude, the first time it is complete; else None) and the body bytes after it."""
        if self.prelude is not None:
            return None, data
        self._head += data
        at = self._head.find(DELIMITER)
        if at < 0:
            if len(self._head) > MAX_PRELUDE:
                raise StreamFormatError("no 8-NUL delimiter after the prelude")
            return None, b""
        self.prelude = parse_prelude(self._head[:at])
        rest, self._head = self._head[at + len(DELIMITER):], b""
        return self.prelude, rest


def parse_prelude(raw: bytes) -> Prelude:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StreamFormatError(f"the prelude is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise StreamFormatError("the prelude is not a JSON object")
    status = document.get("statusCode", 200)
    headers = document.get("headers") or {}
    cookies = document.get("cookies") or []
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise StreamFormatError(f"bad statusCode {status!r}")
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise StreamFormatError("prelude headers must map strings to strings")
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise StreamFormatError("prelude cookies must be a list of strings")
    return Prelude(status, headers, cookies)


def trailer_error(trailers: dict[str, str]) -> dict[str, Any] | None:
    """The error a runtime reported in the trailers, or None. A body that is not base64 JSON is kept raw."""
    error_type = trailers.get(ERROR_TYPE)
    if error_type is None:
        return None
    raw = trailers.get(ERROR_BODY, "")
    try:
        body: Any = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        body = raw
    return {"errorType": error_type, "body": body}
