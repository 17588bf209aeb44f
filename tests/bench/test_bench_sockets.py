"""Unit tests of the caller WebSocket cost arithmetic (scripts/bench/cost.py) and the bench's echo
and address helpers (scripts/bench/sockets.py)."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

from scripts.bench import cost, sockets

# one counted round trip as the emulator shows it: the caller frame in, posted to the agent, the
# agent's ws_message, the post to the caller and the ack (5 messages), caller_message + response
PER_ROUND_TRIP = {
    "ws_messages": {"agent_to_api": 2.0, "api_to_agent": 3.0},
    "post_to_connection": 3.0,
    "lambda_invocations": {"caller_message": 1.0, "response": 1.0},
    "lambda_billed_ms": {"caller_message": 10.0, "response": 20.0},
    "dynamodb_calls": {"UpdateItem": 3.0, "GetItem": 1.0, "DescribeTable": 2.0},
}


def total(lines):
    return sum(line["usd"] for line in lines)


def test_sqs_requests_one_send_per_64_kb_and_receive_plus_delete_per_batch():
    assert cost.sqs_requests(1, 1) == 3  # a frame sent alone: send, receive, delete
    assert cost.sqs_requests(10, 1) == 12  # a batch of 10: 10 sends, 1 receive, 1 delete
    # 48 KB of text is 64 KB of base64: one request; one byte more is two
    assert cost.sqs_requests(1, 0, frame_bytes=48 * 1024) == 1
    assert cost.sqs_requests(1, 0, frame_bytes=48 * 1024 + 3) == 2
    with pytest.raises(ValueError):
        cost.sqs_requests(-1, 1)


def test_a_caller_message_sent_alone_costs_the_designs_lines():
    lines = {line["what"].split(" (")[0]: line for line in cost.caller_to_app_lines(10.0, 256)}
    assert lines["SQS FIFO requests"]["quantity"] == 3
    assert lines["SQS FIFO requests"]["usd"] == pytest.approx(3 * 0.50 / 1e6)
    gb_s = 10 / 1000 * 256 / 1024
    expected = 1.00 + 1.50 + 0.20 + gb_s * 0.0000133334 * 1e6 + 0.625 + 1.00  # shared/README.md: ~$4.4/M
    assert total(cost.caller_to_app_lines(10.0, 256)) * 1e6 == pytest.approx(expected)
    assert 4.3 < expected < 4.4


def test_a_burst_shares_the_batch_and_costs_less():
    alone = total(cost.caller_to_app_lines(10.0, 256)) * 1e6
    burst = total(cost.caller_to_app_lines(10.0, 256, batch=10)) * 1e6
    # 1 message in + 1.2 SQS requests + a tenth of invocation, duration, WRU, post
    gb_s = 10 / 1000 * 256 / 1024
    assert burst == pytest.approx(1.00 + 1.2 * 0.50 + (0.20 + gb_s * 0.0000133334 * 1e6 + 0.625 + 1.00) / 10)
    assert burst < alone / 2
    with pytest.raises(ValueError):
        cost.caller_to_app_lines(10.0, batch=0)


def test_an_app_message_pays_agent_message_invocation_two_wru_post_and_ack():
    gb_s = 20 / 1000 * 256 / 1024
    expected = 1.00 + 0.20 + gb_s * 0.0000133334 * 1e6 + 2 * 0.625 + 1.00 + 1.00
    assert total(cost.app_to_caller_lines(20.0, 256)) * 1e6 == pytest.approx(expected)
    # a message over 32 KB is two units on the post to the caller, nothing else changes
    big = total(cost.app_to_caller_lines(20.0, 256, message_bytes=32 * 1024 + 1)) * 1e6
    assert big == pytest.approx(expected + 1.00)


def test_a_counted_round_trip_is_priced_from_the_counts():
    memory = {"caller_message": 256, "response": 512}
    lines = cost.round_trip_lines(PER_ROUND_TRIP, memory)
    by = {line["what"].split(" (")[0]: line for line in lines}
    assert by["WebSocket messages, both APIs"]["quantity"] == 5
    assert by["SQS FIFO requests"]["quantity"] == 3  # 1 frame, 1 caller_message invocation
    assert by["Lambda invocations"]["quantity"] == 2
    assert by["response duration"]["quantity"] == pytest.approx(20 / 1000 * 512 / 1024)
    assert by["DynamoDB writes"]["quantity"] == 3
    assert by["DynamoDB reads"]["quantity"] == 1  # DescribeTable is free
    expected = (5 * 1.00 + 3 * 0.50 + 2 * 0.20 + (0.0025 + 0.01) * 0.0000133334 * 1e6 + 3 * 0.625 + 0.125) / 1e6
    assert total(lines) == pytest.approx(expected)


def test_an_unpriced_dynamodb_operation_is_refused():
    with pytest.raises(ValueError, match="ExecuteStatement"):
        cost.round_trip_lines({"dynamodb_calls": {"ExecuteStatement": 1.0}}, {})


def test_a_connection_hour_is_60_connection_minutes():
    assert cost.connection_hour_usd() == pytest.approx(60 * 0.25 / 1e6)


def test_idle_hours_count_heartbeats_against_the_default_budget():
    rt = 10.0 / 1e6  # $10 per million round trips
    socket_io = cost.idle_hour(rt, 25)
    assert socket_io["heartbeats_per_hour"] == 144
    assert socket_io["usd"] == pytest.approx(60 * 0.25 / 1e6 + 144 * rt)
    assert socket_io["agent_messages_per_s"] == pytest.approx(0.04)
    assert socket_io["share_of_default_budget"] == pytest.approx(0.0004)
    assert socket_io["sockets_to_fill_budget"] == 2500
    assert cost.idle_hour(rt, 30)["sockets_to_fill_budget"] == 3000
    assert cost.idle_hour(rt, 10, budget_per_s=50)["sockets_to_fill_budget"] == 500
    with pytest.raises(ValueError):
        cost.idle_hour(rt, 0)


def test_socket_rates_use_per_invocation_billed_ms_and_every_heartbeat():
    counts = {**PER_ROUND_TRIP, "lambda_invocations": {"caller_message": 2.0, "response": 1.0},
              "lambda_billed_ms": {"caller_message": 30.0, "response": 20.0}}
    rates = cost.socket_rates(counts, {"caller_message": 256, "response": 256})
    assert rates["caller_to_app"]["usd_per_million"] == pytest.approx(total(cost.caller_to_app_lines(15.0, 256)) * 1e6)
    assert rates["app_to_caller"]["usd_per_million"] == pytest.approx(total(cost.app_to_caller_lines(20.0, 256)) * 1e6)
    assert set(rates["idle_hour"]) == {"socket.io", "graphql-ws", "phoenix"}
    rt = rates["usd_per_million_round_trips"] / 1e6
    for name, period in (("socket.io", 25), ("graphql-ws", 10), ("phoenix", 30)):
        assert rates["idle_hour"][name]["usd"] == pytest.approx(cost.connection_hour_usd() + 3600 / period * rt)
    assert "sqs" in rates["price_sources"]


def test_caller_address_names_the_tunnel_in_the_host():
    state = {"caller_ws_url": "ws://127.0.0.1:4044/local",
             "caller_ws_url_template": "ws://{tunnel_id}.localhost:4044/local"}
    assert sockets.caller_address(state, "abc123") == ("ws://127.0.0.1:4044/local", "abc123.localhost:4044")
    with pytest.raises(ValueError, match="caller_ws_url"):
        sockets.caller_address({}, "abc123")


async def test_round_trips_echo_time_and_count_between_snapshots():
    """Against the origin's own echo route (no stack): every message checked, stats deltas per round trip."""
    from scripts.bench.origin import make_app

    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    snapshots = iter([{"ws_messages": {"agent_to_api": 4}}, {"ws_messages": {"agent_to_api": 14}}])
    try:
        out = await sockets.round_trips(f"ws://127.0.0.1:{port}/", f"127.0.0.1:{port}", 5, lambda: next(snapshots),
                                       warm_within_s=10)
        async with aiohttp.ClientSession() as s:  # a plain GET / is not the echo
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 404
    finally:
        await runner.cleanup()
    assert out["round_trips"] == 5 and out["latency_ms"]["n"] == 5
    assert out["per_round_trip"] == {"ws_messages": {"agent_to_api": 2.0}}


