"""Real WebSocket apps through the tunnel (issue 24 item 5): Vite's dev server from npm with its page
in headless Chromium (a file edit arrives as a hot update over the caller WebSocket),
graphql-ws's server with graphql-ws's own client, and an origin-checking server (Python
`websockets`, `origins=`) with a page whose browser sends the Origin itself. The apps and their pinned dependencies are
tests/browser/apps (package.json + package-lock.json, `npm ci` by `make test-browser`); nothing here
touches the network. README "WebSockets: what each framework needs" states what these show.

Vite's HMR client opens `<protocol>://<hmr.host>:<hmr.clientPort><base><hmr.path>?token=...` and its
server accepts the upgrade only on `<base><hmr.path>`. The caller socket reaches the app at `/` (the
`$connect` event has no path), so `hmr.path` must stay unset; the local stack's caller API takes
every path to its stage, so the client's `/` is fine there too, and on AWS the caller API's custom
domain (or CloudFront) answers at `/`. The query form (`?tunnel=<id>`) cannot carry Vite's socket:
the client appends its own `?token=`. So: the subdomain form, `server.hmr = {host: <id>.<domain>,
clientPort: <caller port>, protocol: ws|wss}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import pytest

from scripts.harness.proc import Proc, ProcError
from scripts.harness.stack import LocalStack
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.e2e import conftest as e2e
from tests.e2e.conftest import Tunnel, start_agent
from tests.e2e.test_ws_apps import echo_what_it_saw, free_port

pytestmark = pytest.mark.browser
stack = e2e.stack  # the local stack fixture of tests/e2e (session scope)

APPS = Path(__file__).parent / "apps"
VITE = APPS / "node_modules" / "vite" / "bin" / "vite.js"
# The private stack below: a tunnel domain that is not *.localhost (Vite allows every *.localhost
# host whatever server.allowedHosts says) and a short idle limit for the caller API.
DOMAIN = "tunnel.test"
IDLE_S = 6.0
HEARTBEAT_S = "2"  # ttf's own socket pings every 2 s, so the short idle limit never ends the tunnel


def node_modules() -> None:
    if not VITE.exists():
        pytest.fail(f"{VITE} is missing: run `make test-browser` (it runs `npm ci` in {APPS})", pytrace=False)
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: these tests run Vite and graphql-ws under Node >= 20.19", pytrace=False)


class ViteApp:
    """tests/browser/apps/vite copied to a scratch folder (the test edits message.js) and served by
    Vite's dev server on 127.0.0.1:<port>."""

    def __init__(self, folder: Path, port: int, env: dict[str, str]) -> None:
        self.root = folder / "vite"
        shutil.copytree(APPS / "vite", self.root)
        self.port = port
        self.argv = ["node", str(VITE), "--config", str(self.root / "vite.config.mjs"), str(self.root)]
        self.log = folder / "vite.log"
        self.env = {**os.environ, "TTF_VITE_PORT": str(port), "NO_COLOR": "1", **env}
        self.proc = Proc(self.argv, "vite", self.log, cwd=self.root, env=self.env)

    def start(self) -> "ViteApp":
        if self.proc.popen is not None:  # a restart: a new process, same port and settings
            self.proc = Proc(self.argv, "vite", self.log, cwd=self.root, env=self.env)
        self.proc.start()
        try:
            self.proc.wait_line(lambda line: f"127.0.0.1:{self.port}/" in line, 60)
        except ProcError:
            self.proc.stop()
            raise
        return self

    def edit(self, text: str) -> None:
        (self.root / "message.js").write_text(f"export const message = {json.dumps(text)};\n", encoding="utf-8")

    def stop(self) -> None:
        self.proc.stop()


def hmr_env(caller_template: str, tunnel_id: str, **extra: str) -> dict[str, str]:
    caller = urlsplit(caller_template.replace("{tunnel_id}", tunnel_id))
    assert caller.hostname and caller.port, caller_template
    return {"TTF_HMR_HOST": caller.hostname, "TTF_HMR_CLIENT_PORT": str(caller.port), "TTF_HMR_PROTOCOL": "ws", **extra}


