"""`ttf.expose()`: a tunnel opened from Python code, run by the agent's own layers.

    with ttf.expose(8000, endpoint="wss://...", token="...") as tunnel:   # a script, a test
        register_webhook(tunnel.url + "/hook")
        delivery = tunnel.wait_for_request(path="/hook", timeout=30)

    async with ttf.expose(app=my_asgi_app) as tunnel:                      # async code, Jupyter
        ...

A Tunnel is one TunnelAgent (agent.py) with one TunnelRunner, run in a background thread with
its own event loop: the caller's loop is never blocked or borrowed, no signal handler is
installed, and the thread is a daemon closed at interpreter exit, so a script that never calls
close() still exits. expose() returns once the first `connection_established` arrived, or
raises within `connect_timeout`; a refusal (401, 403, 409) raises at once, network errors are
retried as the command line retries them (within that time). Once open, the tunnel reconnects
and renews by itself like `ttf`.

Settings come from the arguments and TTF_* variables only (api_options in config.py): never a
./ttf.toml or .env it was not given; config="ttf.toml" reads that file. Called from a thread
whose event loop is running, expose() does not wait: `await` the tunnel or use `async with`.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import os
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Generator, Mapping, Sequence
from urllib.parse import urlsplit

from ttf.agent import TunnelAgent
from ttf.config import Config, ConfigError, api_options, check_inspect, convert, finish
from ttf.configfile import read_file
from ttf.events import Disconnected, Event, Reconnecting, TunnelEstablished
from ttf.inprocess import AppError, AppServer
from ttf.inspector import Entry
from ttf.lifecycle import Fatal

__all__ = ["ConfigError", "Request", "Tunnel", "TunnelError", "TunnelRefused", "TunnelTimeout", "expose"]

Request = Entry  # what the tunnel saw: method, uri, headers, bodies (capped), status, duration
GIVE_UP_ON = frozenset({401, 403, 409})  # the token or the name is refused: retrying cannot help
CLOSE_EXTRA_S = 10.0  # close() waits drain_timeout + this for the thread


class TunnelError(Exception):
    """The tunnel could not be opened. `exit_code` is what `ttf` exits with for the same reason
    (1); `status` the HTTP status the endpoint refused the WebSocket with, when that is why."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TunnelRefused(TunnelError):
    """The endpoint refused the tunnel: 401 (the token), 403 (a name the token does not grant),
    409 (a name someone else holds). Raised at once, never retried."""


class TunnelTimeout(TunnelError, TimeoutError):
    """No `connection_established` within connect_timeout (the message says the last reason)."""


