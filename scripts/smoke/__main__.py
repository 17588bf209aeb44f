"""`make smoke`: check a deployed tunnel end to end, through its public URL.

    python -m scripts.smoke [--endpoint wss://...] [--token JWT] [--stream-url URL] [--caller-ws-url URL] [--cloudfront]
                            [--socket-idle] [--latency-requests 20] [--max-p90-ms MS] [--json] [--ttf PATH]

Starts a local origin (scripts/smoke/origin.py) and a `ttf` agent forwarding to it, both
subprocesses on 127.0.0.1 with ephemeral ports, runs the fixed battery of scripts/smoke/battery.py
through the public URL, stops both (also on Ctrl-C or SIGTERM), prints one table and exits 0
only when no check failed. The swap attempt (scripts/smoke/swap.py) connects hand-made agents of
its own to the same endpoint with the same token; two of its checks are "not checkable locally"
against the local stack's moto (counted apart: neither passed nor failed).

The WebSocket URL comes from `terraform output` (terraform/, as `make deploy` left it) unless
--endpoint is given; the agent token from --token or TTF_TOKEN, else, for the deployment in
terraform/, one minted for subject `smoke` (1 h) with its own secret, as `make token` does
(none when it lets anonymous agents in). The agent runs
in a scratch folder with only that token from the environment, so a `.env` or TTF_* settings
of yours never change what is checked. Exit status: 0 no check failed, 1 a check failed or the
tunnel could not be set up, 2 bad arguments or no endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from scripts.harness.proc import Proc, ProcError
from scripts.harness.stack import ttf_argv
from scripts.smoke import battery
from scripts.smoke.report import print_report, summary

ROOT = Path(__file__).resolve().parents[2]
AGENT_START_TIMEOUT_S = 60


class UsageError(Exception):
    """Bad arguments or nothing to check (exit 2)."""


class SmokeError(Exception):
    """The tunnel could not be set up (exit 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m scripts.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="the WebSocket URL (ws_url); default: terraform output ws_url")
    parser.add_argument("--token", default=os.environ.get("TTF_TOKEN", ""),
                        help="agent token (default: TTF_TOKEN; empty = connect without one)")
    parser.add_argument("--stream-url", default=None,
                        help="the streaming edge's base URL (default: terraform output function_url; none: the "
                             "streaming check is not checkable)")
    parser.add_argument("--caller-ws-url", default=None,
                        help="the caller WebSocket API's base URL (default: terraform output caller_ws_url; none: "
                             "the caller-socket checks are not checkable)")
    parser.add_argument("--cloudfront", action="store_true",
                        help="CloudFront fronts the tunnels' hostnames: also open a caller socket on wss://<tunnel "
                             "host>/... (default: terraform output cloudfront; without: that check is not checkable)")
    parser.add_argument("--socket-idle", action="store_true",
                        help="also observe whether pings keep an idle caller socket open (takes 11 minutes)")
    parser.add_argument("--latency-requests", type=int, default=20, help="sequential GETs timed (default 20)")
    parser.add_argument("--max-p90-ms", type=float, default=None, help="fail the latency check above this p90")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--ttf", help="the ttf executable (default: the one next to this Python)")
    parser.add_argument("--agent-timeout", type=float, default=AGENT_START_TIMEOUT_S,
                        help=f"seconds ttf may take to establish the tunnel (default {AGENT_START_TIMEOUT_S})")
    args = parser.parse_args(argv)
    if not 1 <= args.latency_requests <= 1000:
        raise UsageError("--latency-requests must be 1..1000")
    if not 0 < args.agent_timeout <= 600:
        raise UsageError("--agent-timeout must be in (0, 600] seconds")
    if args.endpoint is not None and not args.endpoint.startswith(("ws://", "wss://")):
        raise UsageError(f"--endpoint must be a ws:// or wss:// URL, got {args.endpoint!r}")
    if args.stream_url is not None and not args.stream_url.startswith(("http://", "https://")):
        raise UsageError(f"--stream-url must be an http:// or https:// URL, got {args.stream_url!r}")
    if args.caller_ws_url is not None and not args.caller_ws_url.startswith(("ws://", "wss://")):
        raise UsageError(f"--caller-ws-url must be a ws:// or wss:// URL, got {args.caller_ws_url!r}")
    return args


