"""The agent: hold a WebSocket to the tunnel endpoint forever and serve requests on it.

Lifecycle: connect (+ `ready`, wait `connection_established`) -> serve (reader task,
heartbeat task, one task per request under a shared concurrency bound) -> on a dead
socket reconnect with backoff, reclaiming the same tunnel id; before API Gateway's 2 h
cap open a new connection, switch to it, drain and close the old one; on stop, refuse new
requests, drain in-flight ones for a few seconds, close cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import aiohttp

from httptunnel import protocol
from httptunnel.protocol import ConnectionEstablished, Headers, HttpRequest

from ttf._version import __version__
from ttf.backoff import Backoff
from ttf.config import Config
from ttf.events import Connected, Disconnected, Notice, Reconnecting, Sink, TunnelEstablished
from ttf.forward import Exchange, Forwarder, error_frame, make_sessions
from ttf.inspector import History, Inspector
from ttf.state import StateError, TunnelStore

log = logging.getLogger("ttf")

PONG_TIMEOUT_MAX = 10.0
CLOSE_TIMEOUT = 2.0
RENEW_RETRY_S = 30.0
RETIRE_GRACE_S = 1.0  # requests posted to the old socket just before the switch may still arrive
# connect's answers to an id + reclaim token it will not honour: 400 malformed id, 403 not
# granted, 409 held by someone else (a wrong token), 410 gone. A new id is the way out.
RECLAIM_REFUSED = frozenset({400, 403, 409, 410})


class ConnectFailed(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Fatal(Exception):
    """Retrying cannot help (e.g. the token is rejected before any success)."""


@dataclass
class TunnelState:
    tunnel_id: str | None = None
    reclaim_token: str | None = None
    ever_established: bool = False
    from_saved: bool = False  # the id/token came from the state file and are not confirmed yet


class Session:
    """One established WebSocket connection."""

    def __init__(self, agent: "Agent", ws: aiohttp.ClientWebSocketResponse, info: ConnectionEstablished,
                 early: Sequence[HttpRequest] = ()) -> None:
        self.agent = agent
        self.ws = ws
        self.info = info
        self.opened_at = time.monotonic()
        self.accepting = True
        self.inflight: dict[asyncio.Task[None], str] = {}
        self._send_lock = asyncio.Lock()
        self._rx = asyncio.Event()
        # Requests the server routed here between $connect and connection_established: the
        # connection row exists from $connect on, so under traffic some arrive before we are told
        # we are established. They are ours to answer; dropping them left callers waiting 25 s.
        for req in early:
            self._start_request(req)
        self.task: asyncio.Task[str] = asyncio.get_running_loop().create_task(self._run())

    async def send(self, frame: str) -> bool:
        if self.ws.closed:
            log.debug("dropping a frame: socket closed")
            return False
        try:
            async with self._send_lock:
                await self.ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            log.debug("send failed: %r", exc)
            return False
        return True

    async def _run(self) -> str:
        reader = asyncio.create_task(self._read())
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            done, _ = await asyncio.wait({reader, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, heartbeat):
                task.cancel()
            await asyncio.gather(reader, heartbeat, return_exceptions=True)
        first = done.pop()
        reason = first.result() if not first.cancelled() and first.exception() is None else repr(first.exception())
        await self.close()
        for pending in list(self.inflight):
            pending.cancel()  # nobody can answer them any more: only this connection could
        return reason

    async def close(self) -> None:
        await _close_quietly(self.ws)

    async def _read(self) -> str:
        async for msg in self.ws:
            self._rx.set()
            if msg.type == aiohttp.WSMsgType.TEXT:
                self._on_text(msg.data)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return f"socket error: {self.ws.exception()!r}"
            else:
                log.warning("ignoring a non-text frame (%s)", msg.type.name)
        code = self.ws.close_code
        return f"closed by server (code {code})" if code is not None else "connection lost"

    def _on_text(self, data: str) -> None:
        try:
            message = protocol.decode(data)
        except protocol.ProtocolError as exc:
            log.warning("ignoring a frame from the server: %s", exc)
            return
        log.debug("<- %s %s", message.type, getattr(message, "request_id", ""))
        if isinstance(message, HttpRequest):
            self._start_request(message)
        elif isinstance(message, protocol.Ping):
            self._spawn(self.send(protocol.encode(protocol.Pong())))
        elif isinstance(message, protocol.Pong):
            return
        else:
            log.warning("ignoring an unexpected %s frame", message.type)

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self.agent.background.add(task)
        task.add_done_callback(self.agent.background.discard)

    def _start_request(self, req: HttpRequest) -> None:
        if not self.accepting:
            self._spawn(self.send(error_frame(req.request_id, "local_service_unavailable", "agent is shutting down")))
            return
        task = asyncio.create_task(self._serve(req))
        self.inflight[task] = req.request_id
        task.add_done_callback(self._request_done)

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("request handler failed: %r", task.exception())

    async def _serve(self, req: HttpRequest) -> None:
        async with self.agent.slots:
            try:
                outcome = await self.agent.forwarder.handle(req)
            except Exception as exc:  # a bug must cost one request, not the tunnel
                log.exception("request %s failed", req.request_id)
                await self.send(error_frame(req.request_id, "internal_error", f"agent error: {exc!r}"))
                return
        sent = await self.send(outcome.frame)
        log.debug("-> answer to %s (%d bytes, status %d)", req.request_id, len(outcome.frame), outcome.event.status)
        if not sent:
            log.warning("could not deliver the answer to %s %s: connection gone", req.method, req.uri)
        self.agent.emit(outcome.event)

    async def _heartbeat(self) -> str:
        interval = self.agent.config.heartbeat_interval
        pong_timeout = min(PONG_TIMEOUT_MAX, interval / 2)
        while True:
            await asyncio.sleep(interval)
            self._rx.clear()
            if not await self.send(protocol.encode(protocol.Ping())):
                return "heartbeat could not be sent"
            try:
                async with asyncio.timeout(pong_timeout):
                    await self._rx.wait()
            except TimeoutError:
                return f"no answer to heartbeat within {pong_timeout:g} s"

    async def drain(self, timeout: float, force: asyncio.Event | None = None) -> None:
        """Wait (up to timeout) for in-flight requests; cancel and answer the rest with an error."""
        deadline = time.monotonic() + timeout
        while self.inflight and not (force is not None and force.is_set()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            waiters: set[asyncio.Future[Any]] = set(self.inflight)
            force_waiter = asyncio.ensure_future(force.wait()) if force is not None else None
            if force_waiter is not None:
                waiters.add(force_waiter)
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if force_waiter is not None:
                force_waiter.cancel()
        leftovers = dict(self.inflight)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for request_id in leftovers.values():
            await self.send(error_frame(request_id, "local_service_unavailable", "agent stopped before answering"))


@dataclass
class Agent:
    config: Config
    sink: Sink
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # backoff waits (injectable)

    def __post_init__(self) -> None:
        self.state = TunnelState()
        self.background: set[asyncio.Future[object]] = set()
        self.retiring: set[asyncio.Task[None]] = set()
        self.current: Session | None = None
        self._old_sessions: list[Session] = []
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self.store: TunnelStore | None = None
        if self.config.state_dir is not None and not self.config.subdomain:  # a name needs no saved id
            self.store = TunnelStore(self.config.state_dir, self.config.endpoint, self.config.local_target)
        self._save_failed = False
        self._saved_as: tuple[str, str] | None = None  # what the state file holds, as this agent last wrote it
        self.history: History | None = History(self.config.inspect_history) if self.config.inspect else None
        self.inspector: Inspector | None = None

    def emit(self, event: object) -> None:
        try:
            self.sink(event)  # type: ignore[arg-type]
        except Exception:  # a broken display must never stop the tunnel
            log.exception("output failed")

    # ---- public -------------------------------------------------------------------
    def request_stop(self) -> None:
        """First call: graceful stop. Second call: stop waiting for in-flight requests."""
        if self._stop.is_set():
            self._force.set()
            return
        self._stop.set()
        for session in [self.current, *self._old_sessions]:
            if session is not None:
                session.accepting = False  # from now on new requests get a quick error

    async def run(self) -> None:
        """Run until request_stop(); raises Fatal when retrying is pointless."""
        self.slots = asyncio.Semaphore(self.config.max_concurrency)
        local, remote = make_sessions(self.config.max_concurrency)
        self.forwarder = Forwarder(
            local=local, remote=remote, host=self.config.host, port=self.config.port,
            keep_host=self.config.keep_host, request_timeout=self.config.request_timeout,
            observer=self.history.record if self.history is not None else None,
        )
        self.ws_http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        try:
            await self._start_inspector()
            self._restore_saved()
            await self._loop()
        finally:
            await self._shutdown()
            if self.inspector is not None:
                await self.inspector.stop()
            await asyncio.gather(local.close(), remote.close(), self.ws_http.close(), return_exceptions=True)

    # ---- the request inspector --------------------------------------------------------
    async def _start_inspector(self) -> None:
        if self.config.inspect is None or self.history is None:
            return
        host, port = self.config.inspect
        inspector = Inspector(self.history, self._replay)
        try:
            url = await inspector.start(host, port)
        except OSError as exc:
            self.emit(Notice("warning", f"request inspector not started: cannot listen on {host}:{port} "
                                        f"({exc.strerror or exc}); the tunnel runs without it"))
            return
        self.inspector = inspector
        self.emit(Notice("info", f"request inspector: {url}"))

    async def _replay(self, method: str, uri: str, headers: Headers, body: bytes) -> Exchange:
        async with self.slots:  # replays share the local service's concurrency bound
            return await self.forwarder.replay(method, uri, headers, body)

    # ---- main loop ------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stop.is_set():
            session = await self._establish()
            if session is None:
                return
            self.current = session
            reason = await self._serve(session)
            if reason is None:
                return
            self.emit(Disconnected(reason=reason))
            await self._wait_before_retry(reason)

    async def _wait_before_retry(self, reason: str) -> None:
        delay = self.backoff.next_delay()
        self.emit(Reconnecting(delay_s=delay, attempt=self.backoff.attempt, reason=reason))
        await self._pause(delay)

    async def _establish(self) -> Session | None:
        """Connect, retrying forever with backoff; None when asked to stop."""
        while not self._stop.is_set():
            try:
                session = await self._unless_stopped(self._open())
            except ConnectFailed as exc:
                if self._after_refusal(exc):
                    continue  # the reclaim was dropped: ask for a new id at once
                await self._wait_before_retry(exc.reason)
                continue
            if session is None:
                return None
            self.backoff.reset()
            return session
        return None

    async def _unless_stopped(self, coro: Awaitable[Session]) -> Session | None:
        """Run coro, but give up (None) as soon as a stop is requested."""
        work = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if work.done():
            return work.result()
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        return None

    def _after_refusal(self, exc: ConnectFailed) -> bool:
        """Raise Fatal, or drop a refused reclaim (True: worth retrying at once)."""
        if exc.status == 401 and not self.state.ever_established:
            raise Fatal(f"the endpoint rejected the token (HTTP 401): {exc.reason}")
        if exc.status not in RECLAIM_REFUSED or not self.state.reclaim_token:
            return False
        saved = "saved " if self.state.from_saved else ""
        self.emit(Notice("warning", f"{saved}tunnel {self.state.tunnel_id} could not be reclaimed "
                                    f"(HTTP {exc.status}); a new public URL will be assigned"))
        self.state.tunnel_id = self.state.reclaim_token = None
        self.state.from_saved = False
        self._forget_saved()
        return True

    # ---- the saved tunnel (state file) -----------------------------------------------
    def _restore_saved(self) -> None:
        """Present the saved tunnel id on the first connect (not with --subdomain / --new-url)."""
        if self.store is None:
            return
        if self.config.new_url:
            self.emit(Notice("info", "--new-url: not reclaiming the saved public URL; the new one will be saved"))
            return
        try:
            saved = self.store.load()
        except StateError as exc:
            self.emit(Notice("warning", f"ignoring the saved tunnel: {exc}"))
            return
        if saved is None:
            return
        self.state.tunnel_id, self.state.reclaim_token = saved.tunnel_id, saved.reclaim_token
        self.state.from_saved = True
        self.emit(Notice("info", f"reclaiming the saved tunnel {saved.tunnel_id} ({self.store.path})"))

    def _save(self, tunnel_id: str, reclaim_token: str) -> None:
        if self.store is None or self._saved_as == (tunnel_id, reclaim_token):
            return  # unchanged (a renewal or a reconnect keeping its id): no need to rewrite the file
        try:
            self.store.save(tunnel_id, reclaim_token)
        except OSError as exc:
            if not self._save_failed:  # once is enough: every renewal would repeat it
                self.emit(Notice("warning", f"cannot save the tunnel to {self.store.path}: {exc.strerror or exc}; "
                                            "the URL will change when ttf restarts"))
            self._save_failed = True
            return
        self._save_failed = False
        self._saved_as = (tunnel_id, reclaim_token)

    def _forget_saved(self) -> None:
        if self.store is None:
            return
        self._saved_as = None
        try:
            self.store.forget()
        except OSError as exc:
            self.emit(Notice("warning", f"cannot remove {self.store.path}: {exc.strerror or exc}"))

    async def _pause(self, delay: float) -> None:
        sleeper = asyncio.ensure_future(self.sleep(delay))
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (sleeper, stopper):
            fut.cancel()

    async def _serve(self, session: Session) -> str | None:
        """Serve until the socket dies (reason) or a stop is requested (None); renews on the way."""
        renew_at = session.opened_at + self.config.renew_after
        while True:
            stopper = asyncio.ensure_future(self._stop.wait())
            timeout = max(0.0, renew_at - time.monotonic())
            await asyncio.wait({session.task, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if self._stop.is_set():
                return None
            if session.task.done():
                return session.task.result() if not session.task.cancelled() else "cancelled"
            fresh = await self._renew()
            if fresh is None:
                renew_at = time.monotonic() + RENEW_RETRY_S
                continue
            self._retire(session)
            session = self.current = fresh
            renew_at = session.opened_at + self.config.renew_after

    async def _renew(self) -> Session | None:
        try:
            return await self._unless_stopped(self._open(renewing=True))
        except ConnectFailed as exc:
            self.emit(Notice("warning", f"connection renewal failed ({exc.reason}); keeping the current one"))
            return None

    def _retire(self, old: Session) -> None:
        async def retire() -> None:
            try:
                await asyncio.wait({old.task}, timeout=RETIRE_GRACE_S)
                await old.drain(self.config.request_timeout + 5.0)
            finally:
                await old.close()
                old.task.cancel()
                await asyncio.gather(old.task, return_exceptions=True)
                self._old_sessions.remove(old)

        self._old_sessions.append(old)
        task = asyncio.create_task(retire())
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    # ---- connecting -----------------------------------------------------------------
    def _connect_headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"ttf/{__version__}"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        if self.config.subdomain:
            headers["X-Tunnel-Subdomain"] = self.config.subdomain
        if self.config.no_rewrite:
            headers["X-Tunnel-Rewrite"] = "off"
        if self.state.tunnel_id and self.state.reclaim_token:
            headers["X-Tunnel-Id"] = self.state.tunnel_id
            headers["X-Tunnel-Reclaim-Token"] = self.state.reclaim_token
        return headers

    async def _open(self, renewing: bool = False) -> Session:
        endpoint = self.config.endpoint
        ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                ws = await self.ws_http.ws_connect(
                    endpoint,
                    headers=self._connect_headers(),
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                    autoping=True,
                )
                self.emit(Connected(endpoint=endpoint))
                await ws.send_str(protocol.encode(protocol.Ready()))
                info, early = await self._await_established(ws)
        except TimeoutError:
            await _close_quietly(ws)
            what = "no connection_established" if ws is not None else "no answer"
            raise ConnectFailed(f"{what} within {self.config.connect_timeout:g} s") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise ConnectFailed(f"endpoint refused the WebSocket (HTTP {exc.status})", exc.status) from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"cannot reach {endpoint}: {exc.os_error}") from None
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            await _close_quietly(ws)
            raise ConnectFailed(f"connection failed: {exc!r}") from None
        except ConnectFailed:
            await _close_quietly(ws)
            raise
        self._remember(info, renewing)
        return Session(self, ws, info, early)

    async def _await_established(
            self, ws: aiohttp.ClientWebSocketResponse) -> tuple[ConnectionEstablished, list[HttpRequest]]:
        """Wait for connection_established; http_request frames that come first are kept for the session."""
        early: list[HttpRequest] = []
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                message = protocol.decode(msg.data)
            except protocol.ProtocolError as exc:
                log.warning("ignoring a frame while connecting: %s", exc)
                continue
            if isinstance(message, ConnectionEstablished):
                return message, early
            if isinstance(message, HttpRequest):
                early.append(message)
                continue
            if isinstance(message, protocol.Ping):
                await ws.send_str(protocol.encode(protocol.Pong()))
                continue
            log.warning("ignoring %s before connection_established", message.type)
        raise ConnectFailed(f"closed before connection_established (code {ws.close_code})")

    def _remember(self, info: ConnectionEstablished, renewing: bool) -> None:
        if self.state.tunnel_id and info.tunnel_id != self.state.tunnel_id:
            self.emit(Notice("warning", f"tunnel id changed from {self.state.tunnel_id} to {info.tunnel_id}"))
        self.state.tunnel_id = info.tunnel_id
        self.state.reclaim_token = info.reclaim_token or self.state.reclaim_token
        self.state.ever_established = True
        self.state.from_saved = False
        if self.state.reclaim_token:
            self._save(info.tunnel_id, self.state.reclaim_token)
        self.emit(
            TunnelEstablished(
                tunnel_id=info.tunnel_id,
                public_url=info.public_url,
                subdomain_url=info.subdomain_url,
                path_based_url=info.path_based_url,
                connection_id=info.connection_id,
                renewed=renewing,
                inspector_url=self.inspector.url if self.inspector is not None else None,
            )
        )

    # ---- stopping -------------------------------------------------------------------
    async def _shutdown(self) -> None:
        sessions = [s for s in [self.current, *self._old_sessions] if s is not None]
        for session in sessions:
            session.accepting = False
        busy = sum(len(s.inflight) for s in sessions)
        if busy:
            self.emit(Notice("info", f"finishing {busy} in-flight request(s), up to "
                                     f"{self.config.drain_timeout:g} s (Ctrl-C again to skip)"))
        await asyncio.gather(*(s.drain(self.config.drain_timeout, self._force) for s in sessions))
        for task in list(self.retiring):
            task.cancel()
        await asyncio.gather(*self.retiring, return_exceptions=True)
        for session in sessions:
            await session.close()
            session.task.cancel()
        await asyncio.gather(*(s.task for s in sessions), return_exceptions=True)
        for fut in list(self.background):
            fut.cancel()
        if self.current is not None and self._stop.is_set():
            self.emit(Disconnected(reason="stopped"))


async def _close_quietly(ws: aiohttp.ClientWebSocketResponse | None) -> None:
    if ws is None or ws.closed:
        return
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close()
    except (TimeoutError, ConnectionError, aiohttp.ClientError):
        pass
