"""Entry point of the `ttf` console script: the one place errors become exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from typing import Iterator, TextIO

from ttf.agent import Fatal, TunnelAgent
from ttf.config import Config, ConfigError
from ttf.configfile import Plan, load
from ttf.events import Event, Notice, PolicyActive, Sink, escape_controls
from ttf.render import Dashboard, JsonSink, LineSink, MultiDashboard, render_dashboard

REFRESH_S = 0.25


class _DashboardLog(logging.Handler):
    """Warnings go into the dashboard instead of scribbling over it."""

    def __init__(self, state: Dashboard | MultiDashboard) -> None:
        super().__init__(logging.WARNING)
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        self.state.say(f"{record.levelname.lower()}: {record.getMessage()}", time.time())


class _PlainFormatter(logging.Formatter):
    """Log messages may quote the network (a bad frame, a close reason): controls escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def _setup_logging(config: Config) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainFormatter("%(asctime)s ttf %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if config.verbose else logging.WARNING, handlers=[handler])


async def _run_agent(agent: TunnelAgent) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, agent.request_stop)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            pass
    await agent.run()


@contextlib.contextmanager
def _filter_keys(state: MultiDashboard) -> Iterator[None]:
    """Keys typed in the terminal pick the tunnel whose requests the dashboard lists (POSIX only:
    stdin in cbreak mode, so Ctrl-C still arrives as SIGINT; restored on the way out)."""
    try:
        import termios
        import tty
    except ImportError:  # Windows: no filter keys
        yield
        return
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if fd < 0 or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def typed() -> None:
        for key in os.read(fd, 64).decode("utf-8", "replace"):
            state.select(key)

    tty.setcbreak(fd)
    loop.add_reader(fd, typed)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _run_dashboard(plan: Plan, stdout: TextIO) -> None:
    from rich.console import Console
    from rich.live import Live

    config = plan.process
    now = time.time()
    state: Dashboard | MultiDashboard
    if config.name is None:
        state = Dashboard(endpoint=config.endpoint, local_target=config.local_target, started_at=now)
    else:
        state = MultiDashboard.of([(c.name or "", c.endpoint, c.local_target) for c in plan.tunnels], now,
                                  plan.source)
    logging.getLogger().handlers[:] = [_DashboardLog(state)]
    for tunnel in plan.tunnels:
        if tunnel.policy:
            state.apply(PolicyActive(tuple(tunnel.policy.describe()), tunnel=tunnel.name), now)
    if plan.notes:  # the dashboard shows one notice line: all of them, so none hides another
        state.say(" · ".join(plan.notes), now)

    def sink(event: Event) -> None:
        state.apply(event, time.time())

    agent = TunnelAgent(plan.tunnels, sink)
    history = agent.history
    state.captured = (lambda: len(history)) if history is not None else None
    state.socket_log = agent.socket_log  # caller WebSocket sessions: a block once there is one
    console = Console(file=stdout)
    keys = _filter_keys(state) if isinstance(state, MultiDashboard) else contextlib.nullcontext()
    with Live(render_dashboard(state, time.time()), console=console, auto_refresh=False) as live, keys:
        runner = asyncio.create_task(_run_agent(agent))
        while not runner.done():
            await asyncio.wait({runner}, timeout=REFRESH_S)
            live.update(render_dashboard(state, time.time()), refresh=True)
        await runner


def _sink(config: Config, plan: Plan, stdout: TextIO) -> Sink:
    if config.json:
        return JsonSink(stdout)
    return LineSink(stdout, {c.name: c.local_target for c in plan.tunnels})


def _inspect_hint(args: list[str]) -> str:
    """A guess at the inspector's flag (--inspector-port, --inspect-port...) gets the real one named."""
    guessed = [a.split("=")[0] for a in args if a.startswith("--inspect") and a.split("=")[0] not in
               {"--inspect", "--inspect-history"}]
    if not guessed:
        return ""
    return (f"\nttf: {guessed[0]} is not an option: the request inspector's address is --inspect HOST:PORT "
            "(e.g. --inspect 127.0.0.1:4046), or --inspect off")


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["replay"]:  # `ttf replay ID [--edit]`: talks to a running ttf's inspector
        from ttf.inspector.client import main as replay

        return replay(args[1:], stdout)
    try:
        plan = load(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"ttf: error: {exc}{_inspect_hint(args)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    config = plan.process
    _setup_logging(config)
    try:
        if not config.json and stdout.isatty():
            asyncio.run(_run_dashboard(plan, stdout))
        else:
            sink = _sink(config, plan, stdout)
            for note in plan.notes:
                sink(Notice("warning" if plan.source else "info", note))
            if plan.source is not None:
                sink(Notice("info", f"{len(plan.tunnels)} tunnel(s) from {plan.source}"))
            for tunnel in plan.tunnels:
                sink(Notice("info", f"forwarding to http://{tunnel.local_target} via {tunnel.endpoint}",
                            tunnel=tunnel.name))
                if tunnel.policy:
                    sink(PolicyActive(tuple(tunnel.policy.describe()), tunnel=tunnel.name))
            asyncio.run(_run_agent(TunnelAgent(plan.tunnels, sink)))
    except Fatal as exc:
        print(f"ttf: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def entry() -> None:
    raise SystemExit(main())
