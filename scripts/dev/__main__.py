"""`make dev`: the local stack + the sample app + `ttf` forwarding to it; shows the public URL.

    python -m scripts.dev [--http-port 4040] [--ws-port 4041] [--admin-port 4042] [--app-port 3000]
                             [--state-file .local/stack.json]

Every child runs in its own process group and is stopped (SIGTERM, then SIGKILL) on Ctrl-C,
SIGTERM, or when any of them dies. A stack already running with the same state file is
reused (and left running).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from emulator.stack import running_stack
from scripts.harness.proc import Proc, ProcError
from scripts.harness.stack import LocalStack, TtfAgent, agent_token

ROOT = Path(__file__).resolve().parents[2]

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, default=4040)
    parser.add_argument("--ws-port", type=int, default=4041)
    parser.add_argument("--admin-port", type=int, default=4042)
    parser.add_argument("--app-port", type=int, default=3000)
    parser.add_argument("--state-file", type=Path, default=ROOT / ".local" / "stack.json")
    return parser.parse_args(argv)


def start_stack(args: argparse.Namespace, logs: Path) -> tuple[dict[str, Any], Proc | None]:
    existing = running_stack(args.state_file)
    if existing is not None:
        print(f"reusing the local stack already running (pid {existing['pid']})", flush=True)
        return existing, None
    print("starting the local stack (moto + terraform apply + API Gateway emulator)...", flush=True)
    stack = LocalStack(logs, state_file=args.state_file, ports=(args.http_port, args.ws_port, args.admin_port))
    stack.start()
    return stack.state, stack.proc


def start_app(port: int, logs: Path) -> Proc:
    app = Proc([sys.executable, "-m", "scripts.dev.sample_app", "--port", str(port)], "sample-app",
               logs / "sample_app.log", cwd=ROOT).start()
    app.wait_line(lambda line: "sample_app_listening" in line, 20)
    return app


def start_agent(state: dict[str, Any], port: int, logs: Path) -> tuple[Proc, dict[str, Any]]:
    # Reclaim state lives in this checkout's .local/, so `make dev` keeps its URL from run to run;
    # the inspector is on at ttf's default address. The stack runs with auth on, as production
    # does: ttf presents the dev token the stack minted.
    agent = TtfAgent(state["ws_url"], port, logs, state_dir=ROOT / ".local" / "ttf-state", inspect=None,
                     token=agent_token(state))
    agent.start(timeout=30)
    return agent.proc, agent.established


def watch(children: list[Proc], stop: threading.Event) -> None:
    while not stop.is_set():
        for child in children:
            if not child.alive():
                print(f"{child.name} exited (code {child.popen.returncode if child.popen else '?'}); "
                      "stopping everything", file=sys.stderr, flush=True)
                stop.set()
                return
        stop.wait(0.5)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs = ROOT / ".local" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    children: list[Proc] = []
    started = time.monotonic()
    try:
        state, stack = start_stack(args, logs)
        if stack is not None:
            children.append(stack)
        children.append(start_app(args.app_port, logs))
        agent, tunnel = start_agent(state, args.app_port, logs)
        children.append(agent)
        print(f"\nready in {time.monotonic() - started:.0f} s", flush=True)
        print(f"  public URL   {tunnel['public_url']}", flush=True)
        print(f"  path mode    {tunnel.get('path_based_url')}", flush=True)
        print(f"  sample app   http://127.0.0.1:{args.app_port}", flush=True)
        if tunnel.get("inspector_url"):
            print(f"  inspector    {tunnel['inspector_url']}   (see and replay what came in)", flush=True)
        print(f"  admin        {state['admin_url']}/stats", flush=True)
        if state.get("auth"):
            print(f"  agent token  subject '{state['auth']['subject']}' (more: make token SUB=name STACK=1)",
                  flush=True)
        print(f"  logs         {logs}/", flush=True)
        print("  try: curl -s " + tunnel["public_url"] + "/api/todos   (*.localhost resolves to 127.0.0.1 in"
              " curl and browsers)", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        print(json.dumps({**tunnel, "event": "dev_ready"}), flush=True)
        watch(children, stop)
        return 0
    except (ProcError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", file=sys.stderr, flush=True)
        for child in reversed(children):
            child.stop(grace=15)


if __name__ == "__main__":
    raise SystemExit(main())
