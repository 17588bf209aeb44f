"""`make smoke` against the local stack: the same command a deployment runs, end to end, so the
battery cannot rot. (What cannot be checked here, without an AWS account: terraform/README.md.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from scripts.smoke import battery

ROOT = Path(__file__).resolve().parents[2]


def test_the_smoke_battery_passes_on_the_local_stack(stack):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTF_")}
    env["TTF_TOKEN"] = stack.token  # the stack runs with auth on, as a deployment does
    proc = subprocess.run([sys.executable, "-m", "scripts.smoke", "--endpoint", stack.ws_url],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    rows = {line.split("  ")[0].strip(): line for line in proc.stdout.splitlines()[2:-1]}
    assert list(rows) == list(battery.NAMES), report
    assert all(line.split()[len(name.split())] == "ok" for name, line in rows.items()), report
    assert proc.stdout.splitlines()[-1].startswith(f"{len(battery.NAMES)} of {len(battery.NAMES)} checks passed")
    latency = rows["latency"]
    assert "p50 " in latency and "p90 " in latency
    assert not our_smoke_origins(), "the smoke origin outlived the command"


def our_smoke_origins() -> list[int]:
    """Smoke origins started from this checkout (others may run their own meanwhile)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "scripts.smoke.origin" not in " ".join(proc.info["cmdline"] or []):
            continue
        try:
            if proc.cwd() == str(ROOT):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found
