"""`make stack` started twice, and `make dev` (python -m scripts.dev) start-up and clean Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import aiohttp
import psutil

from scripts.harness.proc import Proc, wait_until
from tests.e2e.client import request
from tests.e2e.conftest import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_second_stack_says_the_first_is_running(stack):
    proc = subprocess.run([sys.executable, "-m", "emulator.stack", "--state-file", str(stack.state_file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "already running" in proc.stderr
    assert json.loads(stack.state_file.read_text())["http_url"] == stack.http_url  # untouched


async def test_dev_serves_the_sample_app_and_ctrl_c_leaves_nothing(stack, tmp_path):
    argv = [sys.executable, "-m", "scripts.dev", "--state-file", str(stack.state_file),
            "--app-port", str(free_port())]
    dev = Proc(argv, "dev", tmp_path / "dev.log", cwd=ROOT).start()
    try:
        line = dev.wait_line(lambda l: '"dev_ready"' in l, 60)
        ready = json.loads(line)
        descendants = psutil.Process(dev.pid).children(recursive=True)
        assert len(descendants) >= 2  # the sample app and ttf (the stack is reused here)
        async with aiohttp.ClientSession() as session:
            created = await request(session, "POST", ready["public_url"], "/api/todos",
                                    json={"title": "try the tunnel"})
            assert created.status == 201
            listed = await request(session, "GET", ready["public_url"], "/api/todos")
            assert [t["title"] for t in json.loads(listed.body)] == ["try the tunnel"]
            about = await request(session, "GET", ready["public_url"], "/about")
            assert about.status == 200 and b'href="/static/app.css"' in about.body
        dev.popen.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
        assert dev.popen.wait(timeout=30) == 0
        wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                   for p in descendants), 10, 0.1, "children of make dev gone")
        assert psutil.pid_exists(json.loads(stack.state_file.read_text())["pid"])  # reused, not stopped
    finally:
        dev.stop()
