"""One emulated Lambda "function instance": runs INSIDE the Lambda runtime's interpreter.

Started by :mod:`emulator.lambda_runtime.runtime` as ``python3.12 -I -S emulator/lambda_runtime/worker.py '<config json>'``:
isolated mode, no site-packages, so only what the Lambda runtime would see is importable
(the unzipped function, the unzipped layers' ``python/`` folders, and the runtime's boto3).
This file therefore imports nothing but the standard library, and it is the one module in the
tree that edits ``sys.path``: it must reproduce what Lambda puts there (the function folder,
``/opt/python`` of each layer, the runtime's own packages).

Protocol (JSON lines): the emulator writes ``{"id", "event", "request_id", "deadline_ms"}``
to stdin; the worker answers on its ORIGINAL stdout, one line per invocation:
``{"id", "ok": true, "payload": "<result as JSON text>", "duration_ms"}`` or
``{"id", "ok": false, "error": {"errorMessage", "errorType", "stackTrace"}, "duration_ms"}``.
First line after start: ``{"ready": true}`` or ``{"ready": false, "error": {...}}`` (init failure).
Handler prints (fd 1) are redirected to stderr, which the emulator copies to its log.

Concurrency: AWS runs one invocation per container and adds containers under load. Here one
process serves many invocations at once, each in its own thread ("containers" are threads),
so module-scope state is shared between concurrent invocations — handlers must be thread-safe
(boto3 clients are). A timed-out invocation is answered as an error by the emulator; its thread
cannot be killed and runs to completion in the background.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TextIO


class LambdaContext:
    """The subset of the AWS Lambda Python context object that handlers use."""

    def __init__(self, config: dict[str, Any], request_id: str, deadline_ms: int) -> None:
        self.function_name = config["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = config.get("function_arn", "")
        self.memory_limit_in_mb = int(config.get("memory_mb", 128))
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_payload(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[1:],
    }


def load_handler(spec: str) -> Callable[[Any, Any], Any]:
    module_name, _, func_name = spec.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler {spec!r}: expected <module>.<function>")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, func_name, None)
    if not callable(handler):
        raise AttributeError(f"Handler {func_name!r} missing on module {module_name!r}")
    return handler


class Worker:
    def __init__(self, config: dict[str, Any], out: TextIO) -> None:
        self.config = config
        self.out = out
        self.lock = threading.Lock()
        self.handler: Callable[[Any, Any], Any] | None = None
        self.pool = ThreadPoolExecutor(max_workers=int(config.get("max_concurrency", 256)),
                                       thread_name_prefix="invocation")

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        with self.lock:
            self.out.write(line)
            self.out.flush()

    def init(self) -> None:
        try:
            self.handler = load_handler(self.config["handler"])
        except Exception as exc:  # noqa: BLE001 - reported like Runtime.ImportModuleError
            traceback.print_exc()
            self.send({"ready": False, "error": error_payload(exc, "Runtime.ImportModuleError")})
            return
        self.send({"ready": True})

    def invoke(self, message: dict[str, Any]) -> None:
        started = time.monotonic()
        context = LambdaContext(self.config, message["request_id"], int(message["deadline_ms"]))
        os.environ["_X_AMZN_TRACE_ID"] = ""
        print(f"START RequestId: {context.aws_request_id}", file=sys.stderr, flush=True)
        reply: dict[str, Any] = {"id": message["id"]}
        try:
            result = self.handler(message["event"], context)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a handler error is data for the caller
            traceback.print_exc()
            reply.update(ok=False, error=error_payload(exc))
        else:
            try:
                reply.update(ok=True, payload=json.dumps(result, separators=(",", ":")))
            except (TypeError, ValueError) as exc:
                reply.update(ok=False, error=error_payload(exc, "Runtime.MarshalError"))
        reply["duration_ms"] = (time.monotonic() - started) * 1000
        print(f"END RequestId: {context.aws_request_id}", file=sys.stderr, flush=True)
        self.send(reply)

    def invoke_safely(self, message: dict[str, Any]) -> None:
        try:
            self.invoke(message)
        except BaseException as exc:  # noqa: BLE001 - never lose an answer
            self.send({"id": message.get("id"), "ok": False, "duration_ms": 0,
                       "error": error_payload(exc, "Runtime.Unknown")})

    def serve(self, stdin: TextIO) -> None:
        for line in stdin:
            if not line.strip():
                continue
            message = json.loads(line)
            if self.handler is None:
                self.send({"id": message["id"], "ok": False, "duration_ms": 0,
                           "error": {"errorMessage": "function failed to initialise",
                                     "errorType": "Runtime.ImportModuleError", "stackTrace": []}})
                continue
            self.pool.submit(self.invoke_safely, message)


def setup_paths(config: dict[str, Any]) -> None:
    sys.path[:0] = [p for p in config["paths"] if p]
    os.chdir(config["paths"][0])


def setup_logging() -> None:
    """Like the Lambda Python runtime: the root logger already has a handler (level WARNING)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s\t%(message)s"))
    logging.getLogger().addHandler(handler)


def main() -> None:
    # Ctrl-C on `make stack` reaches the whole process group; a Lambda sandbox never sees SIGINT, and
    # the emulator stops its workers itself (stdin closed, then kill), so the worker ignores it
    # instead of printing a KeyboardInterrupt traceback per function.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = json.loads(sys.argv[1])
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # handler prints go to stderr, never into the protocol stream
    sys.stdout = sys.stderr
    setup_paths(config)
    setup_logging()
    worker = Worker(config, out)
    worker.init()
    worker.serve(sys.stdin)
    os._exit(0)  # stdin closed: the emulator is gone; do not wait for running threads


if __name__ == "__main__":
    main()
