"""`make bench`: the tunnel vs calling the local service directly vs localtunnel, on this machine.

    python -m scripts.bench [--profile local|aws] [--out bench/results.json] [--quick]
                            [--skip-localtunnel] [--skip-stack] [--baseline REF]

One run: starts the origin service (scripts/bench/origin.py), measures it directly, through
localtunnel (npm, loopback only) and through the local stack (moto + terraform + emulator +
`ttf`) under the chosen latency profile; prints tables and writes bench/results.json. A run for
one profile keeps the other profile's stack section of an existing results.json, so
`make bench && make bench PROFILE=aws` leaves both in the file.

What is measured (every number below comes from this run):
* 1 KB GET: latency p50/p90/p99 and added latency over direct, one at a time and at
  concurrency 8 / 32 / 128; throughput at those; bodies checked byte for byte;
* 1 MB and 5 MB upload and download (sha256 checked), binary and, for 5 MB, text;
* per request, from the emulator's /stats deltas over sequential GETs: Lambda invocations and
  billed ms by function, DynamoDB calls by operation, PostToConnection, WebSocket messages;
* peak RSS of the `ttf` process (and of the localtunnel client) with 64 requests in flight;
* the cost model (scripts/bench/cost.py) over those counts;
* caller WebSockets (scripts/bench/sockets.py): one socket's sequential message round trips
  through `caller_ws_url`, the operations each counts, their cost, and idle socket-hours with
  common heartbeats (results.json "sockets", per profile);
* each function's cold init (import + first call before its first AWS call) against fresh
  interpreters, next to `import botocore.session` alone (scripts/bench/coldstart.py).

--baseline REF (`make bench BASELINE=<ref>`) also measures the local stack of another commit in
the SAME run, right after this tree's, against the same origin: its tree comes from
`git archive` into bench/cache/baseline-<sha>/, is built there with its own build script, and
runs with this virtualenv (its layer, agent and tooling first on PYTHONPATH). Machine noise then
hits both alike; the comparison table shows the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp

from scripts.bench import coldstart, cost, edges, sockets, sse
from scripts.bench import load as bench_load
from scripts.bench import stats as bench_stats
from scripts.bench.load import Target
from scripts.harness.proc import Proc, ProcError
from scripts.harness.rss import RssSampler, tree_rss

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
CONCURRENCY = (1, 8, 32, 128)
EDGE_LEVELS = (1, 32)
SSE_STREAMS = 3  # streams of 20 events per edge: 60 delays for p50/p95
PAIRED_ROUNDS = 200  # edges taking turns, one GET each per round (load.paired)
STREAM_ENVIRONMENTS = 32  # forward_stream environments in the bench's stack: c=32 never queues behind fewer
# The ceilings are lifted on the bench's stack: the per-tunnel ones (issue 29: 10 req/s, 20 in flight,
# 8 open streams) and the HTTP stage's (20 req/s, burst 100, to 1,000; the agents' WebSocket stage
# must then allow 1.25 x as many answers: Terraform's validation).
# One tunnel takes all the bench's traffic: with them on, c=1 at ~15 req/s got 429 for 108-167 of 200
# requests and "req/s at c=32" measured the allowance, not the edge. `python -m scripts.bench.flood`
# measures the ceilings.
BENCH_VARS = tuple(item for var in ("tunnel_rate_limit=0", "tunnel_max_in_flight=0", "tunnel_max_open_streams=0",
                                    "token_max_open_streams=0",
                                    "http_throttling_rate_limit=1000", "http_throttling_burst_limit=1000",
                                    "websocket_throttling_rate_limit=1250", "websocket_throttling_burst_limit=1250")
                   for item in ("--var", var))
TARGETS = {
    "p50_added_sequential_ms": 10.0,
    "rps_c32": 150.0,
    "aws_p50_added_ms": 60.0,
    "usd_per_million": 5.50,  # issue 16 (was 4.50, below the $4.65 floor of any design on these services)
    "writes_per_request": 1.0,
    "baseline_p50_ratio": 0.5,  # local p50 added <= half the baseline's, same run
    "baseline_rps_ratio": 2.0,  # local c=32 throughput >= twice the baseline's, same run
    "mb_per_s_5mb": 20.0,
}


# ---------------------------------------------------------------------------------- plan ---
def plan(quick: bool) -> dict[int, int]:
    """Requests per concurrency level (sequential first). Sized so a full run stays ~5 minutes."""
    if quick:
        return {1: 60, 8: 160, 32: 320, 128: 512}
    return {1: 200, 8: 400, 32: 960, 128: 1280}


async def measure_latency(target: Target, counts: dict[int, int], deadline_s: float,
                          level_seconds: float = 25.0) -> dict[str, Any]:
    """Each level: its planned count, but no new request after level_seconds (slow subjects stay bounded)."""
    out: dict[str, Any] = {}
    for c, n in counts.items():
        try:
            res = await asyncio.wait_for(bench_load.run(target, c, n, warmup=min(c, 16), max_seconds=level_seconds),
                                         timeout=deadline_s)
            out[f"c{c}"] = {**res.summary(), "planned": n}
            if res.errors:  # a percentile over the answered part only: say so where it is printed
                print(f"  warning: {target.name} c={c}: {len(res.errors)} of {n} requests failed "
                      f"({sorted(set(res.errors))[:3]}); its percentiles count the rest", flush=True)
        except asyncio.TimeoutError:
            out[f"c{c}"] = {"n": 0, "errors": n, "first_errors": [f"timed out after {deadline_s:.0f}s"]}
    return out


TRANSFERS = (
    ("upload", 1 * MB, "binary"), ("download", 1 * MB, "binary"),
    ("upload", 5 * MB, "binary"), ("download", 5 * MB, "binary"),
    ("upload", 5 * MB, "text"), ("download", 5 * MB, "text"),
)


async def measure_transfers(target: Target, repeats: int) -> dict[str, Any]:
    out = {}
    for direction, size, kind in TRANSFERS:
        key = f"{direction}_{size // MB}mb_{kind}"
        try:
            out[key] = await asyncio.wait_for(bench_load.transfer(target, direction, size, kind, repeats), 120)
        except asyncio.TimeoutError:
            out[key] = {"direction": direction, "size": size, "kind": kind, "status": None, "byte_exact": False,
                        "detail": "timed out after 120s"}
    return out


async def rss_in_flight(target: Target, pid: int, origin: Target, in_flight: int = 64, hold_ms: int = 1500) -> dict:
    """Peak RSS of pid's process tree while `in_flight` slow requests are outstanding."""
    async with bench_load.session(in_flight + 4) as s:
        await (await s.get(origin.url("/inflight"))).read()  # reset the origin's max
        idle = tree_rss(pid)
        with RssSampler(pid) as sampler:

            async def one() -> int:
                try:
                    async with s.get(target.url(f"/slow?ms={hold_ms}"), headers=target.headers) as r:
                        await r.read()
                        return r.status
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    return 0

            statuses = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(in_flight))), 90)
        async with s.get(origin.url("/inflight")) as r:
            seen = await r.json()
    return {"in_flight_requested": in_flight, "max_in_flight_at_origin": seen["max"],
            "ok": sum(1 for st in statuses if st == 200), "idle_rss_mb": round(idle / MB, 1),
            "peak_rss_mb": round(sampler.peak / MB, 1), "samples": sampler.samples}


