"""Fast tests of the benchmark harness: load generator against the in-process origin, targets, table."""

import hashlib
import time

import pytest
from aiohttp.test_utils import TestServer

from scripts.bench import __main__ as bench
from scripts.bench import load as bench_load
from scripts.bench.load import Target
from scripts.bench.origin import KB_BODY, blob, make_app


@pytest.fixture
async def origin():
    server = TestServer(make_app(), host="127.0.0.1", port=0)
    await server.start_server()
    yield Target("direct", str(server.make_url("")).rstrip("/"))
    await server.close()


async def test_run_counts_checked_requests(origin):
    res = await bench_load.run(origin, concurrency=4, total=40, warmup=4)
    assert res.ok == 40 and not res.errors
    s = res.summary()
    assert s["n"] == 40 and s["p50"] <= s["p90"] <= s["p99"] <= s["max"] and s["rps"] > 0


async def test_run_reports_wrong_status_as_errors(origin):
    res = await bench_load.run(origin, concurrency=2, total=6, path="/status/500")
    assert res.ok == 0 and res.errors == ["status 500"] * 6


async def test_run_stops_at_max_seconds(origin):
    res = await bench_load.run(origin, concurrency=2, total=10_000, path="/slow?ms=100", max_seconds=0.3)
    assert 0 < res.ok < 20  # 2 workers x ~100 ms each for ~0.3 s (+ the in-flight ones)


async def test_transfers_are_checked_both_ways(origin):
    down = await bench_load.transfer(origin, "download", 100_000, "binary", repeats=1)
    up = await bench_load.transfer(origin, "upload", 100_000, "text", repeats=1)
    assert down["byte_exact"] and down["status"] == 200 and down["via"] == "inline"
    assert up["byte_exact"] and up["status"] == 200
    bad = await bench_load.transfer(Target("x", origin.base_url + "/nowhere"), "download", 1000, repeats=1)
    assert bad["byte_exact"] is False and bad["status"] == 404 and bad["mb_per_s"] is None


def test_origin_bodies_are_deterministic():
    assert len(KB_BODY) == 1024
    assert hashlib.sha256(blob(1000, 7)).digest() == hashlib.sha256(blob(1000, 7)).digest()
    assert blob(1000, 7) != blob(1000, 8)


def results_fixture(local_p50=5.0, rps=200.0, aws_p50=50.0, total=4.0, up_ok=True):
    lat = {"c1": {"n": 10, "p50": 6.0, "added": {"p50": local_p50}}, "c32": {"n": 10, "rps": rps}}
    transfers = {"upload_5mb_binary": {"byte_exact": up_ok, "mb_per_s": 25.0 if up_ok else None, "seconds": 0.2,
                                       "status": 200 if up_ok else 413,
                                       "detail": "Request Entity Too Large"},
                 "download_5mb_binary": {"byte_exact": True, "mb_per_s": 19.0, "seconds": 0.26, "status": 200}}
    return {"date": "d", "machine": {"cpu_count": 2},
            "direct": {"latency": {"c1": {"n": 10, "p50": 1.0}}},
            "stack": {"local": {"latency": lat, "transfers": transfers, "cost": {"total_usd_per_million": total}},
                      "aws": {"latency": {"c1": {"n": 10, "added": {"p50": aws_p50}}}}}}


def verdicts(results):
    return {row["target"]: row["verdict"] for row in bench.check_targets(results)}


def test_targets_met_and_missed():
    v = verdicts(results_fixture())
    assert v["local p50 added, sequential <= 10 ms"] == "met"
    assert v["local throughput at c=32 >= 150 req/s"] == "met"
    assert v["aws profile p50 added <= 60 ms"] == "met"
    assert v["local upload 5mb binary byte-exact >= 20 MB/s"] == "met"
    assert v["local download 5mb binary byte-exact >= 20 MB/s"] == "MISSED"  # 19 MB/s
    assert v["local upload 5mb text byte-exact >= 20 MB/s"] == "n/a"  # not measured
    v = verdicts(results_fixture(local_p50=10.5, rps=149.0, aws_p50=61.0, total=5.51, up_ok=False))
    assert v["local p50 added, sequential <= 10 ms"] == "MISSED"
    assert v["local throughput at c=32 >= 150 req/s"] == "MISSED"
    assert v["aws profile p50 added <= 60 ms"] == "MISSED"
    assert v["cost (local counts) <= $5.50 per million"] == "MISSED"
    assert v["local upload 5mb binary byte-exact >= 20 MB/s"] == "MISSED"


def test_render_prints_every_subject_and_target():
    results = results_fixture()
    results["targets"] = bench.check_targets(results)
    out = bench.render(results)
    for needle in ("direct", "http-tunnel (local)", "Targets", "aws profile p50 added", "2 CPUs"):
        assert needle in out