# Every WebSocket the page opens, and how it ends, kept in sessionStorage across Vite's reloads.
SOCKET_LOG = """(() => {
  const Native = window.WebSocket;
  const log = (entry) => {
    const all = JSON.parse(sessionStorage.getItem("ttf-sockets") || "[]");
    all.push({ ...entry, at: Date.now() });
    sessionStorage.setItem("ttf-sockets", JSON.stringify(all));
  };
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const proto = Array.isArray(protocols) ? protocols.join(",") : String(protocols || "");
      this.addEventListener("open", () => log({ event: "open", url: String(url), proto }));
      this.addEventListener("close", (e) => log({ event: "close", url: String(url), proto, code: e.code, clean: e.wasClean }));
      this.addEventListener("message", (e) => { try { const m = JSON.parse(e.data);
        log({ event: "message", proto, type: m.type }); } catch (err) { log({ event: "message", proto, type: "?" }); } });
    }
  };
})();"""


@pytest.fixture
async def browser() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run `make test-browser` (pip install -e '.[browser]')", pytrace=False)
    async with async_playwright() as pw:
        # *.localhost (the session stack) and *.tunnel.test (the private stack) are loopback
        args = CHROMIUM_ARGS + [f"--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP *.{DOMAIN} 127.0.0.1"]
        launched = await pw.chromium.launch(executable_path=chromium_path(), args=args, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


class VitePage:
    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))

    async def until(self, script: str, what: str, timeout: float = 30) -> Any:
        try:
            handle = await self.page.wait_for_function(script, timeout=timeout * 1000)
            return await handle.json_value()
        except Exception as exc:
            log = await self.sockets()
            pytest.fail(f"{what}: not within {timeout} s ({exc!r}); sockets: {log}; console: {self.console[-15:]}")

    async def sockets(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(await self.page.evaluate("sessionStorage.getItem('ttf-sockets') || '[]'")))
        except Exception as exc:  # the page is navigating
            return [{"unreadable": repr(exc)}]

    async def text(self) -> str:
        return str(await self.page.evaluate("document.getElementById('msg').textContent"))


async def open_vite_page(browser: Any, url: str) -> tuple[Any, VitePage]:
    context = await browser.new_context()
    await context.add_init_script(SOCKET_LOG)
    page = await context.new_page()
    view = VitePage(page)
    response = await page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status,
                                                              response and await response.text())
    await view.until("() => document.getElementById('msg').textContent === 'version 1'", "the page rendered message.js")
    await view.until("() => JSON.parse(sessionStorage.getItem('ttf-sockets') || '[]')"
                     ".some(e => e.event === 'message' && e.proto === 'vite-hmr' && e.type === 'connected')",
                     "Vite's HMR socket said connected")
    return context, view


async def hot_update(app: ViteApp, view: VitePage, text: str, updates: int) -> None:
    """Edit message.js: the new text arrives as a hot update (accept callback), never as a reload."""
    loaded = await view.page.evaluate("document.body.dataset.loadedAt")
    app.edit(text)
    await view.until(f"() => document.body.dataset.hotUpdates === '{updates}'", f"hot update {updates} arrived")
    assert await view.text() == text
    assert await view.page.evaluate("document.body.dataset.loadedAt") == loaded, "the page reloaded instead"


