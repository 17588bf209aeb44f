"""The edge comparison of issue 23: per-edge request charges, streamed rates, modelled hops, limits."""

import math

import pytest

from emulator.profiles import AWS
from scripts.bench import cost, edges

# what the stack counted for one buffered 1 KB GET (the shape bench writes under per_request)
HTTP_RUN = {
    "http_requests": 1.0, "post_to_connection": 1.0, "ws_messages": {"api_to_agent": 1.0, "agent_to_api": 1.0},
    "lambda_invocations": {"forward": 1.0, "response": 1.0}, "lambda_billed_ms": {"forward": 40.0, "response": 12.0},
    "dynamodb_calls": {"PutItem": 1.0, "GetItem": 1.0},
}
URL_RUN = {**HTTP_RUN, "http_requests": 0.0, "lambda_invocations": {"forward_stream": 1.0, "response": 1.0},
           "lambda_billed_ms": {"forward_stream": 45.0, "response": 12.0}}
MEMORY = {"forward": 512, "forward_stream": 512, "response": 256}


def total(per_request, edge):
    return cost.build(per_request, cost.Assumptions(memory_mb=MEMORY), edge=edge).total_per_million


def test_edges_differ_only_in_what_the_front_door_charges():
    http = total(HTTP_RUN, "http_api")
    assert total(HTTP_RUN, "rest") - http == pytest.approx(cost.REST_API_PER_M - cost.HTTP_API_PER_M)  # +$2.50/M
    same_counts = total(HTTP_RUN, "function_url")
    assert http - same_counts == pytest.approx(cost.HTTP_API_PER_M)  # no API charge on a function URL
    assert total(HTTP_RUN, "function_url_cloudfront") - same_counts == pytest.approx(
        cost.CLOUDFRONT_HTTPS_PER_M + cost.CLOUDFRONT_FUNCTION_PER_M)
    # the function URL run's own counts: forward_stream's duration instead of forward's
    lines = {line.item: line for line in cost.build(URL_RUN, cost.Assumptions(memory_mb=MEMORY),
                                                    edge="function_url").lines}
    assert lines["duration forward_stream"].quantity == pytest.approx(0.045 * 0.5)
    assert "duration forward" not in lines
    with pytest.raises(ValueError, match="unknown edge"):
        cost.build(HTTP_RUN, cost.Assumptions(), edge="alb")


def test_chunk_items_are_priced_by_their_stored_base64_size():
    assert cost.chunk_wru(100) == 1
    assert cost.chunk_wru(1024) == 2  # 1,368 base64 bytes + the item's other attributes
    assert cost.chunk_wru(cost.CHUNK_RAW_MAX) == 30  # 30,040 base64 bytes: the 22 KiB frame


def test_per_event_rate_is_the_designs_sum():
    rates = cost.stream_rates("function_url", 512, 256, 10.0)
    small = rates["per_million_events"]["100"]["usd_per_million"]
    expected = (cost.WS_MESSAGE_PER_M + cost.LAMBDA_REQUEST_PER_M + 0.010 * 0.25 * cost.LAMBDA_GB_S["arm64"] * 1e6
                + 2 * 1 * cost.DDB_WRU_PER_M + cost.WS_MESSAGE_PER_M / cost.ACK_EVERY)
    assert small == pytest.approx(expected)  # ~$2.6 per million, as shared/README.md states
    big = rates["per_million_events"]["1024"]["usd_per_million"]
    assert big - small == pytest.approx(2 * cost.DDB_WRU_PER_M)  # 2 + 2 WRU instead of 1 + 1


def test_per_minute_and_per_mb():
    rates = cost.stream_rates("function_url", 512, 256, 10.0)
    assert rates["per_minute"]["usd"] == pytest.approx(60 * 0.5 * cost.LAMBDA_GB_S["arm64"]
                                                       + 600 * cost.DDB_RRU_PER_M / 1e6)
    bulk = rates["per_mb_bulk"]["usd"]
    assert cost.DATA_TRANSFER_OUT_PER_GB / 1024 < bulk < 2 * cost.DATA_TRANSFER_OUT_PER_GB / 1024  # egress most of it
    frames = math.ceil(1024 * 1024 / cost.CHUNK_RAW_MAX)
    assert frames == 47
    assert rates["per_mb_event_lane"]["usd"] > 10 * bulk  # why bulk goes through S3
    cloudfront = cost.stream_rates("function_url_cloudfront", 512, 256, 10.0)["per_mb_bulk"]["usd"]
    assert bulk - cloudfront == pytest.approx((cost.DATA_TRANSFER_OUT_PER_GB - cost.CLOUDFRONT_DATA_OUT_PER_GB) / 1024)
    rest = cost.stream_rates("rest", 512, 256, 10.0)["per_mb_bulk"]["usd"]
    assert rest - bulk == pytest.approx(cost.REST_API_PER_M / 1e6 / 10)  # one request per 10 MB
    assert cost.stream_rates("http_api", 512, 256, 10.0)["streams"] is False


