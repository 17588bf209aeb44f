"""ttf.socketlog: the caller WebSocket sessions the inspector and the dashboard show, and their bounds."""

from __future__ import annotations

import asyncio

import pytest

from ttf import socketlog
from ttf.socketlog import TO_APP, TO_CALLER, InjectRefused, Injected, SocketLog, cut


class FakeSocket:
    """What ttf.sockets' LocalSocket offers the log: inject()."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bool]] = []
        self.refuse: InjectRefused | None = None

    def inject(self, text: str, to_caller: bool) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append((text, to_caller))


def test_a_session_counts_everything_and_keeps_only_the_last_messages_each_way():
    log = SocketLog()
    rec = log.opened("c1=", "/chat?room=1", {"Origin": ["https://a.example"]}, "chat", FakeSocket())
    for n in range(socketlog.LAST_MESSAGES + 30):
        rec.message(TO_APP, f"in {n}")
    rec.message(TO_CALLER, "out 0")
    assert rec.count == {TO_APP: socketlog.LAST_MESSAGES + 30, TO_CALLER: 1}
    assert rec.bytes[TO_APP] == sum(len(f"in {n}") for n in range(socketlog.LAST_MESSAGES + 30))
    detail = rec.detail()
    kept_in = [m["text"] for m in detail["kept"] if m["direction"] == TO_APP]
    assert kept_in == [f"in {n}" for n in range(30, socketlog.LAST_MESSAGES + 30)]  # the newest, oldest first
    assert detail["dropped"] == {TO_APP: 30, TO_CALLER: 0}
    assert detail["kept"][-1]["text"] == "out 0"  # both ways in the order they passed
    assert [m["n"] for m in detail["kept"]] == sorted(m["n"] for m in detail["kept"])
    assert rec.summary()["last"]["text"] == "out 0" and rec.summary()["protocol"] == "chat"


def test_a_big_message_is_cut_on_a_character_boundary_and_its_size_is_the_whole():
    log = SocketLog()
    rec = log.opened("c1=", "/", {}, None, FakeSocket())
    text = "é" * socketlog.MESSAGE_KEEP  # 2 bytes each: twice the keep
    kept = rec.message(TO_CALLER, text)
    assert kept.size == 2 * socketlog.MESSAGE_KEEP and kept.truncated
    assert kept.text == "é" * (socketlog.MESSAGE_KEEP // 2) and kept.kept == socketlog.MESSAGE_KEEP
    assert cut("aé", 2) == "a"  # never half a character
    assert rec.detail()["kept"][0]["truncated"] is True


def test_the_kept_bytes_of_one_way_stay_within_the_budget():
    log = SocketLog()
    rec = log.opened("c1=", "/", {}, None, FakeSocket())
    for _ in range(socketlog.LAST_MESSAGES):
        rec.message(TO_APP, "x" * 10_000)  # cut to MESSAGE_KEEP each
    assert rec.kept_bytes[TO_APP] <= socketlog.WAY_BUDGET
    assert len(rec.kept[TO_APP]) == socketlog.WAY_BUDGET // socketlog.MESSAGE_KEEP
    assert rec.bytes[TO_APP] == socketlog.LAST_MESSAGES * 10_000  # counted whole


def test_handshake_headers_are_kept_up_to_their_cap():
    log = SocketLog()
    headers = {f"X-H{n}": ["v" * 1000] for n in range(40)}
    rec = log.opened("c1=", "/", headers, None, FakeSocket())
    assert rec.headers_truncated and 0 < len(rec.headers) < 40
    assert sum(len(k) + len(v[0]) for k, v in rec.headers.items()) <= socketlog.HEADERS_KEEP


def test_closed_sessions_are_bounded_in_count_and_bytes_open_ones_are_never_evicted():
    log = SocketLog(closed_max=3, budget=10**9)
    keep = log.opened("open=", "/stays", {}, None, FakeSocket())
    for n in range(5):
        log.opened(f"s{n}=", f"/{n}", {}, None, FakeSocket()).closed(1000, "", "caller")
    assert [r.uri for r in log.newest_first()] == ["/4", "/3", "/2", "/stays"]
    assert log.get(keep.id) is keep and log.open_count == 1 and len(log) == 4

    small = SocketLog(closed_max=100, budget=3000)
    for n in range(10):
        rec = small.opened(f"s{n}=", f"/{n}", {}, None, FakeSocket())
        rec.message(TO_APP, "y" * 1000)
        rec.closed(1000, "", "app")
    assert small._ended_bytes <= 3000 and len(small) < 10
    assert small.newest_first()[0].uri == "/9"


def test_the_first_ending_counts_and_a_refused_handshake_is_listed():
    log = SocketLog()
    rec = log.opened("c1=", "/", {}, None, FakeSocket())
    rec.closed(4001, "app done", "app")
    rec.closed(1012, "the tunnel reconnects", "ttf")
    s = rec.summary()
    assert (s["state"], s["close_code"], s["close_reason"], s["closed_by"]) == ("closed", 4001, "app done", "app")
    refused = log.refused("c2=", "/admin", {}, 403, "local_service_error", "the app answered 403").summary()
    assert (refused["state"], refused["refused_status"], refused["refused_code"]) == ("refused", 403,
                                                                                      "local_service_error")
    assert log.open_count == 0


def test_send_goes_through_the_socket_and_refusals_say_why():
    log = SocketLog()
    sock = FakeSocket()
    rec = log.opened("c1=", "/", {}, None, sock)
    log.send(rec.id, "to the caller", "caller")
    log.send(rec.id, "to the app", "app")
    assert sock.sent == [("to the caller", True), ("to the app", False)]
    assert all(isinstance(text, Injected) for text, _ in sock.sent)
    # toward the caller it is listed at once, marked; toward the app when ttf.sockets wrote it
    assert [(m.text, m.injected) for m in rec.kept[TO_CALLER]] == [("to the caller", True)]
    assert not rec.kept[TO_APP]

    with pytest.raises(InjectRefused) as unknown:
        log.send(999, "x", "caller")
    assert unknown.value.status == 404
    with pytest.raises(InjectRefused) as where:
        log.send(rec.id, "x", "elsewhere")
    assert where.value.status == 400
    sock.refuse = InjectRefused(503, "the queue toward the caller is full: nothing was sent")
    with pytest.raises(InjectRefused) as full:
        log.send(rec.id, "x", "caller")
    assert full.value.status == 503 and rec.count[TO_CALLER] == 1  # not listed when it was not sent

    rec.closed(1000, "bye", "caller")
    with pytest.raises(InjectRefused) as closed:
        log.send(rec.id, "x", "caller")
    assert closed.value.status == 409
    assert str(closed.value) == f"WebSocket session #{rec.id} is closed (by the caller with 1000): nothing was sent"


async def test_listeners_hear_opens_and_closes_at_once_and_messages_at_most_every_update_interval():
    now = [100.0]
    log = SocketLog(clock=lambda: now[0])
    heard: list[dict] = []
    log.listen(lambda kind, data: heard.append(data["socket"]))
    rec = log.opened("c1=", "/", {}, None, FakeSocket())
    assert [h["state"] for h in heard] == ["open"]
    for n in range(100):  # a burst within one interval: one trailing update, not 100
        rec.message(TO_APP, f"m{n}")
    assert len(heard) == 1
    await asyncio.sleep(socketlog.UPDATE_S + 0.1)  # the trailing update is a loop timer of UPDATE_S
    assert len(heard) == 2 and heard[-1]["messages"][TO_APP] == 100
    rec.closed(1000, "", "caller")
    assert heard[-1]["state"] == "closed" and len(heard) == 3
