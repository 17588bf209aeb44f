"""The fidelity table in emulator/README.md names a test for every row: those tests exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_the_fidelity_table_names_exists():
    readme = (ROOT / "emulator" / "README.md").read_text()
    table = readme[readme.index("## Fidelity"):readme.index("## Background work")]
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", table))
    assert len(named) > 30
    defined = set()
    for path in (ROOT / "tests" / "emulator").glob("test_*.py"):
        defined |= set(re.findall(r"^(?:async )?def (test_[a-z0-9_]+)", path.read_text(), re.M))
    assert named - defined == set()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| behaviour")]
    assert all(line.rstrip().split("|")[-2].strip() not in ("", "—") for line in rows), "a row without a test"
    tf_tests = (ROOT / "terraform" / "tests" / "wiring.tftest.hcl").read_text()
    assert 'run "rejects_sub_minute_schedule"' in tf_tests
    assert (ROOT / "tests" / "e2e" / "test_paths.py").exists()
