"""Where the local stack's time goes: 1 KB GETs through stack + ttf, with CPU per request.

    python -m scripts.bench.perf [--seq 200] [--conc 32] [--total 1000]
                                 [--py-spy OUT.svg|OUT.txt --spy-target moto|stack|ttf|fn:NAME --spy-gil]

Starts the stack (``python -m emulator.stack`` on ephemeral ports), the benchmark origin and
one ``ttf`` agent, measures the origin directly (sequential p50), then the tunnel sequentially
and at ``--conc``; for each phase prints p50/p90, added p50 over direct, req/s, the AWS calls
counted, and per process (the stack process itself = gateway, its moto process, its Lambda
workers by function, the agent) CPU ms per request and RSS afterwards. With ``--py-spy``
(py-spy is not a dependency: ``PY_SPY=...`` or ``--py-spy-bin``) one process is sampled during
the concurrent phase. Every process started here is stopped here."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from emulator.lambda_runtime.buildinfo import ROOT
from scripts.bench import load as bench_load
from scripts.bench import stats as bench_stats
from scripts.harness.proc import Proc
from scripts.harness.stack import LocalStack, TtfAgent, agent_token

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def cmd_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    if b"emulator.mock_aws.moto_process" in argv:
        return "moto"
    for arg in argv:
        if arg.startswith(b"{"):
            try:
                return json.loads(arg)["function_name"].rsplit("-", 1)[-1]
            except (ValueError, KeyError):
                pass
    return Path(argv[0].decode()).name if argv and argv[0] else str(pid)


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_s(pid) for name, pid in pids.items()}


def diff(after: dict[str, float], before: dict[str, float], n: int) -> dict[str, float]:
    return {k: round((after[k] - before.get(k, 0.0)) * 1000 / max(n, 1), 2) for k in after}


async def phase(name: str, target: Any, concurrency: int, total: int, pids: dict[str, int],
                direct_p50: float | None) -> dict[str, Any]:
    before = snapshot(pids)
    result = await bench_load.run(target, concurrency, total, warmup=min(20, total))
    after = snapshot(pids)
    stats = bench_stats.summarize(result.latencies_ms)
    row = {"phase": name, "n": result.ok, "errors": len(result.errors),
           "first_errors": sorted(set(result.errors))[:3], "p50_ms": stats.get("p50"), "p90_ms": stats.get("p90"),
           "rps": bench_stats.throughput(result.ok, result.elapsed_s),
           "cpu_ms_per_request": diff(after, before, result.ok + len(result.errors))}
    if direct_p50 is not None and stats.get("p50") is not None:
        row["added_p50_ms"] = round(stats["p50"] - direct_p50, 2)
    row["cpu_ms_per_request"]["total"] = round(sum(row["cpu_ms_per_request"].values()), 2)
    row["rss_mb_after"] = {name: rss_mb(pid) for name, pid in pids.items()}
    return row


def rss_mb(pid: int) -> float:
    try:
        return round(psutil.Process(pid).memory_info().rss / (1024 * 1024), 1)
    except psutil.Error:
        return 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq", type=int, default=200)
    p.add_argument("--conc", type=int, default=32)
    p.add_argument("--total", type=int, default=1000)
    p.add_argument("--profile", default="local")
    p.add_argument("--keep-logs", action="store_true", help="keep the stack/agent logs (path printed)")
    p.add_argument("--py-spy", dest="py_spy", default=None, help="record the stack during the concurrent phase")
    p.add_argument("--spy-target", default="stack",
                   help="which process --py-spy samples: stack, moto, ttf or fn:<name> (default stack)")
    p.add_argument("--spy-gil", action="store_true", help="sample only the thread holding the GIL (CPU, not waits)")
    p.add_argument("--py-spy-bin", default=os.environ.get("PY_SPY") or shutil.which("py-spy")
                   or str(Path(sys.executable).parent / "py-spy"), help="the py-spy executable")
    args = p.parse_args(argv)

    log_dir = Path(tempfile.mkdtemp(prefix="emulator-perf-"))
    origin = Proc([sys.executable, "-m", "scripts.bench.origin", "--port", "0"], "origin",
                  log_dir / "origin.stderr.log", cwd=ROOT).start()
    rows: list[dict[str, Any]] = []
    try:
        port = origin.wait_json(lambda d: d.get("event") == "listening", 30)["port"]
        direct = bench_load.Target("direct", f"http://127.0.0.1:{port}")
        d = asyncio.run(bench_load.run(direct, 1, args.seq, warmup=20))
        from scripts.bench import stats as bench_stats
        direct_p50 = bench_stats.summarize(d.latencies_ms)["p50"]
        rows.append({"phase": "direct c1", "p50_ms": direct_p50})
        with LocalStack(log_dir, args.profile) as stack:
            with TtfAgent(stack.state["ws_url"], port, log_dir, token=agent_token(stack.state)) as agent:
                target = bench_load.Target("stack", agent.path_url)
                pids = {"stack": stack.pid, "ttf": agent.pid}
                for child in children(stack.pid):
                    name = cmd_name(child)
                    pids[name if name == "moto" else f"fn:{name}"] = child
                stack.reset_stats()
                rows.append(asyncio.run(phase("stack c1", target, 1, args.seq, pids, direct_p50)))
                calls = stack.stats()
                rows[-1]["aws_calls"] = calls
                spy = None
                if args.py_spy:
                    spy = subprocess.Popen([args.py_spy_bin, "record", "-p",
                                            str(pids[args.spy_target]), "-o", args.py_spy, "-r", "200", "--nonblocking",
                                            "-f", "raw" if args.py_spy.endswith(".txt") else "flamegraph"]
                                           + (["--gil"] if args.spy_gil else []),
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                stack.reset_stats()
                try:
                    rows.append(asyncio.run(phase(f"stack c{args.conc}", target, args.conc, args.total,
                                                  pids, direct_p50)))
                    rows[-1]["aws_calls"] = stack.stats()
                finally:
                    if spy is not None:
                        spy.send_signal(2)
                        try:
                            spy.wait(30)
                        except subprocess.TimeoutExpired:
                            spy.kill()
                            spy.wait()
    finally:
        origin.stop()
        if args.keep_logs:
            print(json.dumps({"logs": str(log_dir)}), flush=True)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
