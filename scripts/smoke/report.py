"""The one table `make smoke` prints: rich on a terminal, plain aligned text otherwise.

A check has one of three results (scripts/smoke/verdict.py): ``ok``, ``FAIL``, or ``not
checkable locally`` (what the local stack's moto cannot show); the summary counts the last
apart, never as passed nor as failed.

Network strings (details quote what the origin or the edge said) are data: rich renders them
with markup off.
"""

from __future__ import annotations

from typing import Any, TextIO

from scripts.smoke.verdict import FAILED, NOT_CHECKABLE, PASSED, Result

STYLES = {PASSED: "green", FAILED: "bold red", NOT_CHECKABLE: "yellow"}


def summary(results: list[Result], seconds: float) -> str:
    """``P of N checks passed[, F failed][, L not checkable locally] in S s``."""
    passed = sum(r.status == PASSED for r in results)
    failed = sum(r.status == FAILED for r in results)
    local = sum(r.status == NOT_CHECKABLE for r in results)
    parts = [f"{passed} of {len(results)} checks passed"]
    if failed:
        parts.append(f"{failed} failed")
    if local:
        parts.append(f"{local} {NOT_CHECKABLE}")
    return ", ".join(parts) + f" in {seconds:.1f} s"


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
        table.add_row(Text(r.name), Text(r.status, style=STYLES[r.status]), Text(f"{r.seconds:.2f} s"), Text(r.detail))
    return table


def render_plain(results: list[Result], title: str, seconds: float) -> str:
    width = max(len(r.name) for r in results)
    result_width = max([len("result"), len(PASSED), len(FAILED)] + [len(r.status) for r in results])
    lines = [title, f"{'check':<{width}}  {'result':<{result_width}}  {'time':>8}  detail"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.status:<{result_width}}  {r.seconds:>6.2f} s  {r.detail}")
    lines.append(summary(results, seconds))
    return "\n".join(lines)


def print_report(results: list[Result], title: str, seconds: float, out: TextIO) -> None:
    if out.isatty():
        from rich.console import Console

        Console(file=out).print(render_table(results, title, seconds))
    else:
        print(render_plain(results, title, seconds), file=out, flush=True)
