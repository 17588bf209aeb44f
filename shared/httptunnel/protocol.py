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
* channel v2 (shared/README.md "Channel v2"): ``connection_established.capabilities`` (the agreed
  set), ``seq``/``ack`` on ``http_response`` and ``error``, and the ``ack`` frame (server -> agent),
  each used only when both sides announced the capability.
* streamed answers (`stream`, issue 23; shared/README.md "The chunk channel"): ``http_request.stream``
  (``{"window": n, "segment_form": {url, fields}}``, only from the streaming edge), the agent's
  ``http_response_head`` / ``http_response_chunk`` / ``http_response_end`` (seq 0, 1.., last) and
  the server's ``stream_ack`` (cumulative read) and ``stream_cancel``.
* caller WebSockets (`ws`): ``ws_open``/``ws_opened``/``ws_refused``/``ws_message``/``ws_ack``/``ws_close``
  (shared/README.md "Caller WebSockets"), used only when both sides announced ``ws``.
* ``connection_established.limits`` (issue 29): the socket's message budget, ``{"messages_per_s": r,
  "messages_burst": b}``, which the agent paces below (``ttf.pacing``); absent when the budget is off.
* ``error``: the code ``tunnel_busy`` (the agent refused the request at once because its
  queue is full; the caller gets 429).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import types as _pytypes
import typing
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


def known_error(code: str) -> str:
    """An agent's error code as stored: one the protocol knows, else ``internal_error``."""
    return code if code in ERROR_STATUS else "internal_error"


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
    capabilities: list[str] | None = None  # the agreed set (agent's and server's); absent from older servers
    # this socket's message budget (issue 29): {"messages_per_s": r, "messages_burst": b}; absent from
    # older servers and when the budget is off. The agent paces its frames below it (ttf.pacing).
    limits: dict[str, Any] | None = None
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
    acks: list[str] | None = None  # channel v2 (`ack`): request ids whose answers the edge has read
    # streamed answers (`stream`, issue 23; only from the streaming edge, to an agent that agreed it):
    # {"window": int, "segment_form": {"url": str, "fields": {...}}} (segment_form absent without a bucket)
    stream: dict[str, Any] | None = None
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
    seq: int | None = None  # channel v2 (`ack`): this message's number within its request (a whole answer: 0)
    ack: bool = False  # channel v2: post an `ack` for this message at once
    type = "http_response"


@dataclass(frozen=True)
class Error:
    request_id: str
    code: str
    message: str = ""
    seq: int | None = None  # channel v2, as on http_response
    ack: bool = False
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


@dataclass(frozen=True)
class Ack:
    """Server -> agent (channel v2, `ack`): every message of ``request_id`` numbered <= ``seq`` is stored."""
    request_id: str
    seq: int
    type = "ack"


# --- Streamed answers (`stream`, issue 23; /work STREAM_CONTRACT, shared/README.md "The chunk channel").
# Agent -> server frames carry ``seq``: the head is 0, then 1, 2, ... consecutively, the end last.
STREAM_WINDOW = 16  # frames the agent may keep un-read (seq > read_seq)
STREAM_SEGMENTS_UNREAD = 2  # segments the agent may keep un-read
STREAM_CHUNK_MAX = 22 * 1024  # raw bytes of one inline chunk (its frame stays under AGENT_MESSAGE_MAX)
STREAM_SEGMENT_MAX = 8 * 1024 * 1024  # bytes of one bulk-lane segment (the segment form's policy)
STREAM_CANCEL_REASONS = ("max_stream_seconds", "gave_up", "error")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def segment_key(request_id: str, seq: int) -> str:
    """The S3 key of a bulk-lane segment: ``resp/<request id>/<seq>`` (the only key a notice may name)."""
    return f"resp/{request_id}/{seq}"


@dataclass(frozen=True)
class HttpResponseHead:
    """Agent -> server: the local app's status line and headers, as soon as they arrive (seq 0)."""
    request_id: str
    seq: int
    status_code: int
    headers: Headers = field(default_factory=dict)
    processing_time_ms: int = 0
    type = "http_response_head"


