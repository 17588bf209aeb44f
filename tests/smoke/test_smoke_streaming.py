"""make smoke's streaming check (scripts/smoke/streaming.py) without a stack: the origin's timed
events read directly (what a live edge delivers), a buffered delivery refused, and a deployment
without a streaming edge reported as not checkable."""

from __future__ import annotations

import pytest

from scripts.smoke import battery, streaming
from scripts.smoke.verdict import CheckFailed, NotCheckable
from tests.smoke import test_smoke_battery

origin_url = test_smoke_battery.origin_url  # the smoke origin (a fixture)


def test_events_read_directly_are_live_and_in_order(origin_url):
    status, events = streaming.read_events(f"{origin_url}/sse?n={streaming.EVENTS}&ms=50", timeout=30)
    assert status == 200 and [e["i"] for e, _ in events] == list(range(streaming.EVENTS))
    spread = events[-1][1] - events[0][1]
    assert spread >= (streaming.EVENTS - 1) * 0.05 * 0.8  # each event came when it was written, not in one lump
    detail = streaming.verdict(status, events)
    assert detail.startswith("per-event delay p50 ")


def test_bad_queries_are_refused(origin_url):
    assert streaming.read_events(f"{origin_url}/sse?n=0", timeout=10) == (400, [])


def written(n: int, gap: float, arrival) -> list[tuple[dict, float]]:
    return [({"i": i, "t": 1000 + i * gap}, arrival(i)) for i in range(n)]


def test_a_buffered_stream_fails_as_not_live():
    n = streaming.EVENTS
    lump = written(n, 0.2, lambda i: 1000 + (n - 1) * 0.2 + 0.05)  # everything after the last was written
    with pytest.raises(CheckFailed, match="not live"):
        streaming.verdict(200, lump)
    live = written(n, 0.2, lambda i: 1000 + i * 0.2 + 0.08)
    assert "p50 80 ms" in streaming.verdict(200, live)


def test_cut_or_reordered_streams_and_bad_statuses_fail():
    n = streaming.EVENTS
    with pytest.raises(CheckFailed, match="status 502"):
        streaming.verdict(502, [])
    with pytest.raises(CheckFailed, match=f"{n - 1} of {n} events"):
        streaming.verdict(200, written(n - 1, 0.2, lambda i: 1000 + i * 0.2))
    swapped = written(n, 0.2, lambda i: 1000 + i * 0.2)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    with pytest.raises(CheckFailed, match="in this order"):
        streaming.verdict(200, swapped)


def test_no_streaming_edge_is_not_checkable_and_says_why():
    ctx = battery.Context(battery.Tunnel("abc", "https://t.example"), lambda: battery.Tunnel("abc", ""))
    with pytest.raises(NotCheckable, match="no streaming edge"):
        streaming.stream_url(ctx)
    result = battery.one(streaming.STREAMING, streaming.check_stream, ctx)
    assert result.status == battery.NOT_CHECKABLE and "public_edge" in result.detail
    ctx.stream_url = "https://abc.lambda-url.us-east-1.on.aws/"
    assert streaming.stream_url(ctx) == "https://abc.lambda-url.us-east-1.on.aws/abc/sse?n=20&ms=200"


def test_the_stream_url_comes_from_terraform_or_the_flag(capsys):
    from scripts.smoke import __main__ as smoke
    assert smoke.stream_url_of({"function_url": {"value": "https://x.lambda-url.us-east-1.on.aws/"}}) \
        == "https://x.lambda-url.us-east-1.on.aws/"
    assert smoke.stream_url_of({"function_url": {"value": None}}) == ""
    assert smoke.stream_url_of({}) == ""
    assert smoke.main(["--endpoint", "ws://127.0.0.1:1", "--stream-url", "ftp://x"]) == 2
    assert "--stream-url must be an http" in capsys.readouterr().err
