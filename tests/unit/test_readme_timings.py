"""README.md's timing claims live in one table ("## Timings"), and each figure is what the file
of measurements it names says (bench/setup.json from `python -m scripts.bench.setup`,
bench/results.json from `make bench`): a figure typed by hand, or left behind by a new run, fails.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
COLUMNS = ["what", "figure", "command", "date", "machine", "source"]


def timings_table(text: str) -> list[dict[str, str]]:
    section = text.split("\n## Timings\n", 1)
    assert len(section) == 2, "README.md has no '## Timings' section"
    body = section[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")]
    header = [cell.strip().lower() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS, header
    return [dict(zip(COLUMNS, [cell.strip() for cell in line.strip("|").split("|")], strict=True)) for line in lines[2:]]


def lookup(data: Any, path: str) -> Any:
    """``a.b[2].c`` in parsed JSON."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        data = data[int(part[1:-1])] if part.startswith("[") else data[part]
    return data


def rounded(value: float, like: str) -> str:
    decimals = len(like.split(".", 1)[1]) if "." in like else 0
    return str(Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def test_every_timing_figure_is_a_measured_one() -> None:
    rows = timings_table(README.read_text())
    assert len(rows) >= 5
    for row in rows:
        source = re.fullmatch(r"`([^`]+)` `([^`]+)`", row["source"])
        assert source, f"source must be `<file>` `<key path>`: {row}"
        path, key = ROOT / source.group(1), source.group(2)
        assert path.is_file(), f"{path} is missing: {row['what']}"
        data = json.loads(path.read_text())
        figure = re.match(r"[\d,.]+", row["figure"].strip("*"))
        assert figure, f"no number in {row['figure']!r}"
        number = figure.group(0).replace(",", "")
        assert rounded(float(lookup(data, key)), number) == number, \
            f"{row['what']}: README says {row['figure']}, {source.group(1)} {key} is {lookup(data, key)}"
        assert re.search(r"\d{4}-\d{2}-\d{2}", row["date"]) and row["date"][:10] == str(data["date"])[:10], \
            f"{row['what']}: the date must be the measurement's ({data['date']})"
        assert row["command"].startswith("`") and row["machine"], row


def test_no_timing_claim_outside_the_table() -> None:
    """The intro's setup claims point at the table instead of quoting figures of their own."""
    intro = README.read_text().split("\n## ", 1)[0]
    assert not re.search(r"\b\d+ s\b|\d+ minutes", intro), "a timing claim in the intro: put it in ## Timings"


def test_lookup_and_rounding() -> None:
    assert lookup({"a": [{"b": 1.25}]}, "a[0].b") == 1.25
    assert rounded(12.15, "12.2") == "12.2" and rounded(485.5, "486") == "486" and rounded(93.04, "93") == "93"
