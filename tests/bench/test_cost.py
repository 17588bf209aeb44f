"""Unit tests of the cost arithmetic (scripts/bench/cost.py)."""

import json

import pytest

from scripts.bench import cost


def lines_by_item(model):
    return {line.item: line for line in model.lines}


PER_REQUEST = {
    "http_requests": 1.0,
    "post_to_connection": 1.0,
    "ws_messages": {"api_to_agent": 1.0, "agent_to_api": 1.0},
    "lambda_invocations": {"forward": 1.0, "response": 1.0, "stream_notifier": 1.0},
    "lambda_billed_ms": {"forward": 100.0, "response": 10.0, "stream_notifier": 0.0},
    "dynamodb_calls": {"PutItem": 1.0, "UpdateItem": 1.0, "GetItem": 4.0, "Query": 1.0, "DescribeTable": 3.0},
}


def test_each_line_is_quantity_times_price():
    a = cost.Assumptions(default_memory_mb=128, requests_per_month=1_000_000, agents_connected=1)
    m = lines_by_item(cost.build(PER_REQUEST, a))
    assert m["requests"].per_million == pytest.approx(1.00)  # HTTP API $1/M
    assert m["messages API -> agent"].per_million == pytest.approx(1.00)
    assert m["messages agent -> API"].per_million == pytest.approx(1.00)
    assert m["invocations"].quantity == 3.0
    assert m["invocations"].per_million == pytest.approx(0.60)  # 3 x $0.20/M
    # 100 ms x 0.125 GB = 0.0125 GB-s x $0.0000133334 x 1e6
    assert m["duration forward"].per_million == pytest.approx(0.0125 * 0.0000133334 * 1e6)
    assert "duration stream_notifier" not in m  # zero billed ms -> no line
    # writes: PutItem 2 WRU (the answer row) + UpdateItem 2 WRU = 4 WRU x $0.625/M ; reads: 4 x 1 + 1 x 0.5 = 4.5 RRU x $0.125/M
    assert m["write request units"].quantity == 4.0
    assert m["write request units"].per_million == pytest.approx(2.5)
    assert m["read request units"].quantity == 4.5
    assert m["read request units"].per_million == pytest.approx(4.5 * 0.125)
    assert m["custom events"].per_million == pytest.approx(1.00)  # one per stream_notifier invocation
    # 1 agent x 43,800 minutes over 1M requests x $0.25/M minutes
    assert m["connection-minutes"].per_million == pytest.approx(43_800 * 0.25 / 1e6)


def test_total_is_the_sum_of_lines():
    model = cost.build(PER_REQUEST, cost.Assumptions())
    assert model.total_per_million == pytest.approx(sum(l.per_million for l in model.lines))
    expected = 1.0 + 1.0 + 1.0 + 0.6 + 2.5 + 0.5625 + 1.0 + 43_800 * 0.25 / 1e6 + (110 / 1000 * 0.125) * 0.0000133334 * 1e6
    assert model.total_per_million == pytest.approx(expected)


def test_x86_and_memory_override_change_duration_only():
    arm = lines_by_item(cost.build(PER_REQUEST, cost.Assumptions(memory_mb={"forward": 1024})))
    x86 = lines_by_item(cost.build(PER_REQUEST, cost.Assumptions(memory_mb={"forward": 1024}, architecture="x86_64")))
    assert arm["duration forward"].quantity == pytest.approx(0.1)  # 100 ms x 1 GB
    assert x86["duration forward"].per_million / arm["duration forward"].per_million == pytest.approx(0.0000166667 / 0.0000133334)
    assert arm["requests"].per_million == x86["requests"].per_million


def test_big_messages_are_billed_in_increments():
    assert cost.increments(1, 32 * 1024) == 1
    assert cost.increments(32 * 1024, 32 * 1024) == 1
    assert cost.increments(32 * 1024 + 1, 32 * 1024) == 2
    assert cost.increments(0, 512 * 1024) == 1


def test_transact_writes_cost_double_and_unknown_ops_fail_loudly():
    wru, rru, unknown = cost.dynamodb_units({"TransactWriteItems": 1, "GetRecords": 5}, cost.Assumptions(write_units_per_write=1))
    assert (wru, rru, unknown) == (2.0, 0.0, [])
    with pytest.raises(ValueError, match="ExecuteStatement"):
        cost.build({"dynamodb_calls": {"ExecuteStatement": 1}}, cost.Assumptions())


