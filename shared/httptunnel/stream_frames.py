"""stream_frames: the ``response`` Lambda's side of streamed answers (issue 23, shared/README.md
"The chunk channel") - each ``http_response_head`` / ``http_response_chunk`` / ``http_response_end``
an agent sends is stored as its own item, once.

* The head is the request's answer row (status ``streaming``: ``store.put_answer``), so the slot
  rules of whole answers hold: one answer per (request id, connection), and forward's give-up
  write refuses a head that comes too late.
* Every later frame is an item ``<request id>:<connection id>#<seq>`` (``store.put_frame``),
  written conditionally: a resend is a no-op. TTL (15 min) removes what forward never read.
* No frame is acknowledged here: forward's cumulative ``stream_ack`` (read implies stored) is the
  acknowledgement, one post per 8 frames instead of one per frame.
* What cannot reach the caller as sent becomes a small error item in its place, so the caller's
  answer fails at once (502 before the head, a cut body after it) instead of waiting for a frame
  that will never be stored: a head with a status outside 100-599, a chunk whose body is not
  base64 or over ``STREAM_CHUNK_MAX`` bytes, a frame over ``AGENT_INLINE_ANSWER_MAX``.

The request id was verified for the connection by the caller (``response._unverifiable``).
"""

from __future__ import annotations

import json

from . import events, limits, log, names, protocol, store
from .protocol import ProtocolError


def _head_answer(msg: protocol.HttpResponseHead) -> store.Answer:
    bad = store.bad_status(msg.status_code)
    if bad is not None:
        return bad
    return store.Answer(status=names.STATUS_STREAMING, status_code=msg.status_code,
                        headers_json=json.dumps(msg.headers, separators=(",", ":")),
                        processing_time_ms=max(0, msg.processing_time_ms))


def _broken(seq: int, why: str) -> store.Frame:
    """An end in place of a frame that cannot be relayed: the caller's body is cut there."""
    log.warning("stream frame refused", seq=seq, reason=why)
    return store.Frame(seq=seq, end=True, error="internal_error")


def _frame(msg: protocol.HttpResponseChunk | protocol.HttpResponseEnd) -> store.Frame:
    if isinstance(msg, protocol.HttpResponseEnd):
        code = None if msg.error is None else protocol.known_error(msg.error)
        return store.Frame(seq=msg.seq, end=True, total=msg.bytes, error=code)
    if msg.segment is not None:
        return store.Frame(seq=msg.seq, segment=msg.segment, size=msg.size or 0, sha256=msg.sha256)
    try:
        body = protocol.b64decode(msg.body)
    except ProtocolError:
        return _broken(msg.seq, "body is not valid base64")
    if len(body) > protocol.STREAM_CHUNK_MAX:
        return _broken(msg.seq, f"inline chunk over {protocol.STREAM_CHUNK_MAX} bytes")
    return store.Frame(seq=msg.seq, body=body)


def store_frame(ws: events.WsEvent, msg: protocol.StreamFrame) -> str:
    """Store one verified frame of a streamed answer; what happened, for the handler's log."""
    request_id, connection_id = msg.request_id, ws.connection_id
    if limits.inline_too_big(ws.body):
        if isinstance(msg, protocol.HttpResponseHead):
            stored = store.put_answer(request_id, connection_id, store.broken_answer(
                f"stream head over {limits.AGENT_INLINE_ANSWER_MAX} bytes"))
        else:
            stored = store.put_frame(request_id, connection_id, _broken(msg.seq, "frame too big"))
    elif isinstance(msg, protocol.HttpResponseHead):
        stored = store.put_answer(request_id, connection_id, _head_answer(msg))
    else:
        stored = store.put_frame(request_id, connection_id, _frame(msg))
    if not stored:  # a resend, or a head after forward gave up: either way nothing more to do
        log.info("stream frame already stored (or the request was given up)", request_id=request_id,
                 connection_id=connection_id, seq=msg.seq, type=msg.type)
        return "duplicate"
    log.debug("stream frame stored", request_id=request_id, connection_id=connection_id, seq=msg.seq, type=msg.type)
    return "stored"
