"""Floods against a local stack on Terraform's DEFAULT throttles and fairness limits (issue 29).

The session's stack raises every throttle for the suite's own traffic (tests/e2e/conftest.py,
SUITE_THROTTLES); this module starts one on the defaults, as a deployment gets them: HTTP stage
20 req/s burst 100, `$connect` 5/s burst 20, per tunnel 10 req/s burst 40, per agent socket 30
messages/s burst 60 (which the agent paces below: a fast stream must not get its socket closed).
The full harness (every attack, before and after) is `python -m
scripts.bench.flood`; its short run is the `load`-marked test at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

from scripts.bench.flood import target
from scripts.harness.stack import LocalStack, TtfAgent, agent_token
from tests.e2e.client import request
from scripts.harness.proc import Proc
from tests.e2e.conftest import STACK_START_TIMEOUT_S, Tunnel, start_agent, stack_info
from tests.e2e.test_streaming import Origin, forms, read_events

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (ROOT / "build" / "local" / "build.json").exists():
        pytest.fail("build/local is missing: run `make build-local` (make test does it)")
    folder = tmp_path_factory.mktemp("default-stack")
    local = LocalStack(folder, state_file=folder / "stack.json")
    local.start(STACK_START_TIMEOUT_S)
    try:
        yield stack_info(local.state, folder / "stack.json")
    finally:
        local.stop(grace=15)


@pytest.fixture(scope="module")
def two_tunnels(default_stack: Any, origin: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tunnel, Tunnel]]:
    folder = tmp_path_factory.mktemp("flood-agents")
    noisy = start_agent(default_stack, origin, folder / "a")
    quiet = start_agent(default_stack, origin, folder / "b")
    try:
        yield noisy, quiet
    finally:
        noisy.agent.stop()
        quiet.agent.stop()


def client(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)),
                                 timeout=aiohttp.ClientTimeout(total=30))


async def test_one_tunnels_flood_meets_its_own_limit_and_the_other_tunnel_is_served(two_tunnels):
    """45 requests at once to tunnel A from 127.0.0.3: its burst of 40 passes, the rest get 429
    tunnel_rate_limited with Retry-After (before any read); tunnel B's callers from 127.0.0.2 are
    all served meanwhile (the stage's burst of 100 has room for both)."""
    noisy, quiet = two_tunnels
    async with client("127.0.0.3") as attacker, client("127.0.0.2") as caller:
        flood = [request(attacker, "GET", noisy.public_url, f"/bytes?n={i}") for i in range(45)]
        steady = [request(caller, "GET", quiet.public_url, f"/bytes?n={i}") for i in range(5)]
        replies = await asyncio.gather(*flood, *steady)
    flooded, served = replies[:45], replies[45:]
    limited = [r for r in flooded if r.status == 429]
    assert [r.status for r in served] == [200] * 5
    assert len(limited) >= 5 and all(r.headers.get("x-tunnel-error") == "tunnel_rate_limited" for r in limited)
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert sum(r.status == 200 for r in flooded) <= 40 + 2  # the burst, plus what 10/s refilled meanwhile


async def test_past_the_stage_burst_api_gateway_answers_429_for_everyone(default_stack, two_tunnels):
    """Unknown ids from one source past the stage's burst: API Gateway's own 429, byte for byte, and
    then tunnel B's caller is refused too (the stage throttle is per API: WAF bounds this one)."""
    _, quiet = two_tunnels
    port = default_stack.http_port
    async with client("127.0.0.3") as attacker, client("127.0.0.2") as caller:
        async def unknown(i: int) -> tuple[int, bytes]:
            async with attacker.get(f"http://127.0.0.1:{port}/", headers={"Host": f"nosuch{i:07d}.localhost:{port}"}) as r:
                return r.status, await r.read()
        answers = await asyncio.gather(*(unknown(i) for i in range(150)),
                                       *(request(caller, "GET", quiet.public_url, "/bytes?n=1") for _ in range(10)))
    flood, served = answers[:150], answers[150:]
    throttled = [body for status, body in flood if status == 429]
    assert throttled and set(throttled) == {b'{"message":"Too Many Requests"}'}
    refused = [r for r in served if r.status == 429]  # type: ignore[union-attr]
    assert refused and all(r.body == b'{"message":"Too Many Requests"}' for r in refused)  # type: ignore[union-attr]


async def test_a_socket_over_its_message_budget_is_closed(default_stack):
    """A token holder's socket sending 200 messages at once is closed by the response Lambda
    (budget: 60 at once, 30/s) well before it is done."""
    token = default_stack.token
    started = time.monotonic()
    async with client("127.0.0.4") as holder:
        ws = await holder.ws_connect(default_stack.ws_url, headers={"Authorization": f"Bearer {token}"})
        for _ in range(200):
            if ws.closed:
                break
            await ws.send_str(json.dumps({"type": "ping"}))
        while not ws.closed and time.monotonic() - started < 20:
            await ws.receive(timeout=20)
    assert ws.closed and ws.close_code == 1000  # DELETE @connections closes with 1000


def agent_events(agent: Proc) -> list[dict[str, Any]]:
    """The agent's JSON events printed so far (without waiting)."""
    events = []
    while True:
        try:
            line = agent.lines.get_nowait()
        except queue.Empty:
            return events
        if line is None:
            agent.lines.put(None)
            return events
        agent.history.append(line)
        try:
            events.append(json.loads(line))
        except ValueError:
            continue


FAST_STREAMS, FAST_EVENTS, FAST_GAP_S = 6, 300, 0.005


async def test_fast_streams_on_the_default_budget_arrive_whole_and_keep_the_agents_socket(default_stack, tmp_path):
    """An LLM-like token stream (300 SSE events 5 ms apart), six at once on the function URL edge,
    through today's ttf on the DEFAULT agent message budget (30/s, 60). Unpaced, the agent sends a
    chunk every ~20 ms per stream, and each stream may keep 16 frames un-read: 6 x 16 frames go out
    within about a third of a second, past the burst of 60, whatever the edge's read speed, and the
    response Lambda closes the socket mid-stream (the test fails: the agent reports the socket gone).
    The server advertises its budget in connection_established and the agent paces below it: every
    event arrives, byte-exact and in order, and the agent's socket is never closed."""
    async with Origin(tmp_path) as app:
        agent = start_agent(default_stack, app.port, tmp_path / "agent")
        try:
            base = forms(default_stack, agent.tunnel_id)["subdomain"]
            started = time.monotonic()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                results = await asyncio.gather(*(
                    read_events(session, base, f"/sse?run=fast{i}&n={FAST_EVENTS}&gap={FAST_GAP_S}")
                    for i in range(FAST_STREAMS)), return_exceptions=True)
            took = time.monotonic() - started
            events = agent_events(agent.agent)
        finally:
            agent.agent.stop()
    closed = [e for e in events if e.get("event") in ("disconnected", "reconnecting")]
    assert not closed, closed  # the socket the stream went out on stayed open
    for i, result in enumerate(results):
        assert not isinstance(result, BaseException), repr(result)
        status, _, arrivals, body = result
        assert status == 200
        assert body == b"".join(f"id: {n}\ndata: {json.dumps({'i': n})}\n\n".encode() for n in range(FAST_EVENTS))
        assert len(arrivals) == FAST_EVENTS
        lag = max(arrivals) - max(app.written[f"fast{i}"])
        print(f"\nstream {i}: last event {lag * 1000:.0f} ms after it was written ({took:.1f} s in all)")
        assert lag < 5.0


async def test_a_connect_flood_is_throttled_before_the_connect_lambda(default_stack):
    """40 $connect attempts at once, past the route's burst of 20: 429 on the upgrade; those inside
    the burst (and what 5/s refilled meanwhile) reach the connect Lambda and get its 401."""
    async with client("127.0.0.3") as attacker:
        async def attempt() -> int:
            try:
                ws = await attacker.ws_connect(default_stack.ws_url)
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            await ws.close()
            return 101

        started = time.monotonic()
        statuses = await asyncio.gather(*(attempt() for _ in range(40)))
        elapsed = time.monotonic() - started
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= 20 + 5 * elapsed + 1, (statuses.count(401), elapsed)
    assert 429 in statuses and statuses.count(429) >= 40 - 20 - 5 * elapsed - 1


@pytest.mark.load
def test_the_flood_harness_runs_every_attack_and_reports_the_second_tunnel(tmp_path):
    from scripts.bench import flood

    out = tmp_path / "flood.json"
    assert flood.main(["--configs", "after", "--seconds", "3", "--settle", "1", "--attack-rps", "60",
                       "--json", str(out)]) == 0
    results = json.loads(out.read_text())["after"]
    for phase in ("unloaded", *flood.ATTACKS):
        assert results[phase]["second_tunnel"]["requests"] > 0, phase
    assert results["connect"]["agent_connects"]["requests"] > 0
    # the token holder's own agent accepts 1,000 streams; the server holds him to tunnel_max_open_streams (8)
    # of the 12 environments (without stream_holds he held all 12 and tunnel B got only Lambda's 429)
    assert 1 <= results["stream-holder"]["attack"]["open_max"] <= 8
    assert results["stream-holder"]["attack"]["refused"].get("429 tunnel_rate_limited", 0) > 0
    # with two tunnels of one token he would hold 2 x 8; token_max_open_streams (8) holds them together
    assert 1 <= results["holder-tunnels"]["attack"]["open_max"] <= 8
    assert results["holder-tunnels"]["attack"]["refused"].get("429 tunnel_rate_limited", 0) > 0


CALLER_RATE, CALLER_BURST = 10, 20  # stream_stack's caller message budget per tunnel


@pytest.fixture(scope="module")
def stream_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], str, str]]:
    """A stack whose function URL runs 5 environments (= forward_stream's reservation) and lets one
    tunnel hold 2 requests open, and whose caller message budget is 10/s, burst 20 per tunnel (the
    default 50/s, burst 100 is about what this machine's local caller pipeline passes: a flood
    could stay under it by being slow); the bench origin (its /sse, /kb, and `/`: a WebSocket
    echo) behind tunnels A and B."""
    if not (ROOT / "build" / "local" / "build.json").exists():
        pytest.fail("build/local is missing: run `make build-local` (make test does it)")
    folder = tmp_path_factory.mktemp("stream-stack")
    extra = ["--stream-environments", "5", "--var", "forward_reserved_concurrency=5",
             "--var", "tunnel_max_open_streams=2", "--var", "max_stream_seconds=30",
             "--var", f"tunnel_caller_message_rate_limit={CALLER_RATE}",
             "--var", f"tunnel_caller_message_burst_limit={CALLER_BURST}"]
    with LocalStack(folder, state_file=folder / "stack.json", extra_args=extra) as local:
        origin = Proc([sys.executable, "-m", "scripts.bench.origin", "--port", "0"], "origin", folder / "origin.log",
                      cwd=ROOT).start()
        try:
            port = origin.wait_json(lambda d: d.get("event") == "listening", 30)["port"]
            token = agent_token(local.state)
            with TtfAgent(local.state["ws_url"], port, folder, name="ttf-a", token=token) as a, \
                    TtfAgent(local.state["ws_url"], port, folder, name="ttf-b", token=token) as b:
                yield local.state, a.public_url, b.public_url
        finally:
            origin.stop()


