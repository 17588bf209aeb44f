"""`ttf` as a real subprocess: JSON lines, argument errors, Ctrl-C drain, RSS with 64 in flight."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from ttf.state import state_file_name

from conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def ttf_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from ttf.main import main; sys.exit(main())", *args]


def ttf_env(state_dir: Path) -> dict[str, str]:
    """No TTF_* from the outside; the saved URL goes to state_dir, the inspector to a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTF_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "cli"), str(ROOT / "shared")])
    env["TTF_STATE_DIR"] = str(state_dir)
    env["TTF_INSPECT"] = "127.0.0.1:0"
    return env


class Ttf:
    """A running ttf subprocess whose stdout JSON lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(json.loads(raw))

    def events(self, name: str) -> list[dict]:
        return [line for line in self.lines if line["event"] == name]

    async def finish(self, timeout: float = 10.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self.reader, timeout)
        return code


@pytest.fixture
async def spawn(tmp_path):
    started: list[Ttf] = []

    async def start(*args: str) -> Ttf:
        proc = await asyncio.create_subprocess_exec(
            *ttf_command(*args), cwd=tmp_path, env=ttf_env(tmp_path / "state"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        started.append(Ttf(proc))
        return started[-1]

    yield start
    for ttf in started:
        if ttf.proc.returncode is None:
            ttf.proc.kill()
            await ttf.proc.wait()
        ttf.reader.cancel()


def run_ttf(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = ttf_env(cwd / "state") | (extra_env or {})
    return subprocess.run(ttf_command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["-e", "http://example.com"], {}, "must start with ws:// or wss://"),
        (["-e", "ws://"], {}, "has no host"),
        (["-e", "ws://host:99999"], {}, "malformed endpoint URL"),
        (["-e", "ws://h", "-p", "70000"], {}, "--port: 70000 is out of range"),
        (["-e", "ws://h", "-p", "http"], {}, "--port: 'http' is not a whole number"),
        (["-e", "ws://h", "--max-concurrency", "0"], {}, "--max-concurrency: 0 is out of range"),
        (["-e", "ws://h", "--request-timeout", "-1"], {}, "out of range"),
        ([], {}, "no endpoint"),
        (["--nope"], {}, "unrecognized arguments: --nope"),
        ([], {"TTF_ENDPOINT": "ws://h", "TTF_PORT": "x"}, "TTF_PORT: 'x' is not a whole number"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, args, env, message):
    result = run_ttf(args, tmp_path, env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ttf: error: ") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_help_and_version_exit_0(tmp_path):
    assert "--endpoint" in run_ttf(["-h"], tmp_path).stdout
    version = run_ttf(["-V"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("ttf ")


async def test_json_lines_tunnel_established_request_and_sigint_drain(gateway, local_app, spawn, tmp_path):
    app, port = local_app
    # endpoint comes from the .env file named with --env-file
    (tmp_path / ".env").write_text(f"# settings\nexport TTF_ENDPOINT='{gateway.ws_url}'\nTTF_DRAIN_TIMEOUT=5\n")
    ttf = await spawn("-p", str(port), "--host", "127.0.0.1", "--json", "--env-file", ".env")
    await wait_until(lambda: ttf.events("tunnel_established"), timeout=15, what="tunnel_established line")
    est = ttf.events("tunnel_established")[0]
    assert {k: est[k] for k in ("tunnel_id", "public_url", "subdomain_url", "path_based_url")} == {
        "tunnel_id": "tun123",
        "public_url": "https://api.example.test/tun123",
        "subdomain_url": "https://tun123.t.example.test",
        "path_based_url": "https://api.example.test/tun123",
    }
    assert est["inspector_url"].startswith("http://127.0.0.1:")  # TTF_INSPECT=127.0.0.1:0 from ttf_env()
    assert ttf.events("connected")
    conn = gateway.conns[0]
    await conn.request_frame("r1", "POST", "/echo?x=1", body="aGVsbG8=")
    assert (await conn.next_reply())["status_code"] == 200
    await wait_until(lambda: ttf.events("request"), what="request line")
    line = ttf.events("request")[0]
    assert {k: line[k] for k in ("method", "path", "status", "bytes_in")} == {
        "method": "POST", "path": "/echo", "status": 200, "bytes_in": 5}
    assert line["duration_ms"] >= 0 and line["bytes_out"] > 0

    # Ctrl-C with a request in flight: it is answered, then a clean close and exit 0
    await conn.request_frame("slow", "GET", "/slow?s=1")
    await wait_until(lambda: app.slow_arrived == 1, what="the slow request at the local app")
    ttf.proc.send_signal(signal.SIGINT)
    assert await ttf.finish() == 0
    assert (await conn.next_reply())["request_id"] == "slow"
    await asyncio.wait_for(conn.closed.wait(), 2)
    assert ttf.events("disconnected")[-1]["reason"] == "stopped"
    stderr = await ttf.proc.stderr.read()
    assert b"Traceback" not in stderr


async def test_unreachable_endpoint_at_start_says_so_and_keeps_retrying(spawn):
    import socket

    with socket.socket() as s:  # bound, not listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        ttf = await spawn("-e", f"ws://127.0.0.1:{port}/ws", "--json")
        await wait_until(lambda: len(ttf.events("reconnecting")) >= 2, timeout=10, what="two retries")
    first = ttf.events("reconnecting")[0]
    assert "cannot reach" in first["reason"] and 0.75 <= first["delay_s"] <= 1.0
    assert ttf.proc.returncode is None  # still trying
    ttf.proc.send_signal(signal.SIGTERM)
    assert await ttf.finish() == 0


async def rss_with_64_held(ttf, conn, app) -> float:
    """Send 64 requests the local app holds (2 KB of headers each); ttf's RSS once all are in flight, in MB."""
    for i in range(64):
        await conn.request_frame(f"r{i}", "GET", f"/hold?i={i}", headers={"X-Pad": ["p" * 2000]})
    await wait_until(lambda: app.inflight == 64, timeout=15, what="64 requests held at the local app")
    return psutil.Process(ttf.proc.pid).memory_info().rss / (1024 * 1024)


