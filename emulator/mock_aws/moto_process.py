"""moto in a process of its own, so its server threads do not share the gateway's GIL.

    python -m emulator.mock_aws.moto_process [--port 0] [--host 127.0.0.1] [--profile local]

Serves the hooked moto of :mod:`emulator.mock_aws.moto_local` (Lambda invoke off, jsonpath cache,
cached routing, the DynamoDB gate with its counting / latency profile / throttle faults) and
prints ``{"event": "listening", "port": N}`` on stdout once bound. It exits when its stdin
reaches EOF or its parent changes (the stack died), and on SIGTERM/SIGINT.

:class:`MotoProcess` starts it from the stack and talks to its ``/_emulator/`` control routes:
DynamoDB call counts (merged into the admin API's /stats), stats reset, fault settings, and
the code zips Terraform uploaded (for ``discover.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from emulator.lambda_runtime.buildinfo import ROOT


def watch_parent(server: Any, parent: int) -> None:
    """Stop serving when stdin closes (the stack exited, however) or the parent pid changes."""
    def stdin_eof() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    def parent_gone() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=stdin_eof, name="stdin-watchdog", daemon=True).start()
    threading.Thread(target=parent_gone, name="parent-watchdog", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.mock_aws.moto_process", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", default="local")
    args = parser.parse_args(argv)

    import logging

    from emulator.mock_aws.moto_local import build_app
    from emulator.mock_aws.moto_speed import KeepAliveServer
    from emulator.profiles import load_profile
    from emulator.stats import Faults, Stats

    logging.basicConfig(level=logging.WARNING, format="moto: %(message)s", stream=sys.stderr)
    parent = os.getppid()
    app = build_app(Stats(), Faults(), load_profile(args.profile))
    server = KeepAliveServer(args.host, args.port, app)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watch_parent(server, parent)
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        # Leave without interpreter finalisation: the stdin watchdog is blocked in a read, and
        # finalising with it there aborts ("could not acquire lock for <stdin>") after a delay.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


class MotoProcess:
    """The stack's handle on ``python -m emulator.mock_aws.moto_process``."""

    def __init__(self, profile: str, host: str = "127.0.0.1", start_timeout: float = 60.0) -> None:
        self.profile = profile
        self.host = host
        self.start_timeout = start_timeout
        self.popen: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self) -> str:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "emulator.mock_aws.moto_process", "--host", self.host, "--port", "0",
             "--profile", self.profile],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT), env=env)
        assert self.popen.stdout is not None
        result: dict[str, Any] = {}

        def read() -> None:
            assert self.popen is not None and self.popen.stdout is not None
            for line in self.popen.stdout:
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("event") == "listening":
                    result.update(data)
                    return

        reader = threading.Thread(target=read, name="moto-process-stdout", daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if "port" not in result:
            self.stop()
            raise RuntimeError("moto process did not start (see its stderr above)")
        self.endpoint = f"http://{self.host}:{result['port']}"
        return self.endpoint

    def stop(self) -> None:
        if self.popen is None:
            return
        popen, self.popen = self.popen, None
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)
        for stream in (popen.stdin, popen.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    # control routes (blocking: call from a thread when on the event loop)
    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.endpoint + path, data=data,
                                         method="GET" if data is None else "POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def dynamodb_calls(self) -> dict[str, int]:
        return dict(self.call("/_emulator/stats")["dynamodb_calls"])

    def reset_stats(self) -> None:
        self.call("/_emulator/stats/reset", {})

    def push_faults(self, settings: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("/_emulator/faults", settings))


def fetch_code(endpoint: str, account_id: str, region: str, *, function: str | None = None,
               layer: str | None = None) -> bytes | None:
    """The zip uploaded to moto for a function or layer version, via the control route; None
    when the endpoint has no such route (LocalStack) or no zip."""
    query = {"account": account_id, "region": region}
    if function:
        query["function"] = function
    if layer:
        query["layer"] = layer
    try:
        with urllib.request.urlopen(f"{endpoint}/_emulator/code?{urllib.parse.urlencode(query)}",
                                    timeout=30) as response:
            if response.headers.get("Content-Type") != "application/zip":
                return None
            return response.read() or None
    except (urllib.error.URLError, OSError, ValueError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
