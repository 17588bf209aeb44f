"""Child processes for `make dev` and the end-to-end tests: own process group, clean stop.

Each child runs in its own session (process group); :meth:`Child.stop` signals that group
only (SIGTERM, then SIGKILL after a grace period), so grandchildren (Lambda workers,
terraform) go too. Stdout lines are collected by a thread and can be awaited with a deadline.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

T = TypeVar("T")


class ChildError(RuntimeError):
    pass


def wait_until(condition: Callable[[], T], timeout: float, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll condition() until it returns something truthy, or raise after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout} s")
        time.sleep(interval)


class Child:
    def __init__(self, argv: Sequence[str], name: str, log_path: Path | None = None,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 echo: bool = False) -> None:
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.echo = echo
        self.popen: subprocess.Popen[str] | None = None
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.history: list[str] = []

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> "Child":
        stderr = open(self.log_path, "ab") if self.log_path else None
        self.popen = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=stderr,
                                      stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                      start_new_session=True, text=True, bufsize=1)
        if stderr is not None:
            stderr.close()
        threading.Thread(target=self.read, name=f"{self.name}-stdout", daemon=True).start()
        return self

    def read(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        for line in self.popen.stdout:
            line = line.rstrip("\n")
            self.history.append(line)
            if self.echo:
                print(f"[{self.name}] {line}", flush=True)
            self.lines.put(line)
        self.lines.put(None)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_line(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """The next stdout line matching predicate; raises if the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildError(f"{self.name}: no matching output within {timeout} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise ChildError(f"{self.name} exited (code {self.popen.wait() if self.popen else '?'})"
                                 f" before the expected output; last lines: {self.history[-5:]}")
            if predicate(line):
                return line

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole group at once (an agent that dies without a goodbye)."""
        if self.popen is not None:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        self.signal_group(signal.SIGKILL)  # leftovers of the group, if any
        return self.popen.returncode

    def __enter__(self) -> "Child":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
