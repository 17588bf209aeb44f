"""A tunnel's open requests on the function URL edge, counted across execution environments
(httptunnel.stream_holds, issue 29), against moto: each "environment" here is a cold start
(nothing remembered in the process); the count lives in DynamoDB. forward_stream takes the lease
lazily: once its wait passes waiting.HOLD_AFTER_S, or at a streamed answer's head."""

from __future__ import annotations

import time
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError

from httptunnel import routing, store, stream_holds, waiting
from httptunnel.replies import ForwardResult

from .helpers import PENDING_TABLE, cold_start, connect_agent, load_handler
from .test_forward_basic import FakeAgent, ok
from .test_forward_stream import StreamContext, url_event
from .test_relay import CAPS, StreamingAgent, pieces, whole


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def leases(tunnel_id: str) -> dict[str, int]:
    item = boto3.client("dynamodb").get_item(TableName=PENDING_TABLE, Key={"requestId": {"S": "holds#" + tunnel_id}},
                                             ConsistentRead=True).get("Item")
    return {} if item is None else {k: int(v["N"]) for k, v in item["leases"]["M"].items()}


@pytest.fixture
def limit(aws, monkeypatch):
    monkeypatch.setenv("TUNNEL_MAX_OPEN_STREAMS", "2")
    monkeypatch.setenv("MAX_STREAM_SECONDS", "60")


SUBJECTS = {"t1": "alice", "t2": "alice", "other": "bob", "anon": None}  # a tunnel's token's sub (None: anonymous)


@pytest.fixture
def online(limit, monkeypatch):
    """Tunnels t1, t2 (both of alice's token), other (bob's) and anon (no token) exist (a lease is
    taken only for a tunnel that exists)."""
    def connection_for(tid: str) -> store.Connection | None:
        if tid not in SUBJECTS:
            return None
        return store.Connection(connection_id="conn-" + tid, tunnel_id=tid, connected_at=0, subject=SUBJECTS[tid])
    monkeypatch.setattr(stream_holds.tunnels, "connection_for", connection_for)


@pytest.fixture
def per_token(online, monkeypatch):
    """Each tunnel may hold 2, each token 3 (all its tunnels together)."""
    monkeypatch.setenv("TOKEN_MAX_OPEN_STREAMS", "3")


ALICE = stream_holds.subject_item("alice")


def refused(held, message: str = stream_holds.REFUSED) -> bool:
    if not isinstance(held, ForwardResult):
        return False
    assert held.status == 429 and held.error_code == "tunnel_rate_limited"
    assert held.result["body"] == message + "\n"
    assert held.result["headers"]["retry-after"] == "1" and held.result["headers"]["x-tunnel-error"] == "tunnel_rate_limited"
    return True


def test_off_by_default_and_costs_no_call(aws, monkeypatch):
    monkeypatch.delenv("TUNNEL_MAX_OPEN_STREAMS", raising=False)
    before = store.calls()
    held = stream_holds.take("t1")
    assert held == stream_holds.Hold("t1") and store.calls() == before
    stream_holds.give_back(held)
    assert store.calls() == before


def test_the_count_holds_across_environments_and_a_given_back_lease_frees_a_place(online):
    first = stream_holds.take("t1")
    cold_start()  # another execution environment: it remembers nothing of the first
    second = stream_holds.take("t1")
    cold_start()
    assert not refused(first) and not refused(second) and len(leases("t1")) == 2
    assert refused(stream_holds.take("t1"))
    assert not refused(stream_holds.take("other"))  # another tunnel has its own count
    cold_start()
    stream_holds.give_back(first)
    third = stream_holds.take("t1")
    assert not refused(third) and set(leases("t1")) == {second.lease_id, third.lease_id}


def test_a_lease_lasts_past_the_longest_invocation(online):
    clock = Clock()
    held = stream_holds.take("t1", clock)
    assert leases("t1")[held.lease_id] == int(clock.now) + 60 + 15 + 30