async def test_one_tunnels_open_streams_are_counted_across_environments(stream_stack):
    """Tunnel A holds 2 SSE streams through the function URL, each in its own execution environment
    (a process of its own: nothing in memory is shared); its third gets 429 tunnel_rate_limited with
    Retry-After, while tunnel B is served; once A's streams end, A is admitted again."""
    state, tunnel_a, tunnel_b = stream_stack
    sse_url, sse_host = target(tunnel_a, "/sse?n=7&ms=500", state["stream_url"])
    kb_url, kb_host = target(tunnel_b, "/kb", state["stream_url"])
    async with client("127.0.0.3") as attacker, client("127.0.0.2") as caller:
        opened: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]

        async def hold(i: int) -> bytes:
            async with attacker.get(sse_url, headers={"Host": sse_host}) as resp:
                assert resp.status == 200, await resp.text()
                first = await resp.content.readuntil(b"\n\n")
                opened[i].set()
                return first + await resp.read()

        holders = [asyncio.create_task(hold(i)) for i in range(2)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 20)
        async with attacker.get(sse_url, headers={"Host": sse_host}) as third:
            assert third.status == 429, await third.text()
            assert third.headers["x-tunnel-error"] == "tunnel_rate_limited" and third.headers["retry-after"] == "1"
        for _ in range(3):
            async with caller.get(kb_url, headers={"Host": kb_host}) as served:
                assert served.status == 200 and len(await served.read()) == 1024
        bodies = await asyncio.wait_for(asyncio.gather(*holders), 30)
        assert all(body.count(b"data:") == 7 for body in bodies)
        deadline = time.monotonic() + 20
        while True:  # the leases are given back as the streams end; Retry-After says when to ask again
            async with attacker.get(sse_url.replace("n=7", "n=1"), headers={"Host": sse_host}) as again:
                body = await again.read()
                if again.status == 200:
                    assert body.count(b"data:") == 1
                    break
                assert again.status == 429 and time.monotonic() < deadline, body
                await asyncio.sleep(int(again.headers["retry-after"]))  # as the refusal asks