async def test_rss_with_64_requests_in_flight(gateway, local_app, spawn):
    app, port = local_app
    ttf = await spawn("-e", gateway.ws_url, "-p", str(port), "--json", "--max-concurrency", "64")
    await wait_until(lambda: ttf.events("tunnel_established"), timeout=15)
    conn = gateway.conns[0]
    rss_mb = await rss_with_64_held(ttf, conn, app)
    print(f"\nttf RSS with 64 requests in flight: {rss_mb:.1f} MB")
    app.release.set()
    replies = [await conn.next_reply(10) for _ in range(64)]
    assert all(r["status_code"] == 200 for r in replies)
    ttf.proc.send_signal(signal.SIGINT)
    assert await ttf.finish() == 0
    assert rss_mb < 80


async def test_rejected_token_exits_1_with_one_line(gateway, spawn):
    gateway.refuse_status = 401
    ttf = await spawn("-e", gateway.ws_url, "-t", "wrong", "--json")
    assert await ttf.finish() == 1
    stderr = (await ttf.proc.stderr.read()).decode()
    assert stderr.startswith("ttf: error: the endpoint rejected the token (HTTP 401)")
    assert "Traceback" not in stderr and "wrong" not in stderr


# ---- the public URL survives a restart (state file) --------------------------------------

def saved_state(state_dir: Path) -> tuple[Path, dict]:
    files = list(state_dir.glob("tunnel-*.json"))
    assert len(files) == 1, files
    return files[0], json.loads(files[0].read_text())


async def established(ttf: Ttf) -> dict:
    await wait_until(lambda: ttf.events("tunnel_established"), timeout=15, what="tunnel_established line")
    return ttf.events("tunnel_established")[0]