def test_leases_of_environments_that_died_expire_and_are_removed(online):
    clock = Clock()
    dead = [stream_holds.take("t1", clock), stream_holds.take("t1", clock)]  # never given back
    cold_start()
    assert refused(stream_holds.take("t1", clock))
    cold_start()
    clock.now += stream_holds.lease_seconds() - 1
    assert refused(stream_holds.take("t1", clock))  # not yet expired
    cold_start()
    clock.now += 2
    fresh = stream_holds.take("t1", clock)
    assert not refused(fresh)
    assert set(leases("t1")) == {fresh.lease_id} and all(d.lease_id not in leases("t1") for d in dead)


def test_a_full_tunnel_is_refused_without_a_write_for_a_second(online, monkeypatch):
    clock = Clock()
    stream_holds.take("t1", clock), stream_holds.take("t1", clock)
    assert refused(stream_holds.take("t1", clock))
    before = store.calls()
    assert all(refused(stream_holds.take("t1", clock)) for _ in range(50))
    assert store.calls() == before


def test_an_unknown_tunnel_costs_no_write_and_leaves_no_item(online):
    before = store.calls()
    assert stream_holds.take("nosuchtunnel") == stream_holds.Hold("nosuchtunnel")
    assert store.calls() == before and leases("nosuchtunnel") == {}


def test_dynamodb_trouble_fails_open_and_a_failed_give_back_never_raises(online, monkeypatch):
    def throttled(op, **kwargs):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, op)

    monkeypatch.setattr(store, "_call", throttled)
    held = stream_holds.take("t1")
    assert held == stream_holds.Hold("t1")
    stream_holds.give_back(stream_holds.Hold("t1", "abc", ("t1", ALICE)))


def test_the_tunnels_of_one_token_share_its_limit_across_environments(per_token):
    """alice's two tunnels hold 3 at most together (each could hold 2); bob's tunnel has its own count."""
    first = stream_holds.take("t1")
    cold_start()
    second = stream_holds.take("t1")
    cold_start()
    third = stream_holds.take("t2")
    cold_start()
    assert not any(refused(h) for h in (first, second, third))
    assert set(leases(ALICE)) == {first.lease_id, second.lease_id, third.lease_id}
    assert first.items == ("t1", ALICE)  # the tunnel's lease first, then the token's
    assert refused(stream_holds.take("t2"), stream_holds.REFUSED_TOKEN)  # t2 holds 1 of its 2, alice 3 of 3
    cold_start()
    assert not refused(stream_holds.take("other"))  # another token: not affected
    assert len(leases(stream_holds.subject_item("bob"))) == 1


def test_a_refused_token_lease_gives_the_tunnels_lease_back(per_token, monkeypatch):
    held = [stream_holds.take("t1"), stream_holds.take("t1"), stream_holds.take("t2")]
    cold_start()
    ops = record_ops(monkeypatch)
    assert refused(stream_holds.take("t2"), stream_holds.REFUSED_TOKEN)
    assert set(leases("t2")) == {held[2].lease_id}  # the lease it took on t2 first is gone again
    assert ("update_item", "holds#t2") in ops[-1:]  # given back last, after the token refused
    assert set(leases(ALICE)) == {h.lease_id for h in held}


def test_give_back_frees_the_tunnels_and_the_tokens_lease(per_token):
    held = [stream_holds.take("t1"), stream_holds.take("t2"), stream_holds.take("t2")]
    cold_start()
    assert refused(stream_holds.take("t1"), stream_holds.REFUSED_TOKEN)
    cold_start()
    stream_holds.give_back(held[1])
    assert set(leases("t2")) == {held[2].lease_id}
    assert set(leases(ALICE)) == {held[0].lease_id, held[2].lease_id}
    again = stream_holds.take("t1")
    assert not refused(again) and set(leases(ALICE)) == {held[0].lease_id, held[2].lease_id, again.lease_id}


