"""The emulated Lambda worker and Ctrl-C (issue 28): `make stack` stopped with Ctrl-C sends SIGINT
to the whole process group; a worker must not answer it with a KeyboardInterrupt traceback (a
Lambda sandbox never sees SIGINT), and keeps serving until the emulator stops it."""

from __future__ import annotations

import json
import signal

from emulator.lambda_runtime.runtime import FunctionSpec, Worker
from tests.emulator.conftest import TOYS, runtime_config


async def test_sigint_is_ignored_without_a_traceback_and_the_worker_still_serves():
    lines: list[str] = []
    spec = FunctionSpec(name="toy-http", handler="app.handler", code_dir=TOYS / "http")
    worker = Worker(spec, runtime_config(), lambda name, line: lines.append(line))
    await worker.ensure_started()
    try:
        assert worker.alive and worker.process is not None
        worker.process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does to the group
        event = {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}}}
        reply = await worker.invoke(json.dumps(event), 10)
        assert worker.alive, "the worker died of SIGINT"
        assert reply.get("ok") is True, reply
    finally:
        await worker.stop()
    assert not [line for line in lines if "KeyboardInterrupt" in line or "Traceback" in line], lines