async def test_kill_9_and_restart_keeps_the_public_url(gateway, local_app, spawn, tmp_path):
    _, port = local_app
    args = ("-e", gateway.ws_url, "-p", str(port), "--json")
    first = await spawn(*args)
    assert (await established(first))["tunnel_id"] == "tun123"
    path, saved = saved_state(tmp_path / "state")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert {k: saved[k] for k in ("tunnel_id", "reclaim_token", "endpoint")} == {
        "tunnel_id": "tun123", "reclaim_token": gateway.reservations["tun123"], "endpoint": gateway.ws_url}
    assert abs(saved["saved_at"] - time.time()) < 60
    first.proc.kill()  # SIGKILL: nothing gets the chance to run at exit
    assert await first.finish() == -signal.SIGKILL

    gateway.tunnel_id = "fresh1"  # what a connect without the saved id would get
    second = await spawn(*args)
    assert (await established(second))["public_url"] == "https://api.example.test/tun123"
    headers = gateway.conns[-1].headers
    assert (headers["X-Tunnel-Id"], headers["X-Tunnel-Reclaim-Token"]) == ("tun123", saved["reclaim_token"])
    assert any("reclaiming the saved tunnel tun123" in n["message"] for n in second.events("notice"))
    assert all(saved["reclaim_token"] not in json.dumps(line) for line in first.lines + second.lines)
    second.proc.send_signal(signal.SIGINT)
    assert await second.finish() == 0


async def test_new_url_ignores_and_overwrites_the_saved_tunnel(gateway, local_app, spawn, tmp_path):
    _, port = local_app
    args = ("-e", gateway.ws_url, "-p", str(port), "--json")
    first = await spawn(*args)
    await established(first)
    first.proc.kill()
    await first.finish()

    gateway.tunnel_id = "fresh2"
    second = await spawn(*args, "--new-url")
    assert (await established(second))["tunnel_id"] == "fresh2"
    assert "X-Tunnel-Id" not in gateway.conns[-1].headers
    assert saved_state(tmp_path / "state")[1]["tunnel_id"] == "fresh2"
    second.proc.send_signal(signal.SIGTERM)
    assert await second.finish() == 0

    gateway.tunnel_id = "fresh3"
    third = await spawn(*args)  # without the flag: the URL --new-url took is the one kept
    assert (await established(third))["tunnel_id"] == "fresh2"


async def test_corrupt_state_file_is_a_notice_and_gets_replaced(gateway, local_app, spawn, tmp_path):
    _, port = local_app
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = state_dir / state_file_name(gateway.ws_url, f"127.0.0.1:{port}")
    path.write_bytes(b'{"version": 1, "tunnel_id": ')
    ttf = await spawn("-e", gateway.ws_url, "-p", str(port), "--json")
    assert (await established(ttf))["tunnel_id"] == "tun123"
    notices = [n["message"] for n in ttf.events("notice")]
    assert any("ignoring the saved tunnel" in m and "not a valid ttf state file" in m for m in notices), notices
    assert "X-Tunnel-Id" not in gateway.conns[0].headers
    assert saved_state(state_dir)[1]["tunnel_id"] == "tun123"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ttf.proc.send_signal(signal.SIGINT)
    assert await ttf.finish() == 0
    assert b"Traceback" not in await ttf.proc.stderr.read()


async def test_unwritable_state_dir_is_a_notice_and_the_tunnel_runs(gateway, local_app, spawn, tmp_path):
    _, port = local_app
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    ttf = await spawn("-e", gateway.ws_url, "-p", str(port), "--json", "--state-dir", str(blocker))
    await established(ttf)
    await gateway.conns[0].request_frame("r1", "GET", "/echo")
    assert (await gateway.conns[0].next_reply())["status_code"] == 200
    notices = [n["message"] for n in ttf.events("notice")]
    assert any("cannot read" in m for m in notices) and any("cannot save the tunnel" in m for m in notices), notices
    ttf.proc.send_signal(signal.SIGINT)
    assert await ttf.finish() == 0


