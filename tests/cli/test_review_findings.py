"""The agent's side of the second security review (issue 30): deeply nested JSON (item 11)."""

from __future__ import annotations

import pytest

from ttf import state
from ttf.inspector import har, views

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_a_deeply_nested_har_file_is_a_har_error():
    with pytest.raises(har.HarError, match="nested too deeply"):
        har.parse(b'{"log":' + DEEP + b"}", 1024, 10)


def test_a_deeply_nested_json_body_is_laid_out_as_text():
    assert views.layout(DEEP, {"content-type": ["application/json"]}, False)["kind"] == "text"


def test_a_deeply_nested_state_file_is_ignored():
    assert state._parse(DEEP) is None and state._version(DEEP) is None
