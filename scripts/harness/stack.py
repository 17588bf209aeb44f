"""The local stack and `ttf` agents as child processes: how the tests, the bench, the load suite,
`make dev` and `scripts.bench.perf` all start them (through the process harness).

Contracts used:
  python -m emulator.stack --http-port P --ws-port P --admin-port P --state-file F [--profile N] [...]
      writes JSON F (http_url, ws_url, aws_endpoint_url, admin_url, management_url, tables, pid)
      once everything is up; SIGTERM stops it and removes F.
  admin: GET /stats, POST /stats/reset, POST /faults {...}, POST /lambdas/recycle
  ttf -e <ws_url> -p <port> --host 127.0.0.1 --json [-t <token>] -> {"event": "tunnel_established", ...}
      the stack runs with auth on: agents present the dev token of the state file's auth block
      (`agent_token(state)`; None for a stack that lets anonymous agents in, or predates auth).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from scripts.harness.proc import Proc, ProcError
from scripts.harness.wait import wait_until
from scripts.tokens import mint

ROOT = Path(__file__).resolve().parents[2]
STACK_START_TIMEOUT_S = float(os.environ.get("STACK_START_TIMEOUT_S", "240"))


def ttf_argv(root: Path = ROOT) -> list[str]:
    script = Path(sys.executable).parent / "ttf"
    if script.exists() and root == ROOT:
        return [str(script)]
    return [sys.executable, "-c", "from ttf.main import entry; entry()"]


def tree_env(root: Path, base: dict[str, str] | None = None) -> dict[str, str] | None:
    """Environment that runs another checkout's code (a bench baseline) with this virtualenv:
    its layer, agent and tooling come first on the path. None for this checkout (inherit)."""
    if root == ROOT:
        return base
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(str(root / part) for part in ("shared", "cli", "."))
    return env


def http_json(url: str, body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def agent_token(state: dict[str, Any], subject: str | None = None) -> str | None:
    """The dev token the stack minted (its state file's auth block), or one minted with the same
    secret for another ``subject`` (another token holder: per-token counts tell them apart); None
    when the stack runs without auth."""
    auth = state.get("auth")
    if not isinstance(auth, dict) or not auth.get("token"):
        return None
    if subject is None:
        return str(auth["token"])
    lifetime = int(auth.get("max_lifetime") or 0)
    return mint(str(auth["secret"]), subject, min(3600, lifetime) if lifetime else 3600,
                issuer=str(auth.get("issuer") or ""), audience=str(auth.get("audience") or ""), max_lifetime=lifetime)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class LocalStack:
    """moto + terraform + API Gateway emulator (`python -m emulator.stack`), one process group."""

    def __init__(self, log_dir: Path, profile: str = "local", state_file: Path | None = None,
                 ports: tuple[int, int, int] = (0, 0, 0), extra_args: Sequence[str] = (),
                 echo: bool = False, root: Path = ROOT) -> None:
        self.log_dir = log_dir
        self.profile = profile
        self.state_file = state_file or Path(tempfile.mkdtemp(prefix="stack-")) / "stack.json"
        self.log_path = log_dir / f"stack-{profile}.log"
        http_port, ws_port, admin_port = ports
        # the function URL port is ephemeral with the others (two stacks collided on 4043); an older
        # tree's stack (tests/e2e/test_compat.py) has no such option
        has_stream = "--stream-port" in (root / "emulator" / "stack.py").read_text()
        stream = ["--stream-port", "0" if http_port == 0 else "4043"] if has_stream else []
        # the caller WebSocket API's port likewise (an older tree has no caller API)
        has_callers = "--caller-ws-port" in (root / "emulator" / "stack.py").read_text()
        callers = ["--caller-ws-port", "0" if http_port == 0 else "4044"] if has_callers else []
        self.argv = [sys.executable, "-m", "emulator.stack", "--http-port", str(http_port),
                     "--ws-port", str(ws_port), "--admin-port", str(admin_port), *stream, *callers,
                     "--state-file", str(self.state_file), "--profile", profile, *extra_args]
        self.proc = Proc(self.argv, f"stack-{profile}", self.log_path, cwd=root, echo=echo, env=tree_env(root))
        self.state: dict[str, Any] = {}

    def start(self, timeout: float = STACK_START_TIMEOUT_S) -> "LocalStack":
        self.proc.start()
        try:
            self.state = wait_until(self._read_state, timeout, interval=0.2, what="local stack start")
        except BaseException:
            self.stop()
            raise
        return self

    def _read_state(self) -> dict[str, Any] | None:
        if not self.proc.alive():
            raise ProcError(f"the local stack exited during start (code {self.proc.returncode}):\n"
                            f"{self.proc.stderr_tail(3000)}")
        data = read_state(self.state_file)
        needed = ("http_url", "ws_url", "admin_url")
        return data if data and all(data.get(k) for k in needed) else None

    def stop(self, grace: float = 15) -> int | None:
        return self.proc.stop(grace=grace)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> Any:
        return http_json(self.state["admin_url"].rstrip("/") + "/stats")

    def reset_stats(self) -> None:
        http_json(self.state["admin_url"].rstrip("/") + "/stats/reset", body={})

    def recycle_lambdas(self, *functions: str) -> dict[str, bool]:
        """Reclaim the idle Lambda workers (all, or these): the next invocation of each is cold."""
        reply = http_json(self.state["admin_url"].rstrip("/") + "/lambdas/recycle",
                          body={"functions": list(functions)} if functions else {})
        return dict(reply["recycled"])

    def faults(self, **rates: float) -> Any:
        return http_json(self.state["admin_url"].rstrip("/") + "/faults", body=rates)


class TtfAgent:
    """One `ttf` agent forwarding to a local port, started and waited for like a user would."""

    def __init__(self, ws_url: str, local_port: int, log_dir: Path, name: str = "ttf",  # noqa: PLR0913
                 extra_args: Sequence[str] = (), env: dict[str, str] | None = None,
                 state_dir: Path | None = None, inspect: str | None = "off", root: Path = ROOT,
                 token: str | None = None) -> None:
        # reclaim state (what lets a restarted agent keep its URL) per agent, never ~/.local/state
        self.state_dir = state_dir or (log_dir / f"{name}-state")
        self.ws_url = ws_url
        self.local_port = local_port
        self.name = name
        argv = [*ttf_argv(root), "-e", ws_url, "-p", str(local_port), "--host", "127.0.0.1", "--json",
                "--state-dir", str(self.state_dir), *(["--inspect", inspect] if inspect else []),
                *(["-t", token] if token else []), *extra_args]
        self.proc = Proc(argv, name, log_dir / f"{name}.log", env=tree_env(root, {**os.environ, **(env or {})}),
                         cwd=root)
        self.established: dict[str, Any] = {}

    def start(self, timeout: float = 60) -> "TtfAgent":
        self.proc.start()
        try:
            self.established = self.proc.wait_json(lambda d: d.get("event") == "tunnel_established", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.proc.stop(grace=10)

    def kill(self) -> None:
        self.proc.kill()

    def __enter__(self) -> "TtfAgent":
        return self.start() if self.proc.popen is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def tunnel_id(self) -> str:
        return str(self.established["tunnel_id"])

    @property
    def public_url(self) -> str:
        return str(self.established["public_url"])

    @property
    def path_based_url(self) -> str:
        return str(self.established.get("path_based_url") or self.public_url)

    @property
    def connection_id(self) -> str:
        return str(self.established.get("connection_id", ""))

    @property
    def path_url(self) -> str:
        """The path-mode base URL without a trailing slash: append "/<path>" to it."""
        return self.path_based_url.rstrip("/")
