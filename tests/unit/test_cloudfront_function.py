"""The viewer-request CloudFront Function (terraform/modules/cloudfront/viewer_request.js) under
Node 20: it hands forward_stream the viewer's Host and address in the headers httptunnel.edge_origin
reads, overwriting whatever a caller sent under those names, and drops a caller's copy of the
secret origin header. The file is run as CloudFront runs it: a script defining ``handler(event)``
(no modules), in a fresh context, with CloudFront's event shape (lower-case header names,
``{value}`` objects; https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from httptunnel import caller_ws, edge_origin

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = ROOT / "terraform" / "modules" / "cloudfront" / "viewer_request.js"
MODULE = ROOT / "terraform" / "modules" / "cloudfront" / "main.tf"

# Runs every event of stdin's JSON list through the file's handler, each in a new context. CloudFront
# Functions take the `cloudfront` module by an import on the first line (runtime 2.0); a vm script
# has no imports, so the harness removes that exact line and hands the script a `cf` that records
# which origin the function chose (null: the behaviour's own, the function URL).
HARNESS = r"""
const fs = require('fs'), vm = require('vm');
const IMPORT = "import cf from 'cloudfront';\n";
const source = fs.readFileSync(process.argv[1], 'utf8');
if (!source.startsWith(IMPORT)) throw new Error('the first line is not the cloudfront import');
const code = source.slice(IMPORT.length);
const events = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = events.map((event) => {
  let origin = null;
  const cf = {
    selectRequestOriginById: (id) => { if (origin !== null) throw new Error('origin chosen twice'); origin = id; },
    updateRequestOrigin: () => { throw new Error('updateRequestOrigin is not used'); },
  };
  const context = vm.createContext({cf});
  vm.runInContext(code, context, {filename: 'viewer_request.js'});
  return {request: context.handler(event), origin};
});
process.stdout.write(JSON.stringify(out));
"""


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed: the CloudFront Function's JavaScript needs Node 20 to run")
    return path


def routed(*events: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
    """Each event's request as the function returns it, and the origin id it selected (None: none)."""
    proc = subprocess.run([node(), "-e", HARNESS, str(FUNCTION)], input=json.dumps(list(events)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [(out["request"], out["origin"]) for out in json.loads(proc.stdout)]


def run(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [request for request, _ in routed(*events)]


def event(headers: dict[str, str], ip: str = "203.0.113.5", method: str = "POST", uri: str = "/a%2Fb",
          querystring: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"version": "1.0", "context": {"eventType": "viewer-request", "distributionDomainName": "d1.cloudfront.net"},
            "viewer": {"ip": ip},
            "request": {"method": method, "uri": uri,
                        "querystring": {"x": {"value": "1"}} if querystring is None else querystring,
                        "headers": {name: {"value": value} for name, value in headers.items()}, "cookies": {}}}


HANDSHAKE = {"host": "Abc123.T.Example.com", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
             "sec-websocket-version": "13", "sec-websocket-protocol": "vite-hmr", "origin": "https://abc123.t.example.com"}


def handshake(uri: str, querystring: dict[str, Any], **extra: str) -> dict[str, Any]:
    return event({**HANDSHAKE, **extra}, method="GET", uri=uri, querystring=querystring)


def test_node_is_version_20_or_later():
    version = subprocess.run([node(), "--version"], capture_output=True, text=True, check=True).stdout
    assert int(re.match(r"v(\d+)", version).group(1)) >= 20, version


def test_the_viewers_host_and_address_go_to_forward_stream_headers():
    [request] = run(event({"host": "Abc123.T.Example.com", "content-type": "text/plain"}))
    headers = request["headers"]
    assert headers[edge_origin.HOST_HEADER] == {"value": "abc123.t.example.com"}
    assert headers[edge_origin.VIEWER_HEADER] == {"value": "203.0.113.5"}
    assert headers["host"] == {"value": "Abc123.T.Example.com"} and headers["content-type"] == {"value": "text/plain"}
    assert (request["method"], request["uri"], request["querystring"]) == ("POST", "/a%2Fb", {"x": {"value": "1"}})


def test_a_callers_own_values_are_overwritten_and_the_secret_dropped():
    forged = {"host": "abc123.t.example.com", edge_origin.HOST_HEADER: "victim.t.example.com",
              edge_origin.VIEWER_HEADER: "10.0.0.1", edge_origin.SECRET_HEADER: "guess"}
    [request] = run(event(forged, ip="2001:db8::7"))
    headers = request["headers"]
    assert headers[edge_origin.HOST_HEADER] == {"value": "abc123.t.example.com"}
    assert headers[edge_origin.VIEWER_HEADER] == {"value": "2001:db8::7"}
    assert edge_origin.SECRET_HEADER not in headers


def test_without_a_host_no_host_header_survives():
    [request] = run(event({edge_origin.HOST_HEADER: "victim.t.example.com"}))
    assert edge_origin.HOST_HEADER not in request["headers"]  # forward_stream then answers 502, never routes it


def test_a_handshake_goes_to_the_caller_api_with_the_apps_target_and_host_in_headers():
    """Sec-WebSocket-Key marks the handshake (a function never sees Upgrade/Connection): the caller
    API's origin is selected, the request becomes "/" without a query (API Gateway refuses any path
    after the stage), and the app's real path and query travel in x-tunnel-target."""
    [(hmr, hmr_origin), (sio, sio_origin)] = routed(
        handshake("/_next/webpack-hmr", {}),
        handshake("/socket.io/", {"EIO": {"value": "4"}, "transport": {"value": "websocket"}}))
    assert hmr_origin == sio_origin == "caller-websocket"
    assert hmr["headers"][caller_ws.TARGET_HEADER] == {"value": "/_next/webpack-hmr"}
    assert sio["headers"][caller_ws.TARGET_HEADER] == {"value": "/socket.io/?EIO=4&transport=websocket"}
    for request in (hmr, sio):
        assert (request["uri"], request["querystring"]) == ("/", {})
        headers = request["headers"]
        assert headers[edge_origin.HOST_HEADER] == {"value": "abc123.t.example.com"}
        assert headers[edge_origin.VIEWER_HEADER] == {"value": "203.0.113.5"}
        for name, value in HANDSHAKE.items():  # the handshake itself reaches API Gateway unchanged
            assert headers[name] == {"value": value}


def test_a_handshakes_query_keeps_repeated_and_empty_parameters():
    [(request, _)] = routed(handshake("/cable/a%2Fb", {
        "a": {"value": "1", "multiValue": [{"value": "1"}, {"value": "%2F"}]}, "flag": {"value": ""}, "b": {"value": "x%20y"}}))
    assert request["headers"][caller_ws.TARGET_HEADER] == {"value": "/cable/a%2Fb?a=1&a=%2F&flag&b=x%20y"}


def test_a_plain_request_stays_on_the_function_url():
    [(get, get_origin), (post, post_origin)] = routed(
        event({"host": "abc123.t.example.com", caller_ws.TARGET_HEADER: "/forged"}, method="GET", uri="/ws"),
        event({"host": "abc123.t.example.com", "upgrade": "websocket"}))
    assert get_origin is None and post_origin is None
    assert (get["uri"], get["querystring"]) == ("/ws", {"x": {"value": "1"}}) and post["uri"] == "/a%2Fb"
    assert caller_ws.TARGET_HEADER not in get["headers"]  # a caller's copy never reaches forward_stream either


def test_a_callers_forged_headers_on_a_handshake_are_replaced():
    forged = {caller_ws.TARGET_HEADER: "/admin", edge_origin.HOST_HEADER: "victim.t.example.com",
              edge_origin.VIEWER_HEADER: "10.0.0.1", edge_origin.SECRET_HEADER: "guess"}
    [(request, origin)] = routed(handshake("/ws", {"t": {"value": "1"}}, **forged))
    headers = request["headers"]
    assert origin == "caller-websocket"
    assert headers[caller_ws.TARGET_HEADER] == {"value": "/ws?t=1"}
    assert headers[edge_origin.HOST_HEADER] == {"value": "abc123.t.example.com"}
    assert headers[edge_origin.VIEWER_HEADER] == {"value": "203.0.113.5"}
    assert edge_origin.SECRET_HEADER not in headers


def test_the_module_uses_this_file_and_the_layers_header_names():
    """The Terraform module deploys this file as a cloudfront-js-2.0 viewer-request function, and the
    names it and the origin's custom header use are the ones edge_origin reads."""
    module = MODULE.read_text()
    assert 'file("${path.module}/viewer_request.js")' in module and 'runtime = "cloudfront-js-2.0"' in module
    assert f'"{edge_origin.SECRET_HEADER}"' in module
    code = FUNCTION.read_text()
    for name in (edge_origin.HOST_HEADER, edge_origin.VIEWER_HEADER, edge_origin.SECRET_HEADER, caller_ws.TARGET_HEADER):
        assert f"'{name}'" in code
    assert re.search(r"^function handler\(event\)", code, re.M)
    # the one module: CloudFront's own, imported on the first line (runtime 2.0's rule)
    first, _, rest = code.partition("\n")
    assert first == "import cf from 'cloudfront';"
    assert not re.search(r"\b(require|import|export|module\.exports)\b", rest), "no other modules"
    # the origin the function selects is the distribution's caller API origin
    assert re.search(r"var CALLER_ORIGIN = 'caller-websocket';", code)
    assert 'caller_origin_id = "caller-websocket"' in module
    assert len(code.encode()) <= 10 * 1024, "CloudFront Functions are at most 10 KB"