def hmr_sockets(log: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    return [e for e in log if e.get("proto") == "vite-hmr" and e.get("event") == "open"
            and urlsplit(e["url"]).netloc == host]


# ---- Vite through the session stack: the default host rewrite --------------------------------------

@pytest.fixture
async def vite_default(stack: e2e.StackInfo, tmp_path: Path) -> Any:
    node_modules()
    port = free_port()
    tunnel: Tunnel = await asyncio.to_thread(start_agent, stack, port, tmp_path)
    state = json.loads(stack.state_file.read_text())
    app = ViteApp(tmp_path, port, hmr_env(state["caller_ws_url_template"], tunnel.tunnel_id))
    try:
        await asyncio.to_thread(app.start)
        yield app, tunnel, state
    finally:
        app.stop()
        tunnel.agent.stop()


async def test_a_vite_edit_arrives_as_a_hot_update_through_the_tunnel(browser, vite_default):
    app, tunnel, state = vite_default
    context, view = await open_vite_page(browser, tunnel.public_url.rstrip("/") + "/")
    try:
        caller = urlsplit(state["caller_ws_url_template"].replace("{tunnel_id}", tunnel.tunnel_id))
        page_host = urlsplit(tunnel.public_url).netloc
        assert caller.netloc != page_host  # the socket's host is not the page's: why server.hmr is needed
        await hot_update(app, view, "version 2 ✓ héllo", 1)
        await hot_update(app, view, "version 3", 2)
        log = await view.sockets()
        opened = hmr_sockets(log, caller.netloc)
        assert len(opened) == 1, log  # one socket, on the caller API, carried both updates
        updates = [e for e in log if e.get("event") == "message" and e.get("type") == "update"]
        assert len(updates) >= 2, log
        assert not [e for e in log if e.get("event") == "close"], log
    finally:
        await context.close()


async def test_what_vite_does_when_its_dev_server_restarts_behind_the_tunnel(browser, vite_default):
    """The app's side closes: the caller socket ends (1000, all an app's close can be through API
    Gateway); Vite's client polls with `vite-ping` sockets (each refused at the handshake while
    nothing listens) and reloads the page once the restarted server answers one."""
    app, tunnel, state = vite_default
    context, view = await open_vite_page(browser, tunnel.public_url.rstrip("/") + "/")
    try:
        first_load = await view.page.evaluate("document.body.dataset.loadedAt")
        await asyncio.to_thread(app.stop)
        await view.until("() => JSON.parse(sessionStorage.getItem('ttf-sockets') || '[]')"
                         ".some(e => e.event === 'close' && e.proto === 'vite-hmr')", "the HMR socket closed", timeout=15)
        log = await view.sockets()
        closes = [e for e in log if e.get("event") == "close" and e.get("proto") == "vite-hmr"]
        # 1000; Chromium reports wasClean false after the emulator's DeleteConnection (true after its
        # idle close): Vite 8's client does the same either way
        assert closes[0]["code"] == 1000, log
        await asyncio.sleep(3)  # the measured interval: Vite keeps polling while its server is down
        assert await view.page.evaluate("document.body.dataset.loadedAt") == first_load, "reloaded while the server was down"
        restarted = time.monotonic()
        await asyncio.to_thread(app.start)
        await view.until("() => JSON.parse(sessionStorage.getItem('ttf-sockets') || '[]')"
                         ".filter(e => e.event === 'open' && e.proto === 'vite-hmr').length >= 2",
                         "Vite reloaded the page and opened a new HMR socket", timeout=30)
        print(f"\nvite restart: closed {closes[0]}, page reloaded with a new socket "
              f"{time.monotonic() - restarted:.1f} s after the server was started again", file=sys.stderr)
        await view.until("() => document.getElementById('msg').textContent === 'version 1'", "the reloaded page rendered")
        assert await view.page.evaluate("document.body.dataset.loadedAt") != first_load, "no reload happened"
        await hot_update(app, view, "after the restart", 1)
    finally:
        await context.close()


async def test_what_vite_does_when_ttf_restarts(browser, stack, tmp_path):
    """The agent goes away and comes back (same tunnel id, reclaimed from its state folder): the
    page's socket ends, Vite polls through the tunnel (refused while the tunnel is offline) and
    reloads the page once the new agent answers a ping."""
    node_modules()
    port = free_port()
    tunnel: Tunnel = await asyncio.to_thread(start_agent, stack, port, tmp_path)
    state = json.loads(stack.state_file.read_text())
    app = ViteApp(tmp_path, port, hmr_env(state["caller_ws_url_template"], tunnel.tunnel_id))
    again: Tunnel | None = None
    try:
        await asyncio.to_thread(app.start)
        context, view = await open_vite_page(browser, tunnel.public_url.rstrip("/") + "/")
        try:
            first_load = await view.page.evaluate("document.body.dataset.loadedAt")
            await asyncio.to_thread(tunnel.agent.stop)
            await view.until("() => JSON.parse(sessionStorage.getItem('ttf-sockets') || '[]')"
                             ".some(e => e.event === 'close' && e.proto === 'vite-hmr')", "the HMR socket closed", timeout=40)
            closes = [e for e in await view.sockets() if e.get("event") == "close"]
            restarted = time.monotonic()
            again = await asyncio.to_thread(start_agent, stack, port, tmp_path)
            assert again.tunnel_id == tunnel.tunnel_id, "the restarted ttf did not reclaim its tunnel id"
            await view.until("() => JSON.parse(sessionStorage.getItem('ttf-sockets') || '[]')"
                             ".filter(e => e.event === 'open' && e.proto === 'vite-hmr').length >= 2",
                             "Vite reloaded the page and opened a new HMR socket", timeout=40)
            print(f"\nvite after a ttf restart: closed {closes[0]}, page reloaded with a new socket "
                  f"{time.monotonic() - restarted:.1f} s after the new ttf was up", file=sys.stderr)
            assert closes[0]["code"] == 1000, closes
            await view.until("() => document.getElementById('msg').textContent === 'version 1'", "the reloaded page rendered")
            assert await view.page.evaluate("document.body.dataset.loadedAt") != first_load, "no reload happened"
            await hot_update(app, view, "after ttf restarted", 1)
        finally:
            await context.close()
    finally:
        app.stop()
        tunnel.agent.stop()
        if again is not None:
            again.agent.stop()


# ---- a private stack: a non-localhost tunnel domain and a short idle limit ---------------------------

@pytest.fixture(scope="module")
def short_idle_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[e2e.StackInfo]:
    folder = tmp_path_factory.mktemp("ws-apps-stack")
    local = LocalStack(folder, state_file=folder / "stack.json", extra_args=(
        "--ws-idle-timeout", str(IDLE_S), "--var", f"tunnel_domain={DOMAIN}"))
    try:
        local.start()
    except ProcError as exc:
        pytest.fail(str(exc))
    try:
        yield e2e.stack_info(local.state, folder / "stack.json")
    finally:
        local.stop(grace=30)


def private_urls(info: e2e.StackInfo, tunnel_id: str) -> tuple[str, str]:
    """(page URL, caller WebSocket URL template) under DOMAIN: the stack's printed templates name
    .localhost whatever tunnel_domain is (emulator/stack.py), its routing follows tunnel_domain."""
    state = json.loads(info.state_file.read_text())
    caller_port = urlsplit(state["caller_ws_url"]).port
    return (f"http://{tunnel_id}.{DOMAIN}:{info.http_port}/",
            f"ws://{{tunnel_id}}.{DOMAIN}:{caller_port}/live")


@pytest.fixture
def vite_factory(short_idle_stack: e2e.StackInfo, tmp_path: Path) -> Iterator[Any]:
    node_modules()
    started: list[Any] = []

    def make(name: str, *agent_args: str, **env: str) -> tuple[ViteApp, Tunnel, str, str]:
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        tunnel = start_agent(short_idle_stack, port, folder, "--heartbeat-interval", HEARTBEAT_S, *agent_args)
        started.append(tunnel.agent)
        page_url, caller_template = private_urls(short_idle_stack, tunnel.tunnel_id)
        app = ViteApp(folder, port, hmr_env(caller_template, tunnel.tunnel_id, **env))
        started.append(app)
        app.start()
        return app, tunnel, page_url, urlsplit(caller_template.replace("{tunnel_id}", tunnel.tunnel_id)).netloc

    yield make
    for thing in reversed(started):
        thing.stop()


async def test_vite_with_keep_host_needs_allowed_hosts_and_then_hot_updates(browser, vite_factory):
    """`ttf --keep-host`: Vite sees the public host and refuses it (403) until server.allowedHosts
    names the tunnel domain. (Vite also allows `server.hmr.host` by itself: where the caller
    socket's host is the page's, as through CloudFront and here, hmr.host alone lets the page in;
    with `<id>.ws.<domain>` it does not.) The client's ping (hmr.timeout, here 2 s) keeps the socket
    under the caller API's idle limit: the socket still carries an update after twice the limit."""
    app, tunnel, page_url, _ = await asyncio.to_thread(vite_factory, "refused", "--keep-host", TTF_HMR_HOST="")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        response = await page.goto(page_url)
        assert response is not None and response.status == 403, (response and response.status)
        body = await response.text()
        assert f'This host ("{tunnel.tunnel_id}.{DOMAIN}") is not allowed' in body, body
    finally:
        await context.close()

    app, tunnel, page_url, caller_host = await asyncio.to_thread(
        vite_factory, "allowed", "--keep-host", TTF_ALLOWED_HOSTS=f".{DOMAIN}", TTF_HMR_TIMEOUT_MS="2000")
    context, view = await open_vite_page(browser, page_url)
    try:
        await hot_update(app, view, "kept host ✓", 1)
        await asyncio.sleep(2 * IDLE_S)  # the measured interval: the socket must outlive two idle limits
        await hot_update(app, view, "still connected", 2)
        log = await view.sockets()
        assert len(hmr_sockets(log, caller_host)) == 1, log
        assert not [e for e in log if e.get("event") == "close" and e.get("proto") == "vite-hmr"], log
    finally:
        await context.close()


async def test_what_vite_does_when_the_caller_api_closes_its_idle_socket(browser, vite_factory):
    """Vite's default ping interval (hmr.timeout 30 s) is longer than this stack's idle limit, so
    the caller API ends the socket (1001, clean, as AWS's idle timeout and 2-hour cap do). Vite's
    client then polls with `vite-ping` sockets until one opens and reloads the whole page (state
    lost); the reloaded page's new socket gets hot updates again. On AWS the limit is 10 min and
    Vite pings every 30 s, so only the 2-hour cap does this."""
    app, tunnel, page_url, _ = await asyncio.to_thread(vite_factory, "idle")
    context, view = await open_vite_page(browser, page_url)
    try:
        first_load = await view.page.evaluate("document.body.dataset.loadedAt")
        started = time.monotonic()
        await view.until("() => JSON.parse(sessionStorage.getItem('ttf-sockets') || '[]')"
                         ".filter(e => e.event === 'open' && e.proto === 'vite-hmr').length >= 2",
                         "Vite reloaded the page and opened a new HMR socket", timeout=IDLE_S + 30)
        reopened_after = time.monotonic() - started
        log = await view.sockets()
        closes = [e for e in log if e.get("event") == "close" and e.get("proto") == "vite-hmr"]
        assert closes and closes[0]["code"] == 1001 and closes[0]["clean"] is True, log
        # Vite polls with `vite-ping` sockets to the HMR socket's URL (from a SharedWorker, which the
        # page's WebSocket log cannot see) and reloads only once one opened: through the tunnel
        assert any("server connection lost. Polling for restart" in line for line in view.console), view.console
        await view.until("() => document.getElementById('msg').textContent === 'version 1'", "the reloaded page rendered")
        assert await view.page.evaluate("document.body.dataset.loadedAt") != first_load, "no reload happened"
        opened = [e for e in log if e.get("event") == "open" and e.get("proto") == "vite-hmr"]
        first_open_to_close = (closes[0]["at"] - opened[0]["at"]) / 1000
        print(f"\nvite idle close: socket closed {first_open_to_close:.1f} s after opening (idle limit {IDLE_S} s), "
              f"page reloaded with a new socket {reopened_after:.1f} s after the page was ready", file=sys.stderr)
        assert IDLE_S - 1 <= first_open_to_close <= IDLE_S + 10, log
        await hot_update(app, view, "after the reload", 1)
    finally:
        await context.close()


# ---- graphql-ws: its server and its own client -------------------------------------------------------

@pytest.fixture
def graphql_server(tmp_path: Path) -> Iterator[tuple[Proc, int]]:
    node_modules()
    proc = Proc(["node", str(APPS / "graphql-server.mjs")], "graphql-ws", tmp_path / "graphql.log", cwd=APPS).start()
    try:
        line = proc.wait_line(lambda l: '"listening"' in l, 30)
        yield proc, int(json.loads(line)["port"])
    finally:
        proc.stop()


def graphql_client(url: str, token: str, seconds: float = 60) -> dict[str, Any]:
    done = subprocess.run(["node", str(APPS / "graphql-client.mjs"), url, token, str(seconds)], cwd=APPS,
                          capture_output=True, text=True, timeout=seconds + 30)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"graphql-client printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    return dict(json.loads(lines[-1]))


def server_events(proc: Proc, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    return [json.loads(proc.wait_line(lambda l: l.startswith("{"), timeout)) for _ in range(count)]


def drain(proc: Proc, quiet_s: float = 3) -> list[dict[str, Any]]:
    """The server's events until it has printed nothing for quiet_s."""
    events = []
    while True:
        try:
            events.append(json.loads(proc.wait_line(lambda l: l.startswith("{"), quiet_s)))
        except ProcError:
            return events


async def test_graphql_ws_subscriptions_pass_with_its_own_client(stack, graphql_server, tmp_path):
    """graphql-ws's client sends `subscribe` only after the server's `connection_ack` (it waits
    for it), so the caller → app order it needs is kept even without ordering across a burst: the
    three subscriptions started at once are independent operations."""
    proc, port = graphql_server
    tunnel = await asyncio.to_thread(start_agent, stack, port, tmp_path)
    try:
        url = f"{json.loads(stack.state_file.read_text())['caller_ws_url']}?tunnel={tunnel.tunnel_id}"
        got = await asyncio.to_thread(graphql_client, url, "let-me-in")
        assert got == {"countdown": [5, 4, 3, 2, 1, 0], "parallel": [[3, 2, 1, 0], [4, 3, 2, 1, 0], [6, 5, 4, 3, 2, 1, 0]],
                       "hello": "hello wörld ✓", "closes": []}, got
        events = await asyncio.to_thread(server_events, proc, 7)
        connect = events[0]
        assert connect["event"] == "connect" and connect["url"] == "/" and connect["protocol"] == "graphql-transport-ws"
        assert connect["params"] == {"token": "let-me-in"}
        assert [e["event"] for e in events[1:6]] == ["subscribe"] * 5
        # dispose()'s close code reached the app; its reason is API Gateway's disconnectReason, not the client's
        assert events[6]["event"] == "close" and events[6]["code"] == 1000, events[6]

        # The server refuses a wrong token with 4403; the caller sees 1000 (AWS ends server-side closes
        # with 1000 only: shared/README.md "Close codes pass one way only"), and graphql-ws's client,
        # which gives up on 4403 (retryAttempts 0: the direct run of the same client), reconnects
        # after a 1000 while an operation waits, with no backoff and no retry limit: a loop.
        refused = await asyncio.to_thread(graphql_client, url, "wrong", 8)
        tried = await asyncio.to_thread(drain, proc)
        print(f"\ngraphql-ws refused through the tunnel: {len(refused['closes'])} sockets in 8 s, "
              f"{len(refused['closes']) / 8:.0f}/s", file=sys.stderr)
        assert refused["error"] == "deadline", refused
        assert len(refused["closes"]) >= 2 and set(refused["closes"]) == {1000}, refused
        connects = [e for e in tried if e["event"] == "connect"]
        assert len(connects) >= len(refused["closes"]) >= 2, tried  # each one refused anew (+1 cut by dispose)
        # the app's own close event says 4403: the agent echoes the app's close code (RFC 6455 5.5.1);
        # before a6e0fa8 aiohttp's autoclose answered 1000 and the app saw 1000
        assert {e["code"] for e in tried if e["event"] == "close"} == {4403}, tried
    finally:
        tunnel.agent.stop()



# ---- an origin-checking server and a real browser's Origin --------------------------------------------

ORIGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>origin</title><body><script>
const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
ws.onopen = () => ws.send("which origin?");
ws.onmessage = (e) => { document.body.dataset.seen = e.data; ws.close(1000); };
ws.onclose = (e) => { document.body.dataset.closed = String(e.code); };
</script></body>"""


async def serve_page(connection: Any, request: Any) -> Any:
    """Plain GETs get the page; upgrades go on to the handshake (and its origin check)."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    response = connection.respond(200, ORIGIN_PAGE)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


async def test_a_browser_page_through_the_tunnel_sends_its_origin_to_an_origin_checking_server(browser, stack, tmp_path):
    """The browser's own Origin (not one a test wrote): the page's, `http://<id>.localhost:<http
    port>`, reaches the app unchanged; `origins=` listing it accepts the socket, listing only the
    app's local origin refuses it (the browser sees the handshake fail: 1006)."""
    from websockets.asyncio.server import serve
    port = free_port()
    tunnel: Tunnel = await asyncio.to_thread(start_agent, stack, port, tmp_path)
    page_origin = tunnel.public_url.rstrip("/")
    caller = json.loads(stack.state_file.read_text())["caller_ws_url_template"].replace("{tunnel_id}", tunnel.tunnel_id)
    url = f"{page_origin}/?ws={quote(caller, safe='')}"
    try:
        for origins, accepted in (([page_origin], True), ([f"http://127.0.0.1:{port}", f"http://localhost:{port}"], False)):
            async with serve(echo_what_it_saw, "127.0.0.1", port, origins=origins, process_request=serve_page):
                context = await browser.new_context()
                try:
                    page = await context.new_page()
                    response = await page.goto(url)
                    assert response is not None and response.status == 200, (response and response.status)
                    await page.wait_for_function("() => document.body.dataset.closed", timeout=60_000)
                    seen = await page.evaluate("document.body.dataset.seen")
                    closed = await page.evaluate("document.body.dataset.closed")
                finally:
                    await context.close()
            if accepted:
                assert json.loads(seen) == {"origin": page_origin, "host": f"127.0.0.1:{port}", "message": "which origin?"}
                assert closed == "1000"
            else:
                assert seen is None and closed == "1006", (origins, seen, closed)
    finally:
        tunnel.agent.stop()


# ---- Socket.IO: its server and its own client ------------------------------------------------------

async def test_socket_io_passes_with_its_own_client_on_path_slash(stack, tmp_path):
    """Socket.IO with `path: '/'` and the WebSocket transport on both sides, through the caller
    API's query form: the app's welcome (it speaks first), 20 acked messages one by one in order, 20
    at once whose acks all match (Socket.IO acks by id), and 50 numbered events sent at once that the
    app reads in the order sent and whose echoes (events, no ack ids) reach the client in that order,
    each once: compared as lists (the caller frames FIFO queue and the agent's reorder buffer:
    shared/README.md "Ordering")."""
    node_modules()
    proc = Proc(["node", str(APPS / "socketio-server.mjs")], "socket.io", tmp_path / "socketio.log", cwd=APPS).start()
    tunnel: Tunnel | None = None
    try:
        port = int(json.loads(proc.wait_line(lambda l: '"listening"' in l, 30))["port"])
        tunnel = await asyncio.to_thread(start_agent, stack, port, tmp_path)
        base = urlsplit(json.loads(stack.state_file.read_text())["caller_ws_url"])
        # no stage path: Socket.IO reads a URL's path as its namespace (the emulator takes every path to the stage)
        done = await asyncio.to_thread(subprocess.run, ["node", str(APPS / "socketio-client.mjs"),
                                                        f"http://{base.netloc}", tunnel.tunnel_id],
                                       cwd=APPS, capture_output=True, text=True, timeout=90)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        assert done.returncode == 0 and lines, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
        got = json.loads(lines[-1])
        assert got["welcome"] == "héllo from the app ✓" and got["transport"] == "websocket", got
        assert got["sequential"] == [f"echo {n}" for n in range(20)], got
        assert got["burst"] == [f"echo {100 + n}" for n in range(20)], got
        assert got["sequence"] == list(range(50)), f"the 50 numbered echoes, as the client got them: {got['sequence']}"
        connection = json.loads(proc.wait_line(lambda l: '"connection"' in l, 15))
        assert connection["query"] == {"EIO": "4", "transport": "websocket"}, connection  # `tunnel` removed
        ended = json.loads(proc.wait_line(lambda l: '"disconnect"' in l, 15))
        assert ended["order"] == [*range(20), *range(100, 120)], f"the acked messages, as the app read them: {ended}"
        assert ended["sequence"] == list(range(50)), f"the 50 numbered events, as the app read them: {ended}"
        print(f"\nsocket.io: 20 acked one by one, 20 at once and 50 numbered events in order; "
              f"disconnect reason {ended['reason']!r}", file=sys.stderr)
    finally:
        if tunnel is not None:
            tunnel.agent.stop()
        proc.stop()