# ------------------------------------------------------------------------------ subjects ---
def with_added(latency: dict, direct: dict) -> dict:
    for key, row in latency.items():
        if row.get("n") and direct.get(key, {}).get("n"):
            row["added"] = bench_stats.added(row, direct[key])
    return latency


def prepare_baseline(ref: str) -> tuple[str, Path]:
    """Another commit's tree, built for the local stack, under bench/cache/ (reused when present)."""
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = ROOT / "bench" / "cache" / f"baseline-{sha[:12]}"
    if not (tree / "build" / "local" / "build.json").exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        argv = [sys.executable, str(tree / "scripts" / "build.py"), "--local"]  # before the layout move
        for package in ("package", "build"):  # scripts/build was renamed scripts/package after it
            if (tree / "scripts" / package / "__main__.py").exists():
                argv = [sys.executable, "-m", f"scripts.{package}", "--local"]
                break
        print(f"building baseline {sha[:12]} in {tree}", flush=True)
        subprocess.run(argv, cwd=tree, check=True, env={**os.environ, "PYTHONPATH": str(tree)})
    return sha, tree


def first_after_idle(stack: Any, target: Target, repeats: int) -> dict[str, Any]:
    """The request a user feels after a pause: every Lambda worker reclaimed (as Lambda does with
    idle sandboxes), then one 1 KB GET end to end, so forward and response start cold (interpreter,
    handler import, first call). Local process start-up stands in for sandbox creation, which on
    AWS adds its own time; compare it with the warm c1 p50 of the same run."""
    samples: list[float] = []
    errors: list[str] = []
    for _ in range(repeats):
        recycled = stack.recycle_lambdas()
        if not all(recycled.values()):
            errors.append(f"not idle: {recycled}")
            continue
        res = asyncio.run(bench_load.run(target, 1, 1))
        samples.extend(res.latencies_ms)
        errors.extend(res.errors)
    cold = stack.stats().get("lambda_cold_starts", {})
    return {"n": len(samples), "samples_ms": [round(v, 1) for v in samples],
            "median_ms": round(statistics.median(samples), 1) if samples else None,
            "worker_init_ms": {k: cold[k]["last_init_ms"] for k in ("forward", "response") if k in cold},
            "errors": errors[:3]}


