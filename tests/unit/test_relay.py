"""Streamed answers at the layer (issue 23): the response Lambda stores head/chunk/end frames once
each (stream_frames), forward_stream offers `stream` to agents that agreed it and relay writes the
frames to the caller in order, acks what it read, deletes it, and ends at max_stream_seconds."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any, Callable

import boto3
import pytest

from httptunnel import protocol, relay, response, store, waiting

from .helpers import BUCKET, PENDING_TABLE, FakeContext, connect_agent, load_handler, ws_event
from .test_forward_basic import FakeAgent, http_event, ok
from .test_forward_stream import StreamContext, url_event

CAPS = {"X-Tunnel-Capabilities": "ack, stream"}

Frames = Callable[[str], list[protocol.Message]]


def send(connection_id: str, message: protocol.Message | str) -> None:
    frame = message if isinstance(message, str) else protocol.encode(message)
    load_handler("response")(ws_event("default_message.json", connection_id, frame), FakeContext())


class StreamingAgent:
    """Answers each http_request with the frames ``frames(request_id)`` (through the response Lambda)."""

    def __init__(self, mgmt, connection_id: str, frames: Frames) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connection_id = connection_id
        self.mgmt = mgmt

        def on_post(conn_id: str, msg: dict[str, Any]) -> None:
            if conn_id == connection_id and msg["type"] == "http_request":
                self.requests.append(msg)
                for frame in frames(msg["request_id"]):
                    send(connection_id, frame)
        mgmt.on_post = on_post

    def told(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.mgmt.messages(self.connection_id) if m["type"] == kind]


def head(rid: str, headers: dict[str, list[str]] | None = None, status: int = 200) -> protocol.HttpResponseHead:
    return protocol.HttpResponseHead(request_id=rid, seq=0, status_code=status,
                                     headers=headers or {"content-type": ["text/event-stream"]})


def chunk(rid: str, seq: int, data: bytes) -> protocol.HttpResponseChunk:
    return protocol.HttpResponseChunk(request_id=rid, seq=seq, body=protocol.b64encode(data))


def end(rid: str, seq: int, total: int, error: str | None = None) -> protocol.HttpResponseEnd:
    return protocol.HttpResponseEnd(request_id=rid, seq=seq, bytes=total, error=error)


def pieces(n: int) -> list[bytes]:
    return [f"data: {i}\n\n".encode() for i in range(n)]


def whole(parts: list[bytes]) -> Frames:
    def frames(rid: str) -> list[protocol.Message]:
        return [head(rid), *(chunk(rid, i + 1, p) for i, p in enumerate(parts)),
                end(rid, len(parts) + 1, sum(map(len, parts)))]
    return frames


def rows() -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=PENDING_TABLE, ConsistentRead=True)["Items"]


def serve(tid: str, path: str = "/events", **kw: Any) -> StreamContext:
    ctx = StreamContext(remaining_ms=900_000)
    assert load_handler("forward_stream")(url_event(tid, path, **kw), ctx) is None
    return ctx


def test_stream_is_offered_only_by_the_stream_edge_to_agents_that_agreed_it(aws, mgmt, ctx):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"x"))
    serve(tid)
    offer = agent.requests[0]["stream"]
    assert offer["window"] == protocol.STREAM_WINDOW == 16
    assert offer["segment_form"]["url"] and "policy" in offer["segment_form"]["fields"]
    policy_doc = json.loads(base64.b64decode(offer["segment_form"]["fields"]["policy"]))
    rid = agent.requests[0]["request_id"]
    assert ["starts-with", "$key", f"resp/{rid}/"] in policy_doc["conditions"]
    assert ["content-length-range", 0, protocol.STREAM_SEGMENT_MAX] in policy_doc["conditions"]
    load_handler("forward")(http_event(tid), ctx)  # the buffered edge never offers it
    assert "stream" not in agent.requests[1]


def test_an_agent_that_did_not_agree_stream_gets_whole_answers(aws, mgmt):
    tid = connect_agent("conn-A", headers={"X-Tunnel-Capabilities": "ack"})["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"whole"))
    ctx = serve(tid)
    assert "stream" not in agent.requests[0] and ctx.body == b"whole"


def test_an_offered_stream_answered_whole_reaches_the_caller_from_the_answer_row(aws, mgmt, monkeypatch):
    """ttf answers a short, complete answer whole even when a stream was offered (ttf.whole): one
    http_response (seq 0) through the response Lambda, under the streaming edge's long-lived id; the
    caller gets it byte-exact from the answer row, no frame item is written or read, and the answer
    is acknowledged as any whole answer (piggybacked on the next request to that connection)."""
    monkeypatch.setenv("REQUEST_ID_KEY", "a request id key of at least 32 bytes")
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    body = bytes(range(256)) * 4
    headers = {"content-type": ["application/json"], "content-encoding": ["gzip"], "x-two": ["1", "2"],
               "set-cookie": ["a=1", "b=2"]}

    def frames(rid: str) -> list[protocol.Message]:
        return [protocol.HttpResponse(request_id=rid, status_code=201, headers=headers,
                                      body=protocol.b64encode(body), seq=0)]
    agent = StreamingAgent(mgmt, "conn-A", frames)
    ctx = serve(tid, "/api")
    rid = agent.requests[0]["request_id"]
    assert "stream" in agent.requests[0]  # it was offered
    status, caller_headers, cookies = ctx.head
    assert status == 201 and ctx.body == body and ctx.stream.failed is None
    assert caller_headers["x-two"] == "1, 2" and caller_headers["content-encoding"] == "gzip"
    assert cookies == ["a=1", "b=2"] and "content-length" not in caller_headers
    assert rows() and all("#" not in r["requestId"]["S"] for r in rows())  # the answer row, no frame item
    assert agent.told("stream_ack") == [] and agent.told("stream_cancel") == []
    serve(tid, "/next")  # the next request to that connection carries the ack
    assert agent.requests[1]["acks"] == [rid]


def test_frames_reach_the_caller_in_order_then_are_acked_and_deleted(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    parts = pieces(20)
    agent = StreamingAgent(mgmt, "conn-A", whole(parts))
    ctx = serve(tid)
    assert ctx.head[0] == 200 and ctx.head[1]["content-type"] == "text/event-stream"
    assert ctx.stream.writes == parts and ctx.stream.failed is None and ctx.body == b"".join(parts)
    # one cumulative ack per 8 frames read (head = 0), and the end's; never one per frame
    assert [a["read_seq"] for a in agent.told("stream_ack")] == [7, 15, 21]
    assert agent.told("stream_cancel") == []
    left = [r["requestId"]["S"] for r in rows()]
    assert len(left) == 1 and "#" not in left[0]  # only the head (the answer row) is left, for TTL


def test_a_gap_is_waited_for_frames_are_read_by_seq(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]

    def frames(rid: str) -> list[protocol.Message]:  # stored out of order: $default runs concurrently
        return [head(rid), end(rid, 4, 6), chunk(rid, 3, b"cc"), chunk(rid, 1, b"aa"), chunk(rid, 2, b"bb")]
    StreamingAgent(mgmt, "conn-A", frames)
    assert serve(tid).stream.writes == [b"aa", b"bb", b"cc"]


def test_a_resent_frame_is_a_no_op(aws, mgmt, monkeypatch):
    monkeypatch.setenv("REQUEST_ID_KEY", "a request id key of at least 32 bytes")
    connect_agent("conn-A", headers=CAPS)
    from httptunnel import id_keys, request_ids
    rid = request_ids.mint(id_keys.current(), "conn-A", time.time_ns() // 1_000_000)
    send("conn-A", chunk(rid, 1, b"first"))
    send("conn-A", chunk(rid, 1, b"again"))
    assert store.get_frame(rid, "conn-A", 1).body == b"first"
    send("conn-A", head(rid))
    send("conn-A", head(rid, status=500))
    assert store.get_answer(rid, "conn-A").status_code == 200


def test_frames_for_an_id_not_issued_to_the_connection_are_refused_without_a_write(aws, mgmt, monkeypatch):
    monkeypatch.setenv("REQUEST_ID_KEY", "a request id key of at least 32 bytes")
    response.REFUSALS.clear()
    connect_agent("conn-B", headers=CAPS)
    for frame in (head("0123456789abcdef"), chunk("0123456789abcdef", 1, b"x"), end("0123456789abcdef", 2, 1)):
        send("conn-B", frame)
    assert rows() == []


def test_a_segment_is_read_checked_relayed_and_deleted(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    blob = bytes(range(256)) * 4096  # 1 MiB
    s3 = boto3.client("s3")

    def frames(rid: str) -> list[protocol.Message]:
        key = protocol.segment_key(rid, 2)
        s3.put_object(Bucket=BUCKET, Key=key, Body=blob)
        notice = protocol.HttpResponseChunk(request_id=rid, seq=2, segment=key, size=len(blob),
                                            sha256=hashlib.sha256(blob).hexdigest())
        return [head(rid, {"content-type": ["application/octet-stream"]}), chunk(rid, 1, b"<"), notice,
                chunk(rid, 3, b">"), end(rid, 4, len(blob) + 2)]
    StreamingAgent(mgmt, "conn-A", frames)
    ctx = serve(tid, "/file")
    assert ctx.body == b"<" + blob + b">" and ctx.stream.failed is None
    assert s3.list_object_versions(Bucket=BUCKET).get("Versions", []) == []  # deleted, no marker left


@pytest.mark.parametrize("spoil", ["sha256", "size"])
def test_a_segment_that_does_not_match_its_notice_cuts_the_body(aws, mgmt, spoil):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    blob = b"s" * 1000

    def frames(rid: str) -> list[protocol.Message]:
        key = protocol.segment_key(rid, 1)
        boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=blob)
        notice = protocol.HttpResponseChunk(request_id=rid, seq=1, segment=key,
                                            size=len(blob) + (spoil == "size"),
                                            sha256=hashlib.sha256(blob + (spoil == "sha256") * b"x").hexdigest())
        return [head(rid, {"content-type": ["application/octet-stream"]}), notice, end(rid, 2, len(blob))]
    agent = StreamingAgent(mgmt, "conn-A", frames)
    ctx = serve(tid, "/file")
    assert ctx.stream.writes == [] and ctx.stream.failed == "internal_error"
    assert [c["reason"] for c in agent.told("stream_cancel")] == ["error"]


def test_an_end_with_an_error_or_a_wrong_count_cuts_the_body(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    StreamingAgent(mgmt, "conn-A", lambda rid: [head(rid), chunk(rid, 1, b"half"),
                                                end(rid, 2, 4, error="local_service_error")])
    ctx = serve(tid)
    assert ctx.stream.writes == [b"half"] and ctx.stream.failed == "local_service_error"
    StreamingAgent(mgmt, "conn-A", lambda rid: [head(rid), chunk(rid, 1, b"half"), end(rid, 2, 99)])
    assert serve(tid).stream.failed == "internal_error"


@pytest.mark.parametrize("content_type,clean", [("text/event-stream", True), ("application/octet-stream", False)])
def test_max_stream_seconds_ends_the_stream_and_tells_the_agent(aws, mgmt, monkeypatch, content_type, clean):
    monkeypatch.setenv("MAX_STREAM_SECONDS", "1.5")
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    agent = StreamingAgent(mgmt, "conn-A", lambda rid: [head(rid, {"content-type": [content_type]}),
                                                        chunk(rid, 1, b"data: 1\n\n")])  # and never an end
    started = time.monotonic()
    ctx = serve(tid)
    assert 1.3 < time.monotonic() - started < 3.0
    assert ctx.stream.writes == [b"data: 1\n\n"] and ctx.stream.closed
    assert ctx.stream.failed == (None if clean else "timeout")  # SSE ends cleanly: EventSource reconnects
    assert [c["reason"] for c in agent.told("stream_cancel")] == ["max_stream_seconds"]
    assert [a["read_seq"] for a in agent.told("stream_ack")] == [1]  # what was read is acked within 1 s


def test_an_agent_gone_mid_stream_cuts_the_body(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]

    def frames(rid: str) -> list[protocol.Message]:
        store.delete_connection("conn-A")  # the socket closed after the first chunk
        return [head(rid), chunk(rid, 1, b"x")]
    StreamingAgent(mgmt, "conn-A", frames)
    ctx = serve(tid)
    assert ctx.stream.writes == [b"x"] and ctx.stream.failed == "agent_gone"


def test_path_mode_rewriting_gathers_the_body_and_rewrites_as_today(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    html = [b'<a href="/do', b'cs">x</a>', b'<img src="/i.png">']
    StreamingAgent(mgmt, "conn-A", lambda rid: [
        head(rid, {"content-type": ["text/html"], "location": ["/next"], "set-cookie": ["s=1; Domain=evil; Path=/"]}),
        *(chunk(rid, i + 1, p) for i, p in enumerate(html)), end(rid, len(html) + 1, sum(map(len, html)))])
    ctx = serve(tid, "/page")
    assert ctx.body == f'<a href="/{tid}/docs">x</a><img src="/{tid}/i.png">'.encode()
    assert ctx.head[1]["location"] == f"/{tid}/next" and ctx.head[2] == [f"s=1; Path=/{tid}/"]


def test_an_event_stream_in_path_mode_is_not_gathered(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    StreamingAgent(mgmt, "conn-A", whole([b"data: /x\n\n", b"data: /y\n\n"]))
    assert serve(tid).stream.writes == [b"data: /x\n\n", b"data: /y\n\n"]


def test_frames_that_cannot_be_relayed_fail_the_answer_at_once(aws, mgmt):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    StreamingAgent(mgmt, "conn-A", lambda rid: [head(rid, status=999)])
    ctx = serve(tid)
    assert ctx.head[0] == 502 and ctx.head[1]["x-tunnel-error"] == "internal_error"
    StreamingAgent(mgmt, "conn-A", lambda rid: [
        head(rid), json.dumps({"type": "http_response_chunk", "request_id": rid, "seq": 1, "body": "not base64!"})])
    assert serve(tid).stream.failed == "internal_error"
    StreamingAgent(mgmt, "conn-A", lambda rid: [
        head(rid), chunk(rid, 1, b"x" * (protocol.STREAM_CHUNK_MAX + 1))])
    assert serve(tid).stream.failed == "internal_error"


def test_a_head_the_buffered_edge_did_not_ask_for_is_a_502(aws, mgmt, ctx):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    StreamingAgent(mgmt, "conn-A", whole([b"x"]))
    result = load_handler("forward")(http_event(tid), ctx)
    assert result["statusCode"] == 502


def test_the_stream_poll_schedule():
    delays, delay = [], 0.0
    for _ in range(8):
        delay = waiting.next_stream_poll(delay, since_frame_s=1.0)
        delays.append(round(delay, 4))
    assert delays == [0.02, 0.03, 0.045, 0.0675, 0.1, 0.1, 0.1, 0.1]  # busy: x1.5 up to 100 ms
    assert waiting.next_stream_poll(0.1, since_frame_s=6.0) == pytest.approx(0.15)
    assert waiting.next_stream_poll(0.2, since_frame_s=60.0) == 0.25  # after 5 s of silence: up to 250 ms


def test_acks_wait_for_eight_frames_or_a_second(aws, mgmt):
    connect_agent("conn-A", headers=CAPS)
    conn = store.get_connection("conn-A")
    clock = [100.0]
    reader = relay.Reader("rid", conn, deadline=1e9, clock=lambda: clock[0], sleep=lambda s: None)
    told = lambda: [m["read_seq"] for m in mgmt.messages("conn-A") if m["type"] == "stream_ack"]  # noqa: E731
    reader.read_seq = 3
    reader.written()
    assert told() == []
    clock[0] += relay.ACK_EVERY_S
    reader.written()
    assert told() == [3]
    reader.read_seq = 10
    reader.written()
    assert told() == [3]  # 7 due: neither 8 frames nor a second
    reader.read_seq = 11
    reader.written()
    assert told() == [3, 11]


def test_ids_of_the_streaming_edge_live_as_long_as_its_requests():
    from httptunnel import request_ids
    keys = request_ids.Keys(1, {1: b"k" * 32})
    now = 1_800_000_000_000
    short, long = request_ids.mint(keys, "c", now), request_ids.mint(keys, "c", now, long_lived=True)
    assert request_ids.check(keys, short, "c", now + 31_000) == "expired"  # the buffered edge: 30 s, as before
    assert request_ids.check(keys, long, "c", now + 899_000) is None  # a 15-minute stream's last frame
    assert request_ids.check(keys, long, "c", now + 901_000) == "expired"
    version, t36, nonce, mac = long.split(".")
    raw = base64.urlsafe_b64decode(nonce + "==")
    flipped = base64.urlsafe_b64encode(bytes([raw[0] ^ 0x80]) + raw[1:]).decode().rstrip("=")
    assert request_ids.check(keys, f"{version}.{t36}.{flipped}.{mac}", "c", now) == "mac"  # the mark is under the MAC