_open: weakref.WeakSet[Tunnel] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for tunnel in list(_open):
        tunnel.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Tunnel:
    """One open tunnel. Context manager both ways (`with` / `async with`), awaitable, close()able."""

    def __init__(self, config: Config, app: Any = None, interface: str | None = None) -> None:
        self.config = config
        self._app = AppServer(app, interface) if app is not None else None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._changed = threading.Condition()
        self._established: TunnelEstablished | None = None
        self._connected = False
        self._last_reason = "not connected yet"
        self._requests: OrderedDict[int, Entry] = OrderedDict()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Entry], Callable[[Entry], bool]]] = []
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._agent: TunnelAgent | None = None
        self.error: TunnelError | None = None  # why the tunnel stopped by itself, if it did
        self._thread = threading.Thread(target=self._main, name="ttf-tunnel", daemon=True)

    # ---- opening -------------------------------------------------------------------------
    def _start(self) -> None:
        _open.add(self)
        self._thread.start()

    def _wait_ready(self) -> None:
        """Block this thread until established; raise (and clean up) otherwise."""
        try:
            self._ready.result(self.config.connect_timeout)
        except concurrent.futures.TimeoutError:
            self.close()
            raise self._timeout() from None
        except BaseException:
            self.close()
            raise

    def _timeout(self) -> TunnelTimeout:
        return TunnelTimeout(f"no tunnel within {self.config.connect_timeout:g} s ({self._last_reason})")

    async def _await_ready(self) -> Tunnel:
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._ready)), self.config.connect_timeout)
        except TimeoutError:
            await self.aclose()
            raise self._timeout() from None
        except BaseException:
            await self.aclose()
            raise
        return self

    def __await__(self) -> Generator[Any, None, Tunnel]:
        return self._await_ready().__await__()

    def __enter__(self) -> Tunnel:
        self._wait_ready()  # at once when already established; raises why it never was
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Tunnel:
        return await self._await_ready()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # ---- what it is ------------------------------------------------------------------------
    def _info(self) -> TunnelEstablished:
        if not self._ready.done():
            if _running_loop() is not None:
                raise RuntimeError("the tunnel is not established yet: `await ttf.expose(...)` or use "
                                   "`async with ttf.expose(...)` where an event loop runs")
            self._wait_ready()
        self._ready.result()  # raises why it never opened
        assert self._established is not None
        return self._established

    @property
    def url(self) -> str:
        """The public URL (subdomain form when the deployment has a domain, else path form)."""
        return self._info().public_url

    @property
    def path_url(self) -> str | None:
        """The path-based URL (https://<api>/<id>/), when the deployment serves one."""
        return self._info().path_based_url

    @property
    def subdomain_url(self) -> str | None:
        return self._info().subdomain_url

    @property
    def tunnel_id(self) -> str:
        return self._info().tunnel_id

    @property
    def connected(self) -> bool:
        """True while a socket is established (False between a drop and the reconnect)."""
        return self._connected

    @property
    def requests(self) -> list[Request]:
        """What the tunnel saw, oldest first (the inspector's records: bodies capped at 1 MB,
        the latest `history` of them within 16 MB)."""
        with self._changed:
            return list(self._requests.values())

    def wait_for_request(self, path: str | None = None, *, method: str | None = None, timeout: float = 30.0,
                         where: Callable[[Request], bool] | None = None) -> Request:
        """The first request (already seen, or the next to come) whose path (without the query)
        is `path`, method `method` and for which `where` holds; TimeoutError after `timeout` s."""
        match = _matcher(path, method, where)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((entry for entry in self._requests.values() if match(entry)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self._finished.done():
                    raise TimeoutError(f"no request{_what(path, method)} within {timeout:g} s "
                                       f"({len(self._requests)} seen)")
                self._changed.wait(left)

    async def wait_for_request_async(self, path: str | None = None, *, method: str | None = None,
                                     timeout: float = 30.0, where: Callable[[Request], bool] | None = None
                                     ) -> Request:
        """wait_for_request() for async code (never blocks the caller's loop)."""
        match = _matcher(path, method, where)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Entry] = loop.create_future()
        with self._changed:
            found = next((entry for entry in self._requests.values() if match(entry)), None)
            if found is not None:
                return found
            waiter = (loop, future, match)
            self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"no request{_what(path, method)} within {timeout:g} s "
                               f"({len(self._requests)} seen)") from None
        finally:
            with self._changed:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    # ---- closing ---------------------------------------------------------------------------
    def _ask_stop(self) -> None:
        self._closing.set()
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._stop_in_loop)
            except RuntimeError:  # the loop already ended
                pass

    def _stop_in_loop(self) -> None:
        if self._agent is not None:
            self._agent.request_stop()

    def close(self, timeout: float | None = None) -> None:
        """Stop: refuse new requests, let in-flight ones finish (drain_timeout), close the socket
        and the thread. Idempotent."""
        self._ask_stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.config.drain_timeout + CLOSE_EXTRA_S if timeout is None else timeout)
        _open.discard(self)

    async def aclose(self) -> None:
        """close() for async code: waits without blocking the caller's loop."""
        self._ask_stop()
        if self._thread.ident is not None:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._finished)),
                                   self.config.drain_timeout + CLOSE_EXTRA_S)
            self._thread.join(CLOSE_EXTRA_S)
        _open.discard(self)

    def __repr__(self) -> str:
        state = self._established.public_url if self._established else self._last_reason
        return f"<ttf.Tunnel {state} -> {self.config.local_target}>"

    # ---- the tunnel's own thread -----------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except AppError as exc:  # the in-process app's lifespan startup failed
            self._fail(TunnelError(str(exc)))
        except BaseException as exc:  # never seen by the caller otherwise
            self._fail(exc if isinstance(exc, TunnelError) else TunnelError(f"the tunnel stopped: {exc!r}"))
        finally:
            self._connected = False
            if not self._ready.done():
                self._ready.set_exception(TunnelError("the tunnel was closed before it was established"))
            self._finished.set_result(None)
            with self._changed:
                self._changed.notify_all()

    def _fail(self, error: TunnelError) -> None:
        self.error = error
        if not self._ready.done():
            self._ready.set_exception(error)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        # DNS lookups run here: named, and shut down with the loop (asyncio.run does)
        self._loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="ttf-tunnel-io"))
        if self._closing.is_set():
            return
        config = self.config
        if self._app is not None:
            config = dataclasses.replace(config, host="127.0.0.1", port=await self._app.start())
        try:
            agent = TunnelAgent(config, self._on_event, record=True)
            self._agent = agent
            if agent.history is not None:
                agent.history.listen(self._on_history)
            if self._closing.is_set():
                agent.request_stop()
            try:
                await agent.run()
            except Fatal as exc:
                kind = TunnelRefused if exc.status in GIVE_UP_ON else TunnelError
                self._fail(kind(str(exc), exc.status))
        finally:
            if self._app is not None:
                await self._app.stop()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TunnelEstablished):
            self._established = event
            self._connected = True
            if not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(event, Disconnected):
            self._connected = False
            self._last_reason = event.reason
        elif isinstance(event, Reconnecting):
            self._last_reason = event.reason

    def _on_history(self, kind: str, data: dict[str, Any]) -> None:
        if kind != "entry" or self._agent is None or self._agent.history is None:
            return
        entry = self._agent.history.get(int(data["entry"]["id"]))
        with self._changed:
            for gone in data.get("evicted", ()):
                self._requests.pop(int(gone), None)
            if entry is not None:
                self._requests[entry.id] = entry
                for loop, future, match in list(self._waiters):
                    if match(entry):
                        self._waiters.remove((loop, future, match))
                        loop.call_soon_threadsafe(_settle, future, entry)
            self._changed.notify_all()


