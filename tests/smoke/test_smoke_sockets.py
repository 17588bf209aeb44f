"""make smoke's caller-WebSocket checks (scripts/smoke/sockets.py) without a stack: aimed at the
smoke origin's own /ws (what a perfect tunnel delivers), at in-process fakes that mangle or refuse,
and the deployments they cannot check. The hostname form (CloudFront) against an in-process edge that
relays to the smoke origin at a target it keeps, damages, or gets from the real viewer-request
function (Node). tests/e2e/test_smoke.py runs them through the local stack."""

from __future__ import annotations

import asyncio
import json
import threading
from urllib.parse import unquote

import pytest
from aiohttp import ClientSession, web
from httptunnel import caller_ws, routing

from scripts.smoke import __main__ as smoke
from scripts.smoke import battery, sockets
from scripts.smoke.client import Client
from tests.smoke import test_smoke_battery

origin_url = test_smoke_battery.origin_url  # the smoke origin (a fixture)


def no_restart() -> battery.Tunnel:
    raise AssertionError("not restarted here")


def direct(http_url: str, **kwargs) -> battery.Context:
    """The checks aimed at an app itself: its /ws as the caller API, its HTTP as the tunnel."""
    ws_base = "ws" + http_url.removeprefix("http") + sockets.PATH
    return battery.Context(battery.Tunnel("direct", http_url), no_restart, caller_ws_url=ws_base, **kwargs)


def test_the_socket_check_passes_against_a_perfect_tunnel(origin_url):
    result = battery.one(sockets.SOCKET, sockets.check_socket, direct(origin_url))
    assert result.ok, result.detail
    assert f"subprotocol {sockets.SUBPROTOCOL}" in result.detail and "reached the app" in result.detail
    closes = Client().request("GET", f"{origin_url}{sockets.CLOSES_PATH}")
    assert closes.status == 200 and any(4000 <= c < 5000 for c in json.loads(closes.body))


def test_the_order_burst_reports_what_came_back(origin_url):
    result = battery.one(sockets.ORDER, sockets.check_order, direct(origin_url))
    assert result.ok, result.detail
    assert result.detail.startswith(f"observed: {sockets.BURST} frames sent at once, 0 came back out of place, "
                                    "0 never"), result.detail


def test_out_of_place_counts_moved_and_missing_frames():
    sent = [f"burst {i:04d}" for i in range(6)]
    assert sockets.out_of_place(sent, sent) == (0, 0)
    swapped = sent[:2] + [sent[3], sent[2]] + sent[4:]
    assert sockets.out_of_place(swapped, sent) == (2, 0)
    assert sockets.out_of_place(sent[:2] + sent[3:], sent) == (3, 1)  # one lost: everything after it moved up


def test_the_idle_observation_is_opt_in_and_counts_pongs(origin_url, monkeypatch):
    result = battery.one(sockets.IDLE, sockets.check_idle, direct(origin_url))
    assert result.status == battery.NOT_CHECKABLE and "--socket-idle" in result.detail
    monkeypatch.setattr(sockets, "IDLE_S", 1.0)
    monkeypatch.setattr(sockets, "PING_EVERY_S", 0.3)
    result = battery.one(sockets.IDLE, sockets.check_idle, direct(origin_url, socket_idle=True))
    assert result.ok and result.detail.startswith("observed: open after 1 s of pings only (4 pings, 4 pongs)"), \
        result.detail


def test_without_a_caller_api_every_socket_check_is_not_checkable():
    ctx = battery.Context(battery.Tunnel("abc", "https://t.example"), no_restart)
    for name, check in ((sockets.SOCKET, sockets.check_socket), (sockets.ORDER, sockets.check_order)):
        result = battery.one(name, check, ctx)
        assert result.status == battery.NOT_CHECKABLE and "no caller WebSocket API" in result.detail
    ctx.caller_ws_url = "wss://c.example/live"
    assert sockets.caller_url(ctx) == "wss://c.example/live?tunnel=abc"


class Fake:
    """An in-process stand-in for a tunnel: refuses the handshake with ``status``, or mangles."""

    route = sockets.PATH

    def __init__(self, status: int = 101) -> None:
        self.status = status
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if self.status != 101:
            return web.Response(status=self.status, text="no", headers={"x-tunnel-error": "websocket_unsupported"})
        ws = web.WebSocketResponse()  # negotiates no subprotocol
        await ws.prepare(request)
        await ws.send_str(sockets.GREETING)
        async for msg in ws:
            await ws.send_str(msg.data.replace("\x00", ""))
        return ws

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get(self.route, self.socket)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> str:
        self._thread.start()
        assert self._ready.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None and self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_an_agent_without_ws_is_not_checkable_and_other_refusals_fail():
    with Fake(501) as url:
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.status == battery.NOT_CHECKABLE and result.detail == f"{sockets.NO_WS} (websocket_unsupported)"
    with Fake(404) as url:
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.failed and result.detail == "the caller's handshake got 404 (websocket_unsupported)"


