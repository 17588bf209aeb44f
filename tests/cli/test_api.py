"""ttf.expose(): lifecycle, error mapping, settings, in-process apps, against the fake gateway.

The fake gateway runs on the test's event loop; sync callers are played by a worker thread
(asyncio.to_thread), as a script's main thread would call expose() with no loop running.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pkgutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ttf
from ttf.api import Tunnel, TunnelError, TunnelRefused, TunnelTimeout, expose

from conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def fast(**over):
    """Short timeouts for the tests; nothing read from the environment."""
    return {"env": {}, "connect_timeout": 3.0, "drain_timeout": 2.0, "heartbeat_interval": 5.0} | over


def tunnel_threads() -> set[threading.Thread]:
    """The tunnel's thread, its loop's executor threads (DNS) and the WSGI pool: all named ttf-."""
    return {t for t in threading.enumerate() if t.name.startswith("ttf-")}


def wsgi_echo(environ, start_response):
    body = json.dumps({"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"],
                       "query": environ["QUERY_STRING"], "body": environ["wsgi.input"].read().decode(),
                       "x": environ.get("HTTP_X_MULTI")}).encode()
    start_response("201 Created", [("Content-Type", "application/json"), ("X-App", "wsgi"), ("X-App", "two")])
    return [body]


class LifespanApp:
    """A raw ASGI 3 app with lifespan: counts startups and shutdowns, answers with its state."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["greeting"] = "hello"
                    self.events.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = (await receive())["body"]
        text = json.dumps({"path": scope["path"], "raw_path": scope["raw_path"].decode(),
                           "query": scope["query_string"].decode(), "state": scope["state"].get("greeting"),
                           "len": len(body)}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"set-cookie", b"a=1"),
                                (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": text[:5], "more_body": True})
        await send({"type": "http.response.body", "body": text[5:]})


async def test_sync_expose_returns_established_serves_and_close_leaves_no_thread(gateway, local_app):
    app, port = local_app
    before = tunnel_threads()
    handler = signal.getsignal(signal.SIGINT)
    tunnel = await asyncio.to_thread(expose, port, endpoint=gateway.ws_url, token="jwt", **fast())
    try:
        assert tunnel.url == "https://api.example.test/tun123" and tunnel.tunnel_id == "tun123"
        assert tunnel.path_url == "https://api.example.test/tun123" and tunnel.connected
        assert gateway.conns[0].headers["Authorization"] == "Bearer jwt"
        await gateway.conns[0].request_frame("r1", "POST", "/echo?a=%2F&b", body="aGk=")
        assert (await gateway.conns[0].next_reply())["status_code"] == 200
        seen = await asyncio.to_thread(tunnel.wait_for_request, "/echo", method="post", timeout=5)
        assert (seen.uri, seen.status, seen.request.data) == ("/echo?a=%2F&b", 200, b"hi")
        assert [r.uri for r in tunnel.requests] == ["/echo?a=%2F&b"]
        with pytest.raises(TimeoutError, match=r"no request GET /nope within 0.2 s \(1 seen\)"):
            await asyncio.to_thread(tunnel.wait_for_request, "/nope", method="GET", timeout=0.2)
    finally:
        await asyncio.to_thread(tunnel.close)
    assert signal.getsignal(signal.SIGINT) is handler  # no signal handler installed
    await asyncio.wait_for(gateway.conns[0].closed.wait(), 5)
    assert tunnel_threads() == before  # the tunnel's thread and its loop's executor threads are gone
    assert tunnel._loop is not None and tunnel._loop.is_closed()  # and its loop, with every task it ran
    tunnel.close()  # idempotent


async def test_async_with_never_blocks_the_callers_loop_and_matches_earlier_requests(gateway, local_app):
    _, port = local_app
    gateway.establish = False  # hold connection_established back: expose() must not wait for it here
    started = time.monotonic()
    tunnel = expose(port, endpoint=gateway.ws_url, **fast())
    assert time.monotonic() - started < 0.5
    with pytest.raises(RuntimeError, match="not established yet: `await ttf.expose"):
        tunnel.url  # noqa: B018
    await wait_until(lambda: gateway.conns, what="the tunnel's socket")
    gateway.establish = True
    await gateway.conns[0].send(gateway._established(gateway.conns[0]))
    async with tunnel:
        assert tunnel.url == "https://api.example.test/tun123"
        await gateway.conns[0].request_frame("r1", "GET", "/echo/early")
        await gateway.conns[0].next_reply()
        await wait_until(lambda: tunnel.requests, what="the request recorded")
        seen = await tunnel.wait_for_request_async("/echo/early", timeout=1)  # arrived before the call
        assert seen.status == 200
        waiting = asyncio.ensure_future(tunnel.wait_for_request_async("/echo/late", timeout=5))
        await gateway.conns[0].request_frame("r2", "GET", "/echo/late?x=1")
        assert (await waiting).uri == "/echo/late?x=1"
    assert not tunnel._thread.is_alive()


async def test_reconnects_keeping_the_url_then_closes(gateway, local_app):
    _, port = local_app
    async with expose(port, endpoint=gateway.ws_url, **fast()) as tunnel:
        gateway.conns[0].kill()
        await wait_until(lambda: len(gateway.conns) == 2 and tunnel.connected, timeout=10, what="the reconnect")
        assert gateway.conns[1].headers["X-Tunnel-Id"] == "tun123"  # reclaimed: the same URL
        assert tunnel.url == "https://api.example.test/tun123"
    assert not tunnel.connected


@pytest.mark.parametrize("status", [401, 403, 409])
async def test_refusals_raise_at_once_with_the_status(gateway, status):
    gateway.refuse_status = status
    started = time.monotonic()
    with pytest.raises(TunnelRefused) as caught:
        await asyncio.to_thread(expose, 3000, endpoint=gateway.ws_url, **fast(connect_timeout=8.0))
    assert time.monotonic() - started < 3  # not the connect timeout, not a retry
    assert caught.value.status == status and caught.value.exit_code == 1
    said = "rejected the token" if status == 401 else "refused the tunnel"
    assert str(caught.value).startswith(f"the endpoint {said} (HTTP {status})")
    with pytest.raises(TunnelRefused):
        async with expose(3000, endpoint=gateway.ws_url, **fast()):
            pass


async def test_network_errors_are_retried_until_connect_timeout_then_raise(unused_tcp_port):
    before = tunnel_threads()
    started = time.monotonic()
    with pytest.raises(TunnelTimeout) as caught:
        await asyncio.to_thread(expose, 3000, endpoint=f"ws://127.0.0.1:{unused_tcp_port}/ws", **fast(connect_timeout=1.5))
    assert 1.4 < time.monotonic() - started < 4
    assert "no tunnel within 1.5 s (cannot reach ws://127.0.0.1" in str(caught.value)
    assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, TunnelError)
    await wait_until(lambda: tunnel_threads() == before, timeout=5, what="the tunnel's thread to end")