async def test_rss_with_a_full_inspector_history_and_64_requests_in_flight(gateway, local_app, spawn):
    app, port = local_app
    ttf = await spawn("-e", gateway.ws_url, "-p", str(port), "--json", "--max-concurrency", "64")
    await wait_until(lambda: ttf.events("tunnel_established"), timeout=15)
    conn = gateway.conns[0]
    big = base64.b64encode(b"q" * 24_000).decode()
    for i in range(40):  # 1.5 MB answers (the inspector keeps 1 MB of each) and 24 KB requests
        await conn.request_frame(f"big{i}", "POST", "/big?n=1500000", body=big,
                                 response_upload_url=gateway.upload_url(f"big{i}"))
        assert (await conn.next_reply(10))["body_uploaded"] is True
    rss_mb = await rss_with_64_held(ttf, conn, app)
    print(f"\nttf RSS with a full inspector history and 64 requests in flight: {rss_mb:.1f} MB")
    async with aiohttp.ClientSession() as client:
        async with client.get(ttf.events("tunnel_established")[0]["inspector_url"] + "/api/requests") as resp:
            kept = (await resp.json())["requests"]
    assert 8 <= len(kept) <= 16 and all(e["response_truncated"] for e in kept)  # the 16 MB budget
    assert [e["uri"] for e in kept] == ["/big?n=1500000"] * len(kept)  # held requests are not done yet
    app.release.set()
    for _ in range(64):
        await conn.next_reply(10)
    ttf.proc.send_signal(signal.SIGINT)
    assert await ttf.finish() == 0
    assert rss_mb < 80


# ---- several tunnels from a config file -------------------------------------------------------

def two_tunnel_file(folder: Path, ws_url: str, web_port: int, api_port: int, name: str = "ttf.toml") -> Path:
    path = folder / name
    path.write_text(f'endpoint = "{ws_url}"\n\n[tunnels.web]\nport = {web_port}\n\n'
                    f'[tunnels.api]\nport = {api_port}\nno-rewrite = true\n')
    return path


async def test_config_file_json_lines_one_established_per_tunnel_tagged(gateway, local_app, spawn, tmp_path):
    import socket

    app, port = local_app
    with socket.socket() as down:  # bound, not listening: the api's local service is down
        down.bind(("127.0.0.1", 0))
        two_tunnel_file(tmp_path, gateway.ws_url, port, down.getsockname()[1])
        gateway.next_ids = ["one", "two"]
        ttf = await spawn("--json")  # ./ttf.toml, found in the working directory
        await wait_until(lambda: len(ttf.events("tunnel_established")) == 2, timeout=15, what="two tunnels")
        est = {e["tunnel"]: e for e in ttf.events("tunnel_established")}
        assert set(est) == {"web", "api"} and {e["tunnel_id"] for e in est.values()} == {"one", "two"}
        assert est["web"]["inspector_url"] == est["api"]["inspector_url"]  # one inspector
        notices = [(n.get("tunnel"), n["message"]) for n in ttf.events("notice")]
        assert (None, "2 tunnel(s) from ttf.toml") in notices
        assert ("web", f"forwarding to http://127.0.0.1:{port} via {gateway.ws_url}") in notices
        conns = {name: gateway.conns[int(e["connection_id"].removeprefix("conn-"))] for name, e in est.items()}
        await conns["web"].request_frame("w1", "GET", "/echo")
        await conns["api"].request_frame("a1", "GET", "/echo")
        assert (await conns["web"].next_reply())["status_code"] == 200
        assert (await conns["api"].next_reply())["code"] == "local_service_unavailable"
        await wait_until(lambda: len(ttf.events("request")) == 2, what="two request lines")
        assert sorted((r["tunnel"], r["status"]) for r in ttf.events("request")) == [("api", 503), ("web", 200)]
        ttf.proc.send_signal(signal.SIGINT)
        assert await ttf.finish() == 0
    assert sorted(d["tunnel"] for d in ttf.events("disconnected")) == ["api", "web"]
    saved = sorted(json.loads(p.read_text())["name"] for p in (tmp_path / "state").glob("tunnel-*.json"))
    assert saved == ["api", "web"]