def test_a_tunnel_that_drops_the_subprotocol_or_a_nul_fails(monkeypatch):
    with Fake() as url:
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.failed and result.detail.startswith("subprotocol None, expected 'smoke.v1'"), result.detail
        monkeypatch.setattr(sockets, "SUBPROTOCOL", None)
        result = battery.one(sockets.SOCKET, sockets.check_socket, direct(url))
        assert result.failed and result.detail.startswith("sent 'NUL \\x00 in the middle \\x00'"), result.detail


def test_the_origin_refuses_a_plain_get_on_its_socket_path(origin_url):
    reply = Client().request("GET", f"{origin_url}{sockets.PATH}")
    assert reply.status == 400 and b"WebSocket handshake" in reply.body


def test_the_caller_url_comes_from_terraform_or_the_flag(capsys):
    assert smoke.caller_ws_url_of({"caller_ws_url": {"value": "wss://x.execute-api.us-east-1.amazonaws.com/live"}}) \
        == "wss://x.execute-api.us-east-1.amazonaws.com/live"
    assert smoke.caller_ws_url_of({}) == ""  # a deployment from before issue 24
    assert smoke.main(["--endpoint", "ws://127.0.0.1:1", "--caller-ws-url", "https://x"]) == 2
    assert "--caller-ws-url must be a ws://" in capsys.readouterr().err
    assert smoke.parse_args(["--endpoint", "ws://h", "--socket-idle"]).socket_idle
    assert not smoke.parse_args(["--endpoint", "ws://h"]).socket_idle


# ---------------------------------------------------------------------------- the hostname form (CloudFront)


def test_without_cloudfront_the_domain_check_is_not_checkable(origin_url):
    assert sockets.DOMAIN in battery.NAMES
    result = battery.one(sockets.DOMAIN, sockets.check_domain, direct(origin_url))  # a caller API, no CloudFront
    assert result.status == battery.NOT_CHECKABLE and result.detail == sockets.NO_CLOUDFRONT
    assert "terraform output cloudfront is null" in result.detail


class Edge(Fake):
    """A stand-in for CloudFront + the caller API + ttf: takes a caller's socket on any path, opens one
    to the smoke origin at ``rewrite(<the caller's raw target>)`` with the subprotocols the caller
    offered, answers with the one the origin chose, and relays text both ways."""

    route = "/{tail:.*}"  # any path

    def __init__(self, origin: str, rewrite) -> None:
        super().__init__()
        self.origin, self.rewrite = origin, rewrite

    async def socket(self, request: web.Request) -> web.StreamResponse:
        from yarl import URL

        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        async with ClientSession() as session:
            target = URL(self.origin + self.rewrite(request.raw_path), encoded=True)
            async with session.ws_connect(target, protocols=offered) as app:
                ws = web.WebSocketResponse(protocols=(app.protocol,) if app.protocol else ())
                await ws.prepare(request)

                async def down() -> None:
                    async for msg in app:
                        await ws.send_str(msg.data)
                    await ws.close()

                relay = asyncio.create_task(down())
                async for msg in ws:
                    await app.send_str(msg.data)
                await app.close()
                await relay
                return ws


def through(url: str) -> battery.Context:
    """The checks aimed at an edge on 127.0.0.1 as the tunnel's hostname behind CloudFront."""
    return battery.Context(battery.Tunnel("edge", url), no_restart, cloudfront=True)


def test_the_domain_check_passes_when_the_edge_keeps_the_target(origin_url):
    with Edge(origin_url, lambda target: target) as url:
        assert sockets.hostname_url(through(url)) == f"ws{url[4:]}/ws/deep/path?a=1&b=caf%C3%A9&a=2&empty="
        result = battery.one(sockets.DOMAIN, sockets.check_domain, through(url))
    assert result.ok, result.detail
    assert result.detail == (f"subprotocol {sockets.SUBPROTOCOL}, greeting and UTF-8 echo byte-exact; the app saw "
                             f"{sockets.DEEP_PATH}?{sockets.DEEP_QUERY} (as sent)")


def test_the_domain_check_fails_on_a_byte_lost_from_the_path(origin_url):
    with Edge(origin_url, lambda target: target.replace("/path?", "/pat?")) as url:
        result = battery.one(sockets.DOMAIN, sockets.check_domain, through(url))
    assert result.failed, result.detail
    assert result.detail == (f"the app saw /ws/deep/pat?{sockets.DEEP_QUERY}: path b'/ws/deep/pat', sent "
                             "b'/ws/deep/path': from byte 12, b'' where b'h' was sent")


