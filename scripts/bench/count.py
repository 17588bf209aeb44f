"""The cost part of `make bench` alone: count the operations of a buffered 1 KB GET on both edges.

    python -m scripts.bench.count [--profile aws|local] [--requests 100] [--update bench/results.json]

Starts the bench origin, a local stack (its function URL on an ephemeral port) and today's `ttf`,
then, per edge (`http_api`, then `function_url` in front of the same tunnel), sends `--requests`
sequential 1 KB GETs between two snapshots of the emulator's /stats, exactly as `make bench` does
(scripts/bench/__main__.py ``measure_stack`` / ``measure_edges``), and prices the counts with
scripts/bench/cost.py. No latency is measured, so it takes about a minute.

What it counts (invocations, DynamoDB calls, WebSocket messages) does not depend on the machine's
load; the billed milliseconds it also records do (the emulator measures wall time), so the duration
lines are this run's, as in every `make bench`.

``--update FILE``: the counts replace ``stack.<profile>.edges.function_url.per_request`` in FILE
(the edge whose counts a change to the agent moved; `http_api`'s stay those of the full run, next to
the latency they were measured with), FILE's ``edges`` rows are recomputed from them, and the whole
run (both edges, same machine state) is kept under ``cost_count`` with its date.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from scripts.bench import cost

ROOT = Path(__file__).resolve().parents[2]
WARMUP = 5


def count(profile: str, requests: int, log_dir: Path) -> dict[str, Any]:
    """Per edge: the /stats deltas per request over ``requests`` sequential 1 KB GETs, and the errors seen."""
    from scripts.bench import load as bench_load
    from scripts.bench import stats as bench_stats
    from scripts.bench.__main__ import stream_target
    from scripts.harness.proc import Proc
    from scripts.harness.stack import LocalStack, TtfAgent, agent_token

    counted: dict[str, Any] = {}
    with ExitStack() as stack_ctx:
        origin = stack_ctx.enter_context(Proc([sys.executable, "-m", "scripts.bench.origin"], "origin",
                                              log_dir / "origin.stderr.log", cwd=ROOT))
        port = origin.wait_json(lambda d: d.get("event") == "listening", 30)["port"]
        stack = stack_ctx.enter_context(LocalStack(log_dir, profile, extra_args=("--stream-port", "0")))
        agent = stack_ctx.enter_context(TtfAgent(stack.state["ws_url"], port, log_dir, token=agent_token(stack.state)))
        stream = stream_target(stack, agent)
        if stream is None:
            raise RuntimeError("the stack wrote no stream_url: the function URL edge cannot be counted")
        for target in (bench_load.Target("http_api", agent.path_url), stream):
            asyncio.run(bench_load.run(target, 1, WARMUP))  # warm the edge's functions first
            before = stack.stats()
            res = asyncio.run(bench_load.run(target, 1, requests))
            after = stack.stats()
            per_request = bench_stats.per_request(before, after, requests)
            per_request["requests_counted"] = requests
            counted[target.name] = {"url": target.base_url, "per_request": per_request,
                                    "errors": sorted(set(res.errors))[:3], "error_count": len(res.errors)}
            print(f"  {target.name}: {requests} GETs counted, {len(res.errors)} errors", flush=True)
    return counted


def priced(counted: dict[str, Any]) -> dict[str, Any]:
    memory = cost.terraform_memory_mb()
    out: dict[str, Any] = {}
    for edge, run in counted.items():
        model = cost.build(run["per_request"], cost.Assumptions(memory_mb=memory), edge=edge)
        out[edge] = {"usd_per_million": round(model.total_per_million, 4),
                     "cost_lines": {f"{line.service}: {line.item}": round(line.per_million, 4) for line in model.lines},
                     "text": cost.render_text(model, f"Cost per million buffered 1 KB requests on {edge}")}
    return out


def update(path: Path, profile: str, counted: dict[str, Any], prices: dict[str, Any], date: str) -> None:
    from scripts.bench.__main__ import compare_edges

    results = json.loads(path.read_text())
    edges = results.get("stack", {}).get(profile, {}).get("edges")
    if not isinstance(edges, dict) or "function_url" not in edges:
        raise ValueError(f"{path} has no stack.{profile}.edges.function_url (run `make bench` first)")
    edges["function_url"]["per_request"] = {**counted["function_url"]["per_request"], "counted_at": date,
                                            "counted_by": "python -m scripts.bench.count"}
    results["edges"] = compare_edges(results)
    results["cost_count"] = {"date": date, "profile": profile,
                             "edges": {e: {**counted[e], "usd_per_million": prices[e]["usd_per_million"],
                                           "cost_lines": prices[e]["cost_lines"]} for e in counted}}
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="aws", choices=("local", "aws"))
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--update", type=Path, metavar="RESULTS_JSON",
                   help="write the function_url counts (and this run) into this results file")
    args = p.parse_args(argv)
    if args.requests < 1:
        p.error("--requests must be >= 1")
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    log_dir = ROOT / "bench" / "cache" / "logs" / ("count-" + time.strftime("%Y%m%dT%H%M%S"))
    counted = count(args.profile, args.requests, log_dir)
    prices = priced(counted)
    for edge in counted:
        print(prices[edge]["text"])
        print(json.dumps({"edge": edge, "per_request": counted[edge]["per_request"]}, sort_keys=True))
    if any(run["error_count"] for run in counted.values()):
        print("count: some requests failed; results not written", file=sys.stderr)
        return 1
    if args.update is not None:
        update(args.update, args.profile, counted, prices, date)
        print(f"updated {args.update}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