def test_a_full_token_is_refused_without_a_write_for_a_second_on_any_of_its_tunnels(per_token):
    clock = Clock()
    stream_holds.take("t1", clock), stream_holds.take("t1", clock), stream_holds.take("t2", clock)
    assert refused(stream_holds.take("t2", clock), stream_holds.REFUSED_TOKEN)
    before = store.calls()
    assert stream_holds.due_early("t1") and stream_holds.due_early("t2") and not stream_holds.due_early("other")
    assert all(refused(stream_holds.take("t1", clock), stream_holds.REFUSED_TOKEN) for _ in range(20))
    assert store.calls() == before
    assert not refused(stream_holds.take("other", clock))  # bob's tunnel still writes and is admitted


def test_an_anonymous_tunnel_is_counted_per_tunnel_only(per_token, monkeypatch):
    ops = record_ops(monkeypatch)
    held = [stream_holds.take("anon"), stream_holds.take("anon")]
    assert not any(refused(h) for h in held) and all(h.items == ("anon",) for h in held)
    assert refused(stream_holds.take("anon"))  # the tunnel's own limit (2), not a token's
    assert not [key for _, key in ops if key.startswith("holds#sub#")]
    cold_start()
    stream_holds.give_back(held[0])
    assert set(leases("anon")) == {held[1].lease_id}


def test_expired_token_leases_are_removed(per_token):
    clock = Clock()
    dead = [stream_holds.take("t1", clock), stream_holds.take("t1", clock), stream_holds.take("t2", clock)]
    cold_start()
    assert refused(stream_holds.take("t2", clock), stream_holds.REFUSED_TOKEN)
    cold_start()
    clock.now += stream_holds.lease_seconds() + 1
    fresh = stream_holds.take("t2", clock)  # t2 has room (1 of 2); alice's item is full of expired leases
    assert not refused(fresh)
    assert set(leases(ALICE)) == {fresh.lease_id} and all(d.lease_id not in leases(ALICE) for d in dead)


def test_the_token_limit_off_costs_no_extra_call(online, monkeypatch):
    monkeypatch.setenv("TOKEN_MAX_OPEN_STREAMS", "0")
    stream_holds.give_back(stream_holds.take("t1"))  # the item exists: its first take also creates it
    before = store.calls()
    held = stream_holds.take("t1")
    assert held.items == ("t1",) and store.calls() - before == 1  # one UpdateItem: the tunnel's lease
    stream_holds.give_back(held)
    assert store.calls() - before == 2 and leases(ALICE) == {}
    monkeypatch.setenv("TUNNEL_MAX_OPEN_STREAMS", "0")
    before = store.calls()
    assert stream_holds.take("t1") == stream_holds.Hold("t1") and store.calls() == before


def test_the_token_limit_alone_counts_per_token(online, monkeypatch):
    monkeypatch.setenv("TUNNEL_MAX_OPEN_STREAMS", "0")
    monkeypatch.setenv("TOKEN_MAX_OPEN_STREAMS", "1")
    held = stream_holds.take("t1")
    assert held.items == (ALICE,) and leases("t1") == {}
    assert refused(stream_holds.take("t2"), stream_holds.REFUSED_TOKEN)
    assert stream_holds.take("anon") == stream_holds.Hold("anon")  # anonymous, the tunnel limit off: not counted


def test_a_token_lease_failing_keeps_the_tunnels_lease_to_give_back(per_token, monkeypatch):
    call = store._call

    def throttled_for_tokens(op: str, **kwargs: Any) -> Any:
        if kwargs.get("Key", {}).get("requestId", {}).get("S", "").startswith("holds#sub#"):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, op)
        return call(op, **kwargs)
    monkeypatch.setattr(store, "_call", throttled_for_tokens)
    held = stream_holds.take("t1")  # fails open on the token's item
    assert isinstance(held, stream_holds.Hold) and held.items == ("t1",) and set(leases("t1")) == {held.lease_id}
    stream_holds.give_back(held)
    assert leases("t1") == {}