def viewer_request_target(decoded: bool) -> str:
    """The target the app gets for the check's URL: CloudFront's ``request.querystring`` (values as
    sent, or decoded: which one is unknown) through the real viewer-request function under Node, then
    caller_connect's ``routing.encoded_request_target`` of its x-tunnel-target."""
    from tests.unit import test_cloudfront_function as function

    querystring: dict[str, dict] = {}
    for field in sockets.DEEP_QUERY.split("&"):
        name, _, value = field.partition("=")
        value = unquote(value) if decoded else value
        if name in querystring:
            first = querystring[name]
            first.setdefault("multiValue", [{"value": first["value"]}]).append({"value": value})
        else:
            querystring[name] = {"value": value}
    [(request, origin)] = function.routed(function.event(function.HANDSHAKE, method="GET", uri=sockets.DEEP_PATH,
                                                         querystring=querystring))
    assert origin == "caller-websocket"
    path, _, query = request["headers"][caller_ws.TARGET_HEADER]["value"].partition("?")
    return routing.encoded_request_target(path, query)


@pytest.mark.parametrize("decoded", [False, True], ids=["querystring as sent", "querystring decoded"])
def test_the_domain_check_passes_what_the_viewer_request_function_makes_of_the_query(origin_url, decoded):
    target = viewer_request_target(decoded)
    assert target == "/ws/deep/path?a=1&a=2&b=caf%C3%A9&empty"  # regrouped, `empty=` as `empty`, either way
    with Edge(origin_url, lambda _: target) as url:
        result = battery.one(sockets.DOMAIN, sockets.check_domain, through(url))
    assert result.ok, result.detail
    assert result.detail.endswith(f"the app saw {target} (keys in another order: b'a&a&b&empty', sent "
                                  "b'a&b&a&empty'; without '=': [b'empty'])"), result.detail


def test_the_domain_verdict_holds_the_values_and_sets_aside_order_and_encoding():
    sent = f"{sockets.DEEP_PATH}?{sockets.DEEP_QUERY}".encode()
    assert sockets.target_verdict(sent) == ([], [])
    decoded = b"/ws/deep/path?a=1&b=caf\xc3\xa9&a=2&empty="  # request.querystring decoded, sent on raw
    assert sockets.target_verdict(decoded) == ([], ["encoded otherwise, same decoded bytes"])
    broken, _ = sockets.target_verdict(b"/ws/deep/path?a=2&b=caf%C3&a=1&empty=")
    assert broken == ["key b'a' value 1: b'2', sent b'1': from byte 0, b'2' where b'1' was sent",
                      "key b'a' value 2: b'1', sent b'2': from byte 0, b'1' where b'2' was sent",
                      "key b'b' value 1: b'caf\\xc3', sent b'caf\\xc3\\xa9': from byte 4, b'' where b'\\xa9' was sent"]
    assert sockets.target_verdict(b"/ws/deep/path?a=1&b=caf%C3%A9&empty=")[0] == [
        "key b'a': values [b'1'], sent [b'1', b'2']"]
    assert sockets.target_verdict(sent + b"&tunnel=abc")[0] == ["keys the caller never sent: [b'tunnel']"]
    assert sockets.target_verdict(b"/ws/deep/path")[0] == [  # the query lost altogether
        "key b'a': values [], sent [b'1', b'2']", "key b'b': values [], sent [b'caf\\xc3\\xa9']",
        "key b'empty': values [], sent [b'']"]


def test_the_origin_answers_the_target_question_and_echoes_the_rest(origin_url):
    async def ask() -> tuple[str, str]:
        async with ClientSession() as session, \
                session.ws_connect(f"ws{origin_url[4:]}/ws/x%2Fy?q=%E2%98%95&q") as ws:
            assert (await ws.receive_str(timeout=10)) == sockets.GREETING
            await ws.send_str(sockets.TARGET_ASK)
            answer = await ws.receive_str(timeout=10)
            await ws.send_str(sockets.TARGET_ASK + " ")
            return answer, await ws.receive_str(timeout=10)

    answer, echo = asyncio.run(ask())
    assert sockets.seen_target(answer) == b"/ws/x%2Fy?q=%E2%98%95&q" and echo == sockets.TARGET_ASK + " "
    result = battery.one("x", lambda ctx: sockets.seen_target('{"not": "a target"}'), direct(origin_url))
    assert result.failed and "is not the target it saw" in result.detail


def test_cloudfront_comes_from_terraform_or_the_flag():
    assert smoke.cloudfront_of({"cloudfront": {"value": {"distribution_id": "E1", "domain_name": "d.cloudfront.net"}}})
    assert not smoke.cloudfront_of({"cloudfront": {"value": None}}) and not smoke.cloudfront_of({})
    assert smoke.parse_args(["--endpoint", "ws://h", "--cloudfront"]).cloudfront
    assert not smoke.parse_args(["--endpoint", "ws://h"]).cloudfront
