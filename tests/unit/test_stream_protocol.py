"""The streamed-answer frames of the wire protocol (issue 23, STREAM_CONTRACT): round trips and
refusal of frames that break what the contract promises."""

from __future__ import annotations

import json

import pytest

from httptunnel import protocol

RID = "1.abc.nonce.mac"
SHA = "ab" * 32


def roundtrip(message: protocol.Message) -> protocol.Message:
    return protocol.decode(protocol.encode(message))


@pytest.mark.parametrize("message", [
    protocol.HttpResponseHead(request_id=RID, seq=0, status_code=200,
                              headers={"content-type": ["text/event-stream"], "set-cookie": ["a=1", "b=2"]},
                              processing_time_ms=12),
    protocol.HttpResponseChunk(request_id=RID, seq=1, body=protocol.b64encode(b"data: 1\n\n")),
    protocol.HttpResponseChunk(request_id=RID, seq=7, segment=f"resp/{RID}/7", size=8 * 1024 * 1024, sha256=SHA),
    protocol.HttpResponseEnd(request_id=RID, seq=9, bytes=123),
    protocol.HttpResponseEnd(request_id=RID, seq=2, bytes=5, error="local_service_error"),
    protocol.StreamAck(request_id=RID, read_seq=8),
    protocol.StreamCancel(request_id=RID, reason="max_stream_seconds"),
    protocol.HttpRequest(request_id=RID, method="GET", uri="/", stream={"window": 16}),
    protocol.HttpRequest(request_id=RID, method="GET", uri="/",
                         stream={"window": 16, "segment_form": {"url": "https://s3/b", "fields": {"key": "k"}}}),
])
def test_stream_frames_round_trip(message):
    assert roundtrip(message) == message


def test_wire_names_are_the_contracts():
    frames = [protocol.HttpResponseHead(RID, 0, 204), protocol.HttpResponseChunk(RID, 1, "eA=="),
              protocol.HttpResponseEnd(RID, 2, 1), protocol.StreamAck(RID, 2), protocol.StreamCancel(RID, "gave_up")]
    assert [json.loads(protocol.encode(f)) for f in frames] == [
        {"type": "http_response_head", "request_id": RID, "seq": 0, "status_code": 204, "headers": {},
         "processing_time_ms": 0},
        {"type": "http_response_chunk", "request_id": RID, "seq": 1, "body": "eA=="},
        {"type": "http_response_end", "request_id": RID, "seq": 2, "bytes": 1},
        {"type": "stream_ack", "request_id": RID, "read_seq": 2},
        {"type": "stream_cancel", "request_id": RID, "reason": "gave_up"},
    ]
    assert protocol.CAP_STREAM == "stream"


def test_a_request_without_stream_encodes_as_today():
    assert "stream" not in json.loads(protocol.encode(protocol.HttpRequest(RID, "GET", "/")))


def frame(**fields) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize("bad", [
    frame(type="http_response_head", request_id=RID, seq=1, status_code=200),  # the head is seq 0
    frame(type="http_response_head", request_id=RID, status_code=200),  # seq missing
    frame(type="http_response_head", request_id=RID, seq=0, status_code="200"),
    frame(type="http_response_head", request_id=RID, seq=True, status_code=200),  # bool is no int
    frame(type="http_response_chunk", request_id=RID, seq=0, body=""),  # 0 is the head's
    frame(type="http_response_chunk", request_id=RID, seq=-3, body=""),
    frame(type="http_response_chunk", request_id=RID, seq=2, body="eA==", segment=f"resp/{RID}/2", size=1,
          sha256=SHA),  # both lanes at once
    frame(type="http_response_chunk", request_id=RID, seq=2, segment=f"resp/{RID}/3", size=1, sha256=SHA),
    frame(type="http_response_chunk", request_id=RID, seq=2, segment="resp/other/2", size=1, sha256=SHA),
    frame(type="http_response_chunk", request_id=RID, seq=2, segment=f"resp/{RID}/2", sha256=SHA),  # no size
    frame(type="http_response_chunk", request_id=RID, seq=2, segment=f"resp/{RID}/2", size=8 * 1024 * 1024 + 1,
          sha256=SHA),
    frame(type="http_response_chunk", request_id=RID, seq=2, segment=f"resp/{RID}/2", size=1, sha256="AB" * 32),
    frame(type="http_response_chunk", request_id=RID, seq=2, segment=f"resp/{RID}/2", size=1),  # no sha256
    frame(type="http_response_chunk", request_id=RID, seq=2, body="eA==", size=1),  # size without a segment
    frame(type="http_response_chunk", request_id=RID, seq=2, segment=f"resp/{RID}/2", size=-1, sha256=SHA),
    frame(type="http_response_end", request_id=RID, seq=3),  # bytes missing
    frame(type="http_response_end", request_id=RID, seq=3, bytes=-1),
    frame(type="http_response_end", request_id=RID, seq=0, bytes=0),
    frame(type="http_response_end", request_id=RID, seq=3, bytes=0, error=5),
    frame(type="stream_ack", request_id=RID, read_seq=-1),
    frame(type="stream_ack", request_id=RID),
    frame(type="stream_cancel", request_id=RID, reason="bored"),
    frame(type="http_request", request_id=RID, method="GET", uri="/", stream={}),
    frame(type="http_request", request_id=RID, method="GET", uri="/", stream={"window": 0}),
    frame(type="http_request", request_id=RID, method="GET", uri="/", stream={"window": True}),
    frame(type="http_request", request_id=RID, method="GET", uri="/", stream={"window": 16, "segment_form": "x"}),
    frame(type="http_request", request_id=RID, method="GET", uri="/",
          stream={"window": 16, "segment_form": {"url": "u", "fields": {"k": 1}}}),
    frame(type="http_request", request_id=RID, method="GET", uri="/", stream=[16]),
])
def test_bad_stream_frames_are_refused(bad):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(bad)


def test_unknown_fields_are_ignored_as_everywhere():
    decoded = protocol.decode(frame(type="stream_ack", request_id=RID, read_seq=3, later="x"))
    assert decoded == protocol.StreamAck(RID, 3)


def test_an_inline_chunk_of_the_biggest_size_fits_one_agent_message():
    from httptunnel import limits
    chunk = protocol.HttpResponseChunk(request_id="x" * 72, seq=10**9,
                                       body=protocol.b64encode(b"\xff" * protocol.STREAM_CHUNK_MAX))
    assert len(protocol.encode(chunk).encode()) <= limits.AGENT_MESSAGE_MAX


@pytest.mark.parametrize("headers, expected", [
    ({"Content-Type": ["Text/Event-Stream; charset=utf-8"]}, "text/event-stream"),
    ({"content-type": ["application/json"], "Content-Type": ["text/html"]}, "application/json"),
    ({"X-Other": ["text/plain"]}, ""),
    ({"Content-Type": [" application/x-ndjson "]}, "application/x-ndjson"),
])
def test_media_type_is_the_first_content_types_lower_case_without_parameters(headers, expected) -> None:
    """One helper for the edge (relay: is it SSE?) and the agent (ttf.whole: is it open-ended?)."""
    assert protocol.media_type(headers) == expected
