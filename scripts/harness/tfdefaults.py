"""The numeric default of a Terraform variable, read from terraform/*.tf: for tests that keep their
traffic inside what a default deployment allows (e.g. the load suite's caller-socket phase)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def terraform_default(name: str, folder: Path = ROOT / "terraform") -> float:
    """``default = <number>`` of ``variable "<name>"`` in ``folder``'s .tf files; ValueError if the
    variable is missing or its default is not a number."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a Terraform variable name: {name!r}")
    for tf in sorted(folder.glob("*.tf")):
        block = re.search(r'^variable "%s" \{(.*?)^\}' % name, tf.read_text(), re.S | re.M)
        if block:
            found = re.search(r"^\s*default\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*$", block.group(1), re.M)
            if not found:
                raise ValueError(f"variable {name!r} in {tf.name} has no numeric default")
            return float(found.group(1))
    raise ValueError(f"no variable {name!r} in {folder}/*.tf")
