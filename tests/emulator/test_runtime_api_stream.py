"""The layer's Runtime API loop (httptunnel.runtime_api) against the emulator's fake Runtime API.

The loop runs in a thread here (and, in the last tests, as the real process the layer's wrapper
script starts); the fake server decodes what it sends with the emulator's own decoder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from emulator.lambda_runtime import runtime_api_server
from emulator.lambda_runtime.runtime_api_server import (
    Body, Buffered, Done, Failed, FakeRuntimeApi, Head, PendingInvocation,
)
from emulator.lambda_runtime.runtime import FunctionSpec
from emulator.lambda_runtime.stream_worker import StreamingFunction, wrapper_path
from httptunnel import runtime_api
from scripts.package.__main__ import find_python

from .conftest import runtime_config

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "shared" / "httptunnel" / "runtime_bootstrap"
WAIT_S = 10.0  # generous: a deadline for a lost event, never a pause


async def next_event(pending: PendingInvocation) -> Any:
    return await asyncio.wait_for(pending.events.get(), WAIT_S)


@pytest.fixture
async def api():
    server = FakeRuntimeApi()
    await server.start()
    yield server
    await server.close()


def start_loop(api: FakeRuntimeApi, handler, invocations: int) -> asyncio.Future:
    client = runtime_api.Client(api.address)
    return asyncio.ensure_future(asyncio.to_thread(runtime_api.run, client, handler, {}, invocations))


async def test_a_streamed_answer_reaches_the_emulator_piece_by_piece(api: FakeRuntimeApi) -> None:
    seen_first = threading.Event()

    def handler(event: Any, context: runtime_api.Context) -> None:
        stream = context.open_stream(200, {"content-type": "text/event-stream"}, ["s=1; Path=/"])
        stream.write(b"data: one\n\n")
        # the second piece is written only once the emulator holds the first: nothing is buffered
        assert seen_first.wait(WAIT_S), "the first piece never arrived on its own"
        stream.write(b"data: two\n\n")

    loop = start_loop(api, handler, 1)
    pending = api.invoke({"hello": "world"})
    head = await next_event(pending)
    assert isinstance(head, Head)
    assert (head.status_code, head.headers, head.cookies) == (200, {"content-type": "text/event-stream"}, ["s=1; Path=/"])
    first = await next_event(pending)
    assert isinstance(first, Body) and first.data == b"data: one\n\n"
    seen_first.set()
    second, done = await next_event(pending), await next_event(pending)
    assert isinstance(second, Body) and second.data == b"data: two\n\n"
    assert isinstance(done, Done) and done.error is None and done.bytes == 22
    await asyncio.wait_for(loop, WAIT_S)


async def test_the_prelude_is_sent_when_the_stream_opens_not_with_the_first_byte(api: FakeRuntimeApi) -> None:
    headers_seen = threading.Event()

    def handler(event: Any, context: runtime_api.Context) -> None:
        stream = context.open_stream(204)
        assert headers_seen.wait(WAIT_S), "the status did not reach the caller before any body"
        stream.close()  # an empty body ends at once (Node's client hangs here: its issue #95)

    loop = start_loop(api, handler, 1)
    pending = api.invoke({})
    head = await next_event(pending)
    assert isinstance(head, Head) and head.status_code == 204
    headers_seen.set()
    done = await next_event(pending)
    assert isinstance(done, Done) and done.error is None and done.bytes == 0
    await asyncio.wait_for(loop, WAIT_S)


async def test_an_error_after_the_first_byte_arrives_as_trailers(api: FakeRuntimeApi) -> None:
    def handler(event: Any, context: runtime_api.Context) -> None:
        context.open_stream(200).write(b"partial")
        raise ValueError("local app went away")

    loop = start_loop(api, handler, 1)
    pending = api.invoke({})
    assert isinstance(await next_event(pending), Head)
    assert (await next_event(pending)).data == b"partial"
    done = await next_event(pending)
    assert isinstance(done, Done) and done.bytes == 7
    assert done.error is not None and done.error["errorType"] == "ValueError"
    assert done.error["body"]["errorMessage"] == "local app went away"
    assert any("ValueError" in line for line in done.error["body"]["trace"])
    await asyncio.wait_for(loop, WAIT_S)


async def test_buffered_answers_errors_and_a_failing_invocation_never_end_the_loop(api: FakeRuntimeApi) -> None:
    def handler(event: Any, context: runtime_api.Context) -> Any:
        case = event["case"]
        if case == "raise":
            raise KeyError("missing")
        if case == "unserialisable":
            return {1, 2}
        if case == "text-to-stream":
            context.open_stream(200).write("a str, not bytes")  # type: ignore[arg-type]
        if case == "twice":
            context.open_stream(200)
            context.open_stream(200)
        return {"ok": case, "request_id": context.aws_request_id, "left": context.get_remaining_time_in_millis() > 0}

    loop = start_loop(api, handler, 5)
    outcomes = {}
    for case in ("raise", "unserialisable", "text-to-stream", "twice", "fine"):
        pending = api.invoke({"case": case})
        event = await next_event(pending)
        if isinstance(event, Head):  # the stream cases: the failure follows as trailers
            event = await next_event(pending)
        outcomes[case] = (event, pending.request_id)
    await asyncio.wait_for(loop, WAIT_S)

    raised, _ = outcomes["raise"]
    assert isinstance(raised, Failed) and raised.error["errorType"] == "KeyError"
    assert raised.error["errorMessage"] == "'missing'" and raised.error["stackTrace"]
    unserialisable, _ = outcomes["unserialisable"]
    assert isinstance(unserialisable, Failed) and unserialisable.error["errorType"] == "Runtime.MarshalError"
    for case, error_type in (("text-to-stream", "TypeError"), ("twice", "RuntimeError")):
        done, _ = outcomes[case]
        assert isinstance(done, Done) and done.error is not None and done.error["errorType"] == error_type, case
    fine, request_id = outcomes["fine"]
    assert isinstance(fine, Buffered)
    assert fine.payload == b'{"ok":"fine","request_id":"%s","left":true}' % request_id.encode()


async def test_a_caller_that_goes_away_is_not_signalled_to_the_function(api: FakeRuntimeApi) -> None:
    """AWS does not stop a stream when its caller disconnects: the function writes on, unaware."""
    written = []

    def handler(event: Any, context: runtime_api.Context) -> str:
        if event.get("then"):
            return "next invocation served"
        stream = context.open_stream(200)
        for i in range(200):
            stream.write(b"x" * 1024)
            written.append(i)
        return "ignored: the stream is the answer"

    loop = start_loop(api, handler, 2)
    pending = api.invoke({})
    assert isinstance(await next_event(pending), Head)
    pending.detach()  # the caller hangs up
    after = api.invoke({"then": True})
    assert (await next_event(after)).payload == b'"next invocation served"'
    await asyncio.wait_for(loop, WAIT_S)
    assert len(written) == 200  # every write succeeded: nothing told the function


def interpreter() -> str:
    """The Lambda runtime's Python (3.12) when this machine has it, as the local stack runs it."""
    return find_python("3.12") or sys.executable