def measure_stack(args, origin_port: int, origin: Target, direct_latency: dict, log_dir: Path, stack_ctx,
                  root: Path = ROOT) -> dict:
    from scripts.harness.stack import LocalStack, TtfAgent, agent_token

    t0 = time.monotonic()
    # this tree's stack: an ephemeral function URL port, and environments enough for c=32 (a baseline may lack both)
    extra = ("--stream-port", "0", "--caller-ws-port", "0",
             "--stream-environments", str(STREAM_ENVIRONMENTS), *BENCH_VARS) if root == ROOT else ()
    stack = stack_ctx.enter_context(LocalStack(log_dir, args.profile, root=root, extra_args=extra))
    started_s = round(time.monotonic() - t0, 1)
    agent = stack_ctx.enter_context(TtfAgent(stack.state["ws_url"], origin_port, log_dir, root=root,
                                             token=agent_token(stack.state)))
    target = Target("stack", agent.path_url)
    print(f"  stack up in {started_s}s, tunnel {agent.established.get('tunnel_id')} -> {target.base_url}", flush=True)
    out: dict[str, Any] = {"profile": args.profile, "startup_s": started_s}

    # counted operations per request: sequential 1 KB GETs between two /stats snapshots
    n = 50 if args.quick else 100
    asyncio.run(bench_load.run(target, 1, 5))  # warm every function first
    before = stack.stats()
    res = asyncio.run(bench_load.run(target, 1, n))
    after = stack.stats()
    if res.errors:
        print(f"  warning: {len(res.errors)} errors while counting: {sorted(set(res.errors))[:3]}", flush=True)
    out["per_request"] = bench_stats.per_request(before, after, n)
    out["per_request"]["requests_counted"] = n
    out["latency"] = with_added(asyncio.run(measure_latency(target, plan(args.quick), 90)), direct_latency)
    out["transfers"] = asyncio.run(measure_transfers(target, 1 if args.quick else 2))
    out["ttf_rss"] = asyncio.run(rss_in_flight(target, agent.pid, origin))
    try:
        out["first_after_idle"] = first_after_idle(stack, target, 3 if args.quick else 5)
    except OSError as exc:  # a baseline commit whose stack has no /lambdas/recycle
        out["first_after_idle"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if root == ROOT:
        out["edges"] = measure_edges(args, stack, agent, out, direct_latency, n)
        out["sockets"] = measure_sockets(args, stack, agent)
    memory = cost.terraform_memory_mb()
    try:
        model = cost.build(out["per_request"], cost.Assumptions(memory_mb=memory))
        out["cost"] = cost.to_json(model)
        out["cost_text"] = cost.render_text(model, f"Cost per million 1 KB requests ({args.profile} profile counts)")
    except ValueError as exc:
        out["cost"] = {"error": str(exc)}
    return out


def measure_sockets(args, stack: Any, agent: Any) -> dict[str, Any]:
    """Caller WebSockets: round trips through caller_ws_url to the origin's echo, counted and priced."""
    n = 40 if args.quick else sockets.ROUND_TRIPS
    print(f"  caller WebSocket: {n} sequential round trips through {stack.state.get('caller_ws_url')}", flush=True)
    try:
        run = sockets.measure(stack.state, agent.established["tunnel_id"], stack.stats, n)
    except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError, KeyError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    try:
        run["cost"] = cost.socket_rates(run["per_round_trip"], cost.terraform_memory_mb())
    except ValueError as exc:  # the latency stands without the price
        run["cost_error"] = str(exc)[:300]
    return {"profile": args.profile, **run}


def settle(stack: Any, quiet_s: float = 1.0, timeout_s: float = 30.0) -> None:
    """Wait until the stack's agent messages and invocations stop moving for ``quiet_s`` (at most
    ``timeout_s``): a count that starts while an earlier level's backlog drains charges it to the
    next edge (seen: 1.03 to 1.48 agent messages per function URL request, run to run)."""
    def moving() -> tuple[Any, ...]:
        now = stack.stats()
        return (now.get("ws_messages"), now.get("lambda_invocations"))
    last, quiet_since, deadline = moving(), time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = moving()
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
    print(f"  warning: the stack was still busy after {timeout_s:.0f} s; counting anyway", flush=True)


def edge_plan(quick: bool) -> dict[int, int]:
    """The levels the edge comparison needs: one at a time (p50 added) and c=32 (req/s)."""
    counts = plan(quick)
    return {c: counts[c] for c in EDGE_LEVELS}


def stream_target(stack: Any, agent: Any) -> Target | None:
    """The same tunnel's path-form URL on the function URL edge (stream_url), if the stack serves one."""
    stream_url, http_url = stack.state.get("stream_url"), stack.state["http_url"].rstrip("/")
    if not stream_url:
        return None
    if not agent.path_url.startswith(http_url + "/"):
        raise ValueError(f"the tunnel's path URL {agent.path_url} is not under http_url {http_url}")
    return Target("function_url", stream_url.rstrip("/") + agent.path_url[len(http_url):])


def measure_edges(args, stack: Any, agent: Any, http_api: dict, direct_latency: dict, n: int) -> dict[str, Any]:
    """Both local edges in front of the same tunnel: http_api (already measured) and function_url."""
    edges: dict[str, Any] = {"http_api": {"url": agent.path_url,
                                          "latency": {k: v for k, v in http_api["latency"].items()
                                                      if k in {f"c{c}" for c in EDGE_LEVELS}},
                                          "per_request": http_api["per_request"]}}
    target = stream_target(stack, agent)
    if target is None:
        edges["function_url"] = {"error": "the stack wrote no stream_url"}
        return edges
    print(f"  function URL edge: {target.base_url}", flush=True)
    settle(stack)  # the HTTP API's c=128 level may still have answers, acks and frees in flight
    asyncio.run(bench_load.run(target, 1, 5))  # warm forward_stream's environments
    before = stack.stats()
    res = asyncio.run(bench_load.run(target, 1, n))
    after = stack.stats()
    if res.errors:
        print(f"  warning: {len(res.errors)} errors on the function URL: {sorted(set(res.errors))[:3]}", flush=True)
    per_request = bench_stats.per_request(before, after, n)
    per_request["requests_counted"] = n
    edges["function_url"] = {"url": target.base_url, "per_request": per_request,
                             "latency": with_added(asyncio.run(measure_latency(target, edge_plan(args.quick), 90)),
                                                   direct_latency)}
    rounds = 60 if args.quick else PAIRED_ROUNDS
    print(f"  paired: {rounds} rounds of one GET through each edge, taking turns", flush=True)
    turns = asyncio.run(bench_load.paired([Target("http_api", agent.path_url), target], rounds))
    edges["paired"] = {"rounds": rounds, **{name: {**res.summary(), "added_p50": round(
        res.summary()["p50"] - direct_latency["c1"]["p50"], 2) if res.latencies_ms and direct_latency.get("c1", {}).get("p50")
        is not None else None} for name, res in turns.items()}}
    if turns["http_api"].latencies_ms and turns["function_url"].latencies_ms:
        edges["paired"]["function_url_minus_http_api_p50_ms"] = round(
            turns["function_url"].summary()["p50"] - turns["http_api"].summary()["p50"], 2)
    streams = 1 if args.quick else SSE_STREAMS
    print(f"  SSE: {streams} x {sse.EVENTS} events {sse.GAP_MS} ms apart through each edge", flush=True)
    for edge, url in (("http_api", agent.path_url), ("function_url", target.base_url)):
        edges[edge]["sse"] = asyncio.run(sse.measure(url, streams))
    return edges


# ---------------------------------------------------------------------------------- table ---
def fmt_ms(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def fmt_transfer(rec: dict | None) -> str:
    if not rec:
        return "-"
    if rec.get("byte_exact"):
        via = " via S3" if rec.get("via") == "redirect" else ""
        return f"{rec['seconds']:.3f}s {rec['mb_per_s']:.0f}MB/s{via}"
    return f"FAIL {rec.get('status')}"


def render(results: dict) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    buf = StringIO()
    console = Console(file=buf, width=160, force_terminal=False, color_system=None)
    subjects: list[tuple[str, dict]] = [("direct", results.get("direct", {}))]
    if "localtunnel" in results and "latency" in results["localtunnel"]:
        subjects.append(("localtunnel", results["localtunnel"]))
    for prof, run in results.get("stack", {}).items():
        if "latency" in run:
            subjects.append((f"http-tunnel ({prof})", run))
    base = results.get("baseline") or {}
    if "latency" in base:
        subjects.append((f"baseline {base['sha'][:9]} ({base['profile']})", base))

    t = Table(title=f"1 KB GET latency (ms) and throughput - {results['machine']['cpu_count']} CPUs, {results['date']}")
    for col in ("subject", "conc", "n", "p50", "p90", "p99", "+p50", "+p90", "+p99", "req/s", "errors"):
        t.add_column(col, justify="left" if col == "subject" else "right")
    for name, sub in subjects:
        for key, row in sub.get("latency", {}).items():
            add = row.get("added", {})
            t.add_row(name, key[1:], str(row.get("n", 0)), fmt_ms(row.get("p50")), fmt_ms(row.get("p90")), fmt_ms(row.get("p99")),
                      fmt_ms(add.get("p50")), fmt_ms(add.get("p90")), fmt_ms(add.get("p99")),
                      f"{row.get('rps', 0):.0f}", str(row.get("errors", 0)))
    console.print(t)

    t = Table(title="Transfers (best of runs, sha256 checked)")
    t.add_column("subject")
    keys = [f"{d}_{s // MB}mb_{k}" for d, s, k in TRANSFERS]
    for k in keys:
        t.add_column(k.replace("_", " "), justify="right")
    for name, sub in subjects:
        tr = sub.get("transfers", {})
        t.add_row(name, *(fmt_transfer(tr.get(k)) for k in keys))
    console.print(t)

    for prof, run in results.get("stack", {}).items():
        pr = run.get("per_request")
        if not pr:
            continue
        t = Table(title=f"Counted per request ({prof} profile, {pr.get('requests_counted')} sequential 1 KB GETs)")
        t.add_column("what")
        t.add_column("per request", justify="right")
        for group in ("lambda_invocations", "lambda_billed_ms", "dynamodb_calls", "ws_messages"):
            for k, v in sorted(pr.get(group, {}).items()):
                t.add_row(f"{group}.{k}", f"{v:g}")
        for k in ("post_to_connection", "http_requests"):
            if k in pr:
                t.add_row(k, f"{pr[k]:g}")
        console.print(t)
        if run.get("cost_text"):
            console.print(run["cost_text"], highlight=False, markup=False)

    t = Table(title="Memory with 64 requests in flight")
    for col in ("process", "idle MB", "peak MB", "in flight at origin", "ok"):
        t.add_column(col, justify="left" if col == "process" else "right")
    lt = results.get("localtunnel", {}).get("client_rss")
    if lt:
        t.add_row("localtunnel client (node)", str(lt["idle_rss_mb"]), str(lt["peak_rss_mb"]),
                  str(lt["max_in_flight_at_origin"]), str(lt["ok"]))
    for prof, run in results.get("stack", {}).items():
        r = run.get("ttf_rss")
        if r:
            t.add_row(f"ttf ({prof})", str(r["idle_rss_mb"]), str(r["peak_rss_mb"]),
                      str(r["max_in_flight_at_origin"]), str(r["ok"]))
    console.print(t)

    t = Table(title="First request after idle (every Lambda worker reclaimed, then one 1 KB GET)")
    for col in ("subject", "n", "median ms", "samples ms", "warm c1 p50 ms", "worker init ms (forward, response)"):
        t.add_column(col, justify="left" if col == "subject" else "right")
    for name, sub in subjects[1:]:
        idle = sub.get("first_after_idle")
        if not idle:
            continue
        if "error" in idle:
            t.add_row(name, "-", "-", idle["error"][:60], "-", "-")
            continue
        inits = idle.get("worker_init_ms", {})
        t.add_row(name, str(idle["n"]), fmt_ms(idle["median_ms"]), " ".join(f"{v:.0f}" for v in idle["samples_ms"]),
                  fmt_ms(dig(sub, ("latency", "c1", "p50"))),
                  f"{fmt_ms(inits.get('forward'))}, {fmt_ms(inits.get('response'))}")
    console.print(t)

    current = results.get("stack", {}).get(base.get("profile", ""), {})
    if "latency" in base and "latency" in current:
        t = Table(title=f"This tree vs baseline {base['ref']} ({base['sha'][:9]}), same run, {base['profile']} profile")
        for col in ("measure", "baseline", "this tree", "this / baseline"):
            t.add_column(col, justify="left" if col == "measure" else "right")
        for label, path in (("added p50 ms, c1", ("c1", "added", "p50")), ("added p50 ms, c32", ("c32", "added", "p50")),
                            ("req/s, c32", ("c32", "rps")), ("req/s, c128", ("c128", "rps"))):
            old, new = dig(base["latency"], path), dig(current["latency"], path)
            ratio = f"{new / old:.2f}x" if isinstance(old, (int, float)) and isinstance(new, (int, float)) and old else "-"
            t.add_row(label, fmt_ms(old), fmt_ms(new), ratio)
        console.print(t)

    render_edges(console, results)

    t = Table(title="Targets")
    for col in ("target", "measured", "verdict"):
        t.add_column(col)
    for row in results.get("targets", []):
        t.add_row(row["target"], row["measured"], row["verdict"])
    console.print(t)
    for prof, run in results.get("stack", {}).items():
        if run.get("error"):
            console.print(f"stack ({prof}) not measured: {run['error']}", highlight=False, markup=False)
    if results.get("localtunnel", {}).get("error"):
        console.print(f"localtunnel not measured: {results['localtunnel']['error']}", highlight=False, markup=False)
    return buf.getvalue()


def compare_edges(results: dict) -> dict[str, Any]:
    """Per profile: every candidate edge's row (measured or derived), its cost and limits."""
    memory = cost.terraform_memory_mb()
    return {prof: edges.compare(run["edges"], prof, memory)
            for prof, run in results.get("stack", {}).items() if run.get("edges")}


def fmt_usd(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"${v:.{digits}f}"


def render_edges(console: Any, results: dict) -> None:
    from rich.table import Table

    for prof, rows in results.get("edges", {}).items():
        t = Table(title=f"Candidate edges, {prof} profile: buffered 1 KB GET through each, same tunnel "
                        "(derived = another edge's measurement +/- the modelled hop difference)")
        for col in ("edge", "p50 added ms", "paired p50 added", "how", "modelled hops ms", "req/s c=32", "$/M buffered",
                    "$/M events 100 B | 1 KB", "$/stream-minute", "$/MB bulk | event lane"):
            t.add_column(col, justify="left" if col in ("edge", "how") else "right")
        for edge, row in rows.items():
            st = row.get("stream", {})
            ev = st.get("per_million_events", {})
            events = " | ".join(fmt_usd(v["usd_per_million"]) for v in ev.values()) if ev else "no streaming"
            mb = (f"{fmt_usd(st['per_mb_bulk']['usd'], 5)} | {fmt_usd(st['per_mb_event_lane']['usd'], 4)}"
                  if st.get("streams") else "-")
            t.add_row(edges.TITLES[edge], fmt_ms(row.get("p50_added_ms")), fmt_ms(row.get("paired_p50_added_ms")),
                      "measured" if row.get("measured") else f"derived from {row.get('from')}",
                      f"{row['modelled_hops_ms']:.0f}", "-" if row.get("rps_c32") is None else f"{row['rps_c32']:.0f}",
                      fmt_usd(row.get("usd_per_million")), events,
                      fmt_usd(st["per_minute"]["usd"], 5) if st.get("streams") else "-", mb)
        console.print(t)
        turns = results.get("stack", {}).get(prof, {}).get("edges", {}).get("paired", {})
        if "function_url_minus_http_api_p50_ms" in turns:
            model = edges.AWS if prof == "aws" else edges.LOCAL
            modelled = edges.modelled_ms("function_url", model) - edges.modelled_ms("http_api", model)
            console.print(f"paired ({prof}): {turns['rounds']} rounds of one GET through each edge, taking turns: "
                          f"function_url p50 - http_api p50 = {turns['function_url_minus_http_api_p50_ms']:+.2f} ms "
                          f"(modelled hops: {modelled:+.0f} ms)", highlight=False, markup=False)
    for prof, run in results.get("stack", {}).items():
        measured = {e: r["sse"] for e, r in run.get("edges", {}).items() if isinstance(r, dict) and r.get("sse")}
        if not measured:
            continue
        t = Table(title=f"SSE per-event delay, {prof} profile: {sse.EVENTS} events {sse.GAP_MS} ms apart, "
                        f"arrival - written (target p50 <= {sse.TARGET_P50_MS:.0f} ms, p95 <= {sse.TARGET_P95_MS:.0f} ms)")
        for col in ("edge", "streams", "events", "complete, in order", "p50 ms", "p95 ms", "max ms", "live"):
            t.add_column(col, justify="left" if col == "edge" else "right")
        for edge, res in measured.items():
            verdict = sse.live(res)
            t.add_row(edges.TITLES.get(edge, edge), str(res.get("streams")), str(res.get("events")),
                      "yes" if res.get("complete") else "NO", fmt_ms(res.get("p50_ms")), fmt_ms(res.get("p95_ms")),
                      fmt_ms(res.get("max_ms")), "-" if verdict is None else ("yes" if verdict else "no"))
        console.print(t)
    if results.get("edges"):
        t = Table(title="Limits per URL form (path: <edge>/<id>/..., subdomain: <id>.<domain>)")
        for col in ("edge", "streams", "upload", "download", "time, path URLs", "time, subdomain URLs", "abuse bounded by"):
            t.add_column(col)
        for edge, lim in edges.LIMITS.items():
            t.add_row(edges.TITLES[edge], lim["streams"], lim["upload"], lim["download"], lim["time_path"],
                      lim["time_subdomain"], lim["abuse"])
        console.print(t)


def dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def check_targets(results: dict) -> list[dict]:
    rows = []

    def add(target: str, value: float | None, ok: bool | None, unit: str) -> None:
        measured = "not measured" if value is None else f"{value:.2f} {unit}"
        rows.append({"target": target, "measured": measured, "value": value,
                     "verdict": "n/a" if ok is None else ("met" if ok else "MISSED")})

    local = results.get("stack", {}).get("local", {})
    aws = results.get("stack", {}).get("aws", {})
    v = local.get("latency", {}).get("c1", {}).get("added", {}).get("p50")
    add("local p50 added, sequential <= 10 ms", v, None if v is None else v <= TARGETS["p50_added_sequential_ms"], "ms")
    v = local.get("latency", {}).get("c32", {}).get("rps")
    add("local throughput at c=32 >= 150 req/s", v, None if v is None else v >= TARGETS["rps_c32"], "req/s")
    v = aws.get("latency", {}).get("c1", {}).get("added", {}).get("p50")
    add("aws profile p50 added <= 60 ms", v, None if v is None else v <= TARGETS["aws_p50_added_ms"], "ms")
    for prof, run in (("aws", aws), ("local", local)):
        v = run.get("cost", {}).get("total_usd_per_million")
        if v is not None:
            add(f"cost ({prof} counts) <= ${TARGETS['usd_per_million']:.2f} per million", v,
                v <= TARGETS["usd_per_million"], "$/M")
        calls = run.get("per_request", {}).get("dynamodb_calls")
        if calls is not None:
            w = sum(float(calls.get(op, 0.0)) for op in cost.WRITE_OPS | cost.TRANSACT_WRITE_OPS | cost.BATCH_WRITE_OPS)
            add(f"DynamoDB writes per request ({prof} counts) <= 1", w, w <= TARGETS["writes_per_request"], "writes")
    base = results.get("baseline", {})
    if base.get("latency") and base.get("profile") == "local" and local.get("latency"):
        ours, theirs = (r.get("latency", {}).get("c1", {}).get("added", {}).get("p50") for r in (local, base))
        if ours is not None and theirs:
            add(f"local p50 added <= 0.5 x baseline {str(base.get('sha', ''))[:9]} ({theirs:.1f} ms), same run",
                ours / theirs, ours / theirs <= TARGETS["baseline_p50_ratio"], "x")
        ours, theirs = (r.get("latency", {}).get("c32", {}).get("rps") for r in (local, base))
        if ours is not None and theirs:
            add(f"local c=32 throughput >= 2 x baseline ({theirs:.0f} req/s), same run", ours / theirs,
                ours / theirs >= TARGETS["baseline_rps_ratio"], "x")
    for prof, run in (("local", local), ("aws", aws)):
        res = run.get("edges", {}).get("function_url", {}).get("sse")
        if res:
            ok = sse.live(res)
            rows.append({"target": f"SSE through function_url ({prof}): per-event p50 <= {sse.TARGET_P50_MS:.0f} ms, "
                                   f"p95 <= {sse.TARGET_P95_MS:.0f} ms, all events in order",
                         "measured": f"p50 {fmt_ms(res.get('p50_ms'))} ms, p95 {fmt_ms(res.get('p95_ms'))} ms, "
                                     f"{res.get('events')} events" + ("" if res.get("complete") else " (incomplete)"),
                         "value": res.get("p50_ms"), "verdict": "n/a" if ok is None else ("met" if ok else "MISSED")})
    for edge in ("function_url", "function_url_cloudfront"):
        row = results.get("edges", {}).get("aws", {}).get(edge)
        if row:
            ok = edges.meets_default_target(row)
            rows.append({"target": f"default edge: {edges.TITLES[edge]} aws p50 added <= {edges.DEFAULT_P50_MS:.0f} ms "
                                   f"at <= ${edges.DEFAULT_USD_PER_M:.2f}/M",
                         "measured": f"{fmt_ms(row.get('p50_added_ms'))} ms, {fmt_usd(row.get('usd_per_million'))}/M",
                         "value": row.get("p50_added_ms"),
                         "verdict": "n/a" if ok is None else ("met" if ok else "MISSED")})
    for name, f in results.get("cold_init", {}).get("functions", {}).items():
        r = f.get("ratio_to_botocore_session")
        add(f"cold init {name} <= 1.25 x import botocore.session", r, None if r is None else r <= 1.25, "x")
    for key in ("upload_5mb_binary", "download_5mb_binary", "upload_5mb_text", "download_5mb_text"):
        rec = local.get("transfers", {}).get(key)
        v = rec.get("mb_per_s") if rec else None
        ok = None if rec is None else bool(rec.get("byte_exact")) and (v or 0) >= TARGETS["mb_per_s_5mb"]
        label = f"local {key.replace('_', ' ')} byte-exact >= 20 MB/s"
        if rec is not None and not rec.get("byte_exact"):
            rows.append({"target": label, "measured": f"status {rec.get('status')}: {rec.get('detail', '')[:60]}",
                         "value": None, "verdict": "MISSED"})
        else:
            add(label, v, ok, "MB/s")
    return rows


# ----------------------------------------------------------------------------------- main ---
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="benchmark: direct vs localtunnel vs the local stack")
    p.add_argument("--profile", default="local", choices=("local", "aws"))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--quick", action="store_true", help="fewer requests (a smoke run, not for the README)")
    p.add_argument("--skip-localtunnel", action="store_true")
    p.add_argument("--skip-stack", action="store_true")
    p.add_argument("--baseline", metavar="REF", help="also measure this commit's local stack in the same run")
    args = p.parse_args(argv)

    def on_term(signum, frame):  # SIGTERM behaves like Ctrl-C: unwind, stop every child
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    log_dir = ROOT / "bench" / "cache" / "logs" / time.strftime("%Y%m%dT%H%M%S")
    previous: dict = {}
    if args.out.exists():
        try:
            previous = json.loads(args.out.read_text())
        except ValueError:
            previous = {}
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.machine()},
        "quick": args.quick,
        "plan": {f"c{c}": n for c, n in plan(args.quick).items()},
        "stack": {k: v for k, v in previous.get("stack", {}).items() if k != args.profile},
        "sockets": {k: v for k, v in previous.get("sockets", {}).items() if k != args.profile},
    }
    t_start = time.monotonic()
    try:
        with ExitStack() as stack:
            origin_proc = stack.enter_context(Proc([sys.executable, "-m", "scripts.bench.origin"], "origin",
                                                   log_dir / "origin.stderr.log",
                                                   cwd=ROOT))
            port = origin_proc.wait_json(lambda d: d.get("event") == "listening", 30)["port"]
            origin = Target("direct", f"http://127.0.0.1:{port}")
            print(f"origin on 127.0.0.1:{port}; measuring direct", flush=True)
            direct_latency = asyncio.run(measure_latency(origin, plan(args.quick), 120))
            results["direct"] = {"latency": direct_latency,
                                 "transfers": asyncio.run(measure_transfers(origin, 1 if args.quick else 2))}

            if not args.skip_localtunnel:
                print("localtunnel (npm, loopback)", flush=True)
                from scripts.bench.localtunnel import PACKAGES, Localtunnel

                try:
                    with Localtunnel(port, log_dir) as lt:
                        latency = with_added(asyncio.run(measure_latency(lt.target, plan(args.quick), 90)),
                                             direct_latency)
                        results["localtunnel"] = {
                            "packages": list(PACKAGES),
                            "listeners": lt.listeners,
                            "latency": latency,
                            "transfers": asyncio.run(measure_transfers(lt.target, 1 if args.quick else 2)),
                            "client_rss": asyncio.run(rss_in_flight(lt.target, lt.client.pid, origin)),
                        }
                except (ProcError, OSError, Exception) as exc:  # the reference failing must not lose the rest
                    traceback.print_exc()
                    results["localtunnel"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}

            if not args.skip_stack:
                print(f"local stack, profile {args.profile}", flush=True)
                try:
                    with ExitStack() as stack_ctx:
                        results["stack"][args.profile] = measure_stack(args, port, origin, direct_latency, log_dir,
                                                                       stack_ctx)
                except (ProcError, OSError, Exception) as exc:
                    traceback.print_exc()
                    results["stack"][args.profile] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                results["stack"][args.profile]["date"] = results["date"]
                if "sockets" in results["stack"][args.profile]:
                    results["sockets"][args.profile] = {"date": results["date"],
                                                        **results["stack"][args.profile].pop("sockets")}
                results["stack"][args.profile]["direct_latency"] = direct_latency

            if args.baseline:
                try:
                    sha, tree = prepare_baseline(args.baseline)
                    print(f"baseline {args.baseline} ({sha[:12]}), profile {args.profile}", flush=True)
                    with ExitStack() as stack_ctx:
                        results["baseline"] = {"ref": args.baseline, "sha": sha, "profile": args.profile,
                                               **measure_stack(args, port, origin, direct_latency, log_dir,
                                                               stack_ctx, root=tree)}
                except (ProcError, OSError, subprocess.CalledProcessError, Exception) as exc:
                    traceback.print_exc()
                    results["baseline"] = {"ref": args.baseline, "error": f"{type(exc).__name__}: {exc}"[:500]}
            if not args.skip_stack:
                print("cold init of each function (fresh interpreters)", flush=True)
                try:
                    results["cold_init"] = coldstart.measure(ROOT / "build" / "local", 3 if args.quick else 7)
                    init_ms = {fn: f["cold_init_ms"] for fn, f in results["cold_init"]["functions"].items()}
                    results["snapstart"] = cost.snapstart(cost.terraform_memory_mb(), init_ms)
                except (OSError, ValueError, subprocess.SubprocessError) as exc:
                    results["cold_init"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    except KeyboardInterrupt:
        print("interrupted: children stopped, nothing written", file=sys.stderr)
        return 130
    results["duration_s"] = round(time.monotonic() - t_start, 1)
    results["edges"] = compare_edges(results)
    results["targets"] = check_targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print(render(results))
    if "functions" in results.get("cold_init", {}):
        print(coldstart.render(results["cold_init"]))
    if "snapstart" in results:
        print(cost.render_snapstart(results["snapstart"]))
    for prof, run in results.get("sockets", {}).items():
        print(sockets.render(prof, run))
    print(f"wrote {args.out} in {results['duration_s']}s; logs in {log_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