def test_traffic_log_off_costs_no_events():
    off = {**PER_REQUEST, "lambda_invocations": {"forward": 1.0, "response": 1.0}}
    m = lines_by_item(cost.build(off, cost.Assumptions()))
    assert m["custom events"].quantity == 0.0 and "traffic_log = false" in m["custom events"].note
    forced = lines_by_item(cost.build(off, cost.Assumptions(traffic_log=True)))
    assert forced["custom events"].per_million == pytest.approx(1.00)


def test_counted_eventbridge_entries_win_over_the_fallback():
    m = lines_by_item(cost.build({**PER_REQUEST, "eventbridge_events": 0.5}, cost.Assumptions()))
    assert m["custom events"].quantity == 0.5


def test_cli_reads_results_and_prints_every_line(tmp_path, capsys):
    results = {"stack": {"local": {"per_request": PER_REQUEST}}}
    f = tmp_path / "results.json"
    f.write_text(json.dumps(results))
    assert cost.main(["--results", str(f)]) == 0
    out = capsys.readouterr().out
    for needle in ("API Gateway HTTP API", "messages agent -> API", "connection-minutes", "invocations",
                   "duration forward", "write request units", "read request units", "custom events", "TOTAL $",
                   "5.50-7.50", cost.PRICES_DATE):
        assert needle in out
    assert cost.main(["--results", str(f), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_usd_per_million"] == pytest.approx(sum(l["usd_per_million"] for l in data["lines"]), abs=1e-5)


def test_cli_reports_missing_stack_run(tmp_path, capsys):
    f = tmp_path / "results.json"
    f.write_text(json.dumps({"stack": {}}))
    assert cost.main(["--results", str(f)]) == 2
    assert "no 'stack' section" in capsys.readouterr().err


def test_uniform_write_units_flag(tmp_path, capsys):
    f = tmp_path / "results.json"
    f.write_text(json.dumps({"stack": {"aws": {"per_request": PER_REQUEST}}}))
    assert cost.main(["--results", str(f), "--json", "--write-units-per-write", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    wru = next(l for l in data["lines"] if l["item"] == "write request units")
    assert wru["per_request"] == 8.0  # 2 write calls x 4
    assert wru["usd_per_million"] == pytest.approx(8 * 0.625)


def test_cold_init_is_measured_per_function_against_botocore_session(tmp_path):
    """scripts/bench/coldstart.py on a tiny build: fresh processes, import + first call, ratio."""
    import sys
    import sysconfig
    import zipfile

    from scripts.bench import coldstart
    layer = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr("python/httptunnel/__init__.py", "")
        zf.writestr("python/httptunnel/aws.py", "import time\ndef client(name):\n    time.sleep(0.05)\n")
    fn = tmp_path / "forward.zip"
    with zipfile.ZipFile(fn, "w") as zf:
        zf.writestr("handler.py", "import time\ntime.sleep(0.1)\n")
    (tmp_path / "build.json").write_text(json.dumps({
        "python": sys.executable, "runtime_path": sysconfig.get_paths()["purelib"], "layer_zip": str(layer),
        "function_zips": {"forward": str(fn)}, "bytecode": None}))
    result = coldstart.measure(tmp_path, runs=1)
    f = result["functions"]["forward"]
    assert f["import_ms"] >= 100 and f["first_call_ms"] >= 50
    assert f["ratio_to_botocore_session"] == pytest.approx(f["cold_init_ms"] / result["botocore_session_import_ms"],
                                                           rel=0.05)
    assert "forward" in coldstart.render(result)


def test_snapstart_prices_are_memory_times_rate():
    model = cost.snapstart({"forward": 512, "disconnect": 128}, {"forward": 300.0}, architecture="arm64")
    fwd = model["functions"]["forward"]
    assert fwd["cache_usd_per_month"] == pytest.approx(0.5 * 730 * 3600 * cost.SNAPSTART_CACHE_GB_S, abs=1e-4)
    assert fwd["restore_usd_per_cold_start"] == pytest.approx(0.5 * cost.SNAPSTART_RESTORE_GB)
    assert fwd["init_billed_usd_per_cold_start"] == pytest.approx(0.5 * 0.3 * cost.LAMBDA_GB_S["arm64"])
    assert model["functions"]["disconnect"]["init_billed_usd_per_cold_start"] == 0  # no init measured
    assert model["cache_usd_per_month"] == pytest.approx(
        fwd["cache_usd_per_month"] + model["functions"]["disconnect"]["cache_usd_per_month"], abs=0.01)
    text = cost.render_snapstart(model)
    assert "forward" in text and "disconnect" in text and "per month" in text