def test_modelled_hops_follow_the_emulator_profile():
    assert edges.modelled_ms("http_api") == 59.0  # the README's "modelled hops alone sum to 59 ms"
    assert edges.modelled_ms("http_api") - edges.modelled_ms("function_url") == AWS.http_api_ms
    assert edges.modelled_ms("function_url_cloudfront") == pytest.approx(
        edges.modelled_ms("function_url") + edges.CLOUDFRONT_EDGE_MS + edges.CLOUDFRONT_FUNCTION_MS)
    assert edges.modelled_ms("rest") == pytest.approx(59.0 - 8.0 + 20.0)
    assert all(h.source for edge in cost.EDGES for h in edges.hops(edge))


def test_derived_edges_move_a_measurement_by_the_hop_difference():
    measured = {"http_api": 60.0, "function_url": 50.0}
    assert edges.derived_p50("function_url", measured, AWS) == 50.0
    assert edges.derived_p50("function_url_cloudfront", measured, AWS) == pytest.approx(61.0)
    assert edges.derived_p50("rest", measured, AWS) == pytest.approx(72.0)
    assert edges.derived_p50("rest", {"function_url": 50.0}, AWS) is None


def run(p50, rps, per_request):
    return {"latency": {"c1": {"p50": p50 + 1, "added": {"p50": p50}}, "c32": {"rps": rps}}, "per_request": per_request}


def test_compare_gives_every_edge_a_row_and_the_default_verdict():
    rows = edges.compare({"http_api": run(60.0, 140.0, HTTP_RUN), "function_url": run(50.0, 150.0, URL_RUN)},
                         "aws", MEMORY)
    assert list(rows) == list(cost.EDGES)
    assert rows["function_url"]["measured"] and not rows["rest"]["measured"]
    assert rows["rest"]["from"] == "http_api" and rows["function_url_cloudfront"]["from"] == "function_url"
    assert rows["function_url"]["rps_c32"] == 150.0 and "rps_c32" not in rows["rest"]
    assert rows["rest"]["usd_per_million"] == pytest.approx(rows["http_api"]["usd_per_million"] + 2.50, abs=1e-3)
    assert rows["http_api"]["stream"]["streams"] is False and rows["function_url"]["stream"]["streams"]
    assert edges.meets_default_target(rows["function_url"]) is (
        rows["function_url"]["usd_per_million"] <= 5.24 and rows["function_url"]["p50_added_ms"] <= 55)
    assert edges.meets_default_target({**rows["function_url"], "p50_added_ms": 55.1}) is False
    assert edges.meets_default_target({**rows["function_url"], "usd_per_million": 5.25}) is False
    assert edges.meets_default_target({"p50_added_ms": None}) is None
    for edge in cost.EDGES:
        assert {"upload", "download", "time_path", "time_subdomain", "abuse"} <= set(rows[edge]["limits"])


def test_paired_measurements_give_every_edge_a_same_window_figure():
    runs = {"http_api": run(60.0, 140.0, HTTP_RUN), "function_url": run(50.0, 150.0, URL_RUN),
            "paired": {"rounds": 10, "http_api": {"added_p50": 70.0}, "function_url": {"added_p50": 64.0}}}
    rows = edges.compare(runs, "aws", MEMORY)
    assert rows["http_api"]["paired_p50_added_ms"] == 70.0 and rows["function_url"]["paired_p50_added_ms"] == 64.0
    assert rows["rest"]["paired_p50_added_ms"] == pytest.approx(82.0)  # + (20 - 8) ms of REST front door
    assert rows["function_url_cloudfront"]["paired_p50_added_ms"] == pytest.approx(75.0)
    assert "paired" not in rows and rows["function_url"]["p50_added_ms"] == 50.0
