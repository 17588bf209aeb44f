"""The local stack in one process: moto + terraform apply of terraform/ + the API Gateway emulator.

    python -m emulator.stack [--http-port 4040] [--ws-port 4041] [--admin-port 4042]
                             [--state-file .local/stack.json] [--profile local|aws]
                             [--cleanup-interval S] [--ttl-interval S] [--var NAME=VALUE ...]

Order: moto starts in a child process (``emulator.mock_aws.moto_process``, 127.0.0.1:<ephemeral>; it
dies with this process); the HTTP, WebSocket and admin
ports are bound (Terraform puts the public URL and the management endpoint into the
functions' environment); ``terraform apply`` of the SAME root module runs against moto;
the wiring is read back from moto; the Lambda workers start; stream/queue/schedule/TTL loops
start; the state file is written. SIGINT/SIGTERM stops everything and removes the state file.

Auth is on, as in production: Terraform generates the agents' HS256 secret into (moto's) SSM;
the stack reads it back, mints a dev token (subject ``dev``) and writes both, with the issuer
and audience tokens must carry, into the state file's ``auth`` block (the file is 0600). ``make
dev`` gives ttf that token; tests craft their own tokens from the secret. ``--var`` passes extra
Terraform variables (e.g. ``jwks``, ``jwt_max_lifetime``, ``allow_anonymous_agents=true``).

With ``AWS_ENDPOINT_URL`` set (a running LocalStack with API Gateway v2), that endpoint is used
instead of moto (no DynamoDB stats/faults then; code comes from build/local).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from emulator.admin import AdminApi
from emulator.apigateway.function_url import AWS_STREAM_BANDWIDTH, FunctionUrl
from emulator.lambda_runtime.stream_worker import StreamingFunction
from emulator.mock_aws.background import StreamPoller, TtlReaper, run_schedule
from emulator.mock_aws.queues import FifoPoller, sqs_sender
from emulator.lambda_runtime.buildinfo import ROOT, BuildMissing, check_fresh, load_build
from emulator.mock_aws.discover import WiringError, read_wiring, reserved_concurrency
from emulator.apigateway.gateway import Gateway
from emulator.apigateway.http_api import HttpSettings, serve
from emulator.mock_aws.moto_process import MotoProcess
from emulator.mock_aws.terraform import apply_local
from emulator.profiles import load_profile
from emulator.lambda_runtime.runtime import RuntimeConfig
from emulator.stats import Faults, Stats
from emulator.apigateway.ws_api import WsSettings
from httptunnel.limits import WS_IDLE_TIMEOUT_S, WS_MAX_CONNECTION_AGE_S

LOG = logging.getLogger("emulator.stack")
STREAM_FUNCTION = "forward_stream"  # served by the function URL, not by the HTTP API's workers
STREAM_ENVIRONMENTS = 4  # execution environments of forward_stream kept warm (one invocation each)
STREAM_REQUEST_MAX = 8 * 1024 * 1024  # the function URL answers 413 past its own 6 MB event
REGION = "us-east-1"


@dataclass(frozen=True)
class Options:
    http_port: int
    ws_port: int
    admin_port: int
    state_file: Path
    profile: str
    cleanup_interval: float | None
    ttl_interval: float
    ws_idle_timeout: float
    ws_max_age: float
    build_dir: Path
    variables: tuple[tuple[str, str], ...] = ()
    stream_port: int = 0
    caller_ws_port: int = 0
    stream_environments: int = STREAM_ENVIRONMENTS


DEV_SUBJECT = "dev"


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m emulator.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, default=4040, help="public HTTP API port (0 = ephemeral)")
    parser.add_argument("--ws-port", type=int, default=4041, help="WebSocket + @connections port (0 = ephemeral)")
    parser.add_argument("--admin-port", type=int, default=4042, help="admin API port: /stats, /faults (0 = ephemeral)")
    parser.add_argument("--stream-port", type=int, default=4043,
                        help="the function URL edge (forward_stream, RESPONSE_STREAM): stream_url (0 = ephemeral)")
    parser.add_argument("--caller-ws-port", type=int, default=4044,
                        help="the caller WebSocket API (callers' sockets): caller_ws_url (0 = ephemeral)")
    parser.add_argument("--stream-environments", type=int, default=STREAM_ENVIRONMENTS,
                        help="forward_stream execution environments (each serves one invocation at a time, as on "
                             "Lambda; make bench raises it so c=32 is not queued behind 4)")
    parser.add_argument("--state-file", type=Path, default=ROOT / ".local" / "stack.json")
    parser.add_argument("--profile", default="local", help="latency profile (emulator/profiles.py)")
    parser.add_argument("--cleanup-interval", type=float, default=None,
                        help="fire schedules every S seconds instead of their rate()")
    parser.add_argument("--ttl-interval", type=float, default=0.0,
                        help="expire TTL rows every S seconds (default 0: never, as nothing may rely on "
                             "DynamoDB's TTL deletion, which takes up to days)")
    parser.add_argument("--ws-idle-timeout", type=float, default=WS_IDLE_TIMEOUT_S)
    parser.add_argument("--ws-max-age", type=float, default=WS_MAX_CONNECTION_AGE_S)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "local")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="extra Terraform variable (repeatable), e.g. jwt_max_lifetime=86400")
    args = parser.parse_args(argv)
    for name in ("http_port", "ws_port", "admin_port", "stream_port", "caller_ws_port"):
        if not 0 <= getattr(args, name) <= 65535:
            parser.error(f"--{name.replace('_', '-')} must be 0..65535")
    if not 1 <= args.stream_environments <= 256:
        parser.error("--stream-environments must be 1..256")
    variables = []
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            parser.error(f"--var needs NAME=VALUE, got {item!r}")
        variables.append((name.strip(), value))
    return Options(args.http_port, args.ws_port, args.admin_port, args.state_file.resolve(),
                   args.profile, args.cleanup_interval, args.ttl_interval, args.ws_idle_timeout,
                   args.ws_max_age, args.build_dir.resolve(), tuple(variables), args.stream_port,
                   args.caller_ws_port, args.stream_environments)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stack(state_file: Path) -> dict[str, Any] | None:
    """The state of a stack still running with this state file, else None (stale files removed)."""
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    pid = state.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
        return state
    state_file.unlink(missing_ok=True)
    return None


def log(event: str, **fields: Any) -> None:
    LOG.info(json.dumps({"event": event, **fields}))


def apply_terraform(endpoint: str, build_dir: Path, state_dir: Path, variables: dict[str, Any]) -> dict:
    return apply_local(endpoint, build_dir, state_dir, variables)


def agent_auth(outputs: dict[str, Any], endpoint: str) -> dict[str, Any] | None:
    """The state file's auth block: the deployed secret (read from moto's SSM) and a dev token."""
    from scripts.tokens import DEFAULT_TTL_S, AuthSettings, mint, read_secret

    settings = AuthSettings.from_outputs({"agent_auth": {"value": outputs.get("agent_auth")}})
    if settings.anonymous:
        return None
    secret = read_secret(AuthSettings(secret_parameter=settings.secret_parameter, secret_arn=settings.secret_arn,
                                      region=REGION, endpoint_url=endpoint))
    ttl = min(DEFAULT_TTL_S, settings.max_lifetime or DEFAULT_TTL_S)
    return {
        "token": mint(secret, DEV_SUBJECT, ttl, issuer=settings.issuer, audience=settings.audience,
                      max_lifetime=settings.max_lifetime),
        "subject": DEV_SUBJECT,
        "secret": secret,
        "issuer": settings.issuer,
        "audience": settings.audience,
        "max_lifetime": settings.max_lifetime,
        "subdomains_claim": settings.subdomains_claim,
        "secret_parameter": settings.secret_parameter,
    }


class Stack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.stats = Stats()
        self.faults = Faults()
        self.profile = load_profile(options.profile)
        self.moto: MotoProcess | None = None
        self.gateway: Gateway | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.work_dir = Path(tempfile.mkdtemp(prefix="stack-", dir=self.local_dir()))
        self.state: dict[str, Any] = {}
        self.streaming: StreamingFunction | None = None
        self.function_url: FunctionUrl | None = None

    async def _stream_edge(self, request: web.Request) -> web.StreamResponse:
        """The function URL in front of forward_stream (bound before Terraform runs, served after)."""
        if self.function_url is None or self.gateway is None:
            return web.json_response({"Message": "Service Unavailable"}, status=503)
        if self.profile.lambda_invoke_ms:  # the URL invokes the function: the same warm invoke hop, no API hop
            await asyncio.sleep(self.profile.lambda_invoke_ms / 1000)
        started = time.monotonic()
        try:
            return await self.function_url.handle(request)
        finally:  # counted with the other functions (/stats): billed as the time the stream was open
            lambdas = self.gateway.lambdas
            lambdas.invocations[STREAM_FUNCTION] = lambdas.invocations.get(STREAM_FUNCTION, 0) + 1
            billed = max(1, math.ceil((time.monotonic() - started) * 1000))
            lambdas.billed_ms[STREAM_FUNCTION] = lambdas.billed_ms.get(STREAM_FUNCTION, 0) + billed

    @staticmethod
    def local_dir() -> Path:
        path = ROOT / ".local" / "stack-runs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def aws_endpoint(self) -> str:
        external = os.environ.get("AWS_ENDPOINT_URL")
        if external:
            log("using_external_endpoint", endpoint=external)
            return external.rstrip("/")
        self.moto = MotoProcess(self.profile.name)
        return self.moto.start()

    async def start(self) -> dict[str, Any]:
        started = time.monotonic()
        build = load_build(self.options.build_dir)
        check_fresh(build)
        endpoint = await asyncio.to_thread(self.aws_endpoint)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        runtime = RuntimeConfig(python=build.python, runtime_path=build.runtime_path, region=REGION,
                                aws_endpoint_url=endpoint)
        p = self.profile
        self.gateway = Gateway(
            runtime, stats=self.stats, faults=self.faults,
            http_settings=HttpSettings(front_door_delay_s=p.http_api_ms / 1000),
            ws_settings=WsSettings(idle_timeout_s=self.options.ws_idle_timeout,
                                   max_age_s=self.options.ws_max_age,
                                   post_delay_s=p.post_to_connection_ms / 1000,
                                   route_delay_s=p.websocket_api_ms / 1000),
            invoke_delay_s=p.lambda_invoke_ms / 1000)
        ports = await self.gateway.bind(self.options.http_port, self.options.ws_port, self.options.caller_ws_port)
        admin = AdminApi(self.stats, self.faults, self.gateway.lambdas, self.moto)
        admin_runner, admin_port = await serve(admin.app(), "127.0.0.1", self.options.admin_port)
        self.gateway.runners.append(admin_runner)
        stream_app = web.Application(client_max_size=STREAM_REQUEST_MAX)
        stream_app.router.add_route("*", "/{tail:.*}", self._stream_edge)
        stream_runner, stream_port = await serve(stream_app, "127.0.0.1", self.options.stream_port)
        self.gateway.runners.append(stream_runner)
        stream_url = f"http://{ports.host}:{stream_port}"
        log("ports_bound", http=ports.http_port, ws=ports.ws_port, admin=admin_port, moto=endpoint)
        variables = {
            "public_http_url_override": ports.http_url,
            "ws_management_endpoint_override": ports.management_url,
            "public_stream_url_override": stream_url,
            "tunnel_domain": "localhost",
            "subdomain_url_template": f"http://{{tunnel_id}}.localhost:{ports.http_port}",
            **dict(self.options.variables),
        }
        applied = time.monotonic()
        outputs = await asyncio.to_thread(apply_terraform, endpoint, build.build_dir,
                                          self.work_dir / "terraform", variables)
        log("terraform_applied", seconds=round(time.monotonic() - applied, 1))
        auth = await asyncio.to_thread(agent_auth, outputs, endpoint)
        wiring = await asyncio.to_thread(read_wiring, endpoint, REGION, outputs, build, self.work_dir)
        streamed = [spec for spec in wiring.functions if spec.label == STREAM_FUNCTION]
        self.gateway.attach(dataclasses.replace(
            wiring, functions=tuple(spec for spec in wiring.functions if spec.label != STREAM_FUNCTION)))
        await self.gateway.lambdas.start_all()
        if streamed:  # forward_stream runs as Lambda runs it: its wrapper, the layer's Runtime API loop
            self.streaming = StreamingFunction(streamed[0], runtime, environments=self.options.stream_environments)
            await self.streaming.start()
            bandwidth = AWS_STREAM_BANDWIDTH if self.profile.name == "aws" else None
            reserved = await asyncio.to_thread(reserved_concurrency, endpoint, REGION, streamed[0].name)
            self.function_url = FunctionUrl(self.streaming.api, timeout_s=streamed[0].timeout_s, bandwidth=bandwidth,
                                            reserved=reserved)
        self.start_background(wiring, endpoint)
        self.stats.reset()
        if self.moto is not None:
            await asyncio.to_thread(self.moto.reset_stats)
        self.gateway.lambdas.reset_stats()
        self.state = {
            "pid": os.getpid(),
            "http_url": ports.http_url,
            "ws_url": self.gateway.ws_url,
            "stream_url": stream_url if streamed else None,
            # Caller WebSockets (shared/README.md): subdomain form ws://<id>.localhost:<port>/<stage>, and the
            # query form <caller_ws_url>?tunnel=<id> (path routing on)
            "caller_ws_url": self.gateway.caller_ws_url,
            "caller_ws_url_template": self.gateway.caller_ws_url.replace(f"//{ports.host}:", "//{tunnel_id}.localhost:"),
            "aws_endpoint_url": endpoint,
            "admin_url": f"http://127.0.0.1:{admin_port}",
            "management_url": ports.management_url,
            "subdomain_url_template": variables["subdomain_url_template"],
            "connections_table": outputs.get("connections_table_name"),
            "pending_table": outputs.get("pending_table_name"),
            "body_bucket": outputs.get("body_bucket_name"),
            "event_bus": outputs.get("event_bus_name"),
            "function_names": outputs.get("function_names"),
            "auth": auth,
            "region": REGION,
            "profile": self.profile.name,
            "startup_seconds": round(time.monotonic() - started, 1),
        }
        return self.state

    def start_background(self, wiring: Any, endpoint: str) -> None:
        assert self.gateway is not None
        lambdas = self.gateway.lambdas
        delay = self.profile.stream_delivery_ms / 1000
        for mapping in wiring.streams:
            if mapping.enabled:
                poller = StreamPoller(mapping, lambdas, endpoint, wiring.region, delay)
                self.tasks.append(asyncio.create_task(poller.run()))
        queue_delay = self.profile.sqs_fifo_ms / 1000
        for queue in wiring.queues:
            if queue.enabled:
                fifo = FifoPoller(queue, lambdas, endpoint, wiring.region, self.faults, queue_delay)
                self.tasks.append(asyncio.create_task(fifo.run()))
        self.gateway.callers.sqs_send = self.gateway.ws.sqs_send = sqs_sender(endpoint, wiring.region)
        for schedule in wiring.schedules:
            self.tasks.append(asyncio.create_task(run_schedule(
                schedule, lambdas, wiring.account_id, wiring.region, self.options.cleanup_interval)))
        reaper = TtlReaper(wiring.tables, endpoint, wiring.region)
        self.tasks.append(asyncio.create_task(reaper.run(self.options.ttl_interval)))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.gateway is not None:
            await self.gateway.stop()
        if self.streaming is not None:
            await self.streaming.stop()
        if self.moto is not None:
            await asyncio.to_thread(self.moto.stop)
        shutil.rmtree(self.work_dir, ignore_errors=True)


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically, and readable by this user only: the auth block holds the agents' secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def print_state(state: dict[str, Any]) -> None:
    print(f"local stack ready in {state['startup_seconds']} s", flush=True)
    for key in ("http_url", "stream_url", "ws_url", "caller_ws_url", "aws_endpoint_url", "admin_url"):
        print(f"  {key:<17} {state[key]}", flush=True)
    token = f" --token {state['auth']['token']}" if state.get("auth") else ""
    print(f"  agent:            ttf --endpoint {state['ws_url']}{token} --port 3000", flush=True)
    if not state.get("auth"):
        print("  WARNING: allow_anonymous_agents=true: any agent may connect", flush=True)
    print("Ctrl-C stops it.", flush=True)


async def run(options: Options) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = Stack(options)
    owns_state = False
    try:
        starting = asyncio.create_task(stack.start())
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starting, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if starting not in done:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return 130
        waiter.cancel()
        state = starting.result()
        if running_stack(options.state_file) is not None:
            print(f"another stack took {options.state_file} meanwhile; stopping", file=sys.stderr)
            return 1
        write_state(options.state_file, state)
        owns_state = True
        print_state(state)
        await stop.wait()
        return 0
    finally:
        print("stopping local stack...", file=sys.stderr, flush=True)
        await stack.stop()
        if owns_state:
            options.state_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    existing = running_stack(options.state_file)
    if existing is not None:
        print(f"a local stack is already running (pid {existing['pid']}): {existing.get('http_url')} "
              f"{existing.get('ws_url')} (state file {options.state_file})", file=sys.stderr)
        return 1
    try:
        load_profile(options.profile)
        return asyncio.run(run(options))
    except (BuildMissing, WiringError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a port already taken
        print(f"error: cannot listen: {exc} (choose other ports, or 0 for ephemeral ones)", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - terraform failures etc.: a message, not a traceback
        if type(exc).__name__ == "TerraformError":
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
