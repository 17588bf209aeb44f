"""Renderers through Console(record=True); plain lines; JSON lines."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from datetime import datetime

import pytest
from rich.console import Console

from ttf.events import (
    Connected, Disconnected, LocalService, Notice, Reconnecting, RequestDone, TunnelEstablished, TunnelFailed, tagged,
)
from ttf.render import (
    NOTICE_TTL, Dashboard, JsonSink, LineSink, MultiDashboard, format_line, human_bytes, human_duration, percentile,
    render_dashboard, render_multi, render_requests, render_stats,
)

T0 = 1_700_000_000.0
TUNNEL = TunnelEstablished(tunnel_id="tun123", public_url="https://api.example.test/tun123",
                           subdomain_url="https://tun123.t.example.test",
                           path_based_url="https://api.example.test/tun123", connection_id="c1")


def record(renderable, width: int = 120, height: int = 60) -> Console:
    """Drawn as on a terminal of that size (the dashboard fits itself to it)."""
    console = Console(record=True, width=width, height=height, color_system="truecolor", force_terminal=True)
    console.print(renderable)
    return console


def busy_dashboard() -> Dashboard:
    state = Dashboard(endpoint="wss://ws.example.test/prod", local_target="127.0.0.1:3000", started_at=T0)
    state.apply(Connected("wss://ws.example.test/prod"), T0 + 1)
    state.apply(TUNNEL, T0 + 1)
    for i, status in enumerate([200, 200, 201, 302, 404, 503]):
        state.apply(RequestDone("GET", f"/p{i}", status, duration_ms=10 * (i + 1), bytes_in=100, bytes_out=2048), T0 + 2)
    return state


def test_dashboard_shows_status_urls_counts_latency_and_requests():
    console = record(render_dashboard(busy_dashboard(), T0 + 3725))
    text = console.export_text()
    assert "online" in text and "1h02m05s" in text
    assert "https://api.example.test/tun123 -> http://127.0.0.1:3000" in text
    assert "https://tun123.t.example.test" in text
    assert "tun123" in text
    stats_line = next(line for line in text.splitlines() if "ms" in line and "KB" in line and "/p" not in line)
    assert stats_line.split()[1:6] == ["6", "3", "1", "1", "1"]  # total, 2xx, 3xx, 4xx, 5xx
    assert "30 ms" in stats_line and "60 ms" in stats_line  # p50, p90 (nearest rank of 6)
    assert "600 B" in text and "12.0 KB" in text
    assert text.index("/p5") < text.index("/p0")  # newest first


def test_status_codes_are_coloured_by_class():
    styled = record(render_requests(busy_dashboard())).export_text(styles=True)
    assert re.search(r"\x1b\[32m *200", styled)  # 2xx green
    assert re.search(r"\x1b\[36m *302", styled)  # 3xx cyan
    assert re.search(r"\x1b\[33m *404", styled)  # 4xx yellow
    assert re.search(r"\x1b\[1;31m *503", styled)  # 5xx bold red


def test_empty_and_reconnecting_dashboard():
    state = Dashboard(endpoint="ws://127.0.0.1:9/ws", local_target="127.0.0.1:3000", started_at=T0)
    state.apply(Reconnecting(delay_s=2.0, attempt=2, reason="cannot reach ws://127.0.0.1:9/ws"), T0 + 1)
    text = record(render_dashboard(state, T0 + 5)).export_text()
    assert "reconnecting in 2.0 s" in text and "cannot reach" in text
    assert "none yet" in text and "http://127.0.0.1:3000" in text
    stats = record(render_stats(state)).export_text()
    assert "-" in stats and "0 B" in stats


def test_percentile_and_humanisers():
    assert percentile([], 50) is None
    assert percentile([5], 90) == 5
    assert percentile(list(range(1, 101)), 50) == 50
    assert percentile(list(range(1, 101)), 90) == 90
    assert percentile([30, 10, 20], 50) == 20
    assert human_bytes(0) == "0 B" and human_bytes(1536) == "1.5 KB" and human_bytes(5 * 1024 * 1024) == "5.0 MB"
    assert human_duration(59) == "0m59s" and human_duration(3600) == "1h00m00s"


def test_plain_lines():
    assert format_line(RequestDone("GET", "/a", 200, 12, 0, 34), T0).endswith("GET /a 200 12 ms in=0 out=34")
    assert "error=timeout" in format_line(RequestDone("GET", "/a", 504, 25000, 0, 0, "timeout"), T0)
    assert "tunnel established: https://api.example.test/tun123 https://tun123.t.example.test" in format_line(TUNNEL, T0)
    assert "reconnecting in 1.5 s (attempt 1): boom" in format_line(Reconnecting(1.5, 1, "boom"), T0)
    assert "disconnected: gone" in format_line(Disconnected("gone"), T0)
    assert "warning: hm" in format_line(Notice("warning", "hm"), T0)
    out = io.StringIO()
    LineSink(out, "127.0.0.1:3000")(TUNNEL)
    assert out.getvalue().rstrip().endswith("-> http://127.0.0.1:3000")


def test_inspector_url_in_dashboard_and_lines():
    tunnel = dataclasses.replace(TUNNEL, inspector_url="http://127.0.0.1:4045")
    state = Dashboard(endpoint="wss://ws.example.test/prod", local_target="127.0.0.1:3000", started_at=T0)
    state.apply(tunnel, T0)
    text = record(render_dashboard(state, T0 + 1)).export_text()
    assert re.search(r"Inspector +http://127.0.0.1:4045", text)
    assert "Inspector" not in record(render_dashboard(busy_dashboard(), T0 + 1)).export_text()
    out = io.StringIO()
    LineSink(out, "127.0.0.1:3000")(tunnel)
    assert out.getvalue().rstrip().endswith("-> http://127.0.0.1:3000 (inspector http://127.0.0.1:4045)")
    out = io.StringIO()
    JsonSink(out)(tunnel)
    assert json.loads(out.getvalue())["inspector_url"] == "http://127.0.0.1:4045"


def test_json_lines_shape():
    out = io.StringIO()
    sink = JsonSink(out)
    sink(TUNNEL)
    sink(RequestDone("POST", "/x", 201, 5, 10, 20))
    sink(Reconnecting(0.9876, 1, "x"))
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "tunnel_established" and first["tunnel_id"] == "tun123"
    assert {"public_url", "subdomain_url", "path_based_url"} <= set(first)
    assert {k: second[k] for k in ("event", "method", "path", "status", "duration_ms", "bytes_in", "bytes_out")} == {
        "event": "request", "method": "POST", "path": "/x", "status": 201, "duration_ms": 5,
        "bytes_in": 10, "bytes_out": 20}
    assert third == {"event": "reconnecting", "delay_s": 0.988, "attempt": 1, "reason": "x", "ts": third["ts"]}


def test_denials_are_counted_by_reason_and_the_policy_is_shown_masked():
    from httptunnel import policy
    from ttf.events import PolicyActive, RequestDenied

    rules = tuple(policy.build(basic_auth=["alice:topsecretpw"], hooks=["stripe:whsec_verysecretvalue1"]).describe())
    assert not any("topsecretpw" in r or "verysecretvalue1" in r for r in rules)
    state = Dashboard(endpoint="wss://e", local_target="127.0.0.1:3000", started_at=T0)
    for event in (PolicyActive(rules), RequestDenied("GET", "/a", 403, "ip_denied"),
                  RequestDenied("GET", "/b", 403, "ip_denied", count=4),
                  RequestDenied("POST", "/hook", 403, "webhook_signature_invalid")):
        state.apply(event, T0)
    assert state.denied == {"ip_denied": 5, "webhook_signature_invalid": 1} and state.total == 0
    text = record(render_dashboard(state, T0)).export_text()
    assert "ip_denied 5" in text and "webhook_signature_invalid 1" in text and "user 'alice'" in text
    assert "(x4)" in format_line(RequestDenied("GET", "/b", 403, "ip_denied", count=4), T0)
    out = io.StringIO()
    JsonSink(out)(RequestDenied("GET", "/b", 403, "ip_denied", count=4))
    JsonSink(out)(PolicyActive(rules))
    denied, active = (json.loads(line) for line in out.getvalue().splitlines())
    assert (denied["event"], denied["reason"], denied["count"]) == ("request_denied", "ip_denied", 4)
    assert active["event"] == "policy" and active["rules"] == list(rules)


# ---- network strings are data (issue 12): never markup, control characters escaped ------------

HOSTILE_PATH = "/[link=https://evil.example]click[/link][bold red]X[/]\x1b]0;pwned\x07\x1b[2J\u202eexe.txt"
HOSTILE_METHOD = "G[b]E[/b]T\x1b[31m"
SHORT_PATH = "/[link=https://e.x]c[/link]\x1b]0;p\x07\x1b[2J\u202eexe"  # fits the path column


def hostile_dashboard() -> Dashboard:
    state = Dashboard(endpoint="wss://ws.example.test/prod", local_target="127.0.0.1:3000", started_at=T0)
    state.apply(dataclasses.replace(TUNNEL, tunnel_id="[red]tun[/red]\x1b[5m",
                                    public_url="https://x.test/[link=https://evil.example]a[/link]"), T0)
    state.apply(RequestDone(HOSTILE_METHOD, SHORT_PATH, 200, duration_ms=1, bytes_in=0, bytes_out=0,
                            error="e[i]\x1b"), T0)
    state.apply(Disconnected(reason="server said [blink]bye[/blink]\x1b[?1049h"), T0)
    return state


def test_dashboard_renders_network_strings_as_text_with_controls_escaped():
    console = record(render_dashboard(hostile_dashboard(), T0 + 1), width=400)
    styled = console.export_text(styles=True, clear=False)
    text = console.export_text()
    for raw in ("\x1b]0;p", "\x07", "\x1b[2J", "\u202e", "\x1b[5m", "\x1b[?1049h", "\x1b[31mG"):
        assert raw not in styled, repr(raw)
    assert "/[link=https://e.x]c[/link]\\x1b]0;p\\x07\\x1b[2J\\u202eexe" in text  # markup shown, not applied
    assert "G[b]E[/b]T\\x1b[31m" in text and "[red]tun[/red]\\x1b[5m" in text
    assert "server said [blink]bye[/blink]\\x1b[?1049h" in text
    assert "\x1b]8;" not in styled  # no hyperlink escape was emitted
    assert not re.search(r"\x1b\[[0-9;]*5m", styled)  # nothing blinks


def test_log_lines_escape_control_characters():
    line = format_line(RequestDone(HOSTILE_METHOD, HOSTILE_PATH, 200, 1, 0, 0), T0)
    assert not re.search("[\x00-\x1f\x7f\u202e]", line), repr(line)
    assert "\\x1b]0;pwned\\x07" in line and "\\u202e" in line
    stream = io.StringIO()
    LineSink(stream, "127.0.0.1:3000")(Disconnected(reason="a\r\nFAKE 200 /admin"))
    assert stream.getvalue().count("\n") == 1 and "a\\x0d\\x0aFAKE" in stream.getvalue()


def test_json_lines_escape_control_characters():
    stream = io.StringIO()
    JsonSink(stream)(RequestDone(HOSTILE_METHOD, HOSTILE_PATH, 200, 1, 0, 0))
    out = stream.getvalue()
    assert out.count("\n") == 1 and not re.search("[\x00-\x1f\x7f\u202e]", out[:-1])
    assert json.loads(out)["path"] == HOSTILE_PATH  # exact, once decoded


def test_stderr_log_records_escape_control_characters():
    import logging

    from ttf.main import _PlainFormatter

    record_ = logging.LogRecord("ttf", logging.WARNING, __file__, 1, "bad frame %s", ("x\x1b[2Jy",), None)
    assert _PlainFormatter("%(message)s").format(record_) == "bad frame x\\x1b[2Jy"


# ---- several tunnels (a config file) ---------------------------------------------------------

def three_tunnels() -> MultiDashboard:
    state = MultiDashboard.of([("web", "wss://ws.example.test/prod", "127.0.0.1:3000"),
                               ("api", "wss://ws.example.test/prod", "127.0.0.1:8000"),
                               ("hooks", "ws://127.0.0.1:9/ws", "127.0.0.1:4000")], T0, "ttf.toml")
    web, api, hooks = (tagged(lambda event: state.apply(event, T0 + 1), name) for name in ("web", "api", "hooks"))
    web(dataclasses.replace(TUNNEL, inspector_url="http://127.0.0.1:4045"))
    api(dataclasses.replace(TUNNEL, tunnel_id="my-api", public_url="https://my-api.t.example.test"))
    hooks(Reconnecting(4.0, 3, "cannot reach ws://127.0.0.1:9/ws"))
    state.apply(Notice("info", "request inspector: http://127.0.0.1:4045"), T0 + 1)
    for i in range(6):
        (web if i % 2 else api)(RequestDone("GET", f"/r{i}", 200 if i % 2 else 503, 10, 0, 100))
    return state


def test_several_tunnels_one_row_each_with_its_url_traffic_and_error():
    state = three_tunnels()
    state.apply(TunnelFailed("the endpoint rejected the token (HTTP 401)", tunnel="api"), T0 + 2)
    text = record(render_dashboard(state, T0 + 5)).export_text()
    lines = text.splitlines()
    web = next(i for i, line in enumerate(lines) if "1 web" in line)
    assert "online  https://api.example.test/tun123 -> http://127.0.0.1:3000" in lines[web]
    assert "3 requests  2xx 3  3xx 0  4xx 0  5xx 0" in lines[web + 1]
    api = next(i for i, line in enumerate(lines) if "2 api" in line)
    assert "failed  https://my-api.t.example.test -> http://127.0.0.1:8000" in lines[api]
    assert "5xx 3" in lines[api + 1] and "the endpoint rejected the token (HTTP 401)" in lines[api + 2]
    hooks = next(i for i, line in enumerate(lines) if "3 hooks" in line)
    assert "reconnecting in 4.0 s -> http://127.0.0.1:4000" in lines[hooks]
    assert "cannot reach ws://127.0.0.1:9/ws" in lines[hooks + 2]
    assert "1 of 3 online (ttf.toml)" in text and re.search(r"Inspector +http://127.0.0.1:4045", text)
    assert "request inspector: http://127.0.0.1:4045" in text  # the process's own notice
    styled = record(render_dashboard(state, T0 + 5)).export_text(styles=True)
    assert re.search(r"\x1b\[1;31mfailed", styled) and re.search(r"\x1b\[32monline", styled)


def test_latest_requests_have_a_tunnel_column_and_a_filter():
    state = three_tunnels()
    rows = [line.split() for line in record(render_requests(state)).export_text().splitlines()[1:]]
    assert [(r[1], r[3]) for r in rows] == [("web", "/r5"), ("api", "/r4"), ("web", "/r3"), ("api", "/r2"),
                                            ("web", "/r1"), ("api", "/r0")]
    state.select("2")
    assert state.only == "api"
    text = record(render_dashboard(state, T0 + 5)).export_text()
    assert "Latest requests via api" in text and "/r0" in text and "/r1" not in text
    for key, only in [("t", "hooks"), ("t", None), ("t", "web"), ("9", "web"), ("x", "web"), ("0", None),
                      ("\t", "web"), ("a", None)]:
        state.select(key)
        assert state.only == only, key
    assert "none yet" in record(render_dashboard(dataclasses.replace(state, only="hooks"), T0)).export_text()
    # one tunnel (no config file): no tunnel column, as always
    assert "tunnel" not in record(render_requests(busy_dashboard())).export_text()


def test_lines_and_json_of_a_named_tunnel_say_which():
    out = io.StringIO()
    sink = LineSink(out, {"web": "127.0.0.1:3000", "api": "[::1]:8000"})
    sink(dataclasses.replace(TUNNEL, tunnel="api"))
    sink(RequestDone("GET", "/a", 503, 3, 0, 0, "local_service_unavailable", tunnel="web"))
    sink(TunnelFailed("the endpoint rejected the token (HTTP 401)", tunnel="api"))
    sink(Notice("info", "request inspector: http://127.0.0.1:4045"))
    first, second, third, fourth = (line[20:] for line in out.getvalue().splitlines())  # after the time stamp
    assert first == "[api] tunnel established: https://api.example.test/tun123 https://tun123.t.example.test " \
                    "(tunnel id tun123) -> http://[::1]:8000"
    assert second == "[web] GET /a 503 3 ms in=0 out=0 error=local_service_unavailable"
    assert third == "[api] tunnel failed, the others go on: the endpoint rejected the token (HTTP 401)"
    assert fourth == "info: request inspector: http://127.0.0.1:4045"
    out = io.StringIO()
    JsonSink(out)(dataclasses.replace(TUNNEL, tunnel="api"))
    JsonSink(out)(TunnelFailed("gone", tunnel="api"))
    JsonSink(out)(TUNNEL)
    named, failed, plain = (json.loads(line) for line in out.getvalue().splitlines())
    assert (named["event"], named["tunnel"], named["tunnel_id"]) == ("tunnel_established", "api", "tun123")
    assert failed == {"event": "tunnel_failed", "reason": "gone", "tunnel": "api", "ts": failed["ts"]}
    assert "tunnel" not in plain  # the command line's tunnel: the lines it always printed


def test_several_tunnels_render_network_strings_as_text_with_controls_escaped():
    state = MultiDashboard.of([("web", "wss://ws.example.test/prod", "127.0.0.1:3000"),
                               ("api", "wss://ws.example.test/prod", "127.0.0.1:8000")], T0, "ttf.toml")
    web, api = (tagged(lambda event: state.apply(event, T0 + 1), name) for name in ("web", "api"))
    web(dataclasses.replace(TUNNEL, public_url="https://x.test/[link=https://evil.example]a[/link]\x1b]0;t\x07"))
    web(RequestDone(HOSTILE_METHOD, SHORT_PATH, 200, 1, 0, 0))
    api(TunnelFailed(reason="refused: [blink]go away[/blink]\x1b[?1049h"))
    console = record(render_multi(state, T0 + 2), width=400)
    styled = console.export_text(styles=True, clear=False)
    text = console.export_text()
    for raw in ("\x1b]0;", "\x07", "\x1b[2J", "\u202e", "\x1b[?1049h", "\x1b]8;"):
        assert raw not in styled, repr(raw)
    assert not re.search(r"\x1b\[[0-9;]*5m", styled)  # nothing blinks
    assert "[link=https://evil.example]a[/link]\\x1b]0;t\\x07" in text
    assert "/[link=https://e.x]c[/link]\\x1b]0;p\\x07" in text and "refused: [blink]go away[/blink]\\x1b[?1049h" in text


# ---- the layout at the sizes people use (issue 28) --------------------------------------------

SIZES = [(80, 24), (100, 30), (120, 35)]
LONG_PATH = "/api/v1/customers/12345/orders/67890/items?expand=everything&page=2"


def crowded(several: bool) -> Dashboard | MultiDashboard:
    """Fifteen requests, among them a long error code, a 5-digit duration and a long path."""
    names = ["web", "api"] if several else [None]
    multi = MultiDashboard.of([(n, "wss://ws.example.test/prod", f"127.0.0.1:{3000 + i}") for i, n in enumerate(names)],
                              T0, "ttf.toml")
    single = Dashboard(endpoint="wss://ws.example.test/prod", local_target="127.0.0.1:3000", started_at=T0)

    def apply(event):
        (multi if several else single).apply(event, T0 + 2)

    for name in names:
        apply(dataclasses.replace(TUNNEL, inspector_url="http://127.0.0.1:4045", tunnel=name))
    apply(Notice("info", "request inspector: http://127.0.0.1:4045"))
    for i in range(12):
        apply(RequestDone("GET", f"{LONG_PATH}&n={i}", 200, 12, 100, 2048, tunnel=names[i % len(names)]))
    apply(RequestDone("DELETE", "/slow", 504, 25012, 100, 0, error="timeout", tunnel=names[0]))
    apply(RequestDone("OPTIONS", "/down", 503, 3, 100, 0, error="local_service_unavailable", tunnel=names[-1]))
    apply(RequestDone("PATCH", LONG_PATH, 201, 98765, 100, 1_500_000, tunnel=names[0]))
    return multi if several else single


@pytest.mark.parametrize("several", [False, True], ids=["one tunnel", "config file"])
@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_frame_fits_the_terminal_and_essential_columns_are_never_cut(width, height, several):
    state = crowded(several)
    lines = record(render_dashboard(state, T0 + 100), width=width, height=height).export_text().splitlines()
    assert len(lines) <= height, f"{len(lines)} lines on a {height}-line terminal"
    assert lines[0].startswith("╭") and lines[-1].startswith("╰") and "Ctrl-C to quit" in lines[-1]
    assert all(len(line) <= width for line in lines)
    heads = next(line for line in lines if "method" in line and "status" in line)
    assert "…" not in heads and "app time" in heads and "size" in heads
    stats = [line for line in lines if "requests" in line and "…" in line]
    assert not stats, stats  # the totals are never cut ("req…")
    rows = [line for line in lines if re.search(r"│ \d\d:\d\d:\d\d ", line)]
    assert len(rows) >= 8, "fewer than 8 requests listed"
    shown = state.requests() if isinstance(state, MultiDashboard) else list(state.recent)
    for line, row in zip(rows, shown[:len(rows)], strict=True):
        when = datetime.fromtimestamp(row.at).strftime("%H:%M:%S")
        cells = line.strip("│ ").split()
        assert cells[0] == when
        assert row.method in cells[1:3], line
        if several:
            assert cells[1] == row.tunnel, line
        assert re.search(rf" {row.status}( |$)", line), line
        assert f"{row.duration_ms} ms" in line and human_bytes(row.bytes_out) in line, line
    if width < 120:  # the path gave way; the long error code still shows its start
        assert any(LONG_PATH not in line and LONG_PATH[:10] in line for line in rows)
    assert any("503 local_serv" in line for line in rows) and any("504 timeout" in line for line in rows)


def test_the_path_shows_in_full_when_there_is_room():
    lines = record(render_dashboard(crowded(False), T0 + 100), width=160, height=40).export_text().splitlines()
    assert any(LONG_PATH in line and "98765 ms" in line for line in lines)
    assert any("503 local_service_unavailable" in line for line in lines)


def test_a_short_terminal_folds_the_header_and_lists_fewer_requests():
    tall = record(render_dashboard(crowded(False), T0 + 100), height=60).export_text()
    short = record(render_dashboard(crowded(False), T0 + 100), height=24).export_text()
    assert "Tunnel id" in tall and "Endpoint" in tall and "newest" not in tall
    assert "Tunnel id" not in short and "Endpoint" not in short and "up 1m40s" in short
    assert re.search(r"Latest requests  \(newest \d+ of 15\)", short)


def test_the_last_event_fades_while_all_is_well_and_stays_while_not():
    state = crowded(False)
    assert "request inspector" in record(render_dashboard(state, T0 + 30)).export_text()
    assert "Last event" not in record(render_dashboard(state, T0 + 2 + NOTICE_TTL + 1)).export_text()
    state.apply(Disconnected("the server went away"), T0 + 3)
    assert "the server went away" in record(render_dashboard(state, T0 + 600)).export_text()  # still not online


# ---- the local service's state (issue 28: "online" while the app is down) ----------------------

def test_a_down_local_service_shows_beside_online_in_both_layouts():
    state = busy_dashboard()
    state.apply(LocalService(up=False, target="127.0.0.1:3000", detail="connection refused"), T0 + 3)
    text = record(render_dashboard(state, T0 + 4)).export_text()
    assert "online · local service down (connection refused)" in text
    state.apply(LocalService(up=True, target="127.0.0.1:3000"), T0 + 5)
    text = record(render_dashboard(state, T0 + 6)).export_text()
    assert "local service down" not in text and re.search(r"Status +online", text)

    multi = three_tunnels()
    multi.apply(LocalService(up=False, target="127.0.0.1:8000", detail="connection refused", tunnel="api"), T0 + 3)
    text = record(render_dashboard(multi, T0 + 4)).export_text()
    assert "2 of 3 online · 1 local service down (ttf.toml)" in text
    api = next(line for line in text.splitlines() if "2 api" in line)
    assert "online · local service down (connection refused)  https://my-api.t.example.test" in api
    web = next(line for line in text.splitlines() if "1 web" in line)
    assert "local service down" not in web