@pytest.mark.parametrize("args,kwargs,message", [
    ((), {"endpoint": "ws://h"}, "expose() takes a port or URL, or app=... (one of them)"),
    ((3000,), {"app": wsgi_echo, "endpoint": "ws://h"}, "expose() takes a port or URL, or app=..."),
    ((3000,), {}, "no endpoint: pass endpoint='wss://...' or set TTF_ENDPOINT"),
    ((70000,), {"endpoint": "ws://h"}, "port: 70000 is out of range"),
    (("https://localhost:8443",), {"endpoint": "ws://h"}, "the local service is reached over http:// only"),
    (("http://localhost:8000/api",), {"endpoint": "ws://h"}, "only http://HOST:PORT"),
    ((3000,), {"endpoint": "http://h"}, "endpoint: endpoint must start with ws:// or wss://"),
    ((3000,), {"endpoint": "ws://h", "verify_webhook": ["paypal:x"]}, "verify_webhook: unknown webhook provider"),
    ((3000,), {"endpoint": "ws://h", "tunnel": "web"}, "tunnel= picks a tunnel of a config file"),
])
def test_bad_arguments_raise_config_error_with_one_line(args, kwargs, message):
    with pytest.raises(ttf.ConfigError) as caught:
        expose(*args, **fast(**kwargs))
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2  # what ttf exits with for bad input
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        expose(3000, endpoint="ws://h", colour="red")


