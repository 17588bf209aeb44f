"""The local stack and the `ttf` agent as benchmark / load-suite subjects.

Contracts used (see issue 6):
  python -m emulator.stack --http-port 0 --ws-port 0 --admin-port 0 --state-file F [--profile P]
      writes JSON F with http_url, ws_url, aws_endpoint_url, admin_url; SIGTERM stops it.
  admin: GET /stats, POST /stats/reset, POST /faults {...}
  ttf -e <ws_url> -p <port> --host 127.0.0.1 --json  -> {"event": "tunnel_established", ...}
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from scripts.bench_load import Target
from scripts.bench_proc import Proc, ProcError, wait_until

ROOT = Path(__file__).resolve().parent.parent
STACK_START_TIMEOUT_S = float(os.environ.get("BENCH_STACK_TIMEOUT_S", "240"))


def ttf_argv() -> list[str]:
    script = Path(sys.executable).parent / "ttf"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ttf.main import entry; entry()"]


def http_json(url: str, body: Any = None, timeout_s: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


class Stack:
    """moto + terraform + API Gateway emulator, one process group."""

    def __init__(self, log_dir: Path, profile: str = "local") -> None:
        self.log_dir = log_dir
        self.profile = profile
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-stack-"))
        self.state_file = self.tmp / "stack.json"
        self.proc: Proc | None = None
        self.state: dict = {}

    def __enter__(self) -> "Stack":
        if not (ROOT / "emulator" / "stack.py").exists():
            raise ProcError("emulator/stack.py is not there yet: the local stack cannot be measured")
        self.proc = Proc([sys.executable, "-m", "emulator.stack", "--http-port", "0", "--ws-port", "0",
                          "--admin-port", "0", "--state-file", str(self.state_file), "--profile", self.profile],
                         f"stack-{self.profile}", self.log_dir, cwd=ROOT)
        self.proc.start()
        try:
            self.state = wait_until(self._read_state, STACK_START_TIMEOUT_S, interval_s=0.2, what="stack state file")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _read_state(self) -> dict | None:
        if self.proc and not self.proc.alive():
            raise ProcError(f"stack exited ({self.proc.popen.returncode}): {self.proc.stderr_tail()}")
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        needed = ("http_url", "ws_url", "admin_url")
        return data if all(data.get(k) for k in needed) else None

    def __exit__(self, *exc: Any) -> None:
        if self.proc:
            self.proc.stop(grace_s=15)
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def stats(self) -> dict:
        return http_json(self.state["admin_url"].rstrip("/") + "/stats")

    def reset_stats(self) -> None:
        http_json(self.state["admin_url"].rstrip("/") + "/stats/reset", body={})

    def faults(self, **rates: float) -> Any:
        return http_json(self.state["admin_url"].rstrip("/") + "/faults", body=rates)


class Agent:
    """One `ttf` agent forwarding to a local port; `.target` is its public URL (path mode)."""

    def __init__(self, stack: Stack, local_port: int, log_dir: Path, name: str = "ttf",
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 state_dir: Path | None = None) -> None:
        self.stack = stack
        # reclaim state (what lets a restarted agent keep its URL) per agent, never ~/.local/state
        self.state_dir = state_dir or (log_dir / f"{name}-state")
        self.local_port = local_port
        self.log_dir = log_dir
        self.name = name
        self.extra_args = extra_args or []
        self.env = env
        self.proc: Proc | None = None
        self.established: dict = {}

    def start(self, timeout_s: float = 60) -> "Agent":
        # the stack runs with auth on: agents present the dev token it minted (state file's auth block)
        auth = self.stack.state.get("auth")
        token = ["-t", auth["token"]] if auth else []
        argv = [*ttf_argv(), "-e", self.stack.state["ws_url"], "-p", str(self.local_port), "--host", "127.0.0.1",
                "--json", "--state-dir", str(self.state_dir), "--inspect", "off", *token, *self.extra_args]
        env = {**os.environ, **(self.env or {})}
        self.proc = Proc(argv, self.name, self.log_dir, env=env, cwd=ROOT).start()
        try:
            self.established = self.proc.wait_json(lambda d: d.get("event") == "tunnel_established", timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop(grace_s=10)

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()

    def __enter__(self) -> "Agent":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    @property
    def target(self) -> Target:
        """Path mode: <http_url>/<tunnel_id>/..."""
        base = self.stack.state["http_url"].rstrip("/") + "/" + self.established["tunnel_id"]
        return Target("stack", base)