@dataclass(frozen=True)
class HttpResponseChunk:
    """Agent -> server: body bytes, inline (``body``, base64 of <= STREAM_CHUNK_MAX raw bytes) or a
    bulk-lane segment notice (``segment`` = ``resp/<request id>/<seq>``, ``size``, ``sha256``)."""
    request_id: str
    seq: int
    body: str = ""
    segment: str | None = None
    size: int | None = None
    sha256: str | None = None  # hex, of the segment's bytes
    type = "http_response_chunk"


@dataclass(frozen=True)
class HttpResponseEnd:
    """Agent -> server: the last frame; ``bytes`` = the body bytes sent in all; ``error`` an ``error``
    frame code when the local answer broke mid-body."""
    request_id: str
    seq: int
    bytes: int
    error: str | None = None
    type = "http_response_end"


@dataclass(frozen=True)
class StreamAck:
    """Server -> agent: every frame of ``request_id`` numbered <= ``read_seq`` was READ by the edge."""
    request_id: str
    read_seq: int
    type = "stream_ack"


@dataclass(frozen=True)
class StreamCancel:
    """Server -> agent: the edge stopped reading (``reason`` in STREAM_CANCEL_REASONS); stop the local
    request and send nothing more for it."""
    request_id: str
    reason: str
    type = "stream_cancel"


StreamFrame = Union[HttpResponseHead, HttpResponseChunk, HttpResponseEnd]
# --- end of streamed answers

# ---- caller WebSockets (`ws`, issue 24; shared/README.md "Caller WebSockets"). One block: keep them together.

@dataclass(frozen=True)
class WsOpen:
    """Server -> agent: a caller opens a WebSocket; open the local one and answer ws_opened/ws_refused."""
    request_id: str  # channel v2 id bound to the agent's connection (the answer row's key)
    socket_id: str  # the caller's connection id on the caller API
    uri: str  # the target for the app: path + query
    headers: Headers = field(default_factory=dict)  # the caller's handshake headers (no per-hop ones)
    time_left_ms: int | None = None  # how long the caller's $connect still waits
    type = "ws_open"


@dataclass(frozen=True)
class WsOpened:
    """Agent -> server: the local socket is open; ``protocol`` is the subprotocol the app chose."""
    request_id: str
    socket_id: str
    protocol: str | None = None
    type = "ws_opened"


@dataclass(frozen=True)
class WsRefused:
    """Agent -> server: the local socket could not open; the caller's handshake gets ``status``."""
    request_id: str
    socket_id: str
    status: int
    code: str  # the x-tunnel-error code
    message: str = ""
    type = "ws_refused"


@dataclass(frozen=True)
class WsMessage:
    """Both ways: text messages of one socket, in order, numbered per direction (``seq``)."""
    socket_id: str
    seq: int
    data: list[str] = field(default_factory=list)
    type = "ws_message"


@dataclass(frozen=True)
class WsAck:
    """Server -> agent: every agent ws_message of the socket numbered <= seq was posted to the caller."""
    socket_id: str
    seq: int
    type = "ws_ack"


@dataclass(frozen=True)
class WsClose:
    """Both ways: the socket ended (server -> agent: the caller's code; agent -> server: close the caller's)."""
    socket_id: str
    code: int = 1000
    reason: str = ""
    type = "ws_close"


WS_FRAMES = (WsOpen, WsOpened, WsRefused, WsMessage, WsAck, WsClose)


Message = Union[Ready, Ping, Pong, ConnectionEstablished, HttpRequest, HttpResponse, Error, RequestDenied, Ack,
                HttpResponseHead, HttpResponseChunk, HttpResponseEnd, StreamAck, StreamCancel,
                WsOpen, WsOpened, WsRefused, WsMessage, WsAck, WsClose]

