"""connect(), the connection lifecycle, driven through a scripted dial and fake sessions (no sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Mapping

import pytest

from httptunnel.protocol import ConnectionEstablished

from ttf.backoff import Backoff
from ttf.config import Config
from ttf.events import Disconnected, Notice, Reconnecting, TunnelEstablished
from ttf.handshake import ConnectFailed
from ttf.lifecycle import Fatal, connect
from ttf.saved_url import SavedUrl
from ttf.shutdown import StopSignal
from ttf.state import TunnelStore

from conftest import wait_until

ENDPOINT = "ws://gw.example.test/ws"


class FakeSession:
    """Serves nothing; ends when the test says so; records what the lifecycle asks of it."""

    def __init__(self, info: ConnectionEstablished) -> None:
        self.info = info
        self.opened_at = time.monotonic()
        self.busy = 0
        self.calls: list[Any] = []
        self._gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def end(self, reason: str) -> None:
        self._gone.set_result(reason)

    async def ended(self) -> str:
        await asyncio.wait({self._gone})  # like TunnelSession: cancelling the wait ends nothing
        return self._gone.result()

    def stop_accepting(self) -> None:
        self.calls.append("stop_accepting")

    async def drain(self, timeout: float, force: asyncio.Event | None = None) -> None:
        self.calls.append(("drain", timeout, force))

    async def close(self) -> None:
        self.calls.append("close")
        if not self._gone.done():
            self._gone.set_result("closed")


class FakeDial:
    """Each call takes the next step of script: an HTTP status refuses the upgrade, None succeeds.
    Like the connect Lambda, a reclaim gets its id back, a fresh connect gets next_id; the reclaim
    token is the agent's own, and connection_established carries none."""

    def __init__(self, *script: int | None) -> None:
        self.script = list(script)
        self.headers: list[dict[str, str]] = []
        self.sessions: list[FakeSession] = []
        self.next_id = "tun1"
        self.legacy_token: str | None = None  # what a server older than agent-made tokens sends back

    async def __call__(self, headers: Mapping[str, str]) -> FakeSession:
        self.headers.append(dict(headers))
        status = self.script.pop(0) if self.script else None
        if status is not None:
            raise ConnectFailed(f"endpoint refused the WebSocket (HTTP {status})", status)
        tunnel_id = headers.get("X-Tunnel-Id") or self.next_id
        session = FakeSession(ConnectionEstablished(f"conn-{len(self.sessions)}", tunnel_id,
                                                    f"https://gw.example.test/{tunnel_id}",
                                                    reclaim_token=self.legacy_token))
        self.sessions.append(session)
        return session


class Run:
    """One connect() generator with recorded events and backoff waits that take no time."""

    def __init__(self, dial: FakeDial, store: TunnelStore | None = None, sleep=None, **config: Any) -> None:
        self.events: list[object] = []
        self.slept: list[float] = []
        self.stop = StopSignal()
        self.saved = SavedUrl(store, self.events.append)
        self.sessions = connect(Config(endpoint=ENDPOINT, token="jwt", drain_timeout=3.0, **config), dial,
                                self.saved, emit=self.events.append, stop=self.stop,
                                backoff=Backoff(rand=lambda: 0.0), sleep=sleep or self._sleep)

    async def _sleep(self, delay: float) -> None:
        self.slept.append(delay)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def runs():
    made: list[Run] = []

    def make(*args: Any, **kwargs: Any) -> Run:
        made.append(Run(*args, **kwargs))
        return made[-1]

    yield make
    for run in made:
        await run.sessions.aclose()


async def test_failures_back_off_and_a_success_resets_the_backoff(runs):
    dial = FakeDial(502, 502, 502)
    run = runs(dial)
    first = await anext(run.sessions)
    assert run.slept == [1, 2, 4]
    assert [(e.attempt, e.reason) for e in run.of(Reconnecting)] == [
        (n, "endpoint refused the WebSocket (HTTP 502)") for n in (1, 2, 3)]
    assert dial.headers[-1]["Authorization"] == "Bearer jwt" and "X-Tunnel-Id" not in dial.headers[-1]
    assert [e.tunnel_id for e in run.of(TunnelEstablished)] == ["tun1"]

    first.end("connection lost")
    second = await anext(run.sessions)
    assert run.slept == [1, 2, 4, 1]  # reset after the successful session
    assert run.of(Disconnected) == [Disconnected("connection lost")]
    own_token = dial.headers[0]["X-Tunnel-Reclaim-Token"]  # made by the agent before its first connect
    assert len(own_token) == 43 and all(h["X-Tunnel-Reclaim-Token"] == own_token for h in dial.headers)
    assert dial.headers[-1]["X-Tunnel-Id"] == "tun1"
    assert second is dial.sessions[1] and not run.of(TunnelEstablished)[1].renewed


