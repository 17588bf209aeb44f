"""Entry point of the `ttf` console script: the one place errors become exit codes."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import TextIO

from ttf.agent import Fatal, TunnelAgent
from ttf.config import Config, ConfigError, parse_config
from ttf.events import Event, Notice, Sink, escape_controls
from ttf.render import Dashboard, JsonSink, LineSink, render_dashboard

REFRESH_S = 0.25


class _DashboardLog(logging.Handler):
    """Warnings go into the dashboard instead of scribbling over it."""

    def __init__(self, state: Dashboard) -> None:
        super().__init__(logging.WARNING)
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        self.state.notice = f"{record.levelname.lower()}: {record.getMessage()}"


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


async def _run_dashboard(config: Config, stdout: TextIO) -> None:
    from rich.console import Console
    from rich.live import Live

    state = Dashboard(endpoint=config.endpoint, local_target=config.local_target, started_at=time.time())
    logging.getLogger().handlers[:] = [_DashboardLog(state)]

    def sink(event: Event) -> None:
        state.apply(event, time.time())

    agent = TunnelAgent(config, sink)
    history = agent.history
    state.captured = (lambda: len(history)) if history is not None else None
    console = Console(file=stdout)
    with Live(render_dashboard(state, time.time()), console=console, auto_refresh=False) as live:
        runner = asyncio.create_task(_run_agent(agent))
        while not runner.done():
            await asyncio.wait({runner}, timeout=REFRESH_S)
            live.update(render_dashboard(state, time.time()), refresh=True)
        await runner


def _sink(config: Config, stdout: TextIO) -> Sink:
    if config.json:
        return JsonSink(stdout)
    return LineSink(stdout, config.local_target)


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> int:
    stdout = stdout or sys.stdout
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["replay"]:  # `ttf replay ID [--edit]`: talks to a running ttf's inspector
        from ttf.inspector.client import main as replay

        return replay(args[1:], stdout)
    try:
        config = parse_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"ttf: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    _setup_logging(config)
    try:
        if not config.json and stdout.isatty():
            asyncio.run(_run_dashboard(config, stdout))
        else:
            sink = _sink(config, stdout)
            sink(Notice("info", f"forwarding to http://{config.local_target} via {config.endpoint}"))
            asyncio.run(_run_agent(TunnelAgent(config, sink)))
    except Fatal as exc:
        print(f"ttf: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def entry() -> None:
    raise SystemExit(main())