_TYPES: dict[str, type[Message]] = {
    cls.type: cls
    for cls in (Ready, Ping, Pong, ConnectionEstablished, HttpRequest, HttpResponse, Error, RequestDenied, Ack,
                HttpResponseHead, HttpResponseChunk, HttpResponseEnd, StreamAck, StreamCancel, *WS_FRAMES)
}

# Channel v2 capabilities (shared/README.md "Capabilities"): what an agent may announce at $connect,
# and what this server speaks. `stream` and `ws` are reserved for streamed answers and caller sockets.
CAPABILITIES_HEADER = "X-Tunnel-Capabilities"
CAP_ACK = "ack"
CAP_STREAM = "stream"
CAP_WS = "ws"
SERVER_CAPABILITIES: tuple[str, ...] = (CAP_ACK, CAP_STREAM, CAP_WS)  # stream: forward_stream relays streamed answers
CAPABILITIES_MAX_CHARS = 256
CAPABILITIES_MAX_TOKENS = 16
_CAPABILITY_RE = re.compile(r"[a-z0-9_-]{1,32}")


def parse_capabilities(value: str) -> tuple[str, ...]:
    """``"ack, stream"`` -> ("ack", "stream") (order kept, duplicates dropped). Raises ProtocolError
    for a list that is too long or holds a token outside ``[a-z0-9_-]``; unknown tokens are kept
    (the caller intersects with what it speaks)."""
    if len(value) > CAPABILITIES_MAX_CHARS:
        raise ProtocolError(f"capabilities: at most {CAPABILITIES_MAX_CHARS} characters")
    tokens = [t.strip().lower() for t in value.split(",") if t.strip()]
    if len(tokens) > CAPABILITIES_MAX_TOKENS:
        raise ProtocolError(f"capabilities: at most {CAPABILITIES_MAX_TOKENS} tokens")
    for token in tokens:
        if not _CAPABILITY_RE.fullmatch(token):
            raise ProtocolError("capabilities: tokens are 1-32 of [a-z0-9_-], comma-separated")
    return tuple(dict.fromkeys(tokens))


def agreed_capabilities(announced: Iterable[str], spoken: Iterable[str] = SERVER_CAPABILITIES) -> tuple[str, ...]:
    """What both sides speak, in the order of ``spoken``."""
    theirs = set(announced)
    return tuple(c for c in spoken if c in theirs)


def gateway_notice(frame: Union[str, bytes]) -> str | None:
    """API Gateway's own error frames (``{"message": ..., "connectionId": ..., "requestId": ...}``, no
    ``type``; e.g. "Too Many Requests" when it throttles an agent message): the message, else None."""
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and "type" not in data and isinstance(data.get("message"), str):
        return str(data["message"])
    return None

# field -> (python types accepted, required), derived from the dataclasses: a field without a
# default is required; ``X | None`` also accepts null; ``bool`` never stands in for ``int``.
Schema = dict[str, tuple[tuple[type, ...], bool]]


def _accepted(hint: Any) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (Union, _pytypes.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _accepted(arg))
    if hint is type(None):
        return (type(None),)
    return (origin or hint,)


def _schema(cls: type) -> Schema:
    hints = typing.get_type_hints(cls)
    return {f.name: (_accepted(hints[f.name]),
                     f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls)}


_SCHEMA: dict[str, Schema] = {kind: _schema(cls) for kind, cls in _TYPES.items()}


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
        elif name == "stream" and isinstance(value, dict):
            value = _stream_offer(value)
        elif name == "limits" and isinstance(value, dict):
            value = _limits(value)
        elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ProtocolError(f"{kind}: field {name!r} must be a list of strings")
        elif name in _NON_NEGATIVE and isinstance(value, int) and value < 0:
            raise ProtocolError(f"{kind}: {name} must be >= 0")
        kwargs[name] = value
    message = _TYPES[kind](**kwargs)
    if isinstance(message, (HttpResponseHead, HttpResponseChunk, HttpResponseEnd, StreamCancel)):
        _check_stream_frame(message)
    return message


