"""to_caller: the agent's answer as the caller gets it - head, body (inline or the one S3 version
forward checked), rewriting in path mode; then rendered for the edge: one payload 2.0 result with
the 307 to S3 for what API Gateway cannot carry (``build_answer``), or written to a function URL's
response stream, head then body pieces (``stream_answer``, ``stream_result``).

Header fidelity on the way to the caller: each ``Set-Cookie`` value goes out separately (payload
2.0 ``cookies``); other repeated headers are joined with ", " (2.0 has no multiValueHeaders);
hop-by-hop headers are dropped, and Content-Length too (API Gateway sets the length) except on
HEAD, whose empty body cannot say it.

What the caller gets is checked after everything that can add to it: the agent's header names
must be RFC 9110 tokens and its values free of CR, LF and NUL (else 502: ``"Set-Cookie "`` with
a trailing space would slip past cookie scoping); the tunnel's response header rules apply
next, and only then are hop-by-hop headers dropped and cookies scoped, so a rule cannot re-plant
a ``Domain=`` cookie either. The 307 to S3 serves active content types (HTML, XML, SVG,
script, PDF, anything unknown) as an attachment: the bucket's origin never renders them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from . import bodies, events, limits, log, names, policy, protocol, rewrite, routing, store
from .protocol import Headers, ProtocolError
from .replies import PUBLIC_MESSAGES, ForwardResult, fail

RESULT_HEADROOM = 16 * limits.KB
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_BAD_VALUE = re.compile(r"[\r\n\x00]")
# Served inline from the body bucket's origin: types a browser shows but never runs. Everything
# else (text/html, image/svg+xml, XML, JavaScript, PDF, unknown types) goes out as an attachment.
PASSIVE_TYPES = frozenset({
    "text/plain", "text/csv", "application/json", "application/octet-stream", "application/zip",
    "application/gzip", "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif",
})


def caller_headers(headers: Headers, method: str = "GET") -> Headers:
    return protocol.strip_hop_by_hop(headers, also=() if method == "HEAD" else ("content-length",))


def _parse_headers(text: str) -> Headers:
    try:
        data = json.loads(text)
        return protocol._headers(data) if isinstance(data, dict) else {}
    except (ValueError, ProtocolError):
        return {}


def _response_body(request_id: str, answer: store.Answer) -> bytes | bodies.Stored | ForwardResult:
    """The answer's body: inline bytes, or the one S3 version forward read and checked."""
    if not answer.body_uploaded:
        return protocol.b64decode(answer.body_b64)
    if not bodies.enabled():
        return fail(502, "internal_error", "agent uploaded a body but no body bucket is configured")
    try:
        stored = bodies.get_response_body(request_id)
    except bodies.BodyTooLarge:
        return fail(502, "response_too_large", "response body exceeds the 10 MB limit")
    except bodies.BodyMissing:
        return fail(502, "internal_error", "agent said it uploaded the body but it is missing")
    except bodies.NotVersioned:
        log.error("body bucket is not versioned: an uploaded body cannot be pinned", request_id=request_id)
        return fail(502, "internal_error", "uploaded response bodies are not available (bucket configuration)")
    if answer.body_sha256 and hashlib.sha256(stored.body).hexdigest() != answer.body_sha256.lower():
        return fail(502, "internal_error", "uploaded response body does not match its checksum")
    return stored


def invalid_header(headers: Headers) -> str | None:
    """The first header name that is not an RFC 9110 token (or whose value holds CR, LF or NUL)."""
    for name, values in headers.items():
        if not _TOKEN.fullmatch(name) or any(_BAD_VALUE.search(v) for v in values):
            return name
    return None


