"""Floods against a local stack, and what a second tunnel sees meanwhile (issue 29).

    python -m scripts.bench.flood [--configs before,after] [--attacks unknown,own,connect,default]
                                  [--seconds 6] [--steady-rps 4] [--attack-rps 60] [--attack-max 1500]
                                  [--edge http_api|function_url] [--stream-environments 12]
                                  [--streams 40] [--stream-gap-ms 3000] [--caller-sockets 4]
                                  [--socket-rate 0]
                                  [--var NAME=VALUE ...] [--json FILE]

For each configuration a local stack starts (loopback, ephemeral ports), with an origin and two
`ttf` agents: tunnel A (the one attacked, or the attacker's own) and tunnel B (the second tunnel).
First B is measured alone ("unloaded"), then under each attack, every phase `--seconds` long:

- steady traffic to B: `--steady-rps` GETs of 1 KB from **127.0.0.2**; its error rate and p50;
- `unknown`: GETs of unknown tunnel ids from 127.0.0.3 at `--attack-rps`;
- `own`: GETs of tunnel A's own URL from 127.0.0.3 at `--attack-rps`;
- `connect`: unauthenticated `$connect` attempts from 127.0.0.3 at `--attack-rps`; the measured
  side here is a token holder's connects from 127.0.0.2 (one a second: what an agent's renewal
  needs), its error rate and handshake p50, beside B's traffic;
- `default`: a token holder's socket from 127.0.0.4 sending `ping` messages on `$default` at
  `--attack-rps`, reconnecting when closed (at most 20 times);
- `stream`: a caller from 127.0.0.3 opens slow SSE streams on tunnel A through the function URL
  (`stream_url`, whatever `--edge` says): `--streams` callers at once, each opening a stream (the
  origin's `/sse`, an event every `--stream-gap-ms`, lasting the phase and 2 s more), holding it
  while it lasts and, when refused, trying again 0.2 s later. A's agent keeps its default
  `--max-streams` (8), so the agent's cap is what this attacker meets first;
- `stream-holder`: the same from 127.0.0.4 on a token holder's own tunnel C, whose agent runs
  with `--max-streams 1000` (he controls his agent: only the server's limits count);
- `holder-tunnels`: the same holder with two tunnels, C and D (a second agent, the same token),
  `--streams` callers split between them: what `token_max_open_streams` bounds (without it he
  holds `tunnel_max_open_streams` environments per tunnel);
- `caller-socket`: a chatty caller from 127.0.0.3 opens `--caller-sockets` caller WebSockets on
  tunnel A (the caller WebSocket API, `caller_ws_url`; A's app echoes every message: the bench
  origin's `/`) and sends messages as fast as each socket takes them (or `--socket-rate` a second,
  all its sockets together), reading the echoes and the
  stage's throttle frames meanwhile; a socket the server closes is opened again 0.2 s later (at
  most 20 times each). Besides B's HTTP traffic, **tunnel B's own caller socket** (from
  127.0.0.2, opened and warmed before the phase starts) makes `--steady-rps` round trips (one
  message, its echo) a second, one at a time: its error rate (the stage's throttle frame, no echo
  within 10 s, the socket closed) and round-trip p50, here and in `unloaded`.
Each attack sends at most `--attack-max` requests (or messages) and has at most 64 outstanding;
every phase ends after `--seconds` (plus at most 30 s for answers in flight).

The function URL: the emulator runs forward_stream in `--stream-environments` processes (one
invocation each, as Lambda's execution environments) and the harness sets
`forward_reserved_concurrency` to the same number, so past it a caller gets Lambda's 429 at once,
as on AWS, where the reservation is the only ceiling in front of a function URL. The stream
attacks also set `max_stream_seconds=30` (Terraform's minimum): the emulator, like AWS, does not
tell the function that a caller went away, so a stream lasts until the origin ends it or that cap.

Configurations: `before` = the per-tunnel and per-socket limits off (`tunnel_rate_limit=0`,
`tunnel_max_in_flight=0`, `agent_message_rate_limit=0`, `tunnel_max_open_streams=0`,
`token_max_open_streams=0`, `tunnel_caller_message_rate_limit=0`), API Gateway's throttles as Terraform sets them; `after` =
this repo's defaults; `after-raised` = the defaults with the HTTP stage raised to 100 req/s (burst
200) and the WebSocket stage to 200 msg/s (burst 400), the configuration in which
the per-tunnel limits, not the stage, are what a single tunnel's flood meets. `--var` adds Terraform
variables to every configuration. The emulator runs each function's invocations in one process
(N = 1 instance), so per-instance counts bind here as a whole (README: "Fair under flood").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import statistics
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from httptunnel import protocol
from scripts.bench.sockets import WARM_WITHIN_S, warm_socket, caller_address
from scripts.harness.proc import Proc
from scripts.harness.stack import LocalStack, TtfAgent, agent_token

ROOT = Path(__file__).resolve().parents[2]
STEADY_SOURCE = "127.0.0.2"
ATTACK_SOURCE = "127.0.0.3"
HOLDER_SOURCE = "127.0.0.4"
OUTSTANDING_MAX = 64
ANSWER_GRACE_S = 30.0
HOLDER_STREAM_SOURCE = "127.0.0.4"
ATTACKS = ("unknown", "own", "connect", "default", "stream", "stream-holder", "holder-tunnels", "caller-socket")
STREAM_ATTACKS = ("stream", "stream-holder", "holder-tunnels")
STREAM_ENVIRONMENTS = 12  # forward_stream environments (= its reserved concurrency) with the function URL
HOLDER_MAX_STREAMS = 1000  # the most ttf accepts: a token holder's own agent does not cap his streams
STREAM_RETRY_S = 0.2
CALLER_SOCKETS = 4  # the chatty caller's sockets at once (A's agent allows 64: --max-websockets)
SOCKET_REOPENS = 20  # each of them is opened again at most this often after the server closes it
ECHO_WITHIN_S = 10.0  # tunnel B's socket: a round trip without its echo by then is an error
THROTTLED = "Too Many Requests"  # the message of API Gateway's throttle frame (emulator/README.md, Throttling)
CONFIGS: dict[str, tuple[str, ...]] = {
    "before": ("tunnel_rate_limit=0", "tunnel_max_in_flight=0", "agent_message_rate_limit=0", "tunnel_max_open_streams=0",
               "token_max_open_streams=0", "tunnel_caller_message_rate_limit=0"),
    "after": (),
    "after-raised": ("http_throttling_rate_limit=100", "http_throttling_burst_limit=200",
                     "websocket_throttling_rate_limit=200", "websocket_throttling_burst_limit=400"),
}


@dataclass
class Sample:
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        total = self.ok + sum(self.errors.values())
        ordered = sorted(self.latencies_ms)
        return {"requests": total, "error_rate": round(sum(self.errors.values()) / total, 4) if total else None,
                "p50_ms": round(statistics.median(ordered), 1) if ordered else None,
                "p95_ms": round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 1) if ordered else None,
                "errors": dict(self.errors)}


def session(source: str) -> aiohttp.ClientSession:
    """A client whose connections come from ``source`` (any 127.x address is the loopback on Linux)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=OUTSTANDING_MAX, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=ANSWER_GRACE_S))


