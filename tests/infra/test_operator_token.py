"""Issue 30 item 14: `make deploy` never prints the operator's token into a log."""

from __future__ import annotations

import stat
import subprocess

from scripts.deploy import __main__ as deploy

WS = "wss://abc.execute-api.us-east-1.amazonaws.com/prod"
OUTPUTS = {"ws_url": {"value": WS}, "http_url": {"value": "https://h"}}


def test_on_a_terminal_the_line_carries_the_token(tmp_path):
    path = tmp_path / "operator-token"
    line = deploy.ttf_line(OUTPUTS, deploy.token_text("the.jwt.token", tty=True, path=path))
    assert f"ttf -e {WS} -t the.jwt.token -p 3000" in line and not path.exists()


def test_elsewhere_the_token_goes_to_a_0600_file_and_the_line_reads_it(tmp_path):
    path = tmp_path / "sub" / "operator-token"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)  # a file left from before: it must not stay world-readable
    line = deploy.ttf_line(OUTPUTS, deploy.token_text("the.jwt.token", tty=False, path=path))
    assert "the.jwt.token" not in line
    assert path.read_text() == "the.jwt.token\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    command = line.strip().splitlines()[-1].strip()
    shown = subprocess.run(["sh", "-c", "set -- " + command.removeprefix("ttf ") + '; printf "%s" "$4"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "the.jwt.token"  # what the shell hands ttf as -t


def test_the_operator_token_lives_a_week():
    assert deploy.OPERATOR_TTL_S == 7 * 86400 and "valid 7 days" in deploy.ttf_line(OUTPUTS, "t")
