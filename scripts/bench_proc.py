"""Child processes for the benchmark and the load suite: own process group, deadline waits, clean stop.

Every process is started in its own session (process group) and stopped by signalling that
group only: SIGTERM, then SIGKILL after a grace period. `Proc` is a context manager, so an
exception or Ctrl-C in the caller still stops it.
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

import psutil


class ProcError(RuntimeError):
    pass


class Proc:
    """A child process in its own process group whose stdout lines can be awaited."""

    def __init__(self, argv: Sequence[str], name: str, log_dir: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.name = name
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_dir = log_dir
        self.popen: subprocess.Popen | None = None
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.history: list[str] = []
        self._reader: threading.Thread | None = None
        self.stderr_path = log_dir / f"{name}.stderr.log"

    # lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Proc":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, start_new_session=True, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-stdout", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.popen and self.popen.stdout
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    @property
    def pid(self) -> int:
        if not self.popen:
            raise ProcError(f"{self.name} not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace_s: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process group, wait up to grace_s, then SIGKILL the group."""
        if not self.popen:
            return None
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left in the group (grandchildren) goes too
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        if getattr(self, "_stderr", None):
            self._stderr.close()
        return self.popen.returncode

    def kill(self) -> None:
        """Hard kill (SIGKILL) of the process group: a crash, as in the fault tests."""
        self.stop(grace_s=5.0, sig=signal.SIGKILL)

    def __enter__(self) -> "Proc":
        return self.start() if self.popen is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # output --------------------------------------------------------------------------------
    def wait_line(self, match: Callable[[str], bool], timeout_s: float) -> str:
        """The first stdout line (from now) for which match() is true, or ProcError at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProcError(f"{self.name}: no matching output within {timeout_s:.0f}s; "
                                f"last lines: {self.history[-5:]}; stderr tail: {self.stderr_tail()}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.lines.put(None)
                raise ProcError(f"{self.name} exited ({self.popen.poll() if self.popen else '?'}) before the "
                                f"expected output; stderr tail: {self.stderr_tail()}")
            self.history.append(line)
            if match(line):
                return line

    def wait_json(self, match: Callable[[dict], bool], timeout_s: float) -> dict:
        def ok(line: str) -> bool:
            try:
                data = json.loads(line)
            except ValueError:
                return False
            return isinstance(data, dict) and match(data)

        return json.loads(self.wait_line(ok, timeout_s))

    def stderr_tail(self, n: int = 2000) -> str:
        try:
            return self.stderr_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.05, what: str = "condition") -> Any:
    """Poll predicate until it returns a truthy value or the deadline passes (then ProcError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ProcError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def tree_rss(pid: int) -> int:
    """Resident set size of a process and its descendants, in bytes (0 if gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class RssSampler:
    """Samples tree_rss(pid) every interval in a thread; .peak is the maximum seen."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
