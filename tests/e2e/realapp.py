"""A real third-party WSGI app for the end-to-end tests: httpbin under gunicorn, both pinned in
tests/realapp/requirements.txt and installed into their own virtualenv (.venv-realapp, made by
`make test`): httpbin pins greenlet<3 on Python < 3.12, which Playwright's greenlet excludes, so
the two cannot share .venv. Served on 127.0.0.1, ephemeral port."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.harness.proc import Proc

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = ROOT / ".venv-realapp" / "bin" / "gunicorn"
_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def start_httpbin(log_dir: Path) -> tuple[Proc, int]:
    if not GUNICORN.exists():
        raise RuntimeError(f"{GUNICORN} is missing: run `make test` (or make .venv-realapp/.installed)")
    argv = [str(GUNICORN), "--bind", "127.0.0.1:0", "--workers", "2", "--access-logfile", "-",
            "--error-logfile", "/dev/stdout", "httpbin:app"]
    proc = Proc(argv, "httpbin", log_dir / "httpbin.log").start()
    line = proc.wait_line(lambda l: _LISTENING.search(l) is not None, 60)
    match = _LISTENING.search(line)
    assert match is not None
    return proc, int(match.group(1))
