"""Emulated Lambda service: one worker subprocess per function, many invocations at once.

Each function runs as AWS would run it: the packaged zip and layer zips unzipped to a
folder, the Lambda runtime's interpreter (from build/local/build.json) started in isolated
mode (``-I -S``: the emulator's virtualenv is invisible), ``sys.path`` = function dir, each
layer's ``python/``, the runtime's own packages (boto3); environment = exactly what
Terraform configured plus what Lambda injects. Invocations travel as JSON lines (see
:mod:`emulator.lambda_runtime.worker`); the worker runs each in a thread, so "containers" are threads.
The function timeout is enforced here: the caller gets ``Task timed out`` after it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from httptunnel.limits import LAMBDA_PAYLOAD_MAX

LOG = logging.getLogger("emulator.lambda_runtime.runtime")
WORKER_SCRIPT = Path(__file__).resolve().parent / "worker.py"
INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
STREAM_LIMIT = 4 * LAMBDA_PAYLOAD_MAX  # JSON escaping can grow a 6 MB result


@dataclass(frozen=True)
class FunctionSpec:
    """What Terraform configured for one function (read back from the Lambda API)."""

    name: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 3.0
    memory_mb: int = 128
    runtime: str = "python3.12"
    arn: str = ""
    label: str = ""  # short name (forward, connect...) used as the stats key

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class RuntimeConfig:
    python: str  # interpreter of the Lambda runtime version
    runtime_path: str  # what the managed runtime provides (boto3)
    region: str = "us-east-1"
    aws_endpoint_url: str = ""
    management_endpoint: str = ""
    max_concurrency: int = 256


@dataclass(frozen=True)
class Invocation:
    """Outcome of one invoke. ``error`` is the Lambda error object when the function failed."""

    function: str
    payload: str | None  # the result as JSON text when ok
    error: dict[str, Any] | None
    duration_ms: float
    billed_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> Any:
        return json.loads(self.payload) if self.payload is not None else None


class PayloadTooLarge(Exception):
    """The event is bigger than Lambda's 6 MB synchronous payload limit."""


def unzip(zip_path: Path | None, data: bytes | None, dest: Path) -> Path:
    """Unzip a function or layer archive (from bytes or a file) into dest."""
    import io

    dest.mkdir(parents=True, exist_ok=True)
    source = io.BytesIO(data) if data is not None else zip_path
    with zipfile.ZipFile(source) as zf:  # type: ignore[arg-type]
        zf.extractall(dest)
    return dest


