"""The dashboard's WebSockets block (issue 24 item 4): open count, a line per session, network text as text."""

from __future__ import annotations

from rich.console import Console

from ttf.events import Connected, RequestDone, TunnelEstablished
from ttf.render import SOCKET_ROWS, Dashboard, MultiDashboard, render_dashboard
from ttf.socketlog import TO_APP, TO_CALLER, SocketLog

T0 = 1_700_000_000.0
TUNNEL = TunnelEstablished(tunnel_id="tun123", public_url="https://api.example.test/tun123", subdomain_url=None,
                           path_based_url=None, connection_id="c1")


def text_of(renderable, width: int = 140, height: int = 60) -> str:
    console = Console(record=True, width=width, height=height, color_system="truecolor", force_terminal=True)
    console.print(renderable)
    return console.export_text()


def dashboard(log: SocketLog) -> Dashboard:
    state = Dashboard(endpoint="wss://ws.example.test/prod", local_target="127.0.0.1:3000", started_at=T0,
                      socket_log=log)
    state.apply(Connected("wss://ws.example.test/prod"), T0)
    state.apply(TUNNEL, T0)
    return state


def test_no_block_until_there_is_a_session():
    assert "WebSockets" not in text_of(render_dashboard(dashboard(SocketLog()), T0 + 5))


def test_open_sessions_are_counted_and_each_has_a_line():
    log = SocketLog()
    chat = log.opened("a=", "/chat?room=1", {}, "graphql-transport-ws", None)
    for text in ("hi", "there"):
        chat.message(TO_APP, text)
    chat.message(TO_CALLER, "welcome ✓")
    log.opened("b=", "/_next/webpack-hmr", {}, None, None)
    done = log.opened("c=", "/done", {}, None, None)
    done.closed(4001, "bye", "app")
    log.refused("d=", "/admin", {}, 403, "local_service_error", "the app answered 403")
    text = text_of(render_dashboard(dashboard(log), T0 + 5))
    assert "WebSockets  2 open · 2 closed" in text
    assert "in 2 messages 7 B · out 1 message 11 B" in text
    line = next(row for row in text.splitlines() if "/chat?room=1" in row)
    assert "#1" in line and "(graphql-transport-ws)" in line and "open" in line
    assert "in 2 · 7 B" in line and "out 1 · 11 B" in line and "last → caller 'welcome ✓'" in line
    assert "closed 4001 by app" in text and "refused 403 local_service_error" in text
    lines = text.splitlines()
    # open ones first (oldest first), then the latest closed
    assert [i for i, row in enumerate(lines) if "/chat" in row][0] < [i for i, row in enumerate(lines) if "/done" in row][0]


def test_the_block_lists_at_most_its_rows_and_says_how_many_more():
    log = SocketLog()
    for n in range(SOCKET_ROWS + 3):
        log.opened(f"s{n}=", f"/sock{n}", {}, None, None)
    text = text_of(render_dashboard(dashboard(log), T0 + 5))
    assert sum("/sock" in row for row in text.splitlines()) == SOCKET_ROWS
    assert "… 3 more in the inspector" in text


def test_paths_protocols_and_messages_are_text_never_markup_and_controls_are_escaped():
    log = SocketLog()
    rec = log.opened("a=", "/[bold red]x[/]\x1b[2J", {}, "[link=https://evil.example]p[/link]", None)
    rec.message(TO_APP, "[blink]boo[/blink]\x07\u202e")
    text = text_of(render_dashboard(dashboard(log), T0 + 5))
    assert "/[bold red]x[/]\\x1b[2J" in text
    assert "([link=https://evil.example]p[/link])" in text
    assert "[blink]boo[/blink]" in text and "\x07" not in text and "\u202e" not in text


def test_the_frame_still_fits_a_short_terminal_with_sessions_open():
    log = SocketLog()
    for n in range(SOCKET_ROWS):
        log.opened(f"s{n}=", f"/sock{n}", {}, None, None)
    state = dashboard(log)
    for i in range(40):
        state.apply(RequestDone("GET", f"/p{i}", 200, duration_ms=1, bytes_in=1, bytes_out=1), T0 + 1)
    text = text_of(render_dashboard(state, T0 + 5), width=100, height=30)
    assert len(text.splitlines()) <= 30
    assert "WebSockets  5 open" in text and "/p39" in text  # the newest request still shows


def test_several_tunnels_have_a_tunnel_column_and_the_filter_applies():
    log = SocketLog()
    log.opened("a=", "/api-sock", {}, None, None, tunnel="api")
    log.opened("b=", "/web-sock", {}, None, None, tunnel="web")
    state = MultiDashboard.of([("api", "wss://x", "127.0.0.1:1"), ("web", "wss://x", "127.0.0.1:2")], T0)
    state.socket_log = log
    text = text_of(render_dashboard(state, T0 + 5))
    assert "WebSockets  2 open" in text
    assert any("api" in row and "/api-sock" in row for row in text.splitlines())
    state.select("2")  # the web tunnel only
    text = text_of(render_dashboard(state, T0 + 5))
    assert "WebSockets  1 open" in text and "/web-sock" in text and "/api-sock" not in text