@pytest.mark.parametrize("subject", ["alice", "x" * 10_000, "t1", "sub#t1", "\u00e9\U0001f600\x00#:", "\ud800"])
def test_any_sub_is_a_short_safe_key_that_no_tunnel_id_can_take(subject, aws):
    item = stream_holds.subject_item(subject)
    digest = item.removeprefix(stream_holds.SUBJECT_PREFIX)
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert not routing.TUNNEL_ID_RE.fullmatch(item) and not routing.NAME_RE.fullmatch(item)  # '#': never a tunnel's
    assert stream_holds._take_one(item, "lease", 1, 0, 10**10)  # DynamoDB takes it as a key (moto)
    assert set(leases(item)) == {"lease"}


def refused_head(ctx: StreamContext) -> bool:
    """The caller's stream got the tunnel's 429 with Retry-After: 1."""
    assert ctx.head is not None
    status, headers, _ = ctx.head
    return status == 429 and headers["x-tunnel-error"] == "tunnel_rate_limited" and headers["retry-after"] == "1"


class Spy:
    """Records forward_stream's lease calls: each take's result, and whether the caller's stream
    was closed when the lease was given back."""

    def __init__(self, monkeypatch, ctx_of: Callable[[], Any]) -> None:
        self.taken: list[bool] = []
        self.given_back_after_close: list[bool] = []
        take, give_back = stream_holds.take, stream_holds.give_back

        def spy_take(tunnel_id: str, *args: Any) -> Any:
            got = take(tunnel_id, *args)
            self.taken.append(not isinstance(got, ForwardResult))
            return got

        def spy_give_back(hold: stream_holds.Hold) -> None:
            stream = ctx_of().stream
            self.given_back_after_close.append(stream is not None and stream.closed)
            give_back(hold)
        monkeypatch.setattr(stream_holds, "take", spy_take)
        monkeypatch.setattr(stream_holds, "give_back", spy_give_back)


def test_a_quick_answer_takes_no_lease_even_when_the_tunnel_is_full(limit, mgmt, monkeypatch):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok(b"hello"))
    held = [stream_holds.take(tid), stream_holds.take(tid)]  # two open elsewhere: full
    ctx = StreamContext()
    spy = Spy(monkeypatch, lambda: ctx)
    load_handler("forward_stream")(url_event(tid, "/a"), ctx)
    assert ctx.head is not None and ctx.head[0] == 200 and ctx.body == b"hello"
    assert spy.taken == [] and spy.given_back_after_close == []  # no write for the lease
    assert set(leases(tid)) == {h.lease_id for h in held}


def test_a_slow_answer_takes_a_lease_once_its_wait_is_long_and_gives_it_back_after_writing(limit, mgmt, monkeypatch):
    tid = connect_agent("conn-A")["tunnel_id"]
    slow = ok(b"slow")
    seen: dict[str, dict[str, int]] = {}

    def reply(msg: dict[str, Any]) -> Any:
        deadline = time.monotonic() + 10
        while not leases(tid) and time.monotonic() < deadline:  # answer once forward_stream holds its lease
            time.sleep(0.05)
        seen["leases"] = leases(tid)
        return slow(msg)
    agent = FakeAgent(mgmt, "conn-A", reply, threaded=True)
    ctx = StreamContext()
    spy = Spy(monkeypatch, lambda: ctx)
    started = time.monotonic()
    load_handler("forward_stream")(url_event(tid, "/a"), ctx)
    agent.join()
    assert time.monotonic() - started >= waiting.HOLD_AFTER_S
    assert ctx.head is not None and ctx.head[0] == 200 and ctx.body == b"slow"
    assert len(seen["leases"]) == 1 and spy.taken == [True]
    assert spy.given_back_after_close == [True] and leases(tid) == {}  # after the answer was written