def terraform_ws_url(folder: Path = ROOT / "terraform") -> str:
    """ws_url from `terraform output` in terraform/ (the state `make deploy` wrote)."""
    return ws_url_of(terraform_outputs(folder))


def deployment_token(outputs: dict[str, Any]) -> str:
    """A 1 h token for subject `smoke`, minted with the deployment's secret; "" when agents are anonymous."""
    from scripts.deploy import token

    try:
        settings = token.AuthSettings.from_outputs(outputs)
        return "" if settings.anonymous else token.token_for(settings, "smoke", 3600)
    except token.TokenError as exc:
        raise SmokeError(f"no agent token (pass --token or TTF_TOKEN): {exc}") from None


def terraform_outputs(folder: Path = ROOT / "terraform") -> dict[str, Any]:
    """`terraform output -json` in terraform/ (the state `make deploy` wrote)."""
    from scripts import tfenv

    if shutil.which("terraform") is None:
        raise UsageError("terraform is not on PATH: pass --endpoint wss://...")
    proc = tfenv.terraform(["output", "-json", "-no-color"], folder, tfenv.terraform_env(),
                           check=False, timeout=120)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UsageError(f"terraform output failed ({last}): deploy first, or pass --endpoint")
    try:
        outputs = json.loads(proc.stdout or "{}")
    except ValueError:
        outputs = {}
    return outputs if isinstance(outputs, dict) else {}


def ws_url_of(outputs: dict[str, Any]) -> str:
    value = outputs.get("ws_url", {}).get("value")
    if not value:
        raise UsageError("terraform has no ws_url output: run `make deploy` first, or pass --endpoint")
    return str(value)


def stream_url_of(outputs: dict[str, Any]) -> str:
    """The function URL (public_edge = "function_url"), or "" when the deployment has no streaming edge."""
    value = (outputs.get("function_url") or {}).get("value")
    return str(value) if value else ""


def caller_ws_url_of(outputs: dict[str, Any]) -> str:
    """The caller WebSocket API's base URL, or "" when the deployment predates it (issue 24)."""
    value = (outputs.get("caller_ws_url") or {}).get("value")
    return str(value) if value else ""


def cloudfront_of(outputs: dict[str, Any]) -> bool:
    """Whether CloudFront fronts the tunnels' hostnames (a domain on the function_url edge)."""
    return bool((outputs.get("cloudfront") or {}).get("value"))


def ttf_command(explicit: str | None) -> list[str]:
    if explicit:
        if shutil.which(explicit) is None:
            raise UsageError(f"--ttf {explicit}: no such executable")
        return [explicit]
    return ttf_argv()


class Agent:
    """One `ttf` process at a time, restartable with the same saved state (same URL)."""

    def __init__(self, argv: list[str], env: dict[str, str], work: Path, timeout: float) -> None:
        self.argv, self.env, self.work, self.timeout = argv, env, work, timeout
        self.child: Proc | None = None
        self.starts = 0

    def start(self) -> battery.Tunnel:
        self.starts += 1
        log = self.work / f"ttf-{self.starts}.log"
        self.child = Proc(self.argv, "ttf", log_path=log, env=self.env, cwd=self.work).start()
        try:
            line = self.child.wait_line(lambda l: '"tunnel_established"' in l, self.timeout)
        except ProcError:
            said = [_said(line) for line in self.child.history[-3:]]
            said += log.read_text(errors="replace").strip().splitlines()[-2:]
            self.stop()
            raise SmokeError(f"ttf did not establish a tunnel within {self.timeout:g} s"
                             + (f"; ttf said: {' | '.join(said)}" if said else "")) from None
        event = json.loads(line)
        return battery.Tunnel(event["tunnel_id"], event["public_url"])

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(grace=15)
            self.child = None

    def restart(self) -> battery.Tunnel:
        self.stop()
        return self.start()