async def test_config_file_plain_lines_say_which_tunnel(gateway, local_app, tmp_path):
    _, port = local_app
    two_tunnel_file(tmp_path, gateway.ws_url, port, port, "tunnels.toml")
    proc = await asyncio.create_subprocess_exec(
        *ttf_command("--config", "tunnels.toml"), cwd=tmp_path, env=ttf_env(tmp_path / "state"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    try:
        async with asyncio.timeout(15):
            while sum("tunnel established" in line for line in lines) < 2:
                lines.append((await proc.stdout.readline()).decode())
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    established = sorted(line[20:].split(" tunnel established")[0] for line in lines if "tunnel established" in line)
    assert established == ["[api]", "[web]"]
    assert any(f"-> http://127.0.0.1:{port} (inspector http://127.0.0.1:" in line and "[web]" in line
               for line in lines), lines


@pytest.mark.parametrize("text,message", [
    ('endpoint = "ws://h"\n[tunnels.web]\nport = 3000\nprot = 1\n',
     "ttf: error: bad.toml:4: tunnels.web.prot: unknown key (did you mean port?); a tunnel takes: "),
    ('endpoint = "ws://h"\n[tunnels.web]\nport = "3000"\n',
     "ttf: error: bad.toml:3: tunnels.web.port: expected an integer, got a string ('3000')"),
    ('[tunnels.web]\nport = 3000\n[tunnels.web]\nport = 3001\n', "ttf: error: bad.toml:3:"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    result = run_ttf(["--config", "bad.toml"], tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message), result.stderr
    missing = run_ttf(["--config", "nowhere.toml"], tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == "ttf: error: nowhere.toml: cannot read the config file: No such file or directory\n"


async def test_dashboard_filter_keys_through_a_terminal(gateway, local_app, tmp_path):
    """The live dashboard in a real pty: every tunnel's row, the tunnel column, a key picks one
    tunnel's requests, and the terminal's mode is restored on the way out."""
    import pty
    import termios

    _, port = local_app
    two_tunnel_file(tmp_path, gateway.ws_url, port, port)
    gateway.next_ids = ["one", "two"]
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    env = ttf_env(tmp_path / "state") | {"COLUMNS": "110", "LINES": "60", "TERM": "xterm-256color"}
    proc = await asyncio.create_subprocess_exec(*ttf_command(), cwd=tmp_path, env=env, stdin=slave, stdout=slave,
                                                stderr=asyncio.subprocess.PIPE)
    screen = bytearray()

    def read_screen() -> str:
        import select

        while select.select([master], [], [], 0)[0]:
            try:
                screen.extend(os.read(master, 65536))
            except OSError:
                break
        return screen.decode("utf-8", "replace")

    try:
        await wait_until(lambda: read_screen().count("online") >= 2 and "2 of 2 online" in read_screen(),
                         timeout=15, what="both rows online")
        for index, conn in enumerate(gateway.conns):
            await conn.request_frame(f"r{index}", "GET", f"/echo?conn{index}")
            await conn.next_reply()
        await wait_until(lambda: "/echo" in read_screen(), timeout=10, what="requests on the dashboard")
        assert "Latest requests (all tunnels)" in read_screen()
        del screen[:]
        os.write(master, b"2")
        await wait_until(lambda: "Latest requests via api" in read_screen(), timeout=10, what="the api filter")
        del screen[:]
        os.write(master, b"0")
        await wait_until(lambda: "Latest requests (all tunnels)" in read_screen(), timeout=10, what="all again")
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 10)
        after = termios.tcgetattr(slave)
        os.close(master)
        os.close(slave)
    assert code == 0
    assert after[3] & termios.ICANON and after[3] & termios.ECHO  # cbreak undone
    assert after == before
    assert b"Traceback" not in await proc.stderr.read()