def test_a_slow_answer_past_the_limit_is_refused_once_its_wait_is_long_and_a_late_answer_is_refused(
        limit, mgmt, monkeypatch):
    tid = connect_agent("conn-A")["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", lambda msg: None)  # never answers in time
    held = [stream_holds.take(tid), stream_holds.take(tid)]  # two open elsewhere: full
    cold_start()
    ctx = StreamContext()
    started = time.monotonic()
    load_handler("forward_stream")(url_event(tid, "/b"), ctx)
    assert waiting.HOLD_AFTER_S <= time.monotonic() - started < 10
    assert refused_head(ctx)
    assert len(agent.requests) == 1  # posted: the lease is asked for only once the wait is long
    rid = agent.requests[0]["request_id"]
    agent.reply = ok(b"late")
    agent._answer(agent.requests[0])  # the late answer finds the slot given up
    answer = store.get_answer(rid, "conn-A")
    assert answer is not None and answer.error_code == "tunnel_rate_limited"
    assert set(leases(tid)) == {h.lease_id for h in held}


def test_a_stream_takes_a_lease_at_its_head_and_gives_it_back_after_relaying(limit, mgmt, monkeypatch):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    StreamingAgent(mgmt, "conn-A", whole(pieces(3)))
    ctx = StreamContext(remaining_ms=900_000)
    spy = Spy(monkeypatch, lambda: ctx)
    load_handler("forward_stream")(url_event(tid, "/events"), ctx)
    assert ctx.head is not None and ctx.head[0] == 200 and ctx.body == b"".join(pieces(3))
    assert spy.taken == [True] and spy.given_back_after_close == [True] and leases(tid) == {}


def test_a_stream_past_the_limit_is_cancelled_at_the_agent_and_refused(limit, mgmt, monkeypatch):
    """Refused at its head; the environment then knows the tunnel is full, and refuses its next
    request before the post (the agent never sees it), without a write for the lease."""
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    agent = StreamingAgent(mgmt, "conn-A", whole(pieces(3)))
    held = [stream_holds.take(tid), stream_holds.take(tid)]  # two open elsewhere: full
    cold_start()
    ctx = StreamContext(remaining_ms=900_000)
    load_handler("forward_stream")(url_event(tid, "/events"), ctx)
    assert refused_head(ctx)
    assert [c["reason"] for c in agent.told("stream_cancel")] == ["gave_up"] and len(agent.requests) == 1
    ops = record_ops(monkeypatch)
    ctx = StreamContext(remaining_ms=900_000)
    load_handler("forward_stream")(url_event(tid, "/events"), ctx)
    assert refused_head(ctx)
    assert len(agent.requests) == 1 and lease_writes(ops, tid) == []  # never posted, nothing written
    assert set(leases(tid)) == {h.lease_id for h in held}