def lambda_environment(spec: FunctionSpec, config: RuntimeConfig) -> dict[str, str]:
    """Exactly the function's configured env + what the Lambda service injects."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "LAMBDA_RUNTIME_DIR": config.runtime_path,
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "PYTHONUNBUFFERED": "1",
        **FAKE_CREDENTIALS,
    }
    if config.aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = config.aws_endpoint_url
    if config.management_endpoint:
        env["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = config.management_endpoint
    env.update(spec.environment)
    return env


def worker_paths(spec: FunctionSpec, config: RuntimeConfig) -> list[str]:
    paths = [str(spec.code_dir)]
    for layer in spec.layer_dirs:
        paths.append(str(layer / "python"))
        paths.append(str(layer / "python" / "lib" / f"{spec.runtime}" / "site-packages"))
    paths.append(config.runtime_path)
    return paths


class Worker:
    """The subprocess serving one function."""

    def __init__(self, spec: FunctionSpec, config: RuntimeConfig,
                 log_line: Callable[[str, str], None]) -> None:
        self.spec = spec
        self.config = config
        self.log_line = log_line
        self.process: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.init_error: dict[str, Any] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.start_lock = asyncio.Lock()
        self.init_ms: float | None = None  # spawn to ready of the current worker: its cold start
        self.cold_starts = 0
        self.in_flight = 0  # invocations between their arrival and their answer
        # Concurrency: an invocation waits here for a free "container" BEFORE its clock starts,
        # as in Lambda the timeout counts from the start of execution, not from the queue.
        self.slots = asyncio.Semaphore(config.max_concurrency)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def ensure_started(self) -> None:
        async with self.start_lock:
            if self.alive:
                return
            await self.start()

    async def start(self) -> None:
        started = time.monotonic()
        self.cold_starts += 1
        worker_config = {"function_name": self.spec.name, "function_arn": self.spec.arn,
                         "handler": self.spec.handler, "memory_mb": self.spec.memory_mb,
                         "paths": worker_paths(self.spec, self.config),
                         "max_concurrency": self.config.max_concurrency}
        self.process = await asyncio.create_subprocess_exec(
            self.config.python, "-I", "-S", str(WORKER_SCRIPT), json.dumps(worker_config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=str(self.spec.code_dir),
            env=lambda_environment(self.spec, self.config), limit=STREAM_LIMIT)
        self.tasks = [asyncio.create_task(self.copy_stderr(self.process)),
                      asyncio.create_task(self.read_replies(self.process))]
        ready = asyncio.get_running_loop().create_future()
        self.pending[0] = ready
        try:
            first = await asyncio.wait_for(ready, INIT_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.init_error = {"errorType": "Runtime.InitTimeout",
                               "errorMessage": f"init did not finish within {INIT_TIMEOUT_S} s"}
            return
        self.init_error = None if first.get("ready") else first.get("error")
        self.init_ms = round((time.monotonic() - started) * 1000, 1)
        if self.init_error:
            LOG.error(json.dumps({"event": "lambda_init_failed", "function": self.spec.name,
                                  "error": self.init_error.get("errorMessage")}))

    async def copy_stderr(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while True:
            try:
                line = await process.stderr.readline()
            except ValueError:  # a single enormous line: skip it
                continue
            if not line:
                return
            self.log_line(self.spec.name, line.decode("utf-8", "replace").rstrip("\n"))

    async def read_replies(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            line = await process.stdout.readline()
            if not line:
                break
            message = json.loads(line)
            future = self.pending.pop(message.get("id", 0), None)
            if future is not None and not future.done():
                future.set_result(message)
        await process.wait()
        self.fail_pending(f"worker exited with code {process.returncode}")

    def fail_pending(self, reason: str) -> None:
        crashed = {"ok": False, "duration_ms": 0,
                   "error": {"errorType": "Runtime.ExitError", "errorMessage": reason}}
        for key, future in list(self.pending.items()):
            if not future.done():
                future.set_result({"ready": False, "error": crashed["error"]} if key == 0 else crashed)
        self.pending.clear()

    async def invoke(self, event_json: str, timeout_s: float) -> dict[str, Any]:
        self.in_flight += 1
        try:
            return await self._invoke(event_json, timeout_s)
        finally:
            self.in_flight -= 1

    async def _invoke(self, event_json: str, timeout_s: float) -> dict[str, Any]:
        await self.ensure_started()
        error = self.init_error
        if error is not None:
            # This invocation fails with the init error, and the sandbox is not reused: Lambda
            # runs init again on the next invocation ("If the Init phase fails, Lambda ... retries
            # the Init phase at the time of the first function invocation", docs: Lambda runtime
            # environment lifecycle). Keeping the failed worker failed every later call.
            await self.discard(error)
            return {"ok": False, "error": error, "duration_ms": 0}
        async with self.slots:
            return await self.run(event_json, timeout_s)

    async def run(self, event_json: str, timeout_s: float) -> dict[str, Any]:
        process = self.process
        assert process is not None and process.stdin is not None
        invocation_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[invocation_id] = future
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + timeout_s) * 1000)
        line = ('{"id":%d,"request_id":"%s","deadline_ms":%d,"event":%s}\n'
                % (invocation_id, request_id, deadline_ms, event_json))
        process.stdin.write(line.encode("utf-8"))

        async def written_then_answered() -> dict[str, Any]:
            await process.stdin.drain()  # inside the deadline: a worker that stops reading its stdin
            return await asyncio.shield(future)  # (stuck, or its pipes full) must not hang the caller

        try:
            return await asyncio.wait_for(written_then_answered(), timeout_s)
        except asyncio.TimeoutError:
            self.pending.pop(invocation_id, None)
            return {"ok": False, "duration_ms": timeout_s * 1000, "timed_out": True,
                    "error": {"errorType": "Sandbox.Timedout",
                              "errorMessage": f"Task timed out after {timeout_s:.2f} seconds"}}
        except (ConnectionError, BrokenPipeError) as exc:
            self.pending.pop(invocation_id, None)
            return {"ok": False, "duration_ms": 0,
                    "error": {"errorType": "Runtime.ExitError", "errorMessage": str(exc)}}

    async def discard(self, error: dict[str, Any]) -> None:
        """Drop a worker whose init failed (once, however many invocations saw that failure)."""
        async with self.start_lock:
            if self.init_error is error:
                await self._drop()

    async def recycle(self) -> bool:
        """Drop an idle worker, as Lambda reclaims an idle sandbox: the next invocation starts a
        fresh one (interpreter, handler import, first call). False when invocations are in flight."""
        async with self.start_lock:
            if self.in_flight:
                return False
            await self._drop()
            return True

    async def _drop(self) -> None:
        """Stop the worker and forget it: the next invocation starts (and initialises) a new one."""
        await self.stop()
        self.process = None
        self.init_error = None

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 2.0)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.fail_pending("stopped")


def default_log_line(function: str, line: str) -> None:
    sys.stderr.write(f"{function} | {line}\n")


class LambdaService:
    """All functions of the stack; counts invocations and billed milliseconds."""

    def __init__(self, config: RuntimeConfig,
                 log_line: Callable[[str, str], None] = default_log_line,
                 invoke_delay_s: float = 0.0) -> None:
        self.config = config
        self.log_line = log_line
        self.invoke_delay_s = invoke_delay_s
        self.workers: dict[str, Worker] = {}
        self.arns: dict[str, str] = {}
        self.invocations: dict[str, int] = {}
        self.billed_ms: dict[str, int] = {}
        # Set by stop_all: an invocation asked after it (a WebSocket handler's $disconnect running in
        # its finally while the event loop cancels what is left at shutdown) fails at once instead of
        # starting a worker process during loop teardown (tests/emulator/test_caller_api.py stalled there)
        self.stopped = False

    def add(self, spec: FunctionSpec) -> None:
        self.workers[spec.name] = Worker(spec, self.config, self.log_line)
        if spec.arn:
            self.arns[spec.arn] = spec.name

    def resolve(self, name_or_arn: str) -> str:
        if name_or_arn in self.workers:
            return name_or_arn
        if name_or_arn in self.arns:
            return self.arns[name_or_arn]
        short = name_or_arn.split(":function:")[-1].split(":")[0]
        if short in self.workers:
            return short
        for name, worker in self.workers.items():  # the stats key: forward, connect, ...
            if worker.spec.key == name_or_arn:
                return name
        raise KeyError(f"no such function: {name_or_arn}")

    async def start_all(self) -> None:
        await asyncio.gather(*(w.ensure_started() for w in self.workers.values()))

    async def stop_all(self) -> None:
        self.stopped = True
        await asyncio.gather(*(w.stop() for w in self.workers.values()))

    def reset_stats(self) -> None:
        self.invocations.clear()
        self.billed_ms.clear()

    async def recycle(self, names: list[str] | None = None) -> dict[str, bool]:
        """Reclaim idle workers (all, or ``names``): the next invocation of each is a cold start."""
        chosen = [self.workers[self.resolve(n)] for n in names] if names else list(self.workers.values())
        done = await asyncio.gather(*(w.recycle() for w in chosen))
        return {w.spec.key: ok for w, ok in zip(chosen, done, strict=True)}

    def cold_starts(self) -> dict[str, dict[str, Any]]:
        """Per function (stats key): workers started so far, and the last one's spawn-to-ready ms."""
        return {w.spec.key: {"cold_starts": w.cold_starts, "last_init_ms": w.init_ms}
                for w in self.workers.values()}

    async def invoke(self, name_or_arn: str, event: Any) -> Invocation:
        """Synchronous (RequestResponse) invoke. Raises PayloadTooLarge for a > 6 MB event."""
        name = self.resolve(name_or_arn)
        worker = self.workers[name]
        if self.stopped:
            return Invocation(name, None, {"errorType": "ServiceStopped", "errorMessage": "the emulator is stopping"},
                              0.0, 0)
        event_json = json.dumps(event, separators=(",", ":"))
        if len(event_json.encode("utf-8")) > LAMBDA_PAYLOAD_MAX:
            raise PayloadTooLarge(f"event of {len(event_json)} bytes exceeds {LAMBDA_PAYLOAD_MAX}")
        if self.invoke_delay_s:
            await asyncio.sleep(self.invoke_delay_s)
        reply = await worker.invoke(event_json, worker.spec.timeout_s)
        duration = float(reply.get("duration_ms", 0))
        billed = max(1, math.ceil(duration))
        key = worker.spec.key
        self.invocations[key] = self.invocations.get(key, 0) + 1
        self.billed_ms[key] = self.billed_ms.get(key, 0) + billed
        if reply.get("ok"):
            return Invocation(name, reply["payload"], None, duration, billed)
        return Invocation(name, None, reply.get("error") or {"errorType": "Unknown"}, duration, billed)