def _settle(future: asyncio.Future[Entry], entry: Entry) -> None:
    if not future.done():
        future.set_result(entry)


def _matcher(path: str | None, method: str | None, where: Callable[[Entry], bool] | None) -> Callable[[Entry], bool]:
    def match(entry: Entry) -> bool:
        if path is not None and entry.uri.partition("?")[0] != path:
            return False
        if method is not None and entry.method.upper() != method.upper():
            return False
        return where is None or bool(where(entry))
    return match


def _what(path: str | None, method: str | None) -> str:
    said = " ".join(part for part in (method and method.upper(), path) if part)
    return f" {said}" if said else ""


def _target(target: int | str) -> dict[str, object]:
    """8000, "8000", "localhost:8000", "http://127.0.0.1:8000" -> host/port options."""
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise ConfigError(f"target: expected a port or an http://HOST:PORT URL, got {target!r}")
    if isinstance(target, int) or target.strip().isdigit():
        return {"port": target}
    text = target.strip()
    parts = urlsplit(text if "://" in text else f"http://{text}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"target: {target!r} has a bad port") from None
    if parts.scheme != "http":
        raise ConfigError(f"target: {target!r}: the local service is reached over http:// only")
    if not parts.hostname or port is None:
        raise ConfigError(f"target: {target!r} names no host and port (http://HOST:PORT)")
    if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username is not None:
        raise ConfigError(f"target: {target!r}: only http://HOST:PORT (the tunnel forwards every path)")
    return {"host": parts.hostname, "port": port}


def expose(target: int | str | None = None, *, app: Any = None, interface: str | None = None,
           endpoint: str | None = None, token: str | None = None, subdomain: str | None = None,
           config: str | os.PathLike[str] | None = None, tunnel: str | None = None,
           basic_auth: Sequence[str] | str | None = None, allow_ip: Sequence[str] | str | None = None,
           deny_ip: Sequence[str] | str | None = None, verify_webhook: Sequence[str] | str | None = None,
           request_header_add: Sequence[str] | str | None = None,
           request_header_remove: Sequence[str] | str | None = None,
           response_header_add: Sequence[str] | str | None = None,
           response_header_remove: Sequence[str] | str | None = None,
           keep_host: bool | None = None, no_rewrite: bool | None = None, rewrite_json: bool | None = None,
           connect_timeout: float | None = None, request_timeout: float | None = None,
           max_concurrency: int | None = None, history: int = 100, inspect: str | None = None,
           state_dir: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
           **hidden: Any) -> Tunnel:
    """Open a tunnel to a local port or URL (`target`), or to a Python web app served in-process
    (`app=`: ASGI or WSGI, told apart by whether it is async; `interface="asgi"|"wsgi"` says so).

    endpoint, token, subdomain and the edge policy options (README "Edge policy": lists of
    strings like the command line's repeated options) default to TTF_ENDPOINT, TTF_TOKEN, ...
    from `env` (os.environ). `config="ttf.toml"` runs that file's tunnel (`tunnel=` picks one of
    several). `history` requests are kept for .requests; `inspect="127.0.0.1:4045"` also serves
    the request inspector; `state_dir` keeps the URL between runs like `ttf` (off: a new URL).

    Without a running event loop in this thread: returns once established (raises TunnelRefused,
    TunnelTimeout or ConfigError). With one: returns at once; `await` it or `async with` it.
    """
    env = os.environ if env is None else env
    explicit: dict[str, object] = {"endpoint": endpoint, "token": token, "subdomain": subdomain,
                                   "basic_auth": basic_auth, "allow_ip": allow_ip, "deny_ip": deny_ip,
                                   "verify_webhook": verify_webhook, "request_header_add": request_header_add,
                                   "request_header_remove": request_header_remove,
                                   "response_header_add": response_header_add,
                                   "response_header_remove": response_header_remove, "keep_host": keep_host,
                                   "no_rewrite": no_rewrite, "rewrite_json": rewrite_json,
                                   "connect_timeout": connect_timeout, "request_timeout": request_timeout,
                                   "max_concurrency": max_concurrency, "inspect_history": history}
    unknown = set(hidden) - {"heartbeat_interval", "renew_after", "drain_timeout"}
    if unknown:
        raise TypeError(f"expose() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    explicit.update(hidden)
    if config is not None:
        if target is not None or app is not None:
            raise ConfigError("config= names the local service in the file: pass no port, URL or app= with it")
    elif (target is None) == (app is None):
        raise ConfigError("expose() takes a port or URL, or app=... (one of them)")
    elif target is not None:
        explicit.update(_target(target))
    else:
        explicit["port"] = 1  # replaced by the in-process server's own port when it starts
    given = api_options({k: v for k, v in explicit.items() if v is not None}, env)
    settings = dataclasses.replace(
        _settings(given, env, config, tunnel), give_up_on=GIVE_UP_ON,
        inspect=check_inspect("inspect", inspect) if inspect is not None else None,
        state_dir=Path(state_dir).expanduser() if state_dir is not None else None)
    opened = Tunnel(settings, app, interface)
    opened._start()
    if _running_loop() is None:
        opened._wait_ready()
    return opened


def _settings(given: dict[str, tuple[str, object]], env: Mapping[str, str], config: str | os.PathLike[str] | None,
              tunnel: str | None) -> Config:
    if config is None:
        if tunnel is not None:
            raise ConfigError("tunnel= picks a tunnel of a config file: pass config= too")
        if "endpoint" not in given:
            raise ConfigError("no endpoint: pass endpoint='wss://...' or set TTF_ENDPOINT")
        return finish({name: convert(name, *given[name]) for name in given}, env)
    plan = read_file(str(config), Path(config).expanduser(), given, env)
    if tunnel is None:
        if len(plan.tunnels) != 1:
            names = ", ".join(t.name or "" for t in plan.tunnels)
            raise ConfigError(f"{config} has {len(plan.tunnels)} tunnels ({names}): pick one with tunnel=")
        return plan.tunnels[0]
    for candidate in plan.tunnels:
        if (candidate.name or "").lower() == tunnel.lower():
            return candidate
    raise ConfigError(f"{config} has no tunnel {tunnel!r} (it has: {', '.join(t.name or '' for t in plan.tunnels)})")
