"""Several tunnels in one agent (a config file's): one socket each, tagged events, a failure that
stays in its own tunnel, saved URLs per name, the inspector's tunnel column and replay routing."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import aiohttp
import pytest

from ttf.agent import Fatal
from ttf.events import Reconnecting, RequestDone, TunnelEstablished, TunnelFailed
from ttf.render import MultiDashboard, render_dashboard

from conftest import FakeGateway, Harness, make_config, wait_until
from test_render import record


@pytest.fixture
def closed_port():
    """A port nothing listens on (bound, not listening: connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def established(h: Harness, name: str) -> list[TunnelEstablished]:
    return [e for e in h.of(TunnelEstablished) if e.tunnel == name]


def conn_of(gateway: FakeGateway, event: TunnelEstablished):
    return gateway.conns[int(event.connection_id.removeprefix("conn-"))]


async def test_two_tunnels_each_with_its_socket_local_service_and_tag(gateway, local_app, closed_port, running):
    _, port = local_app
    gateway.next_ids = ["first", "second"]
    web = make_config(gateway, port, name="web", inspect=("127.0.0.1", 0))
    api = make_config(gateway, closed_port, name="api", inspect=("127.0.0.1", 0), no_rewrite=True)
    h = running([web, api])
    await wait_until(lambda: established(h, "web") and established(h, "api"), what="both tunnels")
    assert len(gateway.conns) == 2  # one WebSocket per tunnel
    web_conn, api_conn = conn_of(gateway, established(h, "web")[0]), conn_of(gateway, established(h, "api")[0])
    assert {established(h, "web")[0].tunnel_id, established(h, "api")[0].tunnel_id} == {"first", "second"}
    assert "X-Tunnel-Rewrite" not in web_conn.headers and api_conn.headers["X-Tunnel-Rewrite"] == "off"
    # every event says whose it is, but the process's own notice (the inspector's address)
    assert [e.message for e in h.events if e.tunnel is None] == [f"request inspector: {h.agent.inspector.url}"]

    await web_conn.request_frame("w1", "POST", "/echo?via=web", body="aGk=")
    await api_conn.request_frame("a1", "GET", "/echo?via=api")
    web_reply, api_reply = await web_conn.next_reply(), await api_conn.next_reply()
    assert (web_reply["type"], web_reply["status_code"]) == ("http_response", 200)
    assert (api_reply["type"], api_reply["code"]) == ("error", "local_service_unavailable")  # the edge: 503
    await wait_until(lambda: len(h.of(RequestDone)) == 2, what="two request events")
    assert {(e.tunnel, e.status) for e in h.of(RequestDone)} == {("web", 200), ("api", 503)}

    # the one inspector: entries say their tunnel; the list filters by it; a replay goes back
    # through the tunnel it came from (web's service answers, api's is down)
    url = h.agent.inspector.url
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{url}/api/status") as resp:
            status = await resp.json()
        assert [(t["name"], t["state"], t["local_target"]) for t in status["tunnels"]] == [
            ("web", "online", f"127.0.0.1:{port}"), ("api", "online", f"127.0.0.1:{closed_port}")]
        assert {t["tunnel_id"] for t in status["tunnels"]} == {"first", "second"}
        assert status["tunnel"]["tunnel_id"] == status["tunnels"][0]["tunnel_id"]  # the header's: the first
        async with client.get(f"{url}/api/requests") as resp:
            listing = await resp.json()
        by_tunnel = {e["tunnel"]: e for e in listing["requests"]}
        assert set(by_tunnel) == {"web", "api"} and by_tunnel["api"]["status"] == 503
        async with client.get(f"{url}/api/requests?tunnel=api") as resp:
            assert [e["tunnel"] for e in (await resp.json())["requests"]] == ["api"]
        async with client.post(f"{url}/api/requests/{by_tunnel['web']['id']}/replay") as resp:
            again = await resp.json()
        assert (again["tunnel"], again["status"], again["replay_of"]) == ("web", 200, by_tunnel["web"]["id"])
        async with client.post(f"{url}/api/requests/{by_tunnel['api']['id']}/replay") as resp:
            again = await resp.json()
        assert (again["tunnel"], again["status"], again["error"]) == ("api", 503, "local_service_unavailable")
        # copy as curl: the entry's own tunnel's local service and public URL
        async with client.get(f"{url}/api/requests/{by_tunnel['api']['id']}/curl?target=local") as resp:
            assert (await resp.json())["url"] == f"http://127.0.0.1:{closed_port}/echo?via=api"
        async with client.get(f"{url}/api/requests/{by_tunnel['api']['id']}/curl?target=public") as resp:
            public = established(h, "api")[0].public_url
            assert (await resp.json())["url"] == f"{public}/echo?via=api"
        # a HAR keeps the tunnel: exported and imported again, its replay goes back to api; an entry
        # from a tunnel this ttf does not run (or none) is refused, not sent to a guess
        async with client.get(f"{url}/api/har?ids={by_tunnel['api']['id']}") as resp:
            exported = await resp.json()
        assert exported["log"]["entries"][0]["request"]["url"] == f"{public}/echo?via=api"
        for tunnel, status, message in [("api", 200, None), ("elsewhere", 409, "came through tunnel 'elsewhere'"),
                                        (None, 409, "names no tunnel")]:
            exported["log"]["entries"][0]["_ttf"]["tunnel"] = tunnel
            async with client.post(f"{url}/api/har", json=exported) as resp:
                imported = (await resp.json())["ids"][0]
            async with client.post(f"{url}/api/requests/{imported}/replay") as resp:
                answer = await resp.json()
                assert resp.status == status, answer
            if message is None:
                assert (answer["tunnel"], answer["status"]) == ("api", 503)
            else:
                assert message in answer["error"] and "its tunnels: web, api" in answer["error"]


async def test_a_tunnel_whose_token_is_refused_fails_alone_and_shows_it(gateway, local_app, running,
                                                                        aiohttp_server):
    _, port = local_app
    refusing = FakeGateway()
    refusing.refuse_status = 401
    server = await aiohttp_server(refusing.app, host="127.0.0.1")
    refusing.url = str(server.make_url("")).rstrip("/")
    good = make_config(gateway, port, name="good", inspect=("127.0.0.1", 0))
    bad = make_config(refusing, port, name="bad", token="expired", inspect=("127.0.0.1", 0))
    h = running([good, bad])
    await wait_until(lambda: h.of(TunnelFailed) and established(h, "good"), what="one failed, one up")
    assert [(e.tunnel, e.reason) for e in h.of(TunnelFailed)] == [
        ("bad", "the endpoint rejected the token (HTTP 401): endpoint refused the WebSocket (HTTP 401)")]
    assert not h.task.done()  # the other tunnel goes on serving
    status = h.agent.inspector.status()["tunnels"]
    assert [(t["name"], t["state"]) for t in status] == [("good", "online"), ("bad", "failed")]
    assert "rejected the token" in status[1]["reason"]
    conn = conn_of(gateway, established(h, "good")[0])
    await conn.request_frame("r1", "GET", "/echo")
    assert (await conn.next_reply())["status_code"] == 200

    state = MultiDashboard.of([("good", gateway.ws_url, f"127.0.0.1:{port}"),
                               ("bad", refusing.ws_url, f"127.0.0.1:{port}")], 0.0, "ttf.toml")
    for event in h.events:
        state.apply(event, 1.0)
    text = record(render_dashboard(state, 2.0), width=160).export_text()
    good_line = next(line for line in text.splitlines() if " good " in line)
    bad_line = next(line for line in text.splitlines() if " bad " in line)
    assert "online" in good_line and "https://api.example.test/tun123" in good_line
    assert "failed" in bad_line
    assert "rejected the token" in text[text.index(" bad "):]  # its error, under its own row
    assert "1 of 2 online (ttf.toml)" in text
    await h.stop()  # a failed tunnel does not make the stop fail


async def test_when_every_tunnel_fails_the_process_stops_with_fatal(gateway, local_app):
    _, port = local_app
    gateway.refuse_status = 401
    h = Harness([make_config(gateway, port, name="a"), make_config(gateway, port, name="b")]).start()
    with pytest.raises(Fatal, match=r"^every tunnel failed: (a|b): the endpoint rejected .*; (a|b): the endpoint"):
        await asyncio.wait_for(h.task, 10)
    assert sorted(e.tunnel for e in h.of(TunnelFailed)) == ["a", "b"]


async def test_a_tunnel_that_cannot_connect_keeps_retrying_in_its_own_row(gateway, local_app, closed_port,
                                                                          running):
    _, port = local_app
    up = make_config(gateway, port, name="up")
    down = dataclasses.replace(make_config(gateway, port, name="down"), endpoint=f"ws://127.0.0.1:{closed_port}/ws")
    h = running([up, down])
    await wait_until(lambda: established(h, "up") and len(h.of(Reconnecting)) >= 2, what="retries of down")
    assert {e.tunnel for e in h.of(Reconnecting)} == {"down"}
    assert "cannot reach" in h.of(Reconnecting)[-1].reason
    state = MultiDashboard.of([("up", up.endpoint, up.local_target), ("down", down.endpoint, down.local_target)], 0.0)
    for event in h.events:
        state.apply(event, 1.0)
    assert (state.rows["up"].status, state.rows["down"].status.startswith("reconnecting in")) == ("online", True)
    assert "cannot reach" in (state.rows["down"].notice or "")


async def test_saved_urls_are_per_name_even_on_the_same_endpoint_and_port(gateway, local_app, running, tmp_path):
    _, port = local_app
    configs = [make_config(gateway, port, name=name, state_dir=tmp_path / "state") for name in ("blue", "green")]
    gateway.next_ids = ["id-one", "id-two"]
    first = running(configs)
    await wait_until(lambda: established(first, "blue") and established(first, "green"), what="both tunnels")
    ids = {name: established(first, name)[0].tunnel_id for name in ("blue", "green")}
    assert sorted(ids.values()) == ["id-one", "id-two"]
    await first.stop()
    assert len(list((tmp_path / "state").glob("tunnel-*.json"))) == 2

    gateway.next_ids = ["wrong-1", "wrong-2"]  # what a tunnel that reclaims nothing would get
    second = running(list(reversed(configs)))  # order does not matter: names do
    await wait_until(lambda: established(second, "blue") and established(second, "green"), what="both again")
    assert {name: established(second, name)[0].tunnel_id for name in ("blue", "green")} == ids
    for name in ("blue", "green"):
        conn = conn_of(gateway, established(second, name)[0])
        assert conn.headers["X-Tunnel-Id"] == ids[name]


async def test_reconnect_and_renewal_are_each_tunnels_own(gateway, local_app, running):
    """One tunnel's socket dies: it alone reconnects (reclaiming its id); the other's socket is
    untouched. Each renews on its own clock."""
    _, port = local_app
    gateway.next_ids = ["aaa", "bbb"]
    steady = make_config(gateway, port, name="steady")
    renewing = make_config(gateway, port, name="renewing", renew_after=0.5)
    h = running([steady, renewing])
    await wait_until(lambda: established(h, "steady") and established(h, "renewing"), what="both tunnels")
    steady_conn = conn_of(gateway, established(h, "steady")[0])
    await wait_until(lambda: len(established(h, "renewing")) >= 3, what="two renewals of one tunnel")
    assert all(e.renewed for e in established(h, "renewing")[1:])
    assert len(established(h, "steady")) == 1 and not steady_conn.closed.is_set()

    flaky = conn_of(gateway, established(h, "renewing")[-1])
    renewing_id = established(h, "renewing")[0].tunnel_id
    flaky.kill()
    await wait_until(lambda: [e for e in h.of(Reconnecting) if e.tunnel == "renewing"], what="renewing reconnects")
    assert not [e for e in h.of(Reconnecting) if e.tunnel == "steady"] and not steady_conn.closed.is_set()
    await wait_until(lambda: any(not e.renewed for e in established(h, "renewing")[1:]), what="back up")
    assert {e.tunnel_id for e in established(h, "renewing")} == {renewing_id}  # its own id, reclaimed
    await steady_conn.request_frame("s1", "GET", "/echo")
    assert (await steady_conn.next_reply())["status_code"] == 200