def test_render_compares_this_tree_with_a_baseline_from_the_same_run():
    results = results_fixture(local_p50=9.0, rps=180.0)
    results["baseline"] = {"ref": "main~3", "sha": "0123456789abcdef", "profile": "local",
                           "latency": {"c1": {"n": 10, "p50": 20.0, "added": {"p50": 18.0}}, "c32": {"n": 10, "rps": 90.0}}}
    results["stack"]["local"]["per_request"] = {"dynamodb_calls": {"PutItem": 1.0, "GetItem": 1.1}}
    results["targets"] = bench.check_targets(results)
    out = bench.render(results)
    assert "This tree vs baseline main~3 (012345678)" in out
    v = verdicts(results)
    assert v["local p50 added <= 0.5 x baseline 012345678 (18.0 ms), same run"] == "met"  # 9 / 18
    assert v["local c=32 throughput >= 2 x baseline (90 req/s), same run"] == "met"  # 180 / 90
    assert v["DynamoDB writes per request (local counts) <= 1"] == "met"
    results["stack"]["local"]["latency"]["c1"]["added"]["p50"] = 9.5
    results["stack"]["local"]["per_request"]["dynamodb_calls"]["DeleteItem"] = 1.0
    v = verdicts(results)
    assert v["local p50 added <= 0.5 x baseline 012345678 (18.0 ms), same run"] == "MISSED"
    assert v["DynamoDB writes per request (local counts) <= 1"] == "MISSED"
    row = next(line for line in out.splitlines() if "added p50 ms, c1" in line)
    assert "18.00" in row and "9.00" in row and "0.50x" in row
    row = next(line for line in out.splitlines() if "req/s, c32" in line)
    assert "2.00x" in row
    assert "baseline 012345678 (local)" in out  # also a subject of the latency table


def test_another_checkout_runs_with_its_own_code_first_on_the_path(tmp_path):
    from scripts.harness.stack import ROOT, tree_env, ttf_argv

    assert tree_env(ROOT) is None  # this checkout: inherit the environment
    env = tree_env(tmp_path, {"PATH": "/bin"})
    assert env is not None and env["PATH"] == "/bin"
    assert env["PYTHONPATH"].split(":") == [str(tmp_path / "shared"), str(tmp_path / "cli"), str(tmp_path)]
    assert ttf_argv(tmp_path)[1:] == ["-c", "from ttf.main import entry; entry()"]  # not this venv's console script


def test_render_shows_the_first_request_after_idle():
    results = results_fixture()
    results["stack"]["local"]["first_after_idle"] = {"n": 2, "samples_ms": [612.3, 540.1], "median_ms": 576.2,
                                                     "worker_init_ms": {"forward": 300.0, "response": 280.0},
                                                     "errors": []}
    results["targets"] = bench.check_targets(results)
    out = bench.render(results)
    row = next(line for line in out.splitlines() if "http-tunnel (local)" in line and "576.20" in line)
    assert "612 540" in row and "300.00, 280.00" in row


def test_first_after_idle_recycles_every_worker_before_each_request(monkeypatch):
    calls = []

    class FakeStack:
        def recycle_lambdas(self):
            calls.append("recycle")
            return {"forward": True, "response": calls.count("recycle") != 2}  # the second round finds one busy

        def stats(self):
            return {"lambda_cold_starts": {"forward": {"last_init_ms": 310.0}, "response": {"last_init_ms": 290.0}}}

    async def fake_run(target, concurrency, n):
        calls.append("request")
        from scripts.bench.load import LoadResult
        return LoadResult(latencies_ms=[500.0 + len(calls)])

    monkeypatch.setattr(bench.bench_load, "run", fake_run)
    out = bench.first_after_idle(FakeStack(), bench.Target("stack", "http://127.0.0.1:1"), 3)
    assert calls == ["recycle", "request", "recycle", "recycle", "request"]
    assert out["n"] == 2 and out["samples_ms"] == [502.0, 505.0] and out["median_ms"] == 503.5  # len(calls) + 500
    assert out["worker_init_ms"] == {"forward": 310.0, "response": 290.0}
    assert out["errors"] and "not idle" in out["errors"][0]


async def test_sse_delays_are_measured_per_event(origin):
    from scripts.bench import sse
    result = await sse.measure(origin.base_url, streams=2, n=5, ms=50)
    assert result["complete"] and result["events"] == 10
    assert 0 <= result["p50_ms"] <= result["p95_ms"] < 50  # direct: each event arrives as it is written
    assert sse.live(result) is True


async def test_a_buffered_stream_shows_its_lateness():
    """A proxy that holds the whole answer: the first event arrives (n-1) x ms late, p50 about half that."""
    from aiohttp import web
    from scripts.bench import sse

    async def buffered(request):
        inner = make_app()
        server = TestServer(inner, host="127.0.0.1", port=0)
        await server.start_server()
        try:
            import aiohttp
            async with aiohttp.ClientSession() as s, s.get(server.make_url("/sse").with_query(request.query)) as r:
                return web.Response(body=await r.read(), content_type="text/event-stream")
        finally:
            await server.close()

    app = web.Application()
    app.router.add_get("/sse", buffered)
    proxy = TestServer(app, host="127.0.0.1", port=0)
    await proxy.start_server()
    try:
        result = await sse.measure(str(proxy.make_url("")), streams=1, n=6, ms=200)
    finally:
        await proxy.close()
    assert result["complete"] and result["p95_ms"] >= 850 and result["p50_ms"] >= 450
    assert sse.live(result) is False


