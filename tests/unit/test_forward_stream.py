"""forward_stream (the function URL edge) against moto with a simulated agent: the same story as
forward, with the path as the caller sent it, a wait bounded by the function's time, and the
answer written to the response stream (head, then body pieces)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from httptunnel import events, protocol, to_caller

from .helpers import FakeContext, connect_agent, load_handler
from .test_forward_basic import FakeAgent, http_event, ok


@dataclass
class Stream:
    writes: list[bytes] = field(default_factory=list)
    closed: bool = False
    failed: str | None = None

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def fail(self, error_type: str, message: str) -> None:
        self.closed, self.failed = True, error_type


@dataclass
class StreamContext(FakeContext):
    """A streaming function's context (runtime_api.Context): open_stream once, then writes."""
    head: tuple[int, dict[str, str], list[str]] | None = None
    stream: Stream | None = None

    def open_stream(self, status_code: int = 200, headers=None, cookies=None) -> Stream:
        assert self.stream is None, "opened twice"
        self.head = (status_code, dict(headers or {}), list(cookies or []))
        self.stream = Stream()
        return self.stream

    @property
    def body(self) -> bytes:
        assert self.stream is not None and self.stream.closed
        return b"".join(self.stream.writes)


def url_event(tunnel_id: str, path: str, **kw: Any) -> dict[str, Any]:
    """A function URL event: payload 2.0, rawPath as the caller sent it."""
    event = http_event(tunnel_id, path, **kw)
    event["requestContext"]["domainName"] = event["headers"]["host"] = "abcdefurl.lambda-url.us-east-1.on.aws"
    event["requestContext"]["apiId"] = "abcdefurl"
    event["routeKey"] = "$default"
    return event


def test_the_answer_is_streamed_head_then_body_in_pieces(aws, mgmt, monkeypatch):
    monkeypatch.setattr(to_caller, "STREAM_PIECE", 1024)
    tid = connect_agent("conn-A")["tunnel_id"]
    big = os.urandom(10 * 1024)  # inline (the agent uploads bigger ones: e2e covers a 7 MB one)
    FakeAgent(mgmt, "conn-A", ok(big, headers={"content-type": ["application/octet-stream"],
                                              "set-cookie": ["a=1", "b=2"], "x-two": ["1", "2"]}))
    ctx = StreamContext()
    assert load_handler("forward_stream")(url_event(tid, "/file"), ctx) is None
    status, headers, cookies = ctx.head
    assert status == 200 and cookies == ["a=1", "b=2"] and headers["x-two"] == "1, 2"
    assert ctx.body == big and [len(w) for w in ctx.stream.writes] == [1024] * 10


@pytest.mark.parametrize("sent", ["/a%2Fb", "/%2525", "/100%25done", "/%CE%BB?x=%2F"])
def test_the_path_reaches_the_agent_as_the_caller_sent_it(aws, mgmt, sent):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"x"))
    path, _, query = sent.partition("?")
    ctx = StreamContext()
    load_handler("forward_stream")(url_event(tid, path, query=query), ctx)
    assert ctx.head[0] == 200
    assert agent.requests[0]["uri"] == sent


def test_the_http_api_edge_still_re_encodes_its_decoded_path(aws, mgmt, ctx):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"x"))
    load_handler("forward")(http_event(tid, "/100%done", query=""), ctx)
    assert agent.requests[0]["uri"] == "/100%25done"


def test_a_malformed_escape_is_refused_400(aws, mgmt):
    tid = connect_agent("conn-A")["tunnel_id"]
    ctx = StreamContext()
    load_handler("forward_stream")(url_event(tid, "/bad%zz"), ctx)
    assert ctx.head[0] == 400 and ctx.head[1]["x-tunnel-error"] == "invalid_request"


def test_refusals_are_streamed_with_their_code(aws, mgmt):
    ctx = StreamContext()
    load_handler("forward_stream")(url_event("zzzzzzzzzzzz", "/x"), ctx)
    assert ctx.head[0] == 404 and ctx.head[1]["x-tunnel-error"] == "tunnel_not_found"
    assert ctx.body.startswith(b"tunnel not found")


def test_the_wait_is_the_functions_time_less_the_margin_and_max_stream_seconds(aws, monkeypatch):
    from httptunnel import forward_stream, waiting
    assert forward_stream.wait_seconds(StreamContext(remaining_ms=100_000)) == 100 - waiting.ANSWER_RESERVE_S
    assert forward_stream.wait_seconds(StreamContext(remaining_ms=900_000)) == 600.0  # the default cap
    monkeypatch.setenv("MAX_STREAM_SECONDS", "30")
    assert forward_stream.wait_seconds(StreamContext(remaining_ms=900_000)) == 30.0


def test_the_agent_is_told_the_long_wait_and_a_silent_agent_is_504(aws, mgmt, monkeypatch):
    monkeypatch.setenv("MAX_STREAM_SECONDS", "1.5")
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", lambda msg: None)
    ctx = StreamContext(remaining_ms=900_000)
    load_handler("forward_stream")(url_event(tid, "/slow"), ctx)
    assert ctx.head[0] == 504 and ctx.head[1]["x-tunnel-error"] == "timeout"
    assert 1000 < agent.requests[0]["time_left_ms"] <= 1500


def test_no_time_left_is_504_without_posting(aws, mgmt):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok(b"x"))
    ctx = StreamContext(remaining_ms=3_000)  # less than what answering needs (waiting.ANSWER_RESERVE_S)
    load_handler("forward_stream")(url_event(tid, "/x"), ctx)
    assert ctx.head[0] == 504 and agent.requests == []


def test_a_failure_before_the_head_is_a_clean_502_after_it_a_cut_stream(aws, mgmt, monkeypatch):
    from httptunnel import forward_stream
    handler = load_handler("forward_stream")

    def broken(*_a: Any) -> None:
        raise RuntimeError("boom")
    monkeypatch.setattr(forward_stream.gate, "route", broken)
    ctx = StreamContext()
    handler(url_event("zzzzzzzzzzzz", "/x"), ctx)
    assert ctx.head[0] == 502 and ctx.head[1]["x-tunnel-error"] == "internal_error"

    def half(event: Any, context: StreamContext) -> None:
        context.open_stream(200, {}, []).write(b"part")
        raise RuntimeError("boom")
    monkeypatch.setattr(forward_stream, "forward_stream", half)
    ctx = StreamContext()
    handler(url_event("zzzzzzzzzzzz", "/x"), ctx)
    assert ctx.stream.writes == [b"part"] and ctx.stream.failed == "internal_error"


def test_function_url_events_keep_the_path_encoded():
    event = url_event("abcdefabcdef", "/a%2Fb")
    assert events.parse_function_url_event(event).raw_path == "/abcdefabcdef/a%2Fb"
    assert events.parse_function_url_event(event).path_encoded
    assert not events.parse_http_event(event).path_encoded
    with pytest.raises(events.BadEvent):
        events.parse_function_url_event({"requestContext": {"http": {}}})


def test_a_head_answer_writes_no_body():
    ctx = StreamContext()
    to_caller.stream_answer(ctx, 200, {"content-length": ["5"]}, b"")
    assert ctx.head == (200, {"content-length": "5"}, []) and ctx.body == b""
    assert protocol  # the module under test speaks the protocol's header shape
