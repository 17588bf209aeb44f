"""The README's "what one anonymous caller can cost" table is computed, from Terraform's real defaults."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.bench import abuse

ROOT = Path(__file__).resolve().parents[2]


def _default(variable: str) -> float:
    text = (ROOT / "terraform" / "variables.tf").read_text()
    block = text.split(f'variable "{variable}" {{', 1)[1].split("\n}\n", 1)[0]
    return float(re.search(r"^\s*default\s*=\s*([0-9.]+)\s*$", block, re.M).group(1))


def test_after_is_what_terraform_deploys():
    assert abuse.AFTER == {"rate": _default("http_throttling_rate_limit"),
                           "burst": _default("http_throttling_burst_limit")}
    main_tf = (ROOT / "terraform" / "main.tf").read_text()
    assert re.search(r"forward\s*=\s*\{ memory_size = 512,", main_tf), "forward's memory changed: update FORWARD_MEMORY_GB"


def test_the_limits_bind_where_the_readme_says():
    assert abuse.held_rate(1000, 1000) == 40  # before: Lambda concurrency binds, not the stage throttle
    assert abuse.held_rate(20, 1000) == 20 and abuse.held_rate(20, 100) == 4
    assert abuse.peak_concurrency(20, 100) == 600 < abuse.ACCOUNT_CONCURRENCY
    assert 60 <= abuse.polls_in(25) <= 75  # forward's poll schedule over a full wait
    held, unknown = abuse.held_request(), abuse.unknown_tunnel()
    assert 50 * unknown.per_request < held.per_request  # 25 s of a 512 MB Lambda dominates (~99x)
    assert max(held.lines, key=held.lines.get) == "forward Lambda"


def test_readme_quotes_the_computed_table():
    readme = (ROOT / "README.md").read_text()
    assert abuse.table() in readme, "README.md's public-edge cost table is stale: python -m scripts.bench.abuse"
