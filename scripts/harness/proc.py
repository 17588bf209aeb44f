"""One process harness for the local stack, `make dev`, the bench and the tests.

Every child runs in its own session (process group) and is stopped by signalling that group
only: SIGTERM, then SIGKILL after a grace period, so grandchildren (Lambda workers, moto,
terraform) go too. Stdout lines are collected by a thread and can be awaited with a deadline;
stderr goes to a log file when one is given. `Proc` is a context manager, so an exception or
Ctrl-C in the caller still stops it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from scripts.harness.wait import WaitTimeout, wait_until

__all__ = ["Proc", "ProcError", "WaitTimeout", "wait_until"]


class ProcError(RuntimeError):
    """A child exited, or printed nothing that matched, before its deadline."""


class Proc:
    """A child process in its own process group whose stdout lines can be awaited."""

    def __init__(self, argv: Sequence[str], name: str, log_path: Path | None = None,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None, echo: bool = False) -> None:
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path  # stderr goes here (appended); None = inherited
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.echo = echo
        self.popen: subprocess.Popen[str] | None = None
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.history: list[str] = []

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Proc":
        stderr = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stderr = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                self.argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True, text=True, bufsize=1)
        finally:
            if stderr is not None:
                stderr.close()  # the child holds its own descriptor
        threading.Thread(target=self._read, name=f"{self.name}-stdout", daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        for line in self.popen.stdout:
            line = line.rstrip("\n")
            if self.echo:
                print(f"[{self.name}] {line}", flush=True)
            self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ProcError(f"{self.name} not started")
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process group, wait up to `grace` seconds, then SIGKILL what is left of the group."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal_group(sig)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # the child if it is still there, and any grandchildren
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, as in the fault tests."""
        self.stop(grace=5.0, sig=signal.SIGKILL)

    def __enter__(self) -> "Proc":
        return self.start() if self.popen is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # output --------------------------------------------------------------------------------
    def wait_line(self, match: Callable[[str], bool], timeout: float) -> str:
        """The next stdout line (from now) for which match() is true; ProcError at the deadline or exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProcError(f"{self.name}: no matching output within {timeout:.0f} s; "
                                f"last lines: {self.history[-5:]}; stderr tail: {self.stderr_tail()}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.lines.put(None)  # later waits fail at once too
                code = self.popen.wait() if self.popen else "?"
                raise ProcError(f"{self.name} exited (code {code}) before the expected output; "
                                f"last lines: {self.history[-5:]}; stderr tail: {self.stderr_tail()}")
            self.history.append(line)
            if match(line):
                return line

    def wait_json(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """The next stdout line that is a JSON object for which match() is true."""
        def ok(line: str) -> bool:
            try:
                data = json.loads(line)
            except ValueError:
                return False
            return isinstance(data, dict) and match(data)

        result: dict[str, Any] = json.loads(self.wait_line(ok, timeout))
        return result

    def stderr_tail(self, n: int = 2000) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""