async def test_round_trips_fail_clearly_when_nothing_echoes():
    async def silent(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/", silent)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(RuntimeError, match="no caller message echoed within 1 s"):
            await asyncio.wait_for(sockets.round_trips(f"ws://127.0.0.1:{port}/", f"127.0.0.1:{port}", 1, dict,
                                                       warm_within_s=1), 60)
    finally:
        await runner.cleanup()


def test_render_states_latency_cost_and_every_heartbeat_or_why_not():
    run = {"round_trips": 3, "latency_ms": {"n": 3, "p50": 150.0, "p90": 190.0, "max": 200.0},
           "per_round_trip": PER_ROUND_TRIP, "cost": cost.socket_rates(PER_ROUND_TRIP, {})}
    text = sockets.render("aws", run)
    assert "p50 150.0 ms, p90 190.0 ms" in text
    for name, sockets_to_fill in (("socket.io", "2,500"), ("graphql-ws", "1,000"), ("phoenix", "3,000")):
        assert f"idle socket-hour, {name}" in text and f"{sockets_to_fill} such sockets" in text
    assert "DescribeTable" in text and '"DeleteItem"' not in text  # zero counts left out
    assert sockets.render("local", {"error": "RuntimeError: no echo"}) == \
        "caller WebSockets (local): not measured: RuntimeError: no echo"


def test_batch_calls_caught_in_the_window_are_priced_not_refused():
    counts = {**PER_ROUND_TRIP, "dynamodb_calls": {"UpdateItem": 3.0, "BatchWriteItem": 0.5, "BatchGetItem": 0.25}}
    by = {line["what"].split(" (")[0]: line for line in cost.round_trip_lines(counts, {})}
    assert by["DynamoDB writes"]["quantity"] == 3.5
    assert by["DynamoDB reads"]["quantity"] == 0.25
