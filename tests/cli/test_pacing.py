"""Pacing (ttf.pacing): the agent keeps each socket inside the message budget the server advertises
(``connection_established.limits``), so a fast stream or a busy tunnel does not get its socket closed
by the response Lambda (``fairness.socket_flooding``). The budget is checked here with the server's
own counter (``fairness.MessageBudget``) on the Terraform defaults."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
from aiohttp import web

from httptunnel import fairness, protocol
from ttf.forward import Forwarder, local_session, remote_session
from ttf.pacing import MARGIN, Pacer, advertised
from ttf.streaming import Streamer, StreamSlots

from conftest import make_config, wait_until
from scripts.harness.tfdefaults import terraform_default


# the budget a deployment gets unless the operator changes it (terraform/fairness.tf: 30/s, 60)
RATE = terraform_default("agent_message_rate_limit")
BURST = terraform_default("agent_message_burst_limit")
ADVERTISED = {"messages_per_s": RATE, "messages_burst": BURST}


class FakeTime:
    """A clock that moves only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


# ---- the token bucket ----------------------------------------------------------------------------

async def test_a_burst_at_once_then_the_steady_rate() -> None:
    t = FakeTime()
    pacer = Pacer(10, 5, clock=t.clock, sleep=t.sleep)
    times = []
    for _ in range(15):
        await pacer.take()
        times.append(round(t.now - 100.0, 6))
    assert times[:5] == [0.0] * 5  # the burst
    assert times[5:] == [pytest.approx(0.1 * i) for i in range(1, 11)]  # then one every 1/rate
    assert pacer.waited == 10