def tunnel_id(public_url: str) -> str:
    """The tunnel id of a subdomain URL ``http://<id>.localhost:<port>/``."""
    return urlsplit(public_url).hostname.split(".", 1)[0]  # type: ignore[union-attr]


def target(public_url: str, path: str, edge_url: str) -> tuple[str, str]:
    """(URL to the edge on 127.0.0.1, Host header) for a tunnel's subdomain URL
    ``http://<id>.localhost:<port>/``: the HTTP API's port, or the function URL's (``stream_url``
    takes any Host, as the tunnel's own name will through CloudFront)."""
    port = urlsplit(edge_url).port
    return f"http://127.0.0.1:{port}{path}", f"{tunnel_id(public_url)}.localhost:{port}"


async def paced(rate: float, seconds: float, limit: int, one: Any) -> None:
    """Start ``one()`` ``rate`` times a second for ``seconds`` (at most ``limit``, OUTSTANDING_MAX at once)."""
    gate = asyncio.Semaphore(OUTSTANDING_MAX)
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()

    async def run() -> None:
        async with gate:
            await one()

    for n in range(limit):
        due = started + n / rate
        if due - started >= seconds:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))  # pacing: the wait is the rate
        tasks.append(asyncio.create_task(run()))
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), seconds + ANSWER_GRACE_S)


