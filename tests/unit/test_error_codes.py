"""The x-tunnel-error codes forward can answer with are listed once (names.ERROR_CODES), and
forward's one log line per request carries what the observability metric filter counts."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from httptunnel import forward, names, policy, protocol, replies

from .helpers import FakeContext, connect_agent, load_handler
from .test_forward_basic import FakeAgent, http_event, ok

ROOT = Path(__file__).resolve().parents[2]


def _literal_failures(path: Path) -> list[tuple[int, str]]:
    """(status, code) of every fail(...)/error_response(...)/http_error(...) call whose arguments are literals or
    forward's GONE/TIMEOUT constants."""
    constants = {"GONE": replies.GONE, "TIMEOUT": replies.TIMEOUT}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                in ("fail", "error_response", "http_error") and len(node.args) >= 2):
            continue
        status, code = node.args[0], node.args[1]
        if isinstance(code, ast.Name) and code.id in constants:
            code_value = constants[code.id]
        elif isinstance(code, ast.Constant) and isinstance(code.value, str):
            code_value = code.value
        else:
            continue
        if isinstance(status, ast.Constant):
            found.append((status.value, code_value))
        elif isinstance(status, ast.IfExp):  # 504 if answer == TIMEOUT else 502
            found += [(status.body.value, replies.TIMEOUT), (status.orelse.value, replies.GONE)]
    return found


def _forward_modules(layer: Path) -> list[Path]:
    """forward.py and the layer modules it imports (its stages: gate, tunnels, waiting, ...)."""
    tree = ast.parse((layer / "forward.py").read_text())
    names_ = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
              for alias in node.names} | {node.module for node in ast.walk(tree)
                                           if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    return [layer / "forward.py", *sorted(layer / f"{n}.py" for n in names_ if (layer / f"{n}.py").exists())]


def test_every_code_forward_answers_with_is_listed_with_its_status():
    layer = ROOT / "shared" / "httptunnel"
    found = [hit for module in _forward_modules(layer) for hit in _literal_failures(module)]
    found += _literal_failures(ROOT / "lambdas" / "forward" / "handler.py")
    found += _literal_failures(layer / "edge_origin.py")  # forward_stream's stage before gate (CloudFront in front)
    assert len(found) >= 10, found  # the scan still sees forward's error paths
    found += [(status, code) for code, status in policy.DENIAL_STATUS.items()]  # the edge policy's denials
    for status, code in found:
        assert names.ERROR_CODES.get(code) == status, f"forward answers {status} {code}: add it to names.ERROR_CODES"
    for code, status in protocol.ERROR_STATUS.items():  # codes an agent may send, relayed by forward
        assert names.ERROR_CODES.get(code) == status, code
    assert set(names.ERROR_CODES) == {c for _, c in found} | set(protocol.ERROR_STATUS), "a listed code nobody emits"


def _forward_lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("error_code") or line["msg"] == "forwarded"]


def test_tunnel_5xx_is_logged_at_warning_with_its_code(aws, mgmt, ctx, capsys, monkeypatch):
    monkeypatch.setenv("FORWARD_WAIT_SECONDS", "0.3")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")  # the 5xx counts must survive a quieter log level
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", lambda m: None)
    capsys.readouterr()
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 504
    [line] = _forward_lines(capsys)
    assert (line["msg"], line["level"], line["status"], line["error_code"]) == ("forwarded", "WARNING", 504, "timeout")


def test_success_and_4xx_stay_at_info(aws, mgmt, ctx, capsys):
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", ok())
    capsys.readouterr()
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 200
    assert load_handler("forward")(http_event("zzzzzzzzzzzz"), ctx)["statusCode"] == 404
    ok_line, missing = _forward_lines(capsys)
    assert (ok_line["level"], ok_line["status"], ok_line["error_code"]) == ("INFO", 200, None)
    assert (missing["level"], missing["status"], missing["error_code"]) == ("INFO", 404, "tunnel_not_found")


def test_a_crash_is_logged_with_status_and_code_like_a_forwarded_502(aws, ctx, capsys, monkeypatch):
    def boom(event):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(forward, "forward", boom)
    capsys.readouterr()
    result = load_handler("forward")(http_event("abcdefghij12"), FakeContext())
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "internal_error"
    [line] = _forward_lines(capsys)
    assert (line["msg"], line["level"], line["status"], line["error_code"]) == \
        ("invocation failed", "ERROR", 502, "internal_error")