_NON_NEGATIVE = frozenset({"seq", "read_seq", "bytes", "size"})


def _check_stream_frame(message: HttpResponseHead | HttpResponseChunk | HttpResponseEnd | StreamCancel) -> None:
    """What the streamed answer frames promise beyond their field types (decode refuses the rest)."""
    kind = message.type
    if isinstance(message, HttpResponseHead) and message.seq != 0:
        raise ProtocolError(f"{kind}: the head is seq 0")
    if isinstance(message, (HttpResponseChunk, HttpResponseEnd)) and message.seq < 1:
        raise ProtocolError(f"{kind}: seq must be >= 1 (the head is 0)")
    if isinstance(message, StreamCancel) and message.reason not in STREAM_CANCEL_REASONS:
        raise ProtocolError(f"{kind}: unknown reason {message.reason!r}")
    if not isinstance(message, HttpResponseChunk):
        return
    if message.segment is None:
        if message.size is not None or message.sha256 is not None:
            raise ProtocolError(f"{kind}: size and sha256 describe a segment")
        return
    if message.body:
        raise ProtocolError(f"{kind}: a segment notice carries no inline body")
    if message.segment != segment_key(message.request_id, message.seq):
        raise ProtocolError(f"{kind}: segment must be resp/<request id>/<seq>")
    if message.size is None or message.size > STREAM_SEGMENT_MAX:
        raise ProtocolError(f"{kind}: a segment needs its size, at most {STREAM_SEGMENT_MAX} bytes")
    if message.sha256 is None or not _SHA256_RE.fullmatch(message.sha256):
        raise ProtocolError(f"{kind}: a segment needs its sha256 (64 lower-case hex digits)")


def _stream_offer(value: dict[str, Any]) -> dict[str, Any]:
    """``{"window": int >= 1, "segment_form": {url, fields}}`` (segment_form optional)."""
    window = value.get("window")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ProtocolError("http_request: stream.window must be an integer >= 1")
    out: dict[str, Any] = {"window": window}
    if value.get("segment_form") is not None:
        form = value["segment_form"]
        if not isinstance(form, dict):
            raise ProtocolError("http_request: stream.segment_form must be {url: string, fields: {string: string}}")
        out["segment_form"] = _upload_form(form, "stream.segment_form")
    return out


def _limits(value: dict[str, Any]) -> dict[str, Any]:
    """``{"messages_per_s": number > 0, "messages_burst": number >= 1}`` (the burst optional: a bucket
    of the rate, at least 1); other keys are left out (a later server may advertise more)."""
    out: dict[str, Any] = {}
    for key, least, rule in (("messages_per_s", math.ulp(0.0), "> 0"), ("messages_burst", 1.0, ">= 1")):
        number = value.get(key)
        if number is None and key == "messages_burst":
            continue
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number) \
                or number < least:
            raise ProtocolError(f"connection_established: limits.{key} must be a number {rule}")
        out[key] = number
    return out


def _upload_form(value: dict[str, Any], name: str = "response_upload") -> dict[str, Any]:
    """``{"url": str, "fields": {str: str}}`` (a presigned S3 POST), nothing else."""
    url, fields = value.get("url"), value.get("fields")
    if not isinstance(url, str) or not isinstance(fields, dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise ProtocolError(f"http_request: {name} must be {{url: string, fields: {{string: string}}}}")
    return {"url": url, "fields": dict(fields)}


def encode(message: Message) -> str:
    """Serialise a message to one compact JSON text frame. None-valued optionals are left out."""
    data: dict[str, Any] = {"type": message.type}
    for name in _SCHEMA[message.type]:
        value = getattr(message, name)
        if value is None:
            continue
        if value is False:  # boolean flags are sent only when set (body_uploaded, ack)
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


def media_type(headers: Mapping[str, list[str]]) -> str:
    """The first Content-Type's media type, lower case, without parameters ("" when none)."""
    found = header_lookup(headers, "content-type")
    return found[0].split(";", 1)[0].strip().lower() if found else ""


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