async def get(client: aiohttp.ClientSession, url: str, host: str, sample: Sample, expect: int | None = 200) -> None:
    started = time.monotonic()
    try:
        async with client.get(url, headers={"Host": host}) as resp:
            body = await resp.read()
            if expect is None:  # an attacker's request: count what it got
                sample.ok += 1
                sample.errors[f"{resp.status} {resp.headers.get('x-tunnel-error', '')}".strip()] += 1
                return
            if resp.status == expect and len(body) == 1024:
                sample.ok += 1
                sample.latencies_ms.append((time.monotonic() - started) * 1000)
            else:
                sample.errors[f"{resp.status} {resp.headers.get('x-tunnel-error', '')}".strip()] += 1
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        sample.errors[type(exc).__name__] += 1


async def connect_once(client: aiohttp.ClientSession, ws_url: str, token: str | None, sample: Sample) -> None:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        ws = await client.ws_connect(ws_url, headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        sample.errors[str(exc.status)] += 1
        return
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        sample.errors[type(exc).__name__] += 1
        return
    sample.ok += 1
    sample.latencies_ms.append((time.monotonic() - started) * 1000)
    await ws.close()


async def holder_flood(ws_url: str, token: str | None, rate: float, seconds: float, limit: int,
                       sample: Sample) -> None:
    """A token holder's socket sending pings on $default; reconnects (at most 20 times) when closed."""
    deadline = time.monotonic() + seconds
    sent = 0
    async with session(HOLDER_SOURCE) as client:
        for _ in range(21):
            if time.monotonic() >= deadline or sent >= limit:
                return
            try:
                ws = await client.ws_connect(ws_url, headers={"Authorization": f"Bearer {token}"} if token else {})
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                sample.errors[f"connect {getattr(exc, 'status', type(exc).__name__)}"] += 1
                await asyncio.sleep(0.2)  # a refused reconnect: retry shortly, as an attacker would
                continue
            sample.errors["sockets opened"] += 1
            started = time.monotonic()
            try:
                while not ws.closed and time.monotonic() < deadline and sent < limit:
                    await ws.send_str('{"type":"ping"}')
                    sent += 1
                    sample.ok += 1
                    await asyncio.sleep(max(0.0, started + (sent / rate) - time.monotonic()))  # pacing
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                pass
            if ws.closed:
                sample.errors["closed by the server"] += 1
            await ws.close()


@dataclass
class Streams:
    """What a stream attacker got: streams that opened (status 200 and a first event), refusals by
    answer, and the most open at once."""
    opened: int = 0
    open_now: int = 0
    open_max: int = 0
    events: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        return {"opened": self.opened, "open_max": self.open_max, "events": self.events,
                "refused": dict(self.refused)}


async def one_stream(client: aiohttp.ClientSession, url: str, host: str, deadline: float, found: Streams) -> None:
    """Open one SSE stream and hold it until ``deadline`` (or until it ends); count what happened."""
    try:
        async with client.get(url, headers={"Host": host}) as resp:
            if resp.status != 200 or not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                await resp.read()
                found.refused[f"{resp.status} {resp.headers.get('x-tunnel-error', '')}".strip()] += 1
                return
            first = True
            try:
                while time.monotonic() < deadline:
                    line = await asyncio.wait_for(resp.content.readline(), max(0.01, deadline - time.monotonic()))
                    if not line:
                        break
                    if not line.startswith(b"data:"):
                        continue
                    found.events += 1
                    if first:
                        first = False
                        found.opened += 1
                        found.open_now += 1
                        found.open_max = max(found.open_max, found.open_now)
            finally:
                if not first:
                    found.open_now -= 1
            if first:
                found.refused["200 without an event"] += 1
    except asyncio.TimeoutError:
        return  # the phase ended with the stream open: what the attacker wanted
    except aiohttp.ClientError as exc:
        found.refused[type(exc).__name__] += 1


async def stream_flood(source: str, url: str, host: str, workers: int, seconds: float, limit: int,
                       found: Streams) -> None:
    """``workers`` callers, each opening a stream and holding it; a refused one tries again after
    STREAM_RETRY_S. At most ``limit`` attempts in all; over after ``seconds``."""
    deadline = time.monotonic() + seconds
    attempts = 0
    timeout = aiohttp.ClientTimeout(total=None, connect=ANSWER_GRACE_S, sock_connect=ANSWER_GRACE_S)
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=workers, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        async def worker() -> None:
            nonlocal attempts
            while time.monotonic() < deadline and attempts < limit:
                attempts += 1
                await one_stream(client, url, host, deadline, found)
                await asyncio.sleep(STREAM_RETRY_S)  # a refused (or ended) stream: the attacker tries again shortly

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(workers))), seconds + ANSWER_GRACE_S)


