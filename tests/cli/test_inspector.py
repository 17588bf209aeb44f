"""The request inspector: the history on its own, then the HTTP API against an agent in-process."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket

import aiohttp
import pytest

from ttf.config import ConfigError, parse_config
from ttf.events import Notice, RequestDone, TunnelEstablished
from ttf.forward import Exchange
from ttf.inspector import History, capture

from conftest import make_config, pattern, wait_until

MB = 1024 * 1024


def exchange(uri: str = "/x", request_body: bytes = b"", response_body: bytes = b"", **over) -> Exchange:
    values = dict(started_at=1.0, method="GET", uri=uri, request_headers={"A": ["1"]}, request_body=request_body,
                  status=200, response_headers={"B": ["2"]}, response_body=response_body, duration_ms=3)
    values.update(over)
    return Exchange(**values)


# ---- History ---------------------------------------------------------------------------

def test_capture_keeps_small_bodies_as_is_and_cuts_big_ones():
    small = b"a" * 10
    kept = capture(small, cap=10)
    assert kept.data is small and not kept.truncated  # no copy
    cut = capture(b"0123456789", cap=4)
    assert (cut.data, cut.size, cut.truncated) == (b"0123", 10, True)


def test_history_keeps_the_latest_n_newest_first_with_increasing_ids():
    history = History(limit=3)
    for i in range(5):
        history.record(exchange(f"/{i}"))
    assert [e.uri for e in history.newest_first()] == ["/4", "/3", "/2"]
    assert [e.id for e in history.newest_first()] == [5, 4, 3]
    assert history.get(1) is None and history.get(5).uri == "/4"


def test_history_stays_within_its_byte_budget():
    history = History(limit=100, budget=10_000, cap=1000)
    for i in range(50):
        history.record(exchange(f"/{i}", request_body=b"r" * 5000, response_body=b"s" * 5000))
    assert history.bytes <= 10_000 and 1 <= len(history) < 50
    assert history.bytes == sum(e.cost for e in history.newest_first())
    assert all(e.request.truncated and len(e.request.data) == 1000 for e in history.newest_first())
    lone = History(limit=100, budget=10)  # one entry bigger than the budget is still kept
    lone.record(exchange(request_body=b"x" * 100))
    assert len(lone) == 1


# ---- configuration ----------------------------------------------------------------------

def test_inspect_options(tmp_path):
    def parse(*argv: str):
        return parse_config(["-e", "ws://h", *argv], env={}, cwd=tmp_path)

    assert (parse().inspect, parse().inspect_history) == (("127.0.0.1", 4045), 100)
    assert parse("--inspect", "off").inspect is None
    assert parse("--inspect", "127.0.0.1:0").inspect == ("127.0.0.1", 0)
    assert parse("--inspect", "[::1]:4046").inspect == ("::1", 4046)
    assert parse("--inspect", "5000").inspect == ("127.0.0.1", 5000)
    assert parse("--inspect-history", "7").inspect_history == 7
    for bad, message in ((("--inspect", "host:http"), "--inspect: 'http' is not a whole number"),
                         (("--inspect", "h:70000"), "out of range"),
                         (("--inspect", "a b:1"), "is not HOST:PORT or off"),
                         (("--inspect-history", "0"), "--inspect-history: 0 is out of range")):
        with pytest.raises(ConfigError, match=message):
            parse(*bad)


# ---- the HTTP API against a running agent --------------------------------------------------

@pytest.fixture
async def inspected(gateway, local_app, running):
    """(harness, inspector base URL, aiohttp client, local app) with the inspector on a free port."""
    app, port = local_app
    h = running(make_config(gateway, port, inspect=("127.0.0.1", 0)))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    url = h.of(TunnelEstablished)[0].inspector_url
    assert url and url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    async with aiohttp.ClientSession() as client:
        yield h, url, client, app


async def roundtrip(gateway, request_id: str, method: str, uri: str, **extra) -> dict:
    conn = gateway.conns[-1]
    await conn.request_frame(request_id, method, uri, **extra)
    return await conn.next_reply()


async def get_json(client: aiohttp.ClientSession, url: str, status: int = 200) -> dict:
    async with client.get(url) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


async def test_list_detail_and_replay_are_byte_exact(gateway, inspected):
    h, url, client, app = inspected
    body = bytes(range(256)) * 40  # binary, not UTF-8
    headers = {"Content-Type": ["application/octet-stream"], "X-Repeat": ["a", "b"], "Cookie": ["s=1; t=2"],
               "Host": ["tun123.t.example.test"]}
    reply = await roundtrip(gateway, "r1", "POST", "/echo/p%2Fq?a=1&b=%20", headers=headers,
                            body=base64.b64encode(body).decode())
    await roundtrip(gateway, "r2", "GET", "/redirect")
    await wait_until(lambda: len(h.of(RequestDone)) == 2, what="two requests done")

    listing = (await get_json(client, f"{url}/api/requests"))["requests"]
    assert [(e["id"], e["method"], e["uri"], e["status"]) for e in listing] == [
        (2, "GET", "/redirect", 302), (1, "POST", "/echo/p%2Fq?a=1&b=%20", 200)]
    assert all("request_body" not in e and "response_body" not in e for e in listing)
    assert listing[1]["request_size"] == len(body) and listing[1]["duration_ms"] >= 0
    assert listing[1]["replay_of"] is None and listing[1]["error"] is None

    detail = await get_json(client, f"{url}/api/requests/1")
    assert base64.b64decode(detail["request_body"]) == body
    assert base64.b64decode(detail["response_body"]) == base64.b64decode(reply["body"])
    assert detail["request_headers"] == headers
    assert detail["response_headers"]["X-Multi"] == ["one", "two"]
    assert not detail["request_truncated"] and not detail["response_truncated"]

    async with client.post(f"{url}/api/requests/1/replay") as resp:
        assert resp.status == 200
        replayed = await resp.json()
    assert (replayed["id"], replayed["replay_of"], replayed["status"]) == (3, 1, 200)
    # the echo app describes the request it got: the same bytes mean the very same request again
    assert base64.b64decode(replayed["response_body"]) == base64.b64decode(reply["body"])
    echoed = json.loads(base64.b64decode(replayed["response_body"]))
    assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest() and echoed["raw_path"] == "/echo/p%2Fq?a=1&b=%20"
    assert (await get_json(client, f"{url}/api/requests"))["requests"][0]["id"] == 3
    assert len(h.of(RequestDone)) == 2  # a replay is not a tunnelled request


async def test_big_bodies_are_truncated_in_the_inspector_only_and_cannot_be_replayed(gateway, inspected):
    h, url, client, _ = inspected
    big = pattern(MB + 12345)
    gateway.bodies["k1"] = big
    reply = await roundtrip(gateway, "r1", "PUT", "/echo", body_url=gateway.body_url("k1"), body_size=len(big),
                            body_sha256=hashlib.sha256(big).hexdigest())
    echoed = json.loads(base64.b64decode(reply["body"]))
    assert (echoed["body_len"], echoed["body_sha256"]) == (len(big), hashlib.sha256(big).hexdigest())  # all of it

    answer = await roundtrip(gateway, "r2", "GET", f"/big?n={2 * MB}", response_upload_url=gateway.upload_url("u"))
    assert answer["body_uploaded"] and gateway.uploads["u"] == pattern(2 * MB)

    detail = await get_json(client, f"{url}/api/requests/1")
    assert (detail["request_truncated"], detail["request_size"]) == (True, len(big))
    assert base64.b64decode(detail["request_body"]) == big[:MB]
    detail = await get_json(client, f"{url}/api/requests/2")
    assert (detail["response_truncated"], detail["response_size"]) == (True, 2 * MB)
    assert base64.b64decode(detail["response_body"]) == pattern(2 * MB)[:MB]

    async with client.post(f"{url}/api/requests/1/replay") as resp:
        assert resp.status == 409
        assert "truncated" in (await resp.json())["error"]
    async with client.post(f"{url}/api/requests/2/replay") as resp:  # only the response was cut: fine
        assert resp.status == 200 and (await resp.json())["replay_of"] == 2


async def test_unknown_ids_are_404(inspected):
    _, url, client, _ = inspected
    for path in ("/api/requests/999", "/api/requests/abc", "/api/requests/99999999999999999999999"):
        assert "no such request" in (await get_json(client, url + path, status=404))["error"]
    async with client.post(f"{url}/api/requests/999/replay") as resp:
        assert resp.status == 404


async def test_replay_of_a_request_the_local_service_refuses(gateway, inspected):
    h, url, client, _ = inspected
    await roundtrip(gateway, "r1", "GET", "/echo")
    await wait_until(lambda: h.of(RequestDone))
    with socket.socket() as s:  # bound, not listening: the "local service" is down
        s.bind(("127.0.0.1", 0))
        h.agent.tunnels[0].forwarder.port = s.getsockname()[1]
        async with client.post(f"{url}/api/requests/1/replay") as resp:
            entry = await resp.json()
    assert resp.status == 200
    assert (entry["status"], entry["error"], entry["replay_of"]) == (503, "local_service_unavailable", 1)


async def test_page_is_self_contained(inspected):
    _, url, client, _ = inspected
    async with client.get(url + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        page = await resp.text()
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "http://" not in page and "https://" not in page  # no CDN: every asset is the inspector's own
    assert "<script>" not in page and "<style" not in page and " on" not in page.replace(" one", "")  # no inline code
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts == ["/static/views.js", "/static/app.js"]
    for asset in scripts + ["/static/app.css", "/static/icon.svg"]:
        async with client.get(url + asset) as resp:
            assert resp.status == 200, asset
            text = await resp.text()
        assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" not in text
        assert "document.write" not in text and "eval(" not in text and "new Function" not in text
    async with client.get(url + "/static/../server.py") as resp:
        assert resp.status == 404


async def test_foreign_host_and_cross_origin_post_are_refused(gateway, inspected):
    _, url, client, _ = inspected
    await roundtrip(gateway, "r1", "GET", "/echo")
    async with client.get(url + "/api/requests", headers={"Host": "evil.example:80"}) as resp:
        assert resp.status == 403  # DNS rebinding
    async with client.post(url + "/api/requests/1/replay", headers={"Origin": "http://evil.example"}) as resp:
        assert resp.status == 403
    async with client.post(url + "/api/requests/1/replay", headers={"Origin": url}) as resp:
        assert resp.status == 200  # the page itself
    host_port = url.removeprefix("http://")
    async with client.get(url + "/api/requests", headers={"Host": "localhost:" + host_port.split(":")[1]}) as resp:
        assert resp.status == 200


async def test_port_taken_falls_back_to_a_free_port_and_says_which(gateway, local_app, running):
    """Issue 28: another ttf has 4045; this one's inspector takes a free port and prints it, rather
    than running without one."""
    _, port = local_app
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        h = running(make_config(gateway, port, inspect=("127.0.0.1", busy)))
        await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
        reply = await roundtrip(gateway, "r1", "GET", "/echo")
    assert reply["status_code"] == 200
    url = h.of(TunnelEstablished)[0].inspector_url
    assert url is not None and url.startswith("http://127.0.0.1:") and not url.endswith(f":{busy}")
    notices = [n.message for n in h.of(Notice)]
    assert f"port {busy} is taken: request inspector on {url} instead" in notices, notices
    async with aiohttp.ClientSession() as client, client.get(url + "/api/status") as resp:
        assert resp.status == 200


async def test_an_inspector_that_cannot_listen_at_all_is_a_notice_and_the_tunnel_runs(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port, inspect=("192.0.2.1", 4045)))  # TEST-NET-1: not this machine's
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    assert (await roundtrip(gateway, "r1", "GET", "/echo"))["status_code"] == 200
    assert h.of(TunnelEstablished)[0].inspector_url is None
    notices = [n.message for n in h.of(Notice)]
    assert any("request inspector not started: cannot listen on 192.0.2.1:4045" in m for m in notices), notices


def test_a_guessed_inspector_flag_is_told_the_real_one(capsys):
    from ttf.main import main

    assert main(["--inspector-port", "4046", "-p", "3000"]) == 2
    err = capsys.readouterr().err
    assert "--inspector-port is not an option" in err and "--inspect HOST:PORT" in err


async def test_inspect_off_records_nothing(gateway, local_app, running):
    _, port = local_app
    h = running(make_config(gateway, port, inspect=None))
    await wait_until(lambda: h.of(TunnelEstablished))
    await roundtrip(gateway, "r1", "GET", "/echo")
    assert h.of(TunnelEstablished)[0].inspector_url is None
    assert h.agent.history is None and h.agent.tunnels[0].forwarder.observer is None
