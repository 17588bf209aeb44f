"""The inspector's parts on their own: body views, history, curl quoting, HAR parsing, `ttf replay`."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import shlex
import time
import zlib

import pytest
from rich.console import Console

from ttf.events import TunnelEstablished
from ttf.forward import Exchange
from ttf.inspector import client, curl, har, views
from ttf.inspector.history import Entry, Filter, History, capture
from ttf.main import main
from ttf.render import Dashboard, render_dashboard

from conftest import make_config, wait_until
from test_inspector import exchange, roundtrip


def entry(uri: str = "/x", method: str = "POST", headers=None, body: bytes = b"", **over) -> Entry:
    values = dict(id=7, at=1.0, method=method, uri=uri, request_headers=headers or {}, request=capture(body),
                  status=200, response_headers={}, response=capture(b""), duration_ms=1)
    values.update(over)
    return Entry(**values)


# ---- bodies as they are -------------------------------------------------------------------

def test_compressed_bodies_are_decoded_for_display_only_and_bounded():
    payload = json.dumps({"k": list(range(50))}).encode()
    for coding, data in (("gzip", gzip.compress(payload)), ("deflate", zlib.compress(payload)),
                         ("deflate", zlib.compress(payload)[2:-4])):  # raw deflate, as some servers send
        info, decoded = views.decoded_for_display(data, {"Content-Encoding": [coding]}, False)
        assert decoded == payload and info["encoding"] == coding and info["size"] == len(payload)
        assert views.body_view(data, {"Content-Encoding": [coding], "Content-Type": ["application/json"]},
                               False)["layout"]["kind"] == "json"
    bomb = gzip.compress(b"\0" * (views.DECODED_MAX + 10))
    info, decoded = views.decoded_for_display(bomb, {"Content-Encoding": ["gzip"]}, False)
    assert decoded is None and "more than" in info["error"]
    info, _ = views.decoded_for_display(b"not gzip", {"Content-Encoding": ["gzip"]}, False)
    assert info["error"].startswith("not decoded")
    info, _ = views.decoded_for_display(gzip.compress(payload)[:10], {"Content-Encoding": ["gzip"]}, True)
    assert "truncated" in info["error"]
    assert views.decoded_for_display(payload, {}, False) == (None, None)


def test_brotli_is_decoded_only_when_a_module_is_importable(monkeypatch):
    monkeypatch.setattr(views, "BROTLI", None)
    info, decoded = views.decoded_for_display(b"\x1b\x03", {"Content-Encoding": ["br"]}, False)
    assert decoded is None and "no brotli module" in info["error"]

    class FakeBrotli:  # the interface of brotli / brotlicffi
        class Decompressor:
            def process(self, data: bytes, output_buffer_limit: int | None = None) -> bytes:
                return data[::-1]

    monkeypatch.setattr(views, "BROTLI", FakeBrotli)
    assert views.decoded_for_display(b"cba", {"Content-Encoding": ["br"]}, False)[1] == b"abc"


def test_layouts():
    def kind(data: bytes, content_type: str | None = None, truncated: bool = False) -> dict:
        return views.layout(data, {"Content-Type": [content_type]} if content_type else {}, truncated)

    assert kind(b"")["kind"] == "empty"
    assert kind(b'{"a": 1}', "application/json")["kind"] == "json"
    assert kind(b'{"a": 1}', "application/vnd.api+json")["kind"] == "json"
    assert kind(b'{"a": 1')["kind"] == "text"  # cut JSON stays readable as text
    assert kind(b"\x89PNG...", "image/png")["kind"] == "image"
    assert kind(b"\x89PNG...", "image/png", truncated=True)["kind"] == "binary"
    assert kind(b"\x00\x01\xff")["kind"] == "binary"
    assert kind(b"a=1&b=%C3%A9&c=", "application/x-www-form-urlencoded")["fields"] == [["a", "1"], ["b", "é"], ["c", ""]]
    multipart = (b"--B\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nhello\r\n--B\r\nContent-Disposition: form-data;"
                 b" name=\"f\"; filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\r\n--B--\r\n")
    parts = kind(multipart, "multipart/form-data; boundary=B")["parts"]
    assert [(p["name"], p["filename"], p["size"], p["text"]) for p in parts] == [("t", None, 5, "hello"), ("f", "x.bin", 2, None)]
    assert kind(b"garbage", "multipart/form-data; boundary=B")["kind"] == "text"


# ---- the history ---------------------------------------------------------------------------

def test_history_filters_listeners_limit_and_clear():
    history = History(limit=10)
    heard: list[tuple[str, dict]] = []
    stop = history.listen(lambda kind, data: heard.append((kind, data)))
    history.record(exchange("/a", request_body=b"hello NEEDLE", method="POST"))
    history.record(exchange("/b", status=404, request_headers={"X-Id": ["abc"]}))
    history.record(exchange("/c", status=503, error="timeout"))
    history.record_denied(5.0, "GET", "/d", {}, 403, "policy_denied")
    assert [e.id for e in history.select(Filter(methods=frozenset({"POST"})))] == [1]
    assert [e.id for e in history.select(Filter(statuses=frozenset({"4xx"})))] == [4, 2]
    assert [e.id for e in history.select(Filter(statuses=frozenset({"denied"})))] == [4]
    assert [e.id for e in history.select(Filter(statuses=frozenset({"error"})))] == [3]
    assert [e.id for e in history.select(Filter(text="needle"))] == [1]
    assert [e.id for e in history.select(Filter(text="x-id: abc"))] == [2]
    assert [e.id for e in history.select(Filter(since=2.0))] == [4]
    assert [kind for kind, _ in heard] == ["entry"] * 4 and heard[-1][1]["entry"]["source"] == "denied"
    assert history.set_limit(2) == [1, 2] and [e.id for e in history.newest_first()] == [4, 3]
    with pytest.raises(ValueError):
        history.set_limit(0)
    history.clear()
    assert len(history) == 0 and history.bytes == 0 and heard[-1][0] == "cleared"
    stop()
    history.record(exchange("/e"))
    assert heard[-1][0] == "cleared" and history.newest_first()[0].id == 5  # ids are never reused

    broken = History(limit=5)
    broken.listen(lambda kind, data: 1 / 0)  # a broken listener never costs a request its record
    assert broken.record(exchange("/f")).id == 1


# ---- copy as curl / HTTPie -----------------------------------------------------------------

def test_curl_and_httpie_quote_everything_and_switch_off_their_defaults():
    e = entry("/p?q='1'&r=[x]", headers={"Host": ["pub.example"], "X-Q": ["a'b \"c\" $x `y`"], "Connection": ["close"]},
              body="it's\nok".encode())
    command, body_file = curl.curl(e, curl.Target("http://127.0.0.1:3000", "local"))
    args = shlex.split(command)
    assert body_file is None and args[:3] == ["curl", "-sS", "-i"] and "--globoff" in args
    assert args[args.index("-X") + 1] == "POST" and "http://127.0.0.1:3000/p?q='1'&r=[x]" in args
    headers = [args[i + 1] for i, a in enumerate(args) if a == "-H"]
    assert headers == ["X-Q: a'b \"c\" $x `y`", "X-Forwarded-Host: pub.example", "User-Agent:", "Accept:", "Content-Type:"]
    assert args[-2:] == ["--data-binary", "it's\nok"]
    kept = curl.curl(e, curl.Target("http://127.0.0.1:3000", "local", keep_host=True))[0]
    assert "Host: pub.example" in shlex.split(kept)
    http = shlex.split(curl.httpie(e, curl.Target("https://t.example", "public"))[0])
    assert http[:3] == ["http", "--print=HhBb", "--ignore-stdin"] and http[http.index("--raw") + 1] == "it's\nok"
    assert "X-Q:a'b \"c\" $x `y`" in http and "User-Agent:" in http and "Content-Type:" in http
    assert not any(a.lower().startswith("host:") or a.startswith("X-Forwarded-Host") for a in http)

    dots = entry("/a/../b", method="GET")
    assert "--path-as-is" in shlex.split(curl.curl(dots, curl.Target("http://h", "local"))[0])
    head = shlex.split(curl.curl(entry("/", method="HEAD"), curl.Target("http://h", "local"))[0])
    assert "--head" in head and "-X" not in head
    binary = entry("/b", body=b"\x1b]0;pwned\x07\x00")
    command, body_file = curl.curl(binary, curl.Target("http://h", "local"))
    assert body_file == "body-7.bin" and "\x1b" not in command and shlex.split(command)[-1] == "@body-7.bin"
    truncated = curl.commands(entry(body=b"x", request=capture(b"x" * 10, cap=4)), curl.Target("http://h", "local"))
    assert not truncated["exact"] and "truncated" in truncated["notes"][0]


# ---- HAR -----------------------------------------------------------------------------------

def test_har_refusals_name_the_place():
    good = har.export([entry("/a", body=b"\xff\x00")], "https://t.example")
    assert har.parse(json.dumps(good).encode(), cap=100, room=10)[0].request.data == b"\xff\x00"
    cases = {
        b"{": "not JSON",
        b'{"log": []}': "log: expected an object",
        b'{"log": {"entries": {}}}': "log.entries: expected a list",
        json.dumps({"log": {"entries": [{"request": {"method": "G T", "url": "/"}}]}}).encode():
            "log.entries[0].request.method",
        json.dumps({"log": {"entries": [{"request": {"method": "GET", "url": "/", "headers": [{"name": "a b", "value": ""}]},
                                         "startedDateTime": "2024-01-01T00:00:00Z"}]}}).encode(): "request.headers[0]",
        json.dumps({"log": {"entries": [{"request": {"method": "GET", "url": "/"}, "startedDateTime": "noon"}]}}).encode():
            "startedDateTime",
    }
    for raw, where in cases.items():
        with pytest.raises(har.HarError, match=where.replace("[", r"\[").replace("]", r"\]")):
            har.parse(raw, cap=100, room=10)
    with pytest.raises(har.HarError, match="history keeps 0"):
        har.parse(json.dumps(good).encode(), cap=100, room=0)
    cut = har.export([entry(body=b"0123456789", request=capture(b"0123456789", cap=4))], "http://h")
    back = har.parse(json.dumps(cut).encode(), cap=100, room=1)[0]
    assert (back.request.data, back.request.size, back.request.truncated) == (b"0123", 10, True)


def test_request_denied_frame():
    from httptunnel import protocol

    message = protocol.decode('{"type": "request_denied", "method": "GET", "uri": "/x", "status": 413, "reason": "too_large",'
                              ' "headers": {"A": "1"}, "timestamp": 5, "future": 1}')
    assert message == protocol.RequestDenied("GET", "/x", 413, "too_large", {"A": ["1"]}, 5)
    with pytest.raises(protocol.ProtocolError, match="missing field 'reason'"):
        protocol.decode('{"type": "request_denied", "method": "GET", "uri": "/x", "status": 403}')


# ---- ttf replay and the dashboard -------------------------------------------------------------

def test_edited_message_round_trip():
    detail = {"method": "POST", "uri": "/a?b=1", "request_headers": {"X": ["1", "2"]},
              "request_body": base64.b64encode(b'{"a": 1}').decode(), "request_truncated": False, "request_size": 8}
    text, editable = client.to_message(detail)
    assert editable and text.endswith('POST /a?b=1\nX: 1\nX: 2\n\n{"a": 1}')
    assert client.from_message(text + "\n", '{"a": 1}') == {"method": "POST", "uri": "/a?b=1",
                                                             "headers": [["X", "1"], ["X", "2"]]}  # editor newline: no edit
    edited = client.from_message(text.replace("X: 2", "Y: 3").replace('{"a": 1}', '{"a": 2}\n'), '{"a": 1}')
    assert edited["headers"] == [["X", "1"], ["Y", "3"]] and edited["body"] == '{"a": 2}'
    with pytest.raises(client.ReplayError, match="emptied"):
        client.from_message("# only a comment\n", None)
    binary = dict(detail, request_body=base64.b64encode(b"\xff").decode(), request_size=1)
    text, editable = client.to_message(binary)
    assert not editable and "sent unchanged" in text and "body" not in client.from_message(text, None)
    assert client.printable("a\x1b[2Jb\r\n") == "a\\x1b[2Jb\\x0d\n"


async def test_ttf_replay_command(gateway, local_app, running, capsys, monkeypatch, tmp_path):
    _, port = local_app
    h = running(make_config(gateway, port, inspect=("127.0.0.1", 0)))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel_established")
    where = h.of(TunnelEstablished)[0].inspector_url.removeprefix("http://")
    await roundtrip(gateway, "r1", "POST", "/echo/cli", body=base64.b64encode(b"from the tunnel").decode())

    async def ttf(*argv: str) -> tuple[int, str, str]:
        out = io.StringIO()
        code = await asyncio.to_thread(main, ["replay", *argv, "--inspect", where], out)
        return code, out.getvalue(), capsys.readouterr().err

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: a POST needs --yes
    code, out, err = await ttf("1")
    assert code == 1 and "pass --yes" in err
    code, out, err = await ttf("1", "--yes")
    assert code == 0 and out.startswith("#2 replay of #1: POST /echo/cli -> 200 in ") and '"body_len": 15' in out
    code, out, err = await ttf("#1", "--yes", "--count", "3")
    assert code == 0 and "sent 3 times: 3x 200" in out

    editor = tmp_path / "editor.sh"  # an "editor" that changes the path and the body
    editor.write_text("#!/bin/sh\nsed -i 's#/echo/cli#/echo/edited#; s#from the tunnel#from the editor#' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    code, out, err = await ttf("1", "--edit", "--yes", "--json")
    result = json.loads(out)
    assert code == 0 and (result["source"], result["uri"], result["replay_of"]) == ("edited", "/echo/edited", 1)
    assert base64.b64decode(result["request_body"]) == b"from the editor"

    code, out, err = await ttf("99", "--yes")
    assert code == 1 and "404" in err and "no such request" in err
    code, out, err = await ttf("abc")
    assert code == 2 and "is not a request number" in err
    code = await asyncio.to_thread(main, ["replay", "1", "--inspect", "127.0.0.1:1"], io.StringIO())
    assert code == 1 and "no inspector at http://127.0.0.1:1" in capsys.readouterr().err


def test_dashboard_shows_the_inspector_and_the_captured_count():
    state = Dashboard(endpoint="ws://x", local_target="127.0.0.1:3000", started_at=time.time())
    state.apply(TunnelEstablished("tun1", "https://p/tun1", None, None, "c1", inspector_url="http://127.0.0.1:4045"), time.time())
    history = History(limit=5)
    state.captured = lambda: len(history)
    for _ in range(3):
        history.record(Exchange(1.0, "GET", "/", {}, b"", 200, {}, b"", 1))
    console = Console(record=True, width=120)
    console.print(render_dashboard(state, time.time()))
    assert "http://127.0.0.1:4045 (3 captured)" in console.export_text()
