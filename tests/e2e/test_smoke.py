"""`make smoke` against the local stack: the same command a deployment runs, end to end, so the
battery cannot rot. (What cannot be checked here, without an AWS account: terraform/README.md.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

from httptunnel import protocol
from scripts.smoke import battery, sockets, streaming, swap, throttle
from ttf import handshake

ROOT = Path(__file__).resolve().parents[2]


def test_the_smoke_battery_passes_on_the_local_stack(stack):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTF_")}
    env["TTF_TOKEN"] = stack.token  # the stack runs with auth on, as a deployment does
    # the streaming check runs against the stack's function URL once answers stream (issue 23);
    # before, without --stream-url, it is reported as not checkable (no streaming edge)
    streams = protocol.CAP_STREAM in protocol.SERVER_CAPABILITIES and protocol.CAP_STREAM in handshake.AGENT_CAPABILITIES
    argv = ["--stream-url", stack.stream_url] if streams and stack.stream_url else []
    # the caller WebSocket API (issue 24) in the query form, as terraform's caller_ws_url names it
    caller = ["--caller-ws-url", json.loads(stack.state_file.read_text())["caller_ws_url"]]
    proc = subprocess.run([sys.executable, "-m", "scripts.smoke", "--endpoint", stack.ws_url, *argv, *caller],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    rows = {line.split("  ")[0].strip(): line for line in proc.stdout.splitlines()[2:-1]}
    assert list(rows) == list(battery.NAMES), report
    results = {name: result_of(line, name) for name, line in rows.items()}
    # moto enforces neither the upload form's size cap nor aws:SecureTransport, the emulator
    # throttles no agent message unless told to, and the local stack has no CloudFront (no socket on
    # the tunnel's hostname): those four, and only those, are reported as not checkable here, with
    # the reason; nothing else is skipped.
    local = {swap.UPLOAD_CAP, swap.UPLOAD_TLS, throttle.THROTTLE, sockets.DOMAIN} | (set() if argv else {streaming.STREAMING})
    assert {name for name, (status, _) in results.items() if status != battery.PASSED} == local, report
    assert all(results[name][0] == battery.NOT_CHECKABLE for name in local), report
    assert results[swap.UPLOAD_CAP][1].startswith("S3 here is the local stack's moto (127.0.0.1:")
    assert "content-length-range" in results[swap.UPLOAD_CAP][1]
    assert results[swap.UPLOAD_TLS][1].startswith("S3 here is the local stack's moto (127.0.0.1:")
    assert "aws:SecureTransport" in results[swap.UPLOAD_TLS][1]
    # the swap attempt itself really ran: B went in after the check, the caller still got A
    swapped = results[swap.SWAP][1]
    assert "versionId" in swapped and "B uploaded after the check (204)" in swapped and "the caller got A" in swapped
    n = len(battery.NAMES)
    assert results[throttle.THROTTLE][1].startswith("all 300 pings were answered: nothing throttled")
    skipped = len(local)
    assert proc.stdout.splitlines()[-1].startswith(f"{n - skipped} of {n} checks passed, {skipped} not checkable "
                                                   "locally in ")
    if argv:
        assert "arrived before the last was written" in results[streaming.STREAMING][1], report
    else:
        assert "no streaming edge" in results[streaming.STREAMING][1], report
    assert "reached the app" in results[sockets.SOCKET][1], report
    assert results[sockets.DOMAIN][1] == sockets.NO_CLOUDFRONT, report
    assert results[sockets.ORDER][1].startswith(f"observed: {sockets.BURST} frames sent at once, 0 came back out of "
                                                "place, 0 never"), report  # the emulator keeps the order
    latency = rows["latency"]
    assert "p50 " in latency and "p90 " in latency
    assert not our_smoke_origins(), "the smoke origin outlived the command"


def result_of(line: str, name: str) -> tuple[str, str]:
    """(result, detail) of one plain table row: name, result, time, detail."""
    rest = line[len(name):].strip()
    status = next(s for s in (battery.NOT_CHECKABLE, battery.PASSED, battery.FAILED) if rest.startswith(s))
    detail = rest[len(status):].strip().split(" s  ", 1)[1]
    return status, detail


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