async def test_a_chatty_caller_socket_is_closed_by_its_tunnels_budget_and_the_other_tunnels_socket_answers(stream_stack):
    """The harness's caller-socket phase on a caller message budget of 10/s, burst 20 per tunnel
    (stream_stack): 4 caller sockets on tunnel A from 127.0.0.3 send 600 messages as fast as they
    are taken. A's app gets at most the budget's worth (burst + rate x t), the sockets whose message
    goes over are closed by the server (1000, DeleteConnection), and meanwhile tunnel B's own caller
    socket from 127.0.0.2 keeps answering its round trips (never closed: B's budget is its own) and
    B's HTTP callers are all served (another API). The caller stage's throttle (200/s, burst 400)
    is shared by every tunnel, so B's socket may get throttle frames: not asserted here. Without
    the budget (tunnel_caller_message_rate_limit=0) no socket is closed and A's app gets every
    message the stage lets through."""
    from scripts.bench import flood

    state, tunnel_a, tunnel_b = stream_stack
    args = argparse.Namespace(seconds=3.0, steady_rps=4.0, attack_rps=60.0, attack_max=600, caller_sockets=4,
                              attacks=("caller-socket",), edge="http_api", socket_rate=0.0)
    started = time.monotonic()
    found = await flood.phase("caller-socket", state, tunnel_a, tunnel_b, args)
    took = time.monotonic() - started
    attack, b_socket, b_http = found["attack"], found["second_tunnel_socket"], found["second_tunnel"]
    print(f"\n{json.dumps(found)} in {took:.1f} s")
    assert attack["sent"] == 600
    assert attack["closed_by_server"].get("1000", 0) >= 1, attack  # the budget closed at least one socket
    assert set(attack["closed_by_server"]) == {"1000"}, attack
    assert attack["echoed"] <= CALLER_BURST + CALLER_RATE * took, (attack, took)  # the app got no more than the budget
    assert b_socket["requests"] >= 4 and b_socket["p50_ms"] is not None, b_socket
    assert not [e for e in b_socket["errors"] if e.startswith(("closed", "not reopened"))], b_socket
    assert b_http["requests"] > 0 and b_http["error_rate"] == 0, b_http