def _said(line: str) -> str:
    """What a ttf --json line tells a person (its reason or message), else the line."""
    try:
        event = json.loads(line)
    except ValueError:
        return line
    return str(event.get("reason") or event.get("message") or line) if isinstance(event, dict) else line


def agent_env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTF_")}
    if token:
        env["TTF_TOKEN"] = token  # the environment, not argv: never visible in `ps`
    return env


def start_origin(work: Path) -> tuple[Proc, int]:
    origin = Proc([sys.executable, "-m", "scripts.smoke.origin", "--port", "0"], "origin",
                   log_path=work / "origin.log", cwd=ROOT).start()
    try:
        line = origin.wait_line(lambda l: l.startswith("{"), 20)
    except ProcError as exc:
        origin.stop()
        raise SmokeError(f"the smoke origin did not start: {exc}") from None
    return origin, int(json.loads(line)["port"])


def program(args: argparse.Namespace) -> int:
    agent_token = args.token
    stream_base = args.stream_url or ""
    caller_base = args.caller_ws_url or ""
    cloudfront = args.cloudfront
    if args.endpoint:
        endpoint = args.endpoint
    else:
        outputs = terraform_outputs()
        endpoint = ws_url_of(outputs)
        agent_token = agent_token or deployment_token(outputs)
        stream_base = stream_base or stream_url_of(outputs)
        caller_base = caller_base or caller_ws_url_of(outputs)
        cloudfront = cloudfront or cloudfront_of(outputs)
    ttf = ttf_command(args.ttf)
    work = Path(tempfile.mkdtemp(prefix="smoke-"))
    started = time.monotonic()
    origin: Proc | None = None
    agent: Agent | None = None
    try:
        origin, port = start_origin(work)
        agent = Agent([*ttf, "-e", endpoint, "-p", str(port), "--host", "127.0.0.1", "--json",
                       "--state-dir", str(work / "state"), "--inspect", "off"], agent_env(agent_token), work,
                      args.agent_timeout)
        tunnel = agent.start()
        print(f"smoke: tunnel up at {tunnel.public_url}; {len(battery.NAMES)} checks "
              f"(about {battery.FORWARD_WAIT_S + 10} s: the 504 check waits {battery.FORWARD_WAIT_S} s)",
              file=sys.stderr, flush=True)
        ctx = battery.Context(tunnel, agent.restart, args.latency_requests, args.max_p90_ms,
                              endpoint=endpoint, token=agent_token, stream_url=stream_base,
                              caller_ws_url=caller_base, cloudfront=cloudfront, socket_idle=args.socket_idle)
        results = battery.run(ctx)
    except SmokeError as exc:
        raise SmokeError(f"{exc} (logs: {work})") from None
    finally:
        if agent is not None:
            agent.stop()
        if origin is not None:
            origin.stop()
        shutil.rmtree(work / "state", ignore_errors=True)  # the saved reclaim token
    return finish(results, tunnel, endpoint, time.monotonic() - started, args.json, work)


def finish(results: list[battery.Result], tunnel: battery.Tunnel, endpoint: str, seconds: float,
           as_json: bool, work: Path) -> int:
    """Print the table (or JSON); 0 when no check failed (the scratch folder goes), else 1
    (its logs stay, and where they are is said). A check that is not checkable here fails nothing."""
    ok = not any(r.failed for r in results)
    if as_json:
        print(json.dumps({"ok": ok, "public_url": tunnel.public_url, "endpoint": endpoint,
                          "seconds": round(seconds, 1), "summary": summary(results, seconds),
                          "checks": [r.__dict__ for r in results]}, indent=2))
    else:
        print_report(results, f"http-tunnel smoke: {tunnel.public_url} (agent endpoint {endpoint})", seconds,
                     sys.stdout)
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        return 0
    print(f"smoke: logs of the origin and ttf are in {work}", file=sys.stderr)
    return 1


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)  # so `finally` stops the origin and ttf
    try:
        return program(parse_args(argv))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SmokeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("smoke: interrupted; the origin and ttf were stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
