"""scripts/smoke without a stack: the origin, the client, the checks against the origin itself,
the table, exit statuses and clean-up. (tests/e2e/test_smoke.py runs the whole battery
through the local stack.)"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from scripts.harness.proc import Proc
from scripts.smoke import __main__ as smoke
from scripts.smoke import battery, report
from scripts.smoke.client import Client, Reply, split
from scripts.smoke.origin import pattern, text_pattern

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def origin_url():
    child = Proc([sys.executable, "-m", "scripts.smoke.origin", "--port", "0"], "origin", cwd=ROOT).start()
    try:
        port = json.loads(child.wait_line(lambda l: l.startswith("{"), 20))["port"]
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def direct(origin_url: str) -> battery.Context:
    """The battery aimed at the origin itself: what a perfect tunnel would deliver."""
    def no_restart() -> battery.Tunnel:
        raise AssertionError("not restarted here")
    return battery.Context(battery.Tunnel("direct", origin_url), no_restart)


def test_patterns_have_exact_sizes():
    for n in (0, 1, 63, 64, 65, 5 * battery.MB):
        assert len(pattern(n)) == n and len(text_pattern(n)) == n
    assert text_pattern(5 * battery.MB).isascii()


def test_split_keeps_the_raw_target_and_dials_localhost_names_on_loopback():
    assert split("http://abc.localhost:4040/x%20y?q=%2F") == ("http", "127.0.0.1", 4040, "abc.localhost:4040",
                                                             "/x%20y?q=%2F")
    assert split("https://h.example.com/p/a%2Fb")[1:] == ("h.example.com", 443, "h.example.com", "/p/a%2Fb")
    with pytest.raises(ValueError):
        split("ftp://x/")


@pytest.mark.parametrize("name,check", [
    ("GET", battery.check_get), ("POST", battery.check_post), ("binary up", battery.check_binary_up),
    ("binary down", battery.check_binary_down), ("text up", battery.check_text_up),
    ("text down", battery.check_text_down), ("cookies", battery.check_cookies),
    ("encoded path", battery.check_encoded_path), ("latency", battery.check_latency),
    ("utf8 header", battery.check_utf8_header),
])
def test_checks_pass_against_a_perfect_tunnel(origin_url, name, check):
    result = battery.one(name, check, direct(origin_url))
    assert result.ok, result.detail


@pytest.mark.parametrize("check,says", [
    (battery.check_s3_download, "status 200, expected 307"),          # no redirect: not via S3
    (battery.check_404, "neither in the host nor the path"),           # no tunnel id to swap
    (battery.check_502, "status 200, expected 502"),                   # the origin answered
    (battery.check_reconnect, "AssertionError: not restarted here"),   # the restart itself failed
])
def test_checks_fail_with_a_one_line_reason(origin_url, check, says):
    result = battery.one("x", check, direct(origin_url))
    assert not result.ok and says in result.detail and "\n" not in result.detail


def test_a_mangled_path_or_cookie_fails(origin_url, monkeypatch):
    ctx = direct(origin_url)
    monkeypatch.setattr(battery, "ENCODED_PATH", "/echo/smoke%20test")
    real = Client.request

    def mangling(self, method, url, body=None, headers=None):
        return real(self, method, url.replace("smoke%20test", "smoke%2520test").replace("/cookies", "/echo"),
                    body, headers)

    monkeypatch.setattr(Client, "request", mangling)
    assert "does not decode to the bytes" in battery.one("p", battery.check_encoded_path, ctx).detail
    assert not battery.one("c", battery.check_cookies, ctx).ok


def test_a_double_encoded_header_value_fails(origin_url, monkeypatch):
    real = Client.request

    def double_encoding(self, method, url, body=None, headers=None):
        reply = real(self, method, url, body, headers)
        return Reply(reply.status, tuple((k, v.encode("latin-1").decode("latin-1").encode("utf-8").decode("latin-1"))
                                         for k, v in reply.headers), reply.body, reply.seconds)

    monkeypatch.setattr(Client, "request", double_encoding)
    detail = battery.one("u", battery.check_utf8_header, direct(origin_url)).detail
    assert "arrived as bytes 63 61 66 c3 83 c2 a9" in detail


def test_latency_threshold(origin_url):
    ctx = direct(origin_url)
    ctx.latency_requests, ctx.max_p90_ms = 5, 0.0
    result = battery.one("latency", battery.check_latency, ctx)
    assert not result.ok and "over --max-p90-ms 0" in result.detail


def test_unknown_tunnel_url_swaps_the_id_in_either_form():
    sub = battery.unknown_tunnel_url(battery.Tunnel("abc123def456", "https://abc123def456.t.example.com"))
    assert sub.startswith("https://") and sub.endswith(".t.example.com") and "abc123def456" not in sub
    path = battery.unknown_tunnel_url(battery.Tunnel("abc123def456", "https://x.execute-api.aws/abc123def456"))
    assert path.startswith("https://x.execute-api.aws/") and "abc123def456" not in path


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert (battery.percentile(values, 50), battery.percentile(values, 90)) == (10.0, 18.0)


RESULTS = [battery.Result("GET", battery.PASSED, "fine", 0.1),
           battery.Result("504 no answer in 25 s", battery.FAILED, "status 200 [bold]x[/bold]", 25.0)]
LOCAL = battery.Result("S3 refuses plain HTTP", battery.NOT_CHECKABLE, "S3 here is the local stack's moto", 0.4)


def test_table_marks_failures_and_prints_network_text_literally():
    console = Console(record=True, width=120)
    console.print(report.render_table(RESULTS, "smoke [red]t[/red]", 25.1))
    text = console.export_text()
    assert "FAIL" in text and "[bold]x[/bold]" in text and "smoke [red]t[/red]" in text
    assert "1 of 2 checks passed, 1 failed in 25.1 s" in text
    plain = report.render_plain(RESULTS, "title", 25.1).splitlines()
    assert plain[0] == "title" and plain[-1] == "1 of 2 checks passed, 1 failed in 25.1 s"
    assert plain[3].split()[:6] == ["504", "no", "answer", "in", "25", "s"] and "FAIL" in plain[3]


def test_not_checkable_is_its_own_result_counted_apart():
    results = [RESULTS[0], LOCAL]
    console = Console(record=True, width=160)
    console.print(report.render_table(results, "t", 2.0))
    text = console.export_text()
    assert "not checkable locally" in text and "FAIL" not in text and "local stack's moto" in text
    assert "1 of 2 checks passed, 1 not checkable locally in 2.0 s" in text
    plain = report.render_plain(results, "t", 2.0).splitlines()
    assert plain[-1] == "1 of 2 checks passed, 1 not checkable locally in 2.0 s"
    row = plain[3]
    assert row.startswith("S3 refuses plain HTTP  not checkable locally  ") and row.endswith("local stack's moto")
    assert plain[2].startswith("GET  ") and "ok  " in plain[2]  # the result column widens for every row
    assert len({line.index(" s  ") for line in plain[2:4]}) == 1  # ... and the columns stay aligned
    mixed = report.summary([RESULTS[0], RESULTS[1], LOCAL], 3.0)
    assert mixed == "1 of 3 checks passed, 1 failed, 1 not checkable locally in 3.0 s"


def test_a_check_that_cannot_be_checked_here_says_why_and_neither_passes_nor_fails():
    def moto(ctx):
        raise battery.NotCheckable("S3 here is the local stack's moto (127.0.0.1:1)")
    result = battery.one("cap", moto, direct("http://127.0.0.1:1"))
    assert result.status == battery.NOT_CHECKABLE and not result.ok and not result.failed
    assert result.detail == "S3 here is the local stack's moto (127.0.0.1:1)"
    with pytest.raises(ValueError):
        battery.Result("x", "skipped", "", 0.0)


def test_not_checkable_results_exit_0_and_say_so_in_json(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    tunnel = battery.Tunnel("t", "http://t.localhost:1")
    assert smoke.finish([RESULTS[0], LOCAL], tunnel, "ws://x/prod", 1.0, True, work) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["summary"].endswith("1 not checkable locally in 1.0 s")
    assert [c["status"] for c in out["checks"]] == ["ok", "not checkable locally"]
    work.mkdir()
    assert smoke.finish([RESULTS[1], LOCAL], tunnel, "ws://x/prod", 1.0, True, work) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_finish_exits_1_and_keeps_the_logs_on_a_failure(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    tunnel = battery.Tunnel("t", "http://t.localhost:1")
    assert smoke.finish(RESULTS, tunnel, "ws://x/prod", 26.0, False, work) == 1
    out, err = capsys.readouterr()
    assert "FAIL" in out and str(work) in err and work.exists()
    assert smoke.finish(RESULTS[:1], tunnel, "ws://x/prod", 1.0, True, work) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True and not work.exists()


@pytest.mark.parametrize("argv,says", [
    (["--endpoint", "http://x"], "--endpoint must be a ws:// or wss:// URL"),
    (["--latency-requests", "0"], "--latency-requests must be 1..1000"),
    (["--nope"], "unrecognized arguments"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, says):
    assert smoke.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err


def test_no_terraform_outputs_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "main.tf").write_text("")
    with pytest.raises(smoke.UsageError, match="no ws_url output|terraform output failed|not on PATH"):
        smoke.terraform_ws_url(tmp_path)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _leftovers() -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "scripts.smoke.origin" in cmd or ("/smoke-" in cmd and "ttf" in cmd):
            found.append(cmd)
    return found


def test_the_agent_gets_only_the_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("TTF_PORT", "1")
    monkeypatch.setenv("TTF_ENDPOINT", "wss://elsewhere")
    monkeypatch.setenv("TTF_TOKEN", "from-the-shell")
    env = smoke.agent_env("given")
    assert env["TTF_TOKEN"] == "given" and not {"TTF_PORT", "TTF_ENDPOINT"} & set(env)
    assert "TTF_TOKEN" not in smoke.agent_env("")


def test_no_tunnel_exits_1_says_why_and_leaves_no_process(capsys):
    before = _leftovers()
    code = smoke.main(["--endpoint", f"ws://127.0.0.1:{_closed_port()}/prod", "--agent-timeout", "3"])
    err = capsys.readouterr().err
    assert code == 1
    assert "ttf did not establish a tunnel within 3 s" in err and "logs: " in err
    assert _leftovers() == before
    logs = Path(err.rsplit("logs: ", 1)[1].split(")")[0])
    assert sorted(p.name for p in logs.iterdir()) == ["origin.log", "ttf-1.log"]  # the saved state is gone
    shutil.rmtree(logs)


def _outputs(**auth: object) -> dict:
    agent_auth = {"anonymous": False, "secret_parameter": "/p/agent-jwt-secret", "issuer": "p",
                  "audience": "p-agents", "max_lifetime": 0, "region": "us-east-1"} | auth
    return {"ws_url": {"value": "wss://x/prod"}, "agent_auth": {"value": agent_auth}}


def test_a_deployment_with_auth_gets_a_one_hour_smoke_token(monkeypatch):
    import jwt

    from scripts.deploy import token

    monkeypatch.setattr(token, "read_secret", lambda settings: "s" * 64)
    minted = smoke.deployment_token(_outputs())
    claims = jwt.decode(minted, "s" * 64, algorithms=["HS256"], audience="p-agents", issuer="p")
    assert claims["sub"] == "smoke" and claims["exp"] - claims["iat"] == 3600
    assert smoke.deployment_token(_outputs(anonymous=True)) == ""


def test_no_readable_secret_is_exit_1_with_directions(monkeypatch):
    with pytest.raises(smoke.SmokeError, match="pass --token or TTF_TOKEN"):
        smoke.deployment_token(_outputs(secret_parameter=""))  # a plain jwt_secret value: nothing to read


def test_the_throttle_check_reports_what_came_back_instead_of_pongs():
    from scripts.smoke import throttle

    frame = '{"message": "Too Many Requests", "connectionId":"L0SM9cOFvHcCIhw=", "requestId":"ATfSmjLgPHcESJw="}'
    said = throttle.judge(300, 180, [frame] * 120)
    assert said.startswith("120 of 300 pings refused; API Gateway sent back 120 frame(s): ")
    assert "Too Many Requests" in said and "L0SM9cOFvHcCIhw=" not in said
    assert "dropped silently" in throttle.judge(300, 250, [])
    with pytest.raises(battery.NotCheckable, match="nothing throttled"):
        throttle.judge(300, 300, [])
