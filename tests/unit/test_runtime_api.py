"""httptunnel.runtime_api's pure pieces: the bytes it puts on the wire, and what it refuses.

The loop itself is tested against the emulator's fake Runtime API (tests/emulator/test_runtime_api_stream.py).
"""

from __future__ import annotations

import base64
import json
import stat
import zipfile
from pathlib import Path

import pytest

from httptunnel import runtime_api
from scripts.package.__main__ import write_zip

ROOT = Path(__file__).resolve().parents[2]


def test_the_prelude_is_compact_json_then_eight_nuls() -> None:
    assert runtime_api.prelude(200, {"content-type": "text/event-stream"}, ["a=1"]) == (
        b'{"statusCode":200,"headers":{"content-type":"text/event-stream"},"cookies":["a=1"]}' + b"\0" * 8)
    assert runtime_api.prelude(404) == b'{"statusCode":404,"headers":{},"cookies":[]}' + b"\0" * 8


def test_a_nul_inside_a_header_value_never_ends_the_prelude_early() -> None:
    encoded = runtime_api.prelude(200, {"x": "a\0b"})
    assert encoded.index(b"\0") == len(encoded) - 8  # json escapes it as \u0000


@pytest.mark.parametrize("status", [99, 600, "200", True, 200.0])
def test_a_status_outside_100_599_is_refused_before_anything_is_sent(status: object) -> None:
    with pytest.raises(ValueError, match="status_code"):
        runtime_api.prelude(status)  # type: ignore[arg-type]


def test_headers_and_cookies_must_be_strings() -> None:
    with pytest.raises(ValueError, match="headers"):
        runtime_api.prelude(200, {"x": ["a", "b"]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cookies"):
        runtime_api.prelude(200, {}, [b"a=1"])  # type: ignore[list-item]


def test_chunks_and_the_last_chunk_with_trailers() -> None:
    assert runtime_api.chunk(b"hello world, 16!") == b"10\r\nhello world, 16!\r\n"
    assert runtime_api.last_chunk() == b"0\r\n\r\n"
    assert runtime_api.last_chunk({"A": "1", "B": "2"}) == b"0\r\nA: 1\r\nB: 2\r\n\r\n"


def test_error_trailers_are_the_type_and_base64_json_like_awss_node_client() -> None:
    trailers = runtime_api.error_trailers("Runtime.StreamError", "cut short", ["line 1"])
    assert trailers["Lambda-Runtime-Function-Error-Type"] == "Runtime.StreamError"
    body = json.loads(base64.b64decode(trailers["Lambda-Runtime-Function-Error-Body"]))
    assert body == {"errorType": "Runtime.StreamError", "errorMessage": "cut short", "trace": ["line 1"]}


@pytest.mark.parametrize("given, sent", [
    ("ValueError", "ValueError"),
    ("Bad\r\nInjected: header", "Bad__Injected:_header"),
    ("", "Unhandled"),
    ("x" * 300, "x" * 128),
])
def test_an_error_type_cannot_break_out_of_its_header(given: str, sent: str) -> None:
    assert runtime_api.error_type_header(given) == sent


@pytest.mark.parametrize("address", ["", "localhost", "host:port", ":9001"])
def test_a_bad_runtime_api_address_is_a_clear_error(address: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        runtime_api.Client(address)


def test_main_outside_lambda_says_so_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime_api.main({}) == 2
    assert "AWS_LAMBDA_RUNTIME_API" in capsys.readouterr().err


def test_load_handler_refuses_a_spec_without_a_function() -> None:
    with pytest.raises(ValueError, match="module>.<function"):
        runtime_api.load_handler("handler")
    with pytest.raises(AttributeError, match="nothing_here"):
        runtime_api.load_handler("json.nothing_here")


def test_the_wrapper_script_is_executable_and_keeps_its_mode_in_the_layer_zip(tmp_path: Path) -> None:
    wrapper = ROOT / "shared" / "httptunnel" / "runtime_bootstrap"
    assert wrapper.stat().st_mode & stat.S_IXUSR, "Lambda execs AWS_LAMBDA_EXEC_WRAPPER: it must be executable"
    staged = tmp_path / "python" / "httptunnel"
    staged.mkdir(parents=True)
    (staged / "runtime_bootstrap").write_bytes(wrapper.read_bytes())
    (staged / "runtime_bootstrap").chmod(0o755)
    (staged / "runtime_api.py").write_text("")
    write_zip(tmp_path, tmp_path / "layer.zip")
    with zipfile.ZipFile(tmp_path / "layer.zip") as zf:
        modes = {info.filename: info.external_attr >> 16 for info in zf.infolist()}
    assert modes == {"python/httptunnel/runtime_bootstrap": 0o755, "python/httptunnel/runtime_api.py": 0o644}
