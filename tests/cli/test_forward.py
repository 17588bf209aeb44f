"""Forwarder: one http_request against a real local aiohttp app -> one outgoing frame."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket

import pytest

from httptunnel import protocol
from httptunnel.limits import AGENT_MESSAGE_MAX, WS_FRAME_MAX
from httptunnel.protocol import HttpRequest
from ttf.forward import Forwarder, check_request_line, Failure, local_session, remote_session, strip_hop_by_hop

from conftest import pattern


@pytest.fixture
async def forwarder(local_app):
    _, port = local_app
    local, remote = local_session(8), remote_session()
    fwd = Forwarder(local=local, remote=remote, host="127.0.0.1", port=port, request_timeout=2.0)
    yield fwd
    await local.close()
    await remote.close()


def req(uri: str, method: str = "GET", headers=None, body: bytes = b"", **extra) -> HttpRequest:
    return HttpRequest(request_id="r1", method=method, uri=uri, headers=headers or {},
                       body=protocol.b64encode(body), **extra)


async def answer(fwd: Forwarder, request: HttpRequest):
    outcome = await fwd.handle(request)
    assert len(outcome.frame.encode()) <= WS_FRAME_MAX
    return protocol.decode(outcome.frame), outcome.event


async def test_query_string_and_body_reach_the_local_service_byte_for_byte(forwarder):
    uri = "/echo/a%2Fb/%7Euser?q=a%2Fb&sp=%20+x&empty=&flag&u=%C3%A9&dup=1&dup=2"
    body = bytes(range(256)) * 10
    msg, event = await answer(forwarder, req(uri, "POST", {"Content-Type": ["application/x-thing"]}, body))
    assert isinstance(msg, protocol.HttpResponse) and msg.status_code == 200
    echoed = json.loads(protocol.b64decode(msg.body))
    assert echoed["raw_path"] == uri
    assert echoed["method"] == "POST"
    assert echoed["body_len"] == len(body)
    assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert ["Content-Type", "application/x-thing"] in echoed["headers"]
    assert (event.method, event.path, event.status, event.bytes_in) == ("POST", "/echo/a%2Fb/%7Euser", 200, len(body))


async def test_headers_host_and_hop_by_hop_both_ways(forwarder):
    headers = {
        "Host": ["public.example.test"],
        "X-Repeat": ["1", "2"],
        "Connection": ["close, X-Drop-Me"],
        "X-Drop-Me": ["secret"],
        "Keep-Alive": ["timeout=5"],
        "Upgrade": ["h2c"],
    }
    msg, _ = await answer(forwarder, req("/echo", headers=headers))
    sent = json.loads(protocol.b64decode(msg.body))["headers"]
    names = [k.lower() for k, _ in sent]
    assert ["Host", f"127.0.0.1:{forwarder.port}"] in sent
    assert ["X-Forwarded-Host", "public.example.test"] in sent
    assert [v for k, v in sent if k == "X-Repeat"] == ["1", "2"]
    assert "x-drop-me" not in names and "keep-alive" not in names and "upgrade" not in names
    assert "user-agent" not in names  # no headers invented by the HTTP client
    # response side: repeated headers kept, hop-by-hop (and what Connection names) removed
    assert msg.headers["X-Multi"] == ["one", "two"]
    lowered = {k.lower() for k in msg.headers}
    assert "connection" not in lowered and "x-secret-hop" not in lowered


async def test_keep_host_passes_the_public_host(forwarder):
    forwarder.keep_host = True
    msg, _ = await answer(forwarder, req("/echo", headers={"Host": ["public.example.test"]}))
    sent = json.loads(protocol.b64decode(msg.body))["headers"]
    assert ["Host", "public.example.test"] in sent


async def test_redirects_are_returned_not_followed(forwarder):
    msg, event = await answer(forwarder, req("/redirect"))
    assert msg.status_code == 302
    assert msg.headers["Location"] == ["/elsewhere?x=1"]
    assert len(msg.headers["Set-Cookie"]) == 2
    assert event.status == 302


async def test_compressed_bodies_are_not_decompressed(forwarder):
    msg, _ = await answer(forwarder, req("/gzip", headers={"Accept-Encoding": ["gzip"]}))
    assert msg.headers["Content-Encoding"] == ["gzip"]
    assert gzip.decompress(protocol.b64decode(msg.body)) == b"hello " * 100


async def test_refused_connection_is_local_service_unavailable(forwarder):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        forwarder.port = s.getsockname()[1]  # bound but not listening: refused
        msg, event = await answer(forwarder, req("/"))
    assert isinstance(msg, protocol.Error) and msg.code == "local_service_unavailable"
    assert event.status == 503 and event.error == "local_service_unavailable"


async def test_slow_local_service_is_a_timeout(forwarder):
    forwarder.request_timeout = 0.2
    msg, event = await answer(forwarder, req("/slow?s=2"))
    assert isinstance(msg, protocol.Error) and msg.code == "timeout"
    assert event.status == 504


@pytest.mark.parametrize(
    "method,uri",
    [("GET", "no-slash"), ("GET", "/a b"), ("GET", "/a\r\nX: y"), ("G ET", "/"), ("", "/")],
)
async def test_bad_request_lines_are_invalid_request(forwarder, method, uri):
    msg, _ = await answer(forwarder, req(uri, method))
    assert isinstance(msg, protocol.Error) and msg.code == "invalid_request"


async def test_bad_base64_is_invalid_request(forwarder):
    bad = HttpRequest(request_id="r1", method="POST", uri="/echo", body="!!notbase64")
    msg, _ = await answer(forwarder, bad)
    assert isinstance(msg, protocol.Error) and msg.code == "invalid_request"


def test_non_ascii_uri_is_percent_encoded_only_where_needed():
    assert check_request_line("GET", "/caf\u00e9?q=%2F") == "/caf%C3%A9?q=%2F"
    with pytest.raises(Failure):
        check_request_line("GET", "/\x7f")
    with pytest.raises(Failure):
        check_request_line("GET", "/\udc80")  # a lone surrogate from JSON: no UTF-8 form


def test_hash_is_encoded_not_sent_as_a_fragment():
    """A '#' in a uri can only be a decoded %23 (an old server forwarding AWS's decoded path):
    sent as it is, the HTTP client would cut the URL there."""
    assert check_request_line("GET", "/rsf0.js#save.txt?a=1#b") == "/rsf0.js%23save.txt?a=1%23b"


def test_strip_hop_by_hop_honours_connection_tokens():
    headers = {"Connection": ["Foo, bar"], "foo": ["1"], "BAR": ["2"], "TE": ["x"], "Keep": ["y"]}
    assert strip_hop_by_hop(headers) == {"Keep": ["y"]}


async def test_five_megabyte_bodies_both_ways(forwarder, gateway):
    size = 5 * 1024 * 1024
    payload = pattern(size) [::-1]
    gateway.bodies["req1"] = payload
    request = HttpRequest(
        request_id="r1", method="PUT", uri="/echo", headers={}, body="",
        body_url=gateway.body_url("req1"), body_size=size, body_sha256=hashlib.sha256(payload).hexdigest(),
        response_upload_url=gateway.upload_url("resp1"),
    )
    msg, event = await answer(forwarder, request)
    assert isinstance(msg, protocol.HttpResponse), msg
    echoed = json.loads(protocol.b64decode(msg.body))
    assert echoed["body_len"] == size and echoed["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert event.bytes_in == size

    big = HttpRequest(request_id="r2", method="GET", uri=f"/big?n={size}",
                      response_upload_url=gateway.upload_url("resp2"))
    msg, event = await answer(forwarder, big)
    assert isinstance(msg, protocol.HttpResponse) and msg.body_uploaded and msg.body == ""
    assert gateway.uploads["resp2"] == pattern(size)
    assert msg.body_size == size and msg.body_sha256 == hashlib.sha256(pattern(size)).hexdigest()
    assert event.bytes_out == size


async def test_inline_up_to_the_message_limit_then_upload(forwarder, gateway):
    small = HttpRequest(request_id="r1", method="GET", uri="/big?n=20000",
                        response_upload_url=gateway.upload_url("s"))
    msg, _ = await answer(forwarder, small)
    assert not msg.body_uploaded and protocol.b64decode(msg.body) == pattern(20000)
    over = HttpRequest(request_id="r2", method="GET", uri=f"/big?n={AGENT_MESSAGE_MAX}",
                       response_upload_url=gateway.upload_url("o"))
    msg, _ = await answer(forwarder, over)
    assert msg.body_uploaded and gateway.uploads["o"] == pattern(AGENT_MESSAGE_MAX)


async def test_big_answer_goes_up_through_the_presigned_post_form(forwarder, gateway):
    """The server's POST form (policy-capped) wins over a PUT URL; fields first, the file last."""
    size = 200_000
    request = HttpRequest(request_id="r1", method="GET", uri=f"/big?n={size}",
                          response_upload=gateway.upload_form("f1"), response_upload_url=gateway.upload_url("p1"))
    msg, event = await answer(forwarder, request)
    assert isinstance(msg, protocol.HttpResponse) and msg.body_uploaded, msg
    assert gateway.uploads["f1"] == pattern(size) and "p1" not in gateway.uploads
    assert gateway.form_parts == [["key", "policy", "x-amz-signature", "file"]]
    assert msg.body_sha256 == hashlib.sha256(pattern(size)).hexdigest() and event.bytes_out == size


async def test_upload_refused_by_the_policy_is_a_clear_error(forwarder, gateway):
    gateway.form_max = 100_000  # S3 enforces the policy's content-length-range: 400 EntityTooLarge
    msg, event = await answer(forwarder, HttpRequest(request_id="r1", method="GET", uri="/big?n=150000",
                                                     response_upload=gateway.upload_form("f2")))
    assert isinstance(msg, protocol.Error) and msg.code == "internal_error"
    assert "HTTP 400" in msg.message and event.status == 502
    assert "f2" not in gateway.uploads


async def test_too_large_without_upload_url_is_an_error(forwarder):
    msg, _ = await answer(forwarder, req("/big?n=100000"))
    assert isinstance(msg, protocol.Error) and msg.code == "internal_error"
    assert "too large" in msg.message


async def test_request_body_checks(forwarder, gateway):
    gateway.bodies["k"] = b"x" * 1000
    wrong_size = HttpRequest(request_id="r", method="POST", uri="/echo", body_url=gateway.body_url("k"), body_size=999)
    msg, _ = await answer(forwarder, wrong_size)
    assert isinstance(msg, protocol.Error) and "expected 999" in msg.message
    wrong_sha = HttpRequest(request_id="r", method="POST", uri="/echo", body_url=gateway.body_url("k"),
                            body_sha256="0" * 64)
    msg, _ = await answer(forwarder, wrong_sha)
    assert isinstance(msg, protocol.Error) and "sha256" in msg.message
    missing = HttpRequest(request_id="r", method="POST", uri="/echo", body_url=gateway.body_url("nope"))
    msg, _ = await answer(forwarder, missing)
    assert isinstance(msg, protocol.Error) and "HTTP 404" in msg.message


async def test_headers_too_big_for_one_frame_are_an_error_not_a_socket_kill(forwarder, gateway):
    for upload, why in ((None, "response too large"), (gateway.upload_url("fat"), "headers too large")):
        msg, event = await answer(forwarder, HttpRequest(request_id="r", method="GET", uri="/fatheaders",
                                                         response_upload_url=upload))
        assert isinstance(msg, protocol.Error) and msg.code == "internal_error"
        assert why in msg.message and event.status == 502


def test_the_local_call_lasts_as_long_as_the_edge_waits_never_past_request_timeout():
    """The edge says how long it waits (time_left_ms): 25 s on the HTTP API, minutes on the
    function URL; --request-timeout only caps it, and a frame without it gets the HTTP API's 25 s."""
    fwd = Forwarder(local=None, remote=None, host="127.0.0.1", port=1)  # type: ignore[arg-type]

    def req(left):
        return HttpRequest(request_id="r", method="GET", uri="/", headers={}, time_left_ms=left)
    assert fwd.local_limit(req(40_000)) == 40.0
    assert fwd.local_limit(req(None)) == 25.0
    fwd.request_timeout = 5.0
    assert fwd.local_limit(req(40_000)) == 5.0