def passive(content_type: str) -> bool:
    """True when a browser showing this type from the bucket's origin runs nothing."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in PASSIVE_TYPES or media.startswith(("audio/", "video/"))


def _first(headers: Headers, name: str) -> str:
    values = protocol.header_lookup(headers, name)
    return values[0] if values else ""


@dataclass(frozen=True)
class Answer:
    """The answer as the caller gets it, before it is rendered for an edge."""
    status: int
    headers: Headers
    body: bytes
    version: str | None  # the S3 version the body is, when forward checked it there unchanged


def caller_answer(request_id: str, req: events.HttpEvent, route: routing.Route, answer: store.Answer,
                  rewrite_paths: bool = True, rules: policy.Policy | None = None,
                  rewrite_json: bool = False) -> Answer | ForwardResult:
    """The caller's response, for any edge. In path mode root-relative links are rewritten unless
    the agent connected with rewriting off (``rewrite_paths``): then every byte is the local
    service's. JSON bodies are rewritten only when the agent asked (``ttf --rewrite-json``)."""
    if answer.status == names.STATUS_ERROR:
        code = answer.error_code if answer.error_code in PUBLIC_MESSAGES else "internal_error"
        return fail(protocol.ERROR_STATUS.get(code, 502), code, PUBLIC_MESSAGES[code])
    if answer.status != names.STATUS_COMPLETED:  # a streamed head nobody asked for (only the stream edge offers it)
        return fail(502, "internal_error", "the agent streamed an answer that was asked for whole")
    loaded = _response_body(request_id, answer)
    if isinstance(loaded, ForwardResult):
        return loaded
    body, version = (loaded.body, loaded.version_id) if isinstance(loaded, bodies.Stored) else (loaded, None)
    headers = caller_head(req, route, answer.headers_json, rewrite_paths, rules)
    if isinstance(headers, ForwardResult):
        return headers
    if route.prefix and rewrite_paths:
        rewritten = rewrite_body(headers, body, route.prefix, rewrite_json)
        if rewritten != body:
            version = None  # forward stores what it changed itself
        body = rewritten
    return Answer(answer.status_code, headers, body, version)


def caller_head(req: events.HttpEvent, route: routing.Route, headers_json: str, rewrite_paths: bool = True,
                rules: policy.Policy | None = None) -> Headers | ForwardResult:
    """The caller's response headers, for a whole answer and a streamed one alike: checked, the
    tunnel's response rules applied, hop-by-hop headers dropped, cookies scoped, and in path mode
    (unless rewriting is off) Location/Content-Location/Set-Cookie paths prefixed."""
    headers = _parse_headers(headers_json)
    bad = invalid_header(headers)
    if bad is not None:
        return fail(502, "internal_error", f"agent sent an invalid response header name or value: {bad[:40]!r}")
    if rules:
        policy.apply_rules(headers, rules.response_remove, rules.response_add)
    headers = rewrite.scope_cookies(caller_headers(headers, req.method))  # after the rules: see the docstring
    if route.prefix and rewrite_paths:
        headers = rewrite.rewrite_headers(headers, route.prefix)
    return headers


def rewrites_body(headers: Headers, route: routing.Route, rewrite_paths: bool, rewrite_json: bool) -> bool:
    """Whether path-mode rewriting changes bodies with these (caller) headers."""
    return bool(route.prefix) and rewrite_paths and rewrite.rewrites(
        _first(headers, "content-type"), _first(headers, "content-encoding"), rewrite_json)


def rewrite_body(headers: Headers, body: bytes, prefix: str, rewrite_json: bool) -> bytes:
    """Path-mode rewriting of a whole body, by the caller headers' content type and encoding."""
    return rewrite.rewrite_body(body, _first(headers, "content-type"), _first(headers, "content-encoding"),
                                prefix, json=rewrite_json)


