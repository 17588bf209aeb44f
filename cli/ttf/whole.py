"""Whole or streamed: when ``stream`` is offered, a short answer that is complete at once still goes whole.

A streamed answer costs at least three frames (head, chunk, end): three agent messages, three
response-Lambda invocations and three DynamoDB writes plus the deletes, where a whole answer is one
``http_response``. So the agent streams only what needs it (shared/README.md "Whole when short"):

* **whole** when the local body ends within ``WHOLE_WAIT_S`` of the head and its ``http_response``
  fits one agent message (``AGENT_MESSAGE_MAX``, the buffered path's inline answer: a body of at
  most ``STREAM_CHUNK_MAX`` raw bytes is read to find out), or when there is no body at all (HEAD,
  204, 304: aiohttp sees the end at once);
* **streamed**, at once and without waiting, for an event stream or another type that is open-ended
  by design (``OPEN_ENDED``), and for a declared ``Content-Length`` past the read cap;
* **streamed** otherwise, starting with the bytes already read (nothing is read twice or lost).

The whole answer is the very frame the buffered path sends (``http_response``, the same headers as
the stream's head, the same body bytes), answered by the session with the ack/resend machinery of
every whole answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from httptunnel import protocol
from httptunnel.limits import AGENT_MESSAGE_MAX
from httptunnel.protocol import STREAM_CHUNK_MAX, Headers

# How long after the head the agent waits for the body's end before it streams: the chunk
# coalescing window (ttf.streaming.COALESCE_S), so a body that does not end in time loses nothing:
# its first chunk would have waited that long anyway.
WHOLE_WAIT_S = 0.020
# The most body bytes read to decide: one chunk's worth, which is also about the largest body whose
# whole http_response fits AGENT_MESSAGE_MAX (22 KiB raw is 30,040 characters of base64, 30 KB is 30,720).
WHOLE_READ_MAX = STREAM_CHUNK_MAX
# Media types that are open-ended by design: never held back, even for 20 ms.
OPEN_ENDED = frozenset({
    "text/event-stream",  # SSE
    "application/x-ndjson", "application/jsonl", "application/x-jsonlines",  # line-delimited streams
    "multipart/x-mixed-replace",  # MJPEG and other server push
    "application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text",
})


@dataclass(frozen=True)
class Early:
    """What was read of the local body before deciding: its first bytes, and whether that is all of it."""

    data: bytes
    complete: bool


def declared_length(headers: Headers) -> int | None:
    found = protocol.header_lookup(headers, "content-length")
    try:
        return int(found[0]) if found else None
    except ValueError:
        return None


def may_go_whole(headers: Headers) -> bool:
    """False when the answer streams without waiting: an open-ended type, or a declared length past the read cap."""
    if protocol.media_type(headers) in OPEN_ENDED:
        return False
    length = declared_length(headers)
    return length is None or length <= WHOLE_READ_MAX


async def read_early(content: aiohttp.StreamReader, headers: Headers, wait_s: float = WHOLE_WAIT_S) -> Early:
    """Read the local body for at most ``wait_s`` and ``WHOLE_READ_MAX`` bytes: complete if it ended."""
    if not may_go_whole(headers):
        return Early(b"", False)
    pieces: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(wait_s):
            while size < WHOLE_READ_MAX:
                piece = await content.read(WHOLE_READ_MAX - size)
                if not piece:
                    return Early(b"".join(pieces), True)
                pieces.append(piece)
                size += len(piece)
            await content.wait_eof()  # exactly the cap read: whole only if the body ends right there
            return Early(b"".join(pieces), content.at_eof())
    except TimeoutError:
        return Early(b"".join(pieces), False)


def whole_frame(request_id: str, status: int, headers: Headers, body: bytes, elapsed_ms: int) -> str | None:
    """The ``http_response`` the buffered path would send inline, or None when it does not fit one agent message."""
    frame = protocol.encode(protocol.HttpResponse(request_id=request_id, status_code=status, headers=headers,
                                                  body=protocol.b64encode(body), processing_time_ms=elapsed_ms))
    return frame if len(frame.encode("utf-8")) <= AGENT_MESSAGE_MAX else None
