"""The emulator's own decoder of streamed Runtime API answers, held to hand-written golden bytes.

The golden body below is written out byte by byte from the sources (AWS's Node.js runtime client:
the prelude, ``new Uint8Array(8)``, then the body; the error trailers it adds with
``addTrailers``), never produced by the layer's encoder: the decoder must stand on its own.
"""

from __future__ import annotations

import base64
import json

import pytest

from emulator.lambda_runtime.stream_decode import (
    ChunkedDecoder, Data, End, PreludeSplitter, StreamFormatError, parse_prelude, trailer_error,
)

PRELUDE = b'{"statusCode":201,"headers":{"content-type":"text/event-stream","x-a":"1, 2"},"cookies":["a=1; Path=/"]}'
ERROR_BODY = base64.b64encode(b'{"errorType":"Boom","errorMessage":"cut","trace":[]}')
# A chunked POST body: the prelude with its 8 NULs split over two chunks (one with an extension),
# two body chunks (the second holds a CRLF and a NUL of its own), then the error trailers.
GOLDEN = (
    b"%x\r\n" % (len(PRELUDE) + 3) + PRELUDE + b"\0\0\0" + b"\r\n"
    + b"5;ext=1\r\n\0\0\0\0\0\r\n"
    + b"b\r\ndata: one\n\n\r\n"
    + b"A\r\nx\r\ny\0z1234\r\n"
    + b"0\r\nLambda-Runtime-Function-Error-Type: Boom\r\nLambda-Runtime-Function-Error-Body: " + ERROR_BODY + b"\r\n\r\n"
)


def decode(pieces: list[bytes]) -> tuple[bytes, dict[str, str]]:
    decoder = ChunkedDecoder()
    body, trailers = b"", None
    for piece in pieces:
        for item in decoder.feed(piece):
            if isinstance(item, Data):
                body += item.data
            else:
                assert isinstance(item, End)
                trailers = item.trailers
    assert decoder.done and trailers is not None
    return body, trailers


def split_http_answer(body: bytes, sizes: int) -> tuple[object, bytes]:
    splitter, prelude, rest = PreludeSplitter(), None, b""
    for at in range(0, len(body), sizes):
        found, data = splitter.feed(body[at:at + sizes])
        prelude = found or prelude
        rest += data
    return prelude, rest


@pytest.mark.parametrize("step", [1, 2, 7, len(GOLDEN)])
def test_golden_streamed_answer_decodes_whatever_the_read_sizes(step: int) -> None:
    body, trailers = decode([GOLDEN[i:i + step] for i in range(0, len(GOLDEN), step)])
    assert body == PRELUDE + b"\0" * 8 + b"data: one\n\n" + b"x\r\ny\0z1234"
    prelude, rest = split_http_answer(body, step)
    assert prelude == parse_prelude(PRELUDE)
    assert (prelude.status_code, prelude.headers, prelude.cookies) == (  # type: ignore[attr-defined]
        201, {"content-type": "text/event-stream", "x-a": "1, 2"}, ["a=1; Path=/"])
    assert rest == b"data: one\n\nx\r\ny\0z1234"  # NULs after the delimiter are body bytes
    assert trailer_error(trailers) == {"errorType": "Boom",
                                       "body": {"errorType": "Boom", "errorMessage": "cut", "trace": []}}


def test_a_clean_end_has_no_trailers_and_no_error() -> None:
    body, trailers = decode([b"3\r\nabc\r\n0\r\n\r\n"])
    assert (body, trailers, trailer_error(trailers)) == (b"abc", {}, None)


def test_an_error_body_that_is_not_base64_json_is_kept_raw() -> None:
    trailers = {"lambda-runtime-function-error-type": "X", "lambda-runtime-function-error-body": "not base64!"}
    assert trailer_error(trailers) == {"errorType": "X", "body": "not base64!"}


@pytest.mark.parametrize("bad, why", [
    (b"zz\r\nabc\r\n", "bad chunk size"),
    (b"-3\r\nabc\r\n", "bad chunk size"),
    (b"3\r\nabcX\r\n", "not followed by CRLF"),
    (b"0\r\nno colon here\r\n\r\n", "bad trailer"),
    (b"0\r\n\r\nextra", "after the end"),
    (b"f" * 9000, "line too long"),
])
def test_malformed_chunked_bodies_are_refused_with_the_reason(bad: bytes, why: str) -> None:
    with pytest.raises(StreamFormatError, match=why):
        ChunkedDecoder().feed(bad)


@pytest.mark.parametrize("raw, why", [
    (b"{not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"statusCode": 99}', "bad statusCode"),
    (b'{"statusCode": true}', "bad statusCode"),
    (b'{"headers": {"a": 1}}', "headers"),
    (b'{"cookies": "a=1"}', "cookies"),
])
def test_malformed_preludes_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(StreamFormatError, match=why):
        parse_prelude(raw)


def test_a_prelude_without_its_delimiter_is_refused_past_64_kb() -> None:
    splitter = PreludeSplitter()
    assert splitter.feed(b'{"statusCode":200,' + b" " * 1000) == (None, b"")
    with pytest.raises(StreamFormatError, match="delimiter"):
        splitter.feed(b" " * 70_000)


def test_defaults_of_a_minimal_prelude() -> None:
    assert parse_prelude(json.dumps({}).encode()) == parse_prelude(b'{"statusCode":200,"headers":{},"cookies":[]}')