async def test_sse_reader_follows_the_spec():
    from scripts.bench import sse

    async def lines():
        for raw in (b": comment\n", b"id: 7\n", b"data: a\n", b"data:b\n", b"\n", b"\n", b"data: c\r\n", b"\r\n"):
            yield raw

    got = [(e.id, e.data) async for e in sse.events(lines(), clock=lambda: 1.0)]
    assert got == [("7", "a\nb"), (None, "c")]


async def test_sse_endpoint_refuses_bad_queries(origin):
    import aiohttp
    async with aiohttp.ClientSession() as s:
        for q in ("n=0", "n=x", "ms=-1", "n=10001"):
            async with s.get(origin.url(f"/sse?{q}")) as r:
                assert r.status == 400, q


async def test_openai_sdk_reads_the_origins_chunk_stream(origin):
    """The official SDK (a dev dependency) parses the origin's chat stream: the shape is the real one."""
    import time

    import openai
    from scripts.bench import sse
    client = openai.AsyncOpenAI(base_url=origin.url("/v1"), api_key="not-used", max_retries=0)
    stream = await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "hi"}],
                                                  stream=True, extra_query={"ms": "20"})
    texts, delays = [], []
    async for chunk in stream:
        delays.append(time.time() - chunk.model_extra["t"])
        if chunk.choices and chunk.choices[0].delta.content:
            texts.append(chunk.choices[0].delta.content)
    assert "".join(texts) == "".join(sse.CHAT_TOKENS)
    assert len(delays) == len(sse.CHAT_TOKENS) + 1 and max(delays) < 0.5
    await client.close()


async def test_paired_takes_turns_and_checks_every_body(origin):
    a, b = Target("a", origin.base_url), Target("b", origin.base_url + "/nowhere")
    res = await bench_load.paired([a, Target("a2", origin.base_url)], rounds=10, warmup=1)
    assert res["a"].ok == 10 and res["a2"].ok == 10 and not res["a"].errors
    bad = await bench_load.paired([a, b], rounds=3, warmup=0)
    assert bad["a"].ok == 3 and bad["b"].ok == 0 and bad["b"].errors == ["status 404"] * 3


class _Stats:
    """A stack whose counters move for the first ``busy`` reads, then stay."""

    def __init__(self, busy: int) -> None:
        self.reads = 0
        self.busy = busy

    def stats(self) -> dict:
        self.reads += 1
        moved = min(self.reads, self.busy)
        return {"ws_messages": {"agent_to_api": moved}, "lambda_invocations": {"response": moved}}


def test_settle_waits_for_the_backlog_to_stop_moving(capsys):
    stack = _Stats(busy=6)
    started = time.monotonic()
    bench.settle(stack, quiet_s=0.5, timeout_s=10)
    assert stack.reads >= 6 + 2, "quiet only after the counters stopped"
    assert time.monotonic() - started < 5 and "warning" not in capsys.readouterr().out


def test_settle_gives_up_with_a_warning_on_a_stack_that_never_settles(capsys):
    bench.settle(_Stats(busy=10**9), quiet_s=0.5, timeout_s=1.0)
    assert "still busy after 1 s" in capsys.readouterr().out


def test_the_bench_stack_lifts_the_ceilings_that_would_measure_the_allowance():
    given = dict(v.split("=") for v in bench.BENCH_VARS[1::2])
    assert bench.BENCH_VARS[::2] == ("--var",) * len(given)
    assert given["tunnel_rate_limit"] == "0" and given["tunnel_max_open_streams"] == "0"
    assert given["token_max_open_streams"] == "0"
    assert float(given["websocket_throttling_rate_limit"]) >= 1.25 * float(given["http_throttling_rate_limit"])


def test_agent_token_mints_another_holders_token_with_the_stacks_secret():
    """The flood harness gives each agent its own subject, so per-token counts tell them apart."""
    import jwt

    from scripts.harness.stack import agent_token
    secret = "s" * 48
    state = {"auth": {"token": "the-dev-token", "secret": secret, "issuer": "iss", "audience": "aud",
                      "max_lifetime": 7200}}
    assert agent_token(state) == "the-dev-token" and agent_token({}) is None and agent_token({}, "x") is None
    claims = jwt.decode(agent_token(state, "flood-b"), secret, algorithms=["HS256"], audience="aud", issuer="iss")
    assert claims["sub"] == "flood-b" and claims["exp"] - claims["iat"] == 3600