async def test_an_idle_pacer_refills_up_to_its_burst_and_no_more() -> None:
    t = FakeTime()
    pacer = Pacer(10, 3, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        await pacer.take()
    t.now += 60.0  # a minute idle: 600 tokens' worth, but the bucket holds 3
    start = t.now
    for _ in range(5):
        await pacer.take()
    assert t.now - start == pytest.approx(0.2)  # 3 at once, then 2 at 10/s


async def test_waiters_are_served_in_order_and_each_gets_its_own_token() -> None:
    t = FakeTime()
    pacer = Pacer(4, 1, clock=t.clock, sleep=t.sleep)
    got: list[tuple[int, float]] = []

    async def taker(i: int) -> None:
        await pacer.take()
        got.append((i, t.now - 100.0))

    await asyncio.gather(*(taker(i) for i in range(5)))
    assert [i for i, _ in got] == list(range(5))
    assert [at for _, at in got] == [pytest.approx(0.25 * i) for i in range(5)]


async def test_ready_waits_for_a_token_but_spends_none() -> None:
    t = FakeTime()
    pacer = Pacer(2, 1, clock=t.clock, sleep=t.sleep)
    await pacer.take()
    await pacer.ready()  # waits the 0.5 s to the next token ...
    assert t.now - 100.0 == pytest.approx(0.5)
    await pacer.take()  # ... which is still there
    assert t.now - 100.0 == pytest.approx(0.5)


async def test_a_real_loop_clock_paces_too() -> None:
    """No fakes: 3 at once, then 5 more at 50/s take about 0.1 s on the loop's clock."""
    pacer = Pacer(50, 3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(8):
        await pacer.take()
    assert 0.095 <= loop.time() - start < 1.0


@pytest.mark.parametrize("rate,burst", [(0, 5), (-1, 5), (float("inf"), 5), (5, 0.5), (5, float("nan"))])
async def test_a_pacer_needs_a_positive_rate_and_a_burst_of_at_least_one(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate > 0|burst >= 1"):
        Pacer(rate, burst)


async def test_the_advertised_budget_is_paced_at_the_margin_and_none_means_no_pacing() -> None:
    assert advertised(None) is None
    pacer = advertised(ADVERTISED)
    assert pacer is not None
    assert (pacer.rate, pacer.burst) == (RATE * MARGIN, BURST * MARGIN)
    small = advertised({"messages_per_s": 2})  # no burst: the server's bucket is the rate (at least 1)
    assert small is not None and (small.rate, small.burst) == (2 * MARGIN, max(1.0, 2 * MARGIN))


# ---- a fast stream through the Streamer ----------------------------------------------------------

EVENTS = 300
GAP_S = 0.005
STREAMS = 4  # --max-streams allows 8; 4 streams of 5 ms events overrun 30/s within a second unpaced


class TinyWrites:
    """A local app writing EVENTS small SSE events GAP_S apart (what an LLM token stream does)."""

    def __init__(self) -> None:
        self.written: dict[str, list[tuple[float, int]]] = {}  # run -> (loop time, bytes so far)
        self.app = web.Application()
        self.app.router.add_get("/tokens", self._tokens)

    @staticmethod
    def body(run: str) -> bytes:
        return b"".join(b"data: %s %d\n\n" % (run.encode(), i) for i in range(EVENTS))

    async def _tokens(self, request: web.Request) -> web.StreamResponse:
        run = request.query["run"]
        marks = self.written.setdefault(run, [])
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        loop, total = asyncio.get_running_loop(), 0
        for i in range(EVENTS):
            if i:
                await asyncio.sleep(GAP_S)
            event = b"data: %s %d\n\n" % (run.encode(), i)
            await resp.write(event)
            total += len(event)
            marks.append((loop.time(), total))
        await resp.write_eof()
        return resp


class BudgetedEdge:
    """The socket's far end: counts every frame with the response Lambda's own budget (default
    limits), keeps them, and reads (acks) each stream as it arrives."""

    def __init__(self, streamer: Streamer) -> None:
        self.streamer = streamer
        self.budget = fairness.MessageBudget(clock=asyncio.get_running_loop().time)
        self.arrivals: list[float] = []
        self.over_budget = 0
        self.frames: dict[str, dict[int, protocol.StreamFrame]] = {}
        self.received: dict[str, list[tuple[float, int]]] = {}  # run -> (loop time, body bytes so far)

    async def send(self, frame: str) -> bool:
        now = asyncio.get_running_loop().time()
        self.arrivals.append(now)
        if not self.budget.spend("agent-socket", RATE, BURST):
            self.over_budget += 1  # the Lambda would close the socket here
        message = protocol.decode(frame)
        assert isinstance(message, (protocol.HttpResponseHead, protocol.HttpResponseChunk, protocol.HttpResponseEnd))
        frames = self.frames.setdefault(message.request_id, {})
        if message.seq not in frames:
            frames[message.seq] = message
            if isinstance(message, protocol.HttpResponseChunk):
                got = self.received.setdefault(message.request_id, [])
                got.append((now, (got[-1][1] if got else 0) + len(protocol.b64decode(message.body))))
        read = max(s for s in frames if all(k in frames for k in range(s + 1)))
        self.streamer.on_ack(protocol.StreamAck(message.request_id, read))
        return True

    def body(self, run: str) -> bytes:
        frames = self.frames[run]
        assert sorted(frames) == list(range(len(frames)))  # no gap, head first
        assert isinstance(frames[len(frames) - 1], protocol.HttpResponseEnd)
        return b"".join(protocol.b64decode(f.body) for _, f in sorted(frames.items())
                        if isinstance(f, protocol.HttpResponseChunk))

    def busiest_second(self) -> int:
        times, most, first = sorted(self.arrivals), 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most


def stream_request(run: str) -> protocol.HttpRequest:
    return protocol.HttpRequest(request_id=run, method="GET", uri=f"/tokens?run={run}", headers={"Host": ["t.example"]},
                                time_left_ms=60_000, stream={"window": protocol.STREAM_WINDOW})


async def run_streams(aiohttp_server: Callable[..., Any], paced: bool) -> tuple[BudgetedEdge, TinyWrites]:
    app = TinyWrites()
    server = await aiohttp_server(app.app, host="127.0.0.1")
    local, remote = local_session(8), remote_session()
    try:
        fwd = Forwarder(local=local, remote=remote, host="127.0.0.1", port=server.port, request_timeout=60.0)
        streamer = Streamer(fwd, StreamSlots(8))
        edge = BudgetedEdge(streamer)
        pacer = advertised(ADVERTISED) if paced else None

        async def send(frame: str) -> bool:  # what TunnelSession.send does with a pacer
            if pacer is not None:
                await pacer.take()
            return await edge.send(frame)

        runs = [f"run{i}" for i in range(STREAMS)]
        for run in runs:
            assert streamer.admit(run)
        results = await asyncio.wait_for(asyncio.gather(
            *(streamer.serve(stream_request(run), send, None, pacer.ready if pacer else None) for run in runs)), 60)
        assert all(r.frame is None and r.event.error is None for r in results)
        for run in runs:
            assert edge.body(run) == TinyWrites.body(run)  # byte-exact, in order, nothing dropped
        return edge, app
    finally:
        await local.close()
        await remote.close()


def delays(edge: BudgetedEdge, app: TinyWrites, run: str) -> list[float]:
    """For each event: from the app's write to the chunk that carried its last byte."""
    received = edge.received[run]
    out = []
    for written_at, upto in app.written[run]:
        arrived = next(at for at, got in received if got >= upto)
        out.append(arrived - written_at)
    return out


async def test_unpaced_the_same_streams_overrun_the_default_budget(aiohttp_server) -> None:
    """The defect (and what makes the next test mean something): 4 streams of 5 ms events send a
    chunk every ~20 ms each, far past 30/s, and the Lambda would close the socket."""
    edge, _ = await run_streams(aiohttp_server, paced=False)
    assert edge.over_budget > 0, (len(edge.arrivals), edge.busiest_second())


async def test_paced_streams_stay_inside_the_default_budget_and_arrive_byte_exact(aiohttp_server) -> None:
    unpaced, _ = await run_streams(aiohttp_server, paced=False)
    edge, app = await run_streams(aiohttp_server, paced=True)
    assert edge.over_budget == 0
    assert edge.busiest_second() <= BURST + RATE  # what the server's bucket allows in any 1 s window
    assert edge.busiest_second() <= (BURST + RATE) * MARGIN + 1
    assert len(edge.arrivals) < len(unpaced.arrivals)  # fewer, bigger chunks: the bytes kept coalescing
    per_event = sorted(d for run in edge.received for d in delays(edge, app, run))
    p50, worst = per_event[len(per_event) // 2], per_event[-1]
    print(f"\npaced: {len(edge.arrivals)} frames (unpaced {len(unpaced.arrivals)}), busiest second "
          f"{edge.busiest_second()}, per-event delay p50 {p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms")
    # 4 streams share 24 frames/s: each gets a frame about every 4/24 s, plus the 20 ms coalescing
    assert p50 <= STREAMS / (RATE * MARGIN) + 0.25, p50


# ---- through the session: every frame of the socket takes a token -------------------------------

async def answers_arrival_times(gateway, local_app, running, limits: dict[str, Any] | None) -> list[float]:
    plain = gateway._established
    gateway._established = lambda conn: plain(conn) | ({"limits": limits} if limits else {})
    app, port = local_app
    running(make_config(gateway, port))
    await wait_until(lambda: gateway.conns and any(m.get("type") == "ready" for m in gateway.conns[0].received),
                     what="ready")
    conn = gateway.conns[0]
    await wait_until(lambda: conn.received, what="a frame")
    loop = asyncio.get_running_loop()
    for i in range(12):
        await conn.request_frame(f"w{i}", "GET", f"/echo?i={i}", time_left_ms=20_000)
    times = []
    for _ in range(12):
        reply = await asyncio.wait_for(conn.next_reply(), 20)
        assert reply["type"] == "http_response" and reply["status_code"] == 200
        times.append(loop.time())
    return times


def over_budget(times: list[float], rate: float, burst: float) -> int:
    t = iter(times)
    budget = fairness.MessageBudget(clock=lambda: next(t))
    return sum(not budget.spend("c", rate, burst) for _ in times)


async def test_the_session_paces_its_answers_below_the_advertised_budget(gateway, local_app, running) -> None:
    times = await answers_arrival_times(gateway, local_app, running, {"messages_per_s": 10, "messages_burst": 2})
    assert over_budget(times, 10, 2) == 0
    assert times[-1] - times[0] >= (12 - 2) / 10  # the burst, then at most 10/s


async def test_an_older_server_advertises_nothing_and_the_session_does_not_pace(gateway, local_app, running) -> None:
    times = await answers_arrival_times(gateway, local_app, running, None)
    assert over_budget(times, 10, 2) > 0  # 12 answers at once: the control for the test above



async def test_time_spent_waiting_for_a_token_is_not_counted_as_the_edges_round_trip(gateway, local_app, running) -> None:
    """Four answers queued behind the pacer (1 token per 1.25 s), each acknowledged the moment it
    arrives: the edge answered at once, so the learnt resend delay stays at its 1 s floor and an
    unacknowledged fifth answer is resent as soon as the pacer allows (~1.25 s). Counting the
    pacer's wait as round trip (0, 1.25, 2.5, 3.75 s) would put the first resend past 4 s."""
    gateway.speaks = ("ack",)
    plain = gateway._established
    gateway._established = lambda conn: plain(conn) | {"limits": {"messages_per_s": 1, "messages_burst": 1}}
    app, port = local_app
    running(make_config(gateway, port, heartbeat_interval=60.0))
    await wait_until(lambda: gateway.conns and any(m.get("type") == "ready" for m in gateway.conns[0].received),
                     what="ready")
    conn = gateway.conns[0]
    for i in range(4):
        await conn.request_frame(f"p{i}", "GET", f"/echo?i={i}", time_left_ms=25_000)
    for _ in range(4):
        reply = await conn.next_reply(timeout=10)
        assert "seq" in reply and not reply.get("ack")
        await conn.send({"type": "ack", "request_id": reply["request_id"], "seq": reply["seq"]})
    loop = asyncio.get_running_loop()
    await conn.request_frame("last", "GET", "/echo", time_left_ms=25_000)
    first = await conn.next_reply(timeout=5)
    sent_at = loop.time()
    again = await conn.next_reply(timeout=10)
    waited = loop.time() - sent_at
    assert first["request_id"] == again["request_id"] == "last" and again["ack"] is True
    assert waited < 3.0, waited