async def test_refused_reclaim_asks_for_a_new_id_at_once_and_saves_it(runs, tmp_path):
    store = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000")
    store.save("old1", "stale-token")
    dial = FakeDial(409)
    dial.next_id = "fresh"
    run = runs(dial, store)
    run.saved.restore(new_url=False)
    session = await anext(run.sessions)
    assert (dial.headers[0]["X-Tunnel-Id"], dial.headers[0]["X-Tunnel-Reclaim-Token"]) == ("old1", "stale-token")
    assert "X-Tunnel-Id" not in dial.headers[1]
    assert dial.headers[1]["X-Tunnel-Reclaim-Token"] not in ("stale-token", "")  # a new id, a new token
    assert run.slept == [] and not run.of(Reconnecting)  # no backoff before asking for a new id
    assert any("saved tunnel old1 could not be reclaimed (HTTP 409)" in n.message for n in run.of(Notice))
    assert session.info.tunnel_id == "fresh"
    assert (store.load().tunnel_id, store.load().reclaim_token) == ("fresh", dial.headers[1]["X-Tunnel-Reclaim-Token"])


async def test_an_older_servers_reclaim_token_is_adopted(runs):
    """A server from before agent-made tokens sends its own and honours only that one."""
    dial = FakeDial()
    dial.legacy_token = "server-made"
    run = runs(dial)
    first = await anext(run.sessions)
    first.end("connection lost")
    await anext(run.sessions)
    assert dial.headers[1]["X-Tunnel-Reclaim-Token"] == "server-made" and run.saved.reclaim_token == "server-made"


async def test_a_refusal_with_nothing_to_reclaim_backs_off(runs):
    dial = FakeDial(409)
    run = runs(dial)
    await anext(run.sessions)
    assert run.slept == [1] and not run.of(Notice)


async def test_rejected_token_before_any_success_is_fatal(runs):
    dial = FakeDial(401)
    run = runs(dial)
    with pytest.raises(Fatal, match="rejected the token.*401"):
        await anext(run.sessions)
    assert len(dial.headers) == 1 and run.slept == []


async def test_rejected_token_after_a_success_is_retried(runs):
    dial = FakeDial(None, 401)
    run = runs(dial)
    first = await anext(run.sessions)
    first.end("closed by server (code 1001)")
    await anext(run.sessions)
    assert run.slept == [1, 2] and len(dial.headers) == 3


async def test_renewal_yields_the_new_session_and_retires_the_old_one(runs, monkeypatch):
    monkeypatch.setattr("ttf.lifecycle.RETIRE_GRACE_S", 1.0)  # the real 6 s only makes the test slow
    dial = FakeDial()
    run = runs(dial, renew_after=0.05)
    old = await anext(run.sessions)
    new = await anext(run.sessions)
    assert new is dial.sessions[1] and old.calls == []  # the old socket still answers what it has
    assert [e.renewed for e in run.of(TunnelEstablished)] == [False, True]
    assert dial.headers[1]["X-Tunnel-Id"] == "tun1"
    await wait_until(lambda: "close" in old.calls, timeout=3.0, what="the old session closed")
    assert old.calls[0][:2] == ("drain", 900.0 + 5.0)  # request_timeout (a cap of 15 min: the edge ends requests sooner) + 5 s
    assert not run.of(Disconnected) and not run.of(Reconnecting)


async def test_failed_renewal_keeps_the_current_session(runs):
    dial = FakeDial(None, 503)
    run = runs(dial, renew_after=0.05)
    current = await anext(run.sessions)
    waiting = asyncio.create_task(anext(run.sessions))
    await wait_until(lambda: run.of(Notice), what="the renewal notice")
    assert "renewal failed (endpoint refused the WebSocket (HTTP 503)); keeping the current one" in \
        run.of(Notice)[0].message
    assert not waiting.done() and current.calls == [] and len(dial.headers) == 2
    run.stop.request()
    with pytest.raises(StopAsyncIteration):
        await waiting


async def test_stop_drains_and_closes_every_session(runs):
    dial = FakeDial()
    run = runs(dial)
    session = await anext(run.sessions)
    session.busy = 2
    run.stop.request()
    with pytest.raises(StopAsyncIteration):
        await anext(run.sessions)
    assert session.calls == ["stop_accepting", ("drain", 3.0, run.stop.forced), "close"]
    assert "finishing 2 in-flight request(s), up to 3 s" in run.of(Notice)[-1].message
    assert run.events[-1] == Disconnected("stopped")


async def test_stop_during_the_backoff_wait_ends_at_once(runs):
    forever = asyncio.Event()

    async def long_sleep(delay: float) -> None:
        await forever.wait()

    dial = FakeDial(*[502] * 5)
    run = runs(dial, sleep=long_sleep)
    waiting = asyncio.create_task(anext(run.sessions))
    await wait_until(lambda: run.of(Reconnecting), what="the first retry")
    run.stop.request()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2)
    assert len(dial.headers) == 1 and not run.of(Disconnected)  # never connected: nothing to report


async def test_a_caller_that_leaves_early_still_closes_the_sessions(runs):
    dial = FakeDial()
    run = runs(dial)
    async with contextlib.aclosing(run.sessions):
        session = await anext(run.sessions)  # and the caller leaves, without a stop
    assert session.calls[-1] == "close"
