"""A function that streams, run locally as Lambda runs it: the layer's wrapper, the layer's loop.

Buffered functions run in :mod:`emulator.lambda_runtime.worker` (threads as containers). A
streaming function instead runs what its zip ships: the ``AWS_LAMBDA_EXEC_WRAPPER`` script named
in its environment (``/opt/python/httptunnel/runtime_bootstrap``, looked up in the unzipped
layers) started with the runtime's interpreter, which execs ``httptunnel.runtime_api`` against a
:class:`FakeRuntimeApi`. Each process is one execution environment serving one invocation at a
time, as on Lambda; a process that exits (an init error) is started again at the next invocation,
as Lambda re-runs init. Environment: the function's own plus what Lambda injects
(:func:`lambda_environment`), ``AWS_LAMBDA_RUNTIME_API``, and the runtime's boto3 on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Callable

from emulator.lambda_runtime.runtime import FunctionSpec, RuntimeConfig, default_log_line, lambda_environment
from emulator.lambda_runtime.runtime_api_server import FakeRuntimeApi, PendingInvocation

DEFAULT_WRAPPER = "/opt/python/httptunnel/runtime_bootstrap"


def wrapper_path(spec: FunctionSpec) -> Path:
    """Where the function's AWS_LAMBDA_EXEC_WRAPPER (an /opt path on Lambda) is among the unzipped layers."""
    configured = spec.environment.get("AWS_LAMBDA_EXEC_WRAPPER", DEFAULT_WRAPPER)
    if not configured.startswith("/opt/"):
        raise ValueError(f"AWS_LAMBDA_EXEC_WRAPPER must name a file in a layer (/opt/...), not {configured!r}")
    relative = configured[len("/opt/"):]
    for layer in spec.layer_dirs:
        if (layer / relative).is_file():
            return layer / relative
    raise FileNotFoundError(f"{configured} is in none of the function's layers")


class StreamingFunction:
    def __init__(self, spec: FunctionSpec, config: RuntimeConfig, environments: int = 4,
                 log_line: Callable[[str, str], None] = default_log_line) -> None:
        self.spec = spec
        self.config = config
        self.environments = environments
        self.log_line = log_line
        self.api = FakeRuntimeApi(spec.arn or f"arn:aws:lambda:{config.region}:000000000000:function:{spec.name}")
        self.processes: list[asyncio.subprocess.Process] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.api.start()
        await self._fill()

    def environment(self) -> dict[str, str]:
        env = lambda_environment(self.spec, self.config)
        env["AWS_LAMBDA_RUNTIME_API"] = self.api.address
        env["PYTHONPATH"] = self.config.runtime_path  # the managed runtime's own boto3, after the wrapper's paths
        return env

    async def _fill(self) -> None:
        """Start environments until ``environments`` are alive (a dead one is Lambda's next init)."""
        self.processes = [p for p in self.processes if p.returncode is None]
        wrapper = wrapper_path(self.spec)
        while len(self.processes) < self.environments:
            process = await asyncio.create_subprocess_exec(
                "sh", str(wrapper), self.config.python, "/var/runtime/bootstrap",
                cwd=str(self.spec.code_dir), env=self.environment(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            self.processes.append(process)
            for pipe in (process.stdout, process.stderr):
                task = asyncio.create_task(self._copy(pipe))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _copy(self, pipe: asyncio.StreamReader | None) -> None:
        if pipe is None:
            return
        while line := await pipe.readline():
            self.log_line(self.spec.key, line.decode("utf-8", "replace").rstrip("\n"))

    async def invoke(self, event: object) -> PendingInvocation:
        await self._fill()
        return self.api.invoke(event, self.spec.timeout_s)

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
        for process in self.processes:
            await process.wait()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5.0)
        await self.api.close()