def test_a_slow_answer_on_a_full_tokens_other_tunnel_is_refused_naming_the_token(limit, mgmt, monkeypatch):
    """Two agents connect with tokens of one sub (REQUIRE_AUTH): the connection row's subject is
    what forward_stream's lease counts. The token holds 2 of 2 elsewhere on its first tunnel; its
    second tunnel's slow request is refused at the lease, with nothing left on that tunnel's item."""
    import jwt

    secret = "s3cret-for-tests-only-" + "0123456789abcdef" * 4
    monkeypatch.setenv("REQUIRE_AUTH", "true")
    monkeypatch.setenv("JWT_SECRET", secret)
    monkeypatch.setenv("TOKEN_MAX_OPEN_STREAMS", "2")
    token = jwt.encode({"sub": "carol", "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    first, second = (connect_agent(c, headers={"Authorization": f"Bearer {token}"})["tunnel_id"]
                     for c in ("conn-A", "conn-B"))
    held = [stream_holds.take(first), stream_holds.take(first)]  # two open elsewhere: carol's token is full
    assert all(h.items == (first, stream_holds.subject_item("carol")) for h in held)
    cold_start()
    agent = FakeAgent(mgmt, "conn-B", lambda msg: None)  # never answers in time
    ctx = StreamContext()
    load_handler("forward_stream")(url_event(second, "/b"), ctx)
    assert refused_head(ctx) and ctx.body == stream_holds.REFUSED_TOKEN.encode() + b"\n"
    assert len(agent.requests) == 1 and leases(second) == {}  # posted; its tunnel's lease given back
    assert set(leases(stream_holds.subject_item("carol"))) == {h.lease_id for h in held}


def record_ops(monkeypatch) -> list[tuple[str, str]]:
    """Every DynamoDB call the layer makes from now on: (operation, key of the item)."""
    ops: list[tuple[str, str]] = []
    call = store._call

    def recording(op: str, **kwargs: Any) -> Any:
        key = kwargs.get("Key") or kwargs.get("Item") or {}
        ops.append((op, str(key.get("requestId", {}).get("S", ""))))
        return call(op, **kwargs)
    monkeypatch.setattr(store, "_call", recording)
    return ops


def lease_writes(ops: list[tuple[str, str]], tunnel_id: str) -> list[str]:
    return [op for op, key in ops if key == "holds#" + tunnel_id and op in ("update_item", "put_item")]


def test_after_a_slow_answer_its_tunnels_quick_answers_count_before_the_post(limit, mgmt, monkeypatch):
    """A flood that slows a tunnel's answers (an agent paced by its message budget) is counted
    from its first slow request in each environment: the next request takes its lease before the
    post, even one whose answer then comes at once."""
    tid = connect_agent("conn-A")["tunnel_id"]
    leases_seen: list[dict[str, int]] = []
    slow = [True]

    def reply(msg: dict[str, Any]) -> Any:
        deadline = time.monotonic() + 10
        while slow[0] and not leases(tid) and time.monotonic() < deadline:  # answer once the lease is held
            time.sleep(0.02)
        leases_seen.append(leases(tid))
        return ok(b"answer")(msg)
    agent = FakeAgent(mgmt, "conn-A", reply, threaded=True)
    ctx = StreamContext()
    spy = Spy(monkeypatch, lambda: ctx)
    started = time.monotonic()
    load_handler("forward_stream")(url_event(tid, "/slow"), ctx)
    assert time.monotonic() - started >= waiting.HOLD_AFTER_S
    assert ctx.body == b"answer" and spy.taken == [True] and len(leases_seen[0]) == 1
    slow[0] = False
    ctx = StreamContext()
    load_handler("forward_stream")(url_event(tid, "/quick"), ctx)
    agent.join()
    assert ctx.head is not None and ctx.head[0] == 200 and ctx.body == b"answer"
    assert len(leases_seen) == 2 and len(leases_seen[1]) == 1  # held while the agent answered
    assert spy.taken == [True, True] and spy.given_back_after_close == [True, True] and leases(tid) == {}


def test_after_a_stream_its_tunnels_next_requests_count_before_the_post_for_a_while(limit, mgmt, monkeypatch):
    tid = connect_agent("conn-A", headers=CAPS)["tunnel_id"]
    agent = StreamingAgent(mgmt, "conn-A", whole(pieces(2)))
    posted_at_take: list[int] = []  # how many requests the agent had seen when each lease was taken
    take = stream_holds.take

    def counting_take(tunnel_id: str, *args: Any) -> Any:
        posted_at_take.append(len(agent.requests))
        return take(tunnel_id, *args)
    monkeypatch.setattr(stream_holds, "take", counting_take)

    def request() -> None:
        ctx = StreamContext(remaining_ms=900_000)
        load_handler("forward_stream")(url_event(tid, "/events"), ctx)
        assert ctx.head is not None and ctx.head[0] == 200 and ctx.body == b"".join(pieces(2))
    request()
    assert posted_at_take == [1]  # the first: at the stream's head, after the post
    request()
    assert posted_at_take == [1, 1]  # the next: before its post
    monkeypatch.setattr(stream_holds.RECENT, "_clock", lambda: time.monotonic() + stream_holds.RECENT_MEMORY_S)
    request()
    assert posted_at_take == [1, 1, 3]  # the memory gone: at the head again
    assert leases(tid) == {}
