"""How long a fresh clone takes to a working public URL: the README's setup timings come from here.

    python -m scripts.bench.setup [--out bench/setup.json] [--ref HEAD] [--keep] [--with-test]

In a fresh copy of the tree at --ref (`git archive`: no .venv, no build/, no .local/), it runs
what `make dev` runs, one step at a time so each is timed: `make install` (the virtualenv and
`pip install`), `make build-local` (the Lambda zips), then `python -m scripts.dev` on free
ports (`make dev`'s own command; the stack, the sample app and ttf) until it prints its public
URL, and one GET through that URL must answer 200. Then it stops `make dev`'s processes and
removes the copy (unless --keep). --with-test then runs `make test` in the same copy and
records its duration and exit status. It writes the figures, the date, the commit and the machine
(cores, load average before the run) to --out; tests/unit/test_readme_timings.py checks that
the README's timing table says what that file says.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scripts.harness.proc import Proc, ProcError

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_copy(ref: str, dest: Path) -> str:
    commit = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return commit


def timed(cmd: list[str], cwd: Path, log: Path, check: bool = True) -> tuple[float, int]:
    """(seconds, exit status) of one command in its own process group, stopped with us."""
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if check and code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}); log: {log}")
    return round(time.monotonic() - started, 1), code


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def measure(ref: str, keep: bool, with_test: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="http-tunnel-setup-"))
    logs = work / "setup-logs"
    result: dict[str, Any] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "machine": machine(), "command": "python -m scripts.bench.setup"}
    try:
        tree = work / "tree"
        tree.mkdir()
        logs.mkdir()
        result["commit"] = fresh_copy(ref, tree)
        python = os.environ.get("PYTHON", "python3")  # what `make install` uses by default
        result["make_install_s"] = timed(["make", "install", f"PYTHON={python}"], tree, logs / "install.log")[0]
        result["make_build_local_s"] = timed(["make", "build-local"], tree, logs / "build-local.log")[0]
        ports = [free_port() for _ in range(4)]
        dev = Proc([str(tree / ".venv" / "bin" / "python"), "-m", "scripts.dev", "--http-port", str(ports[0]),
                    "--ws-port", str(ports[1]), "--admin-port", str(ports[2]), "--app-port", str(ports[3])],
                   "make-dev", logs / "dev.stderr.log", cwd=tree)
        started = time.monotonic()
        with dev:
            try:
                ready = dev.wait_json(lambda e: e.get("event") == "dev_ready", timeout=900)
            except ProcError as exc:
                raise SystemExit(f"make dev did not get ready: {exc}") from None
            result["make_dev_ready_s"] = round(time.monotonic() - started, 1)
            url = ready.get("path_based_url") or ready["public_url"]
            with urllib.request.urlopen(url.rstrip("/") + "/", timeout=30) as reply:  # noqa: S310 - our own URL
                result["first_get_status"] = reply.status
            dev.stop(grace=30, sig=2)  # SIGINT, as Ctrl-C: make dev stops its children itself
        result["fresh_make_dev_s"] = round(result["make_install_s"] + result["make_build_local_s"]
                                           + result["make_dev_ready_s"], 1)
        if with_test:
            seconds, code = timed(["make", "test"], tree, logs / "make-test.log", check=False)
            result["make_test_s"], result["make_test_exit"] = seconds, code
            if code != 0:
                keep = True
                print(f"make test failed (exit {code}): {logs / 'make-test.log'}", file=sys.stderr)
        return result
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "setup.json")
    parser.add_argument("--ref", default="HEAD")
    parser.add_argument("--keep", action="store_true", help="keep the fresh copy and its logs")
    parser.add_argument("--with-test", action="store_true", help="also time `make test` in the fresh copy")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (finally) on SIGTERM too
    result = measure(args.ref, args.keep, args.with_test)
    if result.get("first_get_status") != 200:
        raise SystemExit(f"the public URL answered {result.get('first_get_status')}, not 200")
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