async def test_settings_come_from_arguments_and_ttf_env_never_a_found_file(gateway, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ttf.toml").write_text('endpoint = "ws://theirs.example/ws"\n[tunnels.web]\nport = 1\n')
    (tmp_path / ".env").write_text("TTF_ENDPOINT=ws://theirs.example/ws\n")
    with pytest.raises(ttf.ConfigError, match="no endpoint"):
        expose(3000, env={"TTF_CONFIG": "ttf.toml", "TTF_ENV_FILE": ".env"})
    env = {"TTF_ENDPOINT": gateway.ws_url, "TTF_TOKEN": "from-env", "TTF_INSPECT": "127.0.0.1:4045",
           "TTF_STATE_DIR": str(tmp_path / "state"), "TTF_PORT": "1", "TTF_SUBDOMAIN": "mine"}
    tunnel = expose("localhost:3001", **fast(env=env))
    assert (tunnel.config.endpoint, tunnel.config.token, tunnel.config.subdomain) == (gateway.ws_url, "from-env", "mine")
    assert (tunnel.config.host, tunnel.config.port) == ("localhost", 3001)
    assert tunnel.config.inspect is None and tunnel.config.state_dir is None  # the CLI's process settings: not taken
    assert tunnel.config.give_up_on == {401, 403, 409}
    await tunnel.aclose()
    # a config file is read when named
    (tmp_path / "team.toml").write_text(f'endpoint = "{gateway.ws_url}"\n[tunnels.api]\nport = 8000\n'
                                        '[tunnels.web]\nport = 3000\nrequest-timeout = 7\n')
    tunnel = expose(config="team.toml", tunnel="WEB", **fast())
    assert (tunnel.config.name, tunnel.config.port, tunnel.config.request_timeout) == ("web", 3000, 7)
    await tunnel.aclose()
    with pytest.raises(ttf.ConfigError, match=r"team.toml has 2 tunnels \(api, web\): pick one with tunnel="):
        expose(config="team.toml", **fast())
    with pytest.raises(ttf.ConfigError, match="config= names the local service in the file"):
        expose(8000, config="team.toml", **fast())


async def test_an_in_process_wsgi_app_gets_the_exact_request(gateway):
    async with expose(app=wsgi_echo, endpoint=gateway.ws_url, **fast()) as tunnel:
        assert tunnel.config.port == 1  # the in-process server's port is the agent's own business
        await gateway.conns[0].request_frame("r1", "PUT", "/caf%C3%A9/x?q=%2F%20&q=2", body="Ym9keQ==",
                                             headers={"X-Multi": ["a", "b"]})
        reply = await gateway.conns[0].next_reply()
    assert reply["status_code"] == 201
    assert reply["headers"]["X-App"] == ["wsgi", "two"]
    import base64
    assert json.loads(base64.b64decode(reply["body"])) == {
        "method": "PUT", "path": "/café/x".encode().decode("latin-1"), "query": "q=%2F%20&q=2", "body": "body",
        "x": "a,b"}


async def test_an_in_process_asgi_app_runs_its_lifespan_and_gets_raw_bytes(gateway):
    app = LifespanApp()
    async with expose(app=app, endpoint=gateway.ws_url, **fast()) as tunnel:
        assert app.events == ["startup"]
        await gateway.conns[0].request_frame("r1", "GET", "/a%2Fb?x=%2F")
        reply = await gateway.conns[0].next_reply()
        assert tunnel.requests[0].status == 200
    assert app.events == ["startup", "shutdown"]
    import base64
    assert json.loads(base64.b64decode(reply["body"])) == {
        "path": "/a/b", "raw_path": "/a%2Fb", "query": "x=%2F", "state": "hello", "len": 0}
    assert reply["headers"]["set-cookie"] == ["a=1", "b=2"]


async def test_an_asgi_app_whose_lifespan_fails_is_an_error():
    async def broken(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(TunnelError, match=r"^the ASGI app's lifespan startup failed: no database$"):
        async with expose(app=broken, endpoint="ws://127.0.0.1:9/ws", **fast()):
            pass
    failed = expose(app=broken, endpoint="ws://127.0.0.1:9/ws", **fast())  # not awaited (a loop runs here)
    await asyncio.wait_for(asyncio.wrap_future(failed._finished), 10)
    with pytest.raises(TunnelError, match="lifespan startup failed"):
        with failed:  # entering a tunnel that never opened raises why
            pass


def test_every_submodule_imports_and_then_the_api_is_still_the_api():
    for module in pkgutil.walk_packages(ttf.__path__, "ttf."):
        importlib.import_module(module.name)
    assert callable(ttf.expose) and ttf.expose is expose and ttf.Tunnel is Tunnel
    assert ttf.forward.__name__ == "ttf.forward"  # the agent's local call, not shadowed
    with pytest.raises(ttf.ConfigError, match="no endpoint"):
        ttf.expose(3000, env={})
    with pytest.raises(AttributeError):
        ttf.nothing_here  # noqa: B018
    assert (Path(ttf.__file__).parent / "py.typed").is_file()


def test_the_version_has_one_source():
    from importlib.metadata import version

    out = subprocess.run([sys.executable, "-c", "from ttf.main import main; main(['--version'])"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == f"ttf {ttf.__version__}" == f"ttf {version('ttf-tunnel')}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "ttf._version.__version__" }' in pyproject
    assert "\nversion =" not in pyproject.split("[project]")[1].split("\n[")[0]


async def test_a_script_that_never_closes_still_exits(gateway, local_app):
    _, port = local_app
    script = (f"import ttf; t = ttf.expose({port}, endpoint={gateway.ws_url!r}, env={{}}, drain_timeout=1.0); "
              "print(t.url, flush=True)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTF_")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert out.decode().strip() == "https://api.example.test/tun123"
    await asyncio.wait_for(gateway.conns[0].closed.wait(), 5)  # closed at exit, not dropped
    assert gateway.conns[0].received[-1]["type"] != "http_response"
