"""The inspector's JSON API against an agent in-process: edit and replay, diff, filters, settings,
live events, HAR, copy as curl, denied requests, and the guard (token off loopback, framing)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess

import aiohttp
import pytest

from ttf.events import TunnelEstablished
from ttf.inspector.har import HAR_MAX

from conftest import make_config, wait_until
from test_inspector import get_json, roundtrip


@pytest.fixture
async def inspected(gateway, local_app, running):
    app, port = local_app
    h = running(make_config(gateway, port, inspect=("127.0.0.1", 0)))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    url = h.of(TunnelEstablished)[0].inspector_url
    async with aiohttp.ClientSession() as client:
        yield h, url, client


async def post(client, url: str, body=None, status: int = 200, method: str = "POST") -> dict:
    async with client.request(method, url, data=None if body is None else json.dumps(body)) as resp:
        data = await resp.json()
        assert resp.status == status, data
        return data


async def test_edited_replay_is_a_new_linked_entry_and_the_diff_shows_what_changed(gateway, inspected):
    h, url, client = inspected
    await roundtrip(gateway, "r1", "POST", "/echo/a?x=1", headers={"X-Keep": ["1"], "X-Drop": ["2"]},
                    body=base64.b64encode(b"original").decode())
    edits = {"method": "PUT", "uri": "/echo/b?y=2", "headers": [["X-Keep", "1"], ["X-New", "n1"], ["X-New", "n2"]],
             "body_base64": base64.b64encode(b"\x00edited\xff").decode()}
    result = await post(client, f"{url}/api/requests/1/replay", {"request": edits})
    assert (result["id"], result["replay_of"], result["source"], result["method"], result["uri"]) == (
        2, 1, "edited", "PUT", "/echo/b?y=2")
    assert result["request_headers"] == {"X-Keep": ["1"], "X-New": ["n1", "n2"]}
    echoed = json.loads(base64.b64decode(result["response_body"]))
    assert echoed["method"] == "PUT" and echoed["raw_path"] == "/echo/b?y=2" and echoed["body_len"] == 8
    assert [v for k, v in echoed["headers"] if k == "X-New"] == ["n1", "n2"]
    assert not any(k == "X-Drop" for k, _ in echoed["headers"])

    diff = await get_json(client, f"{url}/api/requests/2/diff")  # against its original by default
    assert (diff["a"], diff["b"], diff["status"]["same"]) == (1, 2, True)
    assert not diff["body"]["same"] and any('"method": "PUT"' in line for line in diff["body"]["lines"] if line[0] == "+")
    assert any(r["name"] == "Content-Length" and r["change"] == "changed" for r in diff["headers"]) or \
        all(r["change"] == "same" for r in diff["headers"] if r["name"] != "Date")
    original = await get_json(client, f"{url}/api/requests/1")
    assert original["replays"] == [2] and original["idempotent"] is False

    # replay N times, bounded
    many = await post(client, f"{url}/api/requests/1/replay", {"count": 5})
    assert len(many["replays"]) == 5 and many["statuses"] == {"200": 5} and set(many["durations_ms"]) == {"min", "median", "max"}
    assert all(r["source"] == "replay" and r["replay_of"] == 1 for r in many["replays"])
    for bad in ({"count": 0}, {"count": 101}, {"count": "3"}, {"count": True}, {"other": 1}):
        await post(client, f"{url}/api/requests/1/replay", bad, status=400)


@pytest.mark.parametrize("edits, named", [
    ({"headers": [["Bad Name", "x"]]}, "Bad Name"),
    ({"headers": [["X-Split", "a\r\nInjected: 1"]]}, "X-Split"),
    ({"headers": [["X-Nul", "a\x00b"]]}, "X-Nul"),
    ({"headers": [["", "x"]]}, ""),
])
async def test_invalid_edited_headers_are_400_naming_the_header(gateway, inspected, edits, named):
    h, url, client = inspected
    await roundtrip(gateway, "r1", "GET", "/echo")
    before = (await get_json(client, f"{url}/api/requests"))["count"]
    error = await post(client, f"{url}/api/requests/1/replay", {"request": edits}, status=400)
    assert error["field"] == "headers" and error["header"] == named and repr(named) in error["error"]
    assert (await get_json(client, f"{url}/api/requests"))["count"] == before  # nothing sent or recorded


@pytest.mark.parametrize("edits, field", [
    ({"method": "GE T"}, "method"), ({"uri": "no-slash"}, "uri"), ({"uri": "/a b"}, "uri"),
    ({"body": "x", "body_base64": "eA=="}, "body"), ({"body_base64": "***"}, "body_base64"), ({"colour": 1}, "colour"),
])
async def test_other_invalid_edits_name_their_field(gateway, inspected, edits, field):
    h, url, client = inspected
    await roundtrip(gateway, "r1", "GET", "/echo")
    assert (await post(client, f"{url}/api/requests/1/replay", {"request": edits}, status=400))["field"] == field
    async with client.post(f"{url}/api/requests/1/replay", data="{not json") as resp:
        assert resp.status == 400 and "not JSON" in (await resp.json())["error"]


async def test_filters_settings_clear(gateway, inspected):
    h, url, client = inspected
    await roundtrip(gateway, "r1", "GET", "/echo/one", headers={"X-Find": ["needle-in-header"]})
    await roundtrip(gateway, "r2", "POST", "/echo/two", body=base64.b64encode(b"needle in body").decode())
    await roundtrip(gateway, "r3", "GET", "/redirect")

    async def ids(query: str) -> list[int]:
        return [e["id"] for e in (await get_json(client, f"{url}/api/requests?{query}"))["requests"]]

    assert await ids("method=post") == [2]
    assert await ids("status=3xx") == [3] and await ids("status=2xx,3xx") == [3, 2, 1]
    assert await ids("path=ECHO") == [2, 1] and await ids("text=NEEDLE") == [2, 1]
    assert await ids("text=needle-in-header") == [1] and await ids("text=needle%20in%20body") == [2]
    assert await ids("since=9999999999") == [] and await ids("until=1") == []
    assert await ids("limit=1") == [3]
    assert (await get_json(client, f"{url}/api/requests?limit=1"))["total"] == 3
    for bad in ("status=6xx", "since=yesterday", "limit=0", "source=elsewhere"):
        assert "error" in await get_json(client, f"{url}/api/requests?{bad}", status=400)

    assert (await post(client, f"{url}/api/settings", {"history_limit": 2}, method="PUT"))["history_limit"] == 2
    assert await ids("") == [3, 2] and (await get_json(client, f"{url}/api/status"))["history"]["limit"] == 2
    for bad in ({"history_limit": 0}, {"history_limit": 100_001}, {"history_limit": "5"}, []):
        await post(client, f"{url}/api/settings", bad, status=400, method="PUT")
    assert (await post(client, f"{url}/api/requests", method="DELETE"))["cleared"] == 2
    assert await ids("") == []


async def test_status_and_live_events(gateway, inspected):
    h, url, client = inspected
    status = await get_json(client, f"{url}/api/status")
    assert status["tunnel"]["state"] == "online" and status["tunnel"]["tunnel_id"] == "tun123"
    assert status["tunnel"]["public_url"] == "https://api.example.test/tun123"
    assert status["history"] == {"count": 0, "limit": 100, "limit_max": 100_000, "bytes": 0,
                                 "budget": 16 * 1024 * 1024, "body_cap": 1024 * 1024}
    async with client.get(f"{url}/api/events") as events:
        assert events.headers["Content-Type"] == "text/event-stream"

        async def next_event() -> tuple[str, dict]:
            kind = data = None
            while True:
                line = (await asyncio.wait_for(events.content.readline(), 5)).decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and kind:
                    return kind, data

        assert (await next_event())[0] == "hello"
        await roundtrip(gateway, "r1", "GET", "/echo/live")
        kind, data = await next_event()
        assert kind == "entry" and data["entry"]["uri"] == "/echo/live" and data["count"] == 1
        await gateway.conns[-1].send({"type": "request_denied", "method": "GET", "uri": "/secret", "status": 403,
                                      "reason": "policy_denied", "timestamp": 1})
        kind, data = await next_event()
        assert kind == "entry" and (data["entry"]["source"], data["entry"]["error"], data["entry"]["status"]) == (
            "denied", "policy_denied", 403)
        await post(client, f"{url}/api/requests", method="DELETE")
        assert (await next_event())[0] == "cleared"
        gateway.conns[-1].kill()  # the tunnel drops: the page's header hears it
        kind, data = await next_event()
        assert kind == "status" and data["tunnel"]["state"] in {"offline", "reconnecting"}


async def test_har_round_trip_and_refusals(gateway, inspected):
    h, url, client = inspected
    binary = bytes(range(256))
    await roundtrip(gateway, "r1", "PUT", "/echo/bin?q=%20", headers={"X-A": ["1", "2"]},
                    body=base64.b64encode(binary).decode())
    await roundtrip(gateway, "r2", "GET", "/redirect")
    async with client.get(f"{url}/api/har?ids=1,2") as resp:
        assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        har = await resp.json(content_type=None)
    first = har["log"]["entries"][0]
    assert first["request"]["url"] == "https://api.example.test/tun123/echo/bin?q=%20"
    assert first["request"]["postData"]["_encoding"] == "base64"
    assert first["request"]["headers"] == [{"name": "X-A", "value": "1"}, {"name": "X-A", "value": "2"}]

    async def import_har(raw: bytes, status: int) -> dict:
        async with client.post(f"{url}/api/har", data=raw) as resp:
            assert resp.status == status
            return await resp.json()

    before = (await get_json(client, f"{url}/api/requests"))["requests"]
    broken = [b"not json", b"[]", b'{"log": {}}', json.dumps({"log": {"entries": [{"request": {"method": "GET"}}]}}).encode(),
              json.dumps({"log": {"entries": [har["log"]["entries"][0], {"startedDateTime": "x"}]}}).encode()]
    for raw in broken:
        assert "nothing was imported" in (await import_har(raw, 400))["error"]
    too_big = await import_har(b" " * (HAR_MAX + 1), 413)
    assert "larger than" in too_big["error"] and "nothing was imported" in too_big["error"]
    assert (await get_json(client, f"{url}/api/requests"))["requests"] == before  # the history is untouched

    done = await import_har(json.dumps(har).encode(), 200)
    assert done == {"imported": 2, "ids": [3, 4]}
    again = await get_json(client, f"{url}/api/requests/3")
    assert (again["method"], again["uri"], again["source"]) == ("PUT", "/echo/bin?q=%20", "imported")
    assert base64.b64decode(again["request_body"]) == binary and again["request_headers"]["X-A"] == ["1", "2"]
    assert (await get_json(client, f"{url}/api/requests/4"))["status"] == 302
    replayed = await post(client, f"{url}/api/requests/3/replay")
    assert json.loads(base64.b64decode(replayed["response_body"]))["body_len"] == 256


async def test_copy_as_curl_runs_and_sends_the_same_bytes(gateway, inspected, tmp_path):
    if shutil.which("curl") is None:  # make test needs no root; make test-browser installs curl and runs this for real
        pytest.skip("curl is not installed here: tests/browser (make test-browser, which installs it) runs the copied command")
    h, url, client = inspected
    text = "it's a \"test\" with $HOME and `ticks`\nsecond line\n".encode()
    headers = {"Content-Type": ["text/plain"], "Host": ["pub.example"], "X-Rep": ["a", "b"]}
    await roundtrip(gateway, "r1", "POST", "/echo/t?a=1&b=%2F", headers=headers, body=base64.b64encode(text).decode())
    await roundtrip(gateway, "r2", "POST", "/echo/b", body=base64.b64encode(b"\x1b[31m\x00\xff").decode())
    sent = await get_json(client, f"{url}/api/requests/1")
    for entry_id in (1, 2):
        cmd = await get_json(client, f"{url}/api/requests/{entry_id}/curl")
        assert cmd["target"] == "local" and cmd["exact"]
        assert "\x1b" not in cmd["curl"] and "\x1b" not in cmd["httpie"]  # terminal controls go through a file
        if cmd["body_file"]:
            assert cmd["body_file"] == "body-2.bin" and "--data-binary @body-2.bin" in cmd["curl"]
            assert cmd["httpie"].endswith("< body-2.bin")
            async with client.get(url + cmd["body_url"]) as resp:
                assert resp.content_type == "application/octet-stream" and "sandbox" in resp.headers["Content-Security-Policy"]
                (tmp_path / cmd["body_file"]).write_bytes(await resp.read())
        proc = await asyncio.to_thread(subprocess.run, ["sh", "-c", cmd["curl"]], cwd=tmp_path, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        head, _, body = proc.stdout.partition(b"\r\n\r\n")
        echoed = json.loads(body)
        original = json.loads(base64.b64decode((await get_json(client, f"{url}/api/requests/{entry_id}"))["response_body"]))
        assert echoed == original  # method, raw path, every header in order, body length and sha256
    assert sent["request_headers"]["Host"] == ["pub.example"]
    public = await get_json(client, f"{url}/api/requests/1/curl?target=public")
    assert "https://api.example.test/tun123/echo/t?a=1&b=%2F" in public["curl"] and "pub.example" not in public["curl"]
    assert "error" in await get_json(client, f"{url}/api/requests/1/curl?target=mars", status=400)


async def test_body_download_is_never_rendered(gateway, inspected):
    h, url, client = inspected
    await roundtrip(gateway, "r1", "POST", "/echo", headers={"Content-Type": ["text/html"]},
                    body=base64.b64encode(b"<script>alert(1)</script>").decode())
    async with client.get(f"{url}/api/requests/1/body/request") as resp:
        assert resp.content_type == "application/octet-stream" and resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Disposition"] == 'attachment; filename="body-1.bin"'
        assert await resp.read() == b"<script>alert(1)</script>"
    async with client.get(f"{url}/api/requests/1/body/elsewhere") as resp:
        assert resp.status == 404


async def test_cross_site_writes_are_refused(gateway, inspected):
    h, url, client = inspected
    await roundtrip(gateway, "r1", "GET", "/echo")
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        for method, path in (("POST", "/api/requests/1/replay"), ("DELETE", "/api/requests"), ("PUT", "/api/settings"),
                             ("POST", "/api/har")):
            async with client.request(method, url + path, headers=headers, data="{}") as resp:
                assert resp.status == 403, (method, path, headers)
    assert (await get_json(client, f"{url}/api/requests"))["count"] == 1


async def test_off_loopback_needs_the_token(gateway, local_app, running, monkeypatch):
    # As if bound to a LAN address, without opening a port beyond loopback in a test.
    monkeypatch.setattr("ttf.inspector.security.is_loopback", lambda host: False)
    _, port = local_app
    h = running(make_config(gateway, port, inspect=("127.0.0.1", 0)))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    printed = h.of(TunnelEstablished)[0].inspector_url
    assert "/?token=" in printed
    local, token = printed.split("/?token=")
    assert len(token) >= 32
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:  # cookies for an IP, as browsers
        for path in ("/", "/api/requests", "/api/status", "/static/app.js"):
            async with client.get(local + path) as resp:
                assert resp.status == 401, path
                assert "token" in (await resp.json())["error"]
        async with client.get(local + "/?token=wrong") as resp:
            assert resp.status == 401
        async with client.get(local + "/api/requests", headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200
        async with client.get(f"{local}/?token={token}", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/"
            cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with client.get(local + "/api/requests") as resp:  # the cookie from now on
            assert resp.status == 200
            assert resp.headers["X-Frame-Options"] == "DENY"


# ---- issue 28: HAR URLs and compressed answers, time order after an import, the Host note -----

async def test_har_urls_are_the_callers_and_compressed_answers_are_stored_decoded(gateway, inspected):
    h, url, client = inspected
    # a caller of the path-based URL: the edge sets Host, X-Forwarded-Proto and X-Forwarded-Prefix
    await roundtrip(gateway, "r1", "GET", "/gzip?x=1", headers={
        "Host": ["api.example.test"], "X-Forwarded-Proto": ["https"], "X-Forwarded-Prefix": ["/tun123"]})
    await roundtrip(gateway, "r2", "GET", "/echo/sub", headers={
        "Host": ["tun123.t.example.test"], "X-Forwarded-Proto": ["https"]})
    async with client.get(f"{url}/api/har?ids=1,2") as resp:
        har = await resp.json(content_type=None)
    first, second = har["log"]["entries"]
    assert first["request"]["url"] == "https://api.example.test/tun123/gzip?x=1"
    assert second["request"]["url"] == "https://tun123.t.example.test/echo/sub"
    sent = base64.b64decode((await get_json(client, f"{url}/api/requests/1"))["response_body"])
    content = first["response"]["content"]
    assert content["text"] == "hello " * 100 and "encoding" not in content  # HTTP decoded text
    assert (content["size"], content["compression"]) == (600, 600 - len(sent))
    assert first["response"]["bodySize"] == len(sent)

    async with client.post(f"{url}/api/har", data=json.dumps(har).encode()) as resp:
        assert resp.status == 200
    back = await get_json(client, f"{url}/api/requests/3")
    assert base64.b64decode(back["response_body"]) == sent  # ttf's own import: the bytes as sent


async def test_imported_entries_fall_into_time_order(gateway, inspected):
    h, url, client = inspected
    await roundtrip(gateway, "r1", "GET", "/echo/old")
    async with client.get(f"{url}/api/har?ids=1") as resp:
        har = await resp.json(content_type=None)
    await roundtrip(gateway, "r2", "GET", "/echo/new")
    async with client.post(f"{url}/api/har", data=json.dumps(har).encode()) as resp:
        assert (await resp.json())["ids"] == [3]
    listed = (await get_json(client, f"{url}/api/requests"))["requests"]
    assert [e["id"] for e in listed][0] == 2 and {e["id"] for e in listed} == {1, 2, 3}  # the import (as old
    # as #1, to the millisecond HAR keeps) sits beside #1, not on top
    assert [e["time"] for e in listed] == sorted((e["time"] for e in listed), reverse=True)


async def test_detail_says_which_host_the_local_service_received(gateway, local_app, inspected):
    h, url, client = inspected
    _, port = local_app
    await roundtrip(gateway, "r1", "GET", "/echo/h", headers={"Host": ["tun123.t.example.test"]})
    detail = await get_json(client, f"{url}/api/requests/1")
    assert detail["request_headers"]["Host"] == ["tun123.t.example.test"]  # as the caller sent it
    assert detail["sent_host"] == f"127.0.0.1:{port}"
    echoed = json.loads(base64.b64decode(detail["response_body"]))
    assert dict(echoed["headers"])["Host"] == detail["sent_host"]  # what the app really got