def build_answer(request_id: str, req: events.HttpEvent, route: routing.Route, answer: store.Answer,
                 rewrite_paths: bool = True, rules: policy.Policy | None = None,
                 rewrite_json: bool = False) -> ForwardResult:
    """The caller's response as one payload 2.0 result (``caller_answer``), or the 307 to S3 for
    a body API Gateway cannot carry."""
    made = caller_answer(request_id, req, route, answer, rewrite_paths, rules, rewrite_json)
    if isinstance(made, ForwardResult):
        return made
    headers, body, version = made.headers, made.body, made.version
    fits = limits.LAMBDA_PAYLOAD_MAX - RESULT_HEADROOM
    result = events.http_response(made.status, headers, body)
    if events.result_size(result) <= fits:
        return ForwardResult(result, made.status)
    if not result["isBase64Encoded"]:  # escaped non-ASCII text can be smaller as base64
        result = events.http_response(made.status, headers, body, force_base64=True)
        if events.result_size(result) <= fits:
            return ForwardResult(result, made.status)
    if made.status == 200 and req.method in ("GET", "HEAD") and bodies.enabled():
        return _redirect_to_s3(request_id, headers, body, version)
    return fail(502, "response_too_large", "response is too large to return through API Gateway")


def _redirect_to_s3(request_id: str, headers: Headers, body: bytes, version: str | None) -> ForwardResult:
    """307 to the object version forward checked (or stored itself): never to whatever the
    agent's upload form might put under the key later."""
    if version is None:
        try:
            version = bodies.put_response_body(request_id, body)
        except bodies.NotVersioned:
            log.error("body bucket is not versioned: the redirect cannot be pinned", request_id=request_id)
            return fail(502, "internal_error", "response too large and the body bucket is misconfigured")
    content_type = _first(headers, "content-type")
    url = bodies.response_download_url(request_id, version, content_type or None,
                                       attachment=not passive(content_type))
    result = events.http_response(307, {"location": [url], "x-tunnel-body": ["s3"], "cache-control": ["no-store"]},
                                 b"")
    return ForwardResult(result, 307)


# --------------------------------------------------------------------------- streamed (function URL edge)

STREAM_PIECE = 64 * limits.KB  # body bytes per write to the response stream


class Stream(Protocol):
    """What ``runtime_api.Context.open_stream`` returns."""
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def fail(self, error_type: str, message: str, trace: Sequence[str] = ()) -> None: ...


class StreamOpener(Protocol):
    """The Lambda context of a streaming function (``runtime_api.Context``)."""
    def open_stream(self, status_code: int = 200, headers: Mapping[str, str] | None = None,
                    cookies: Sequence[str] | None = None) -> Stream: ...


def stream_answer(context: StreamOpener, status: int, headers: Headers, body: bytes) -> None:
    """Write an answer to the caller's stream: the head (Set-Cookie values as ``cookies``, other
    repeated headers joined with ", " as in payload 2.0), then the body in ``STREAM_PIECE`` writes.
    No size limit but Lambda's (200 MB streamed), so no 307 on this edge."""
    stream = open_head(context, status, headers)
    write_pieces(stream, body)
    stream.close()


def open_head(context: StreamOpener, status: int, headers: Headers) -> Stream:
    """Open the caller's stream with this head (shaped as payload 2.0: cookies apart, other repeated
    headers joined); the body follows with ``write``."""
    head = events.http_response(status, headers, b"")
    return context.open_stream(status, head["headers"], head.get("cookies", []))


def write_pieces(stream: Stream, body: bytes) -> None:
    """Write ``body`` in ``STREAM_PIECE`` writes."""
    for at in range(0, len(body), STREAM_PIECE):
        stream.write(body[at:at + STREAM_PIECE])


def stream_result(context: StreamOpener, result: dict[str, Any]) -> None:
    """Write a payload 2.0 result (a refusal, a redirect) to the caller's stream."""
    text = str(result.get("body") or "")
    body = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode("utf-8", "surrogatepass")
    stream = context.open_stream(int(result["statusCode"]), dict(result.get("headers") or {}),
                                 list(result.get("cookies") or []))
    if body:
        stream.write(body)
    stream.close()