def sse_path(seconds: float, gap_ms: int) -> str:
    """The origin's SSE stream: an event every ``gap_ms``, lasting the phase and 2 s more."""
    return f"/sse?n={max(2, math.ceil((seconds + 2) * 1000 / gap_ms) + 1)}&ms={gap_ms}"


def throttle_frame(data: str) -> bool:
    """Whether a text frame from the caller API is its throttle frame (the message was dropped)."""
    return protocol.gateway_notice(data) == THROTTLED


def socket_session(source: str) -> aiohttp.ClientSession:
    """A client for caller WebSockets from ``source``: no total timeout (a socket lasts the phase)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(
        total=None, connect=ANSWER_GRACE_S, sock_connect=ANSWER_GRACE_S))


@dataclass
class Chatter:
    """What a chatty caller got: messages sent, echoed back by the app and answered with the stage's
    throttle frame; sockets opened, how the server ended them (close code), refused handshakes."""
    sent: int = 0
    first_sent: float = 0.0
    last_sent: float = 0.0
    started: float = 0.0  # the pacing's clock (``rate``), and its next message's place
    slots: int = 0
    echoed: int = 0
    throttled: int = 0
    opened: int = 0
    open_at_end: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, Any]:
        return {"sent": self.sent, "sending_s": round(self.last_sent - self.first_sent, 2), "echoed": self.echoed,
                "throttled": self.throttled, "opened": self.opened, "open_at_end": self.open_at_end,
                "closed_by_server": dict(self.closes), "refused": dict(self.refused)}


async def chatty_socket(client: aiohttp.ClientSession, url: str, host: str, deadline: float, limit: int,  # noqa: PLR0913
                        rate: float, found: Chatter) -> None:
    """One caller socket sending until ``deadline`` or ``limit`` messages (all sockets together),
    as fast as it is taken (``rate`` 0) or its share of ``rate`` messages a second (all sockets
    together), reading what comes back meanwhile; opened again (SOCKET_REOPENS times at
    most, STREAM_RETRY_S later) when the server closes it or refuses the handshake."""
    for _ in range(SOCKET_REOPENS + 1):
        if time.monotonic() >= deadline:
            return
        try:
            ws = await client.ws_connect(url, headers={"Host": host}, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except aiohttp.WSServerHandshakeError as exc:
            error = exc.headers.get("x-tunnel-error", "") if isinstance(exc.headers, Mapping) else ""
            found.refused[f"{exc.status} {error}".strip()] += 1
            await asyncio.sleep(STREAM_RETRY_S)  # a refused handshake: try again shortly, as an attacker would
            continue
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            found.refused[type(exc).__name__] += 1
            await asyncio.sleep(STREAM_RETRY_S)
            continue
        found.opened += 1

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:  # until the socket closes
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if throttle_frame(msg.data):
                        found.throttled += 1
                    else:
                        found.echoed += 1

        reader = asyncio.create_task(read(ws))
        try:
            while not ws.closed and time.monotonic() < deadline and found.sent < limit:
                if rate:
                    slot, found.slots = found.slots, found.slots + 1
                    await asyncio.sleep(max(0.0, found.started + slot / rate - time.monotonic()))  # pacing
                    if ws.closed or time.monotonic() >= deadline:
                        break
                await ws.send_str(f"chatter {found.sent}")
                found.sent += 1
                found.last_sent = time.monotonic()
                found.first_sent = found.first_sent or found.last_sent
                await asyncio.sleep(0)  # let the reader (and everything else) run: not a wait
            # sent all it may: read echoes until the phase ends or the server closes the socket
            await asyncio.wait([reader], timeout=max(0.0, deadline - time.monotonic()))
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            pass  # the server closed it mid-send
        if reader.done() or ws.closed:
            await asyncio.wait([reader], timeout=5)
            found.closes[str(ws.close_code)] += 1
            reader.cancel()
            await ws.close()
            await asyncio.sleep(STREAM_RETRY_S)
            continue
        found.open_at_end += 1
        reader.cancel()
        await ws.close()
        return


async def socket_flood(url: str, host: str, sockets: int, seconds: float, limit: int, rate: float,  # noqa: PLR0913
                       found: Chatter) -> None:
    found.started = time.monotonic()
    deadline = found.started + seconds
    async with socket_session(ATTACK_SOURCE) as client:
        await asyncio.wait_for(asyncio.gather(*(chatty_socket(client, url, host, deadline, limit, rate, found)
                                                for _ in range(sockets))), seconds + ANSWER_GRACE_S)


async def round_trip(ws: aiohttp.ClientWebSocketResponse, text: str, sample: Sample) -> None:
    """Send ``text`` and wait for its echo (skipping late echoes of earlier ones): its time, or an error."""
    started = time.monotonic()
    await ws.send_str(text)
    while (left := started + ECHO_WITHIN_S - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if msg.type != aiohttp.WSMsgType.TEXT:
            sample.errors[f"closed {ws.close_code}"] += 1
            return
        if msg.data == text:
            sample.ok += 1
            sample.latencies_ms.append((time.monotonic() - started) * 1000)
            return
        if throttle_frame(msg.data):  # one message at a time: it is this one that was dropped
            sample.errors["throttled (stage)"] += 1
            return
    sample.errors[f"no echo within {ECHO_WITHIN_S:g} s"] += 1


async def steady_socket(client: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, url: str, host: str,
                        rate: float, seconds: float, sample: Sample) -> None:
    """``rate`` round trips a second on ``ws`` for ``seconds``, one at a time; a socket the server
    closed is opened (and warmed) again."""
    started = time.monotonic()
    n = 0
    try:
        while (due := started + n / rate) < started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # pacing: the wait is the rate
            n += 1
            if ws.closed:
                try:
                    ws = await warm_socket(client, url, host, max(1.0, started + seconds - time.monotonic()))
                except RuntimeError:
                    sample.errors["not reopened"] += 1
                    return
            try:
                await round_trip(ws, f"steady {n} é", sample)
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
                sample.errors[type(exc).__name__] += 1
    finally:
        await ws.close()


async def phase(name: str, state: dict[str, Any], tunnel_a: str, tunnel_b: str, args: argparse.Namespace,
                holder_tunnels: tuple[str, ...] = ()) -> dict[str, Any]:
    token = agent_token(state)
    steady, attack, agent_connects, b_socket = Sample(), Sample(), Sample(), Sample()
    streams, chatter = Streams(), Chatter()
    edge_url = state["stream_url"] if args.edge == "function_url" else state["http_url"]
    b_url, b_host = target(tunnel_b, "/kb", edge_url)
    seconds = args.seconds
    with_socket = name in ("unloaded", "caller-socket") and "caller-socket" in args.attacks
    async with session(STEADY_SOURCE) as calm, session(ATTACK_SOURCE) as noisy, socket_session(STEADY_SOURCE) as b_ws:
        jobs = [paced(args.steady_rps, seconds, 10_000, lambda: get(calm, b_url, b_host, steady))]
        if with_socket:  # B's own caller socket, warmed before the phase's clock starts
            ws_url, ws_host = caller_address(state, tunnel_id(tunnel_b))
            ws = await warm_socket(b_ws, ws_url, ws_host, WARM_WITHIN_S)
            jobs.append(steady_socket(b_ws, ws, ws_url, ws_host, args.steady_rps, seconds, b_socket))
        if name == "connect":
            jobs.append(paced(1.0, seconds, 10_000, lambda: connect_once(calm, state["ws_url"], token, agent_connects)))
            jobs.append(paced(args.attack_rps, seconds, args.attack_max,
                              lambda: connect_once(noisy, state["ws_url"], None, attack)))
        elif name == "unknown":
            port = urlsplit(edge_url).port

            def unknown() -> Any:
                unknown_id = "".join(random.choices(string.ascii_lowercase + string.digits, k=12))
                return get(noisy, f"http://127.0.0.1:{port}/kb", f"{unknown_id}.localhost:{port}", attack, expect=None)
            jobs.append(paced(args.attack_rps, seconds, args.attack_max, unknown))
        elif name == "own":
            a_url, a_host = target(tunnel_a, "/kb", edge_url)
            jobs.append(paced(args.attack_rps, seconds, args.attack_max, lambda: get(noisy, a_url, a_host, attack, None)))
        elif name == "default":
            jobs.append(holder_flood(state["ws_url"], token, args.attack_rps, seconds, args.attack_max, attack))
        elif name in STREAM_ATTACKS:
            victims = {"stream": (tunnel_a,), "stream-holder": holder_tunnels[:1]}.get(name, holder_tunnels)
            assert victims, f"{name} needs the holder's tunnels"
            source = ATTACK_SOURCE if name == "stream" else HOLDER_STREAM_SOURCE
            for i, victim in enumerate(victims):  # the callers and the attempts split between the tunnels
                s_url, s_host = target(victim, sse_path(seconds, args.stream_gap_ms), state["stream_url"])
                workers = args.streams // len(victims) + (i < args.streams % len(victims))
                jobs.append(stream_flood(source, s_url, s_host, workers, seconds, args.attack_max // len(victims),
                                         streams))
        elif name == "caller-socket":
            a_ws_url, a_ws_host = caller_address(state, tunnel_id(tunnel_a))
            jobs.append(socket_flood(a_ws_url, a_ws_host, args.caller_sockets, seconds, args.attack_max,
                                     args.socket_rate, chatter))
        await asyncio.gather(*jobs)
    found: dict[str, Any] = {"second_tunnel": steady.report()}
    if with_socket:
        found["second_tunnel_socket"] = b_socket.report()
    if name in STREAM_ATTACKS:
        found["attack"] = streams.report()
    elif name == "caller-socket":
        found["attack"] = chatter.report()
    elif name != "unloaded":
        found["attack"] = {"ok": attack.ok, "other": dict(attack.errors)}
    if name == "connect":
        found["agent_connects"] = agent_connects.report()
    return found


def stack_variables(config: str, args: argparse.Namespace) -> list[str]:
    """The Terraform variables of one configuration's stack (``--var`` last, so it wins)."""
    streamed = args.edge == "function_url" or any(a in STREAM_ATTACKS for a in args.attacks)
    edge = [f"forward_reserved_concurrency={args.stream_environments}"] if streamed else []
    if any(a in STREAM_ATTACKS for a in args.attacks):
        edge.append("max_stream_seconds=30")
    return [*CONFIGS[config], *edge, *args.var]


