"""The agent's hop of issue 30 item 16: the bytes of a local service's response header value.

UTF-8 bytes become the same text (and leave the layer and the emulator as the same bytes: see
tests/unit/test_review_findings.py and tests/emulator/test_header_bytes.py). Bytes that are not
UTF-8 (gunicorn writes header values as Latin-1: httpbin's ``X-U: café`` is ``caf\\xe9``) cannot
travel as they are: the frame and the Lambda result are JSON text. They are read as Latin-1,
so the caller gets the same characters, written as UTF-8."""

from __future__ import annotations

from ttf.forward import response_headers


def test_utf8_header_bytes_become_the_same_text():
    assert response_headers(((b"X-U", "café ☕".encode("utf-8")),)) == {"X-U": ["café ☕"]}


def test_latin1_header_bytes_are_read_as_latin1():
    assert response_headers(((b"X-U", b"caf\xe9"),)) == {"X-U": ["café"]}
