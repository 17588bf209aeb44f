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


# --------------------------------------------------------------------------- 8. copy as curl / HTTPie

def _entry(uri: str = "/x", headers=None, body: bytes = b""):
    from ttf.inspector.history import Entry, capture
    return Entry(id=7, at=1.0, method="POST", uri=uri, request_headers=headers or {}, request=capture(body),
                 status=200, response_headers={}, response=capture(b""), duration_ms=1)


def _run_args(command: str, tool: str) -> list[str]:
    """What sh hands the tool: the command run with printf in the tool's place."""
    import subprocess
    assert command.startswith(tool + " ")
    command = command.split(" < ", 1)[0]  # HTTPie's body file: not here
    shown = subprocess.run(["sh", "-c", "printf '%s\\0' " + command[len(tool) + 1:]], capture_output=True, check=True)
    return shown.stdout.decode("utf-8").split("\0")[:-1]


def test_a_body_starting_with_at_is_never_a_file_name_for_curl():
    from ttf.inspector import curl
    command, body_file = curl.curl(_entry(body=b"@/etc/passwd"), curl.Target("http://h", "local"))
    args = _run_args(command, "curl")
    assert body_file == "body-7.bin" and args[-2:] == ["--data-binary", "@body-7.bin"]
    assert "/etc/passwd" not in command


def test_a_header_value_starting_with_at_or_equals_is_escaped_for_httpie():
    from ttf.inspector import curl
    e = _entry(headers={"X-File": ["@/etc/passwd"], "X-Json": ["=1"], "X-Plain": ["a@b"]})
    args = _run_args(curl.httpie(e, curl.Target("http://h", "local"))[0], "http")
    assert "X-File:\\@/etc/passwd" in args and "X-Json:\\=1" in args and "X-Plain:a@b" in args
    curl_args = _run_args(curl.curl(e, curl.Target("http://h", "local"))[0], "curl")
    assert "X-File: @/etc/passwd" in curl_args  # curl reads a file only for an argument that starts with @


def test_a_header_name_that_is_not_a_token_is_left_out_and_noted():
    from ttf.inspector import curl
    e = _entry(headers={"@/etc/passwd": ["x"], "X-Ok": ["1"]})
    out = curl.commands(e, curl.Target("http://h", "local"))
    assert "/etc/passwd" not in out["curl"] and "/etc/passwd" not in out["httpie"] and "X-Ok: 1" in out["curl"]
    assert any("left out 1 header" in note for note in out["notes"])


@pytest.mark.parametrize("hidden", ["\u202e", "\u200b", "\x1b", "\r", "\u2028", "\x85"])
def test_format_and_control_characters_never_stand_in_the_copied_text(hidden):
    from ttf.inspector import curl
    value = f"safe{hidden}txt.exe"
    e = _entry(uri=f"/p{hidden}q", headers={"X-A": [value]}, body=f"b{hidden}".encode())
    for tool, make in (("curl", curl.curl), ("http", curl.httpie)):
        command, _ = make(e, curl.Target("http://h", "local"))
        assert hidden not in command
        args = _run_args(command, tool)
        assert f"http://h/p{hidden}q" in args  # the same bytes once the shell has read it
        assert (f"X-A: {value}" if tool == "curl" else f"X-A:{value}") in args


# --------------------------------------------------------------------------- 15. plain ws:// and the state file

@pytest.mark.parametrize("endpoint, refused", [
    ("ws://gw.example.com/ws", True), ("ws://10.0.0.5:8080", True), ("ws://[2001:db8::1]/", True),
    ("wss://gw.example.com/ws", False), ("ws://127.0.0.1:8080", False), ("ws://localhost:1", False),
    ("ws://abc.localhost:1", False), ("ws://[::1]:1", False), ("ws://127.8.9.10", False),
])
def test_a_token_never_goes_over_plain_ws_to_another_machine(tmp_path, endpoint, refused):
    from ttf.config import ConfigError, parse_config
    argv = ["-e", endpoint, "-p", "3000", "-t", "secret-token"]
    if refused:
        with pytest.raises(ConfigError, match="refusing to send the token over plain ws://"):
            parse_config(argv, env={}, cwd=tmp_path)
        with pytest.raises(ConfigError, match="refusing"):
            parse_config(["-p", "3000"], env={"TTF_ENDPOINT": endpoint, "TTF_TOKEN": "t"}, cwd=tmp_path)
    else:
        assert parse_config(argv, env={}, cwd=tmp_path).token == "secret-token"
    assert parse_config(["-e", endpoint, "-p", "3000"], env={}, cwd=tmp_path).token is None  # no token: allowed


def test_a_state_file_tunnel_id_with_a_trailing_newline_is_refused():
    import json
    good = {"version": state._VERSION, "tunnel_id": "abc123", "reclaim_token": "r" * 43, "endpoint": "wss://x",
            "local_target": "http://127.0.0.1:3000", "saved_at": 1.0}
    assert state._parse(json.dumps(good).encode()) is not None
    assert state._parse(json.dumps({**good, "tunnel_id": "abc123\n"}).encode()) is None
