"""The one table `make smoke` prints: rich on a terminal, plain aligned text otherwise.

Network strings (details quote what the origin or the edge said) are data: rich renders them
with markup off.
"""

from __future__ import annotations

from typing import Any, TextIO

from scripts.smoke.battery import Result


def summary(results: list[Result], seconds: float) -> str:
    passed = sum(r.ok for r in results)
    return f"{passed} of {len(results)} checks passed in {seconds:.1f} s"


def render_table(results: list[Result], title: str, seconds: float) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), caption=Text(summary(results, seconds)), title_justify="left",
                  caption_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("detail")
    for r in results:
        table.add_row(Text(r.name), Text("ok", style="green") if r.ok else Text("FAIL", style="bold red"),
                      Text(f"{r.seconds:.2f} s"), Text(r.detail))
    return table


def render_plain(results: list[Result], title: str, seconds: float) -> str:
    width = max(len(r.name) for r in results)
    lines = [title, f"{'check':<{width}}  result  {'time':>8}  detail"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.seconds:>6.2f} s  {r.detail}")
    lines.append(summary(results, seconds))
    return "\n".join(lines)


def print_report(results: list[Result], title: str, seconds: float, out: TextIO) -> None:
    if out.isatty():
        from rich.console import Console

        Console(file=out).print(render_table(results, title, seconds))
    else:
        print(render_plain(results, title, seconds), file=out, flush=True)
