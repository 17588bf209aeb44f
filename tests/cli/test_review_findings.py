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


def test_basic_auth_forward_is_asked_for_on_the_command_line(tmp_path):
    from ttf.config import ConfigError, parse_config
    asked = parse_config(["-e", "wss://x.example", "-p", "3000", "--basic-auth", "a:b", "--basic-auth-forward"],
                         env={}, cwd=tmp_path)
    assert asked.policy is not None and asked.policy.forward_authorization is True
    default = parse_config(["-e", "wss://x.example", "-p", "3000", "--basic-auth", "a:b"], env={}, cwd=tmp_path)
    assert default.policy is not None and default.policy.forward_authorization is False
    with pytest.raises(ConfigError, match="needs --basic-auth"):
        parse_config(["-e", "wss://x.example", "-p", "3000", "--basic-auth-forward"], env={}, cwd=tmp_path)


# --------------------------------------------------------------------------- 10. brotli display decode

class _BombDecompressor:
    """Stands in for brotli's: a few bytes that decode to as much as it is allowed to produce."""
    limits: list[object] = []

    def process(self, data: bytes, output_buffer_limit: int | None = None) -> bytes:
        _BombDecompressor.limits.append(output_buffer_limit)
        return b"\0" * (output_buffer_limit if output_buffer_limit is not None else 64 * views.DECODED_MAX)


class _OldDecompressor:
    def process(self, data: bytes) -> bytes:  # brotli < 1.2: no way to stop early
        raise AssertionError("an unbounded decode was attempted")


def test_a_brotli_bomb_is_stopped_at_the_display_limit(monkeypatch):
    _BombDecompressor.limits.clear()
    monkeypatch.setattr(views, "BROTLI", type("M", (), {"Decompressor": _BombDecompressor}))
    with pytest.raises(ValueError, match="once decoded"):
        views.decode(b"\x1b\xff", "br")
    assert _BombDecompressor.limits == [views.DECODED_MAX + 1]


def test_a_brotli_module_that_cannot_stop_early_is_not_used(monkeypatch):
    monkeypatch.setattr(views, "BROTLI", type("M", (), {"Decompressor": _OldDecompressor}))
    with pytest.raises(ValueError, match="cannot limit its output"):
        views.decode(b"\x1b\xff", "br")