async def run_wrapper(api: FakeRuntimeApi, task_root: Path, handler: str) -> asyncio.subprocess.Process:
    env = {"PATH": os.environ.get("PATH", ""), "AWS_LAMBDA_RUNTIME_API": api.address, "_HANDLER": handler,
           "LAMBDA_TASK_ROOT": str(task_root), "AWS_LAMBDA_FUNCTION_NAME": "forward_stream"}
    return await asyncio.create_subprocess_exec("sh", str(WRAPPER), interpreter(), "/var/runtime/bootstrap.py",
                                                cwd=task_root, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_the_layers_wrapper_runs_the_shipped_loop_in_its_own_process(api: FakeRuntimeApi, tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text(
        "import httptunnel.runtime_api as api\n"
        "def handler(event, context):\n"
        "    stream = context.open_stream(200, {'content-type': 'text/plain'})\n"
        "    for word in event['words']:\n"
        "        stream.write(word.encode())\n"
        "    return None\n"
    )
    process = await run_wrapper(api, tmp_path, "handler.handler")
    try:
        pending = api.invoke({"words": ["streamed ", "by ", "the ", "zip's ", "own ", "loop"]})
        events = [await next_event(pending)]
        while not isinstance(events[-1], (Done, Failed)):
            events.append(await next_event(pending))
        assert isinstance(events[0], Head) and events[0].headers == {"content-type": "text/plain"}
        assert b"".join(e.data for e in events if isinstance(e, Body)) == b"streamed by the zip's own loop"
        assert isinstance(events[-1], Done) and events[-1].error is None
    finally:
        await stop(process)


async def test_a_handler_that_cannot_be_imported_is_an_init_error_and_the_runtime_exits(
        api: FakeRuntimeApi, tmp_path: Path) -> None:
    process = await run_wrapper(api, tmp_path, "missing.handler")
    try:
        code = await asyncio.wait_for(process.wait(), WAIT_S)
        assert code == 1
        assert api.init_error is not None and api.init_error["errorType"] == "Runtime.ImportModuleError"
        assert "missing" in api.init_error["errorMessage"]
    finally:
        await stop(process)


async def test_a_stream_past_lambdas_200_mb_cap_is_cut(api: FakeRuntimeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_api_server, "STREAM_MAX", 10)  # 200 MB in the emulator; 10 bytes here

    def handler(event: Any, context: runtime_api.Context) -> str:
        if event.get("then"):
            return "still serving"
        stream = context.open_stream(200)
        stream.write(b"0123456789")
        stream.write(b"!")  # one byte past the cap
        return "unreached"

    loop = start_loop(api, handler, 2)
    pending = api.invoke({})
    events = [await next_event(pending) for _ in range(3)]
    assert [type(e) for e in events] == [Head, Body, Failed]
    assert events[2].error["errorType"] == "Function.ResponseSizeTooLarge"
    after = api.invoke({"then": True})
    assert (await next_event(after)).payload == b'"still serving"'
    await asyncio.wait_for(loop, WAIT_S)


async def test_a_streaming_function_runs_its_layers_wrapper_one_invocation_per_environment(tmp_path: Path) -> None:
    """The stack's way to run a streaming function: the wrapper its environment names, found in its layer."""
    layer = tmp_path / "layer"
    shutil.copytree(ROOT / "shared" / "httptunnel", layer / "python" / "httptunnel",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(
        "import os, pathlib, time\n"
        "def handler(event, context):\n"
        "    here = pathlib.Path(event['barrier'])\n"
        "    (here / str(os.getpid())).touch()\n"
        "    deadline = time.monotonic() + 10\n"  # both invocations must run at once: two environments
        "    while len(list(here.iterdir())) < 2 and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    stream = context.open_stream(200)\n"
        "    stream.write(os.environ['AWS_LAMBDA_FUNCTION_NAME'].encode() + b' ' + str(os.getpid()).encode())\n"
    )
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    spec = FunctionSpec(name="http-tunnel-forward-stream", handler="app.handler", code_dir=code, layer_dirs=(layer,),
                        environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/python/httptunnel/runtime_bootstrap"},
                        timeout_s=30, label="forward_stream")
    function = StreamingFunction(spec, runtime_config(), environments=2, log_line=lambda name, line: None)
    await function.start()
    try:
        pendings = [await function.invoke({"barrier": str(barrier)}) for _ in range(2)]
        bodies = []
        for pending in pendings:
            events = [await next_event(pending)]
            while not isinstance(events[-1], (Done, Failed)):
                events.append(await next_event(pending))
            assert isinstance(events[-1], Done) and events[-1].error is None, events
            bodies.append(b"".join(e.data for e in events if isinstance(e, Body)).decode())
        assert all(body.startswith("http-tunnel-forward-stream ") for body in bodies)
        assert len({body.split()[1] for body in bodies}) == 2  # one invocation per environment, at once
    finally:
        await function.stop()
    assert all(process.returncode is not None for process in function.processes)


def test_the_wrapper_must_be_in_a_layer(tmp_path: Path) -> None:
    spec = FunctionSpec(name="f", handler="app.handler", code_dir=tmp_path, layer_dirs=(tmp_path,),
                        environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/python/httptunnel/runtime_bootstrap"})
    with pytest.raises(FileNotFoundError, match="none of the function's layers"):
        wrapper_path(spec)
    with pytest.raises(ValueError, match="/opt"):
        wrapper_path(FunctionSpec(name="f", handler="a.b", code_dir=tmp_path,
                                  environment={"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/w"}))