def run_config(config: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    variables = stack_variables(config, args)
    extra = [item for var in variables for item in ("--var", var)]
    extra += ["--stream-environments", str(args.stream_environments)]
    results: dict[str, Any] = {"variables": variables, "stream_environments": args.stream_environments}
    with LocalStack(log_dir / config, "local", extra_args=extra) as stack:
        origin = Proc([sys.executable, "-m", "scripts.bench.origin", "--port", "0"], "origin",
                      log_dir / config / "origin.log", cwd=ROOT).start()
        try:
            port = origin.wait_json(lambda d: d.get("event") == "listening", 30)["port"]
            # three token holders (subjects): per-token counts must not lump B in with A or C
            token_a, token_b, token_c = (agent_token(stack.state, f"flood-{who}") for who in "abc")
            holders = 2 if "holder-tunnels" in args.attacks else 1 if "stream-holder" in args.attacks else 0
            holder_agents = [TtfAgent(stack.state["ws_url"], port, log_dir / config, name=f"ttf-{who}", token=token_c,
                                      extra_args=["--max-streams", str(HOLDER_MAX_STREAMS)])
                             for who in "cd"[:holders]]  # one token holder's tunnels C (and D)
            with TtfAgent(stack.state["ws_url"], port, log_dir / config, name="ttf-a", token=token_a) as a, \
                    TtfAgent(stack.state["ws_url"], port, log_dir / config, name="ttf-b", token=token_b) as b, \
                    contextlib.ExitStack() as started:
                holder_tunnels = tuple(started.enter_context(agent).public_url for agent in holder_agents)
                for name in ("unloaded", *args.attacks):
                    results[name] = asyncio.run(phase(name, stack.state, a.public_url, b.public_url, args,
                                                      holder_tunnels))
                    print(json.dumps({"config": config, "phase": name, **results[name]}), flush=True)
                    time.sleep(args.settle)  # let the buckets refill between attacks: the wait is the point
        finally:
            origin.stop()
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["| attack | " + " | ".join(f"{c}: errors, p50" for c in results) + " |",
             "|---|" + "---|" * len(results)]
    phases = next(iter(results.values())).keys() - {"variables"}
    for name in ("unloaded", *ATTACKS):
        if name not in phases:
            continue
        cells = []
        for config in results:
            r = results[config][name]["second_tunnel"]
            cell = f"{100 * (r['error_rate'] or 0):.1f} %, {r['p50_ms']} ms"
            if name == "connect":
                c = results[config][name]["agent_connects"]
                cell += f" (agent connects: {100 * (c['error_rate'] or 0):.0f} % refused)"
            if name in STREAM_ATTACKS:
                got = results[config][name]["attack"]
                cell += f" (attacker: {got['open_max']} streams open at most, refused {got['refused']})"
            if "second_tunnel_socket" in results[config][name]:
                r = results[config][name]["second_tunnel_socket"]
                cell += f"; B's socket: {100 * (r['error_rate'] or 0):.1f} %, {r['p50_ms']} ms"
            if name == "caller-socket":
                got = results[config][name]["attack"]
                cell += (f" (attacker: {got['sent']} sent, {got['echoed']} echoed, {got['throttled']} throttled; "
                         f"{got['opened']} sockets, closed by the server {got['closed_by_server']}, "
                         f"refused {got['refused']})")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.flood", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="before,after")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--settle", type=float, default=5.0, help="pause between phases (buckets refill)")
    parser.add_argument("--steady-rps", type=float, default=4.0)
    parser.add_argument("--attack-rps", type=float, default=60.0)
    parser.add_argument("--attack-max", type=int, default=1500)
    parser.add_argument("--edge", choices=("http_api", "function_url"), default="http_api",
                        help="where tunnel B's steady traffic and the HTTP attacks go: the HTTP API (stage "
                             "throttles) or the function URL (forward_stream, bounded by "
                             "forward_reserved_concurrency = --stream-environments unless --var sets it)")
    parser.add_argument("--stream-environments", type=int, default=STREAM_ENVIRONMENTS,
                        help="forward_stream execution environments the emulator runs, and its reserved concurrency")
    parser.add_argument("--streams", type=int, default=40, help="stream attacks: callers holding a stream at once")
    parser.add_argument("--stream-gap-ms", type=int, default=3000, help="stream attacks: the SSE's gap between events")
    parser.add_argument("--caller-sockets", type=int, default=CALLER_SOCKETS,
                        help="caller-socket attack: the chatty caller's sockets at once on tunnel A")
    parser.add_argument("--socket-rate", type=float, default=0.0,
                        help="caller-socket attack: messages a second, all its sockets together (0: as fast as "
                             "the sockets take them)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    args.attacks = tuple(a for a in args.attacks.split(",") if a)
    bad = [c for c in configs if c not in CONFIGS] + [a for a in args.attacks if a not in ATTACKS]
    if bad:
        parser.error(f"unknown configuration or attack: {', '.join(bad)} (configs: {', '.join(CONFIGS)}; "
                     f"attacks: {', '.join(ATTACKS)})")
    if not 0 < args.seconds <= 120 or not 0 < args.attack_rps <= 1000 or not 0 < args.steady_rps <= 100:
        parser.error("--seconds must be in (0, 120], --attack-rps in (0, 1000], --steady-rps in (0, 100]")
    if not 1 <= args.stream_environments <= 64 or not 1 <= args.streams <= 200 or not 100 <= args.stream_gap_ms <= 60_000:
        parser.error("--stream-environments must be 1..64, --streams 1..200, --stream-gap-ms 100..60000")
    if not 1 <= args.caller_sockets <= 200 or not 0 <= args.socket_rate <= 10_000:
        parser.error("--caller-sockets must be 1..200, --socket-rate 0..10000")
    log_dir = Path(tempfile.mkdtemp(prefix="flood-"))
    results = {config: run_config(config, args, log_dir) for config in configs}
    print(table(results))
    print(f"logs: {log_dir}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
