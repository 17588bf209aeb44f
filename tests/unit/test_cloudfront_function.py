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

from httptunnel import edge_origin

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = ROOT / "terraform" / "modules" / "cloudfront" / "viewer_request.js"
MODULE = ROOT / "terraform" / "modules" / "cloudfront" / "main.tf"

# Runs every event of stdin's JSON list through the file's handler, each in a new context.
HARNESS = r"""
const fs = require('fs'), vm = require('vm');
const code = fs.readFileSync(process.argv[1], 'utf8');
const events = JSON.parse(fs.readFileSync(0, 'utf8'));
const out = events.map((event) => {
  const context = vm.createContext({});
  vm.runInContext(code, context, {filename: 'viewer_request.js'});
  return context.handler(event);
});
process.stdout.write(JSON.stringify(out));
"""


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed: the CloudFront Function's JavaScript needs Node 20 to run")
    return path


def run(*events: dict[str, Any]) -> list[dict[str, Any]]:
    proc = subprocess.run([node(), "-e", HARNESS, str(FUNCTION)], input=json.dumps(list(events)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, Any]] = json.loads(proc.stdout)
    return result


def event(headers: dict[str, str], ip: str = "203.0.113.5") -> dict[str, Any]:
    return {"version": "1.0", "context": {"eventType": "viewer-request", "distributionDomainName": "d1.cloudfront.net"},
            "viewer": {"ip": ip},
            "request": {"method": "POST", "uri": "/a%2Fb", "querystring": {"x": {"value": "1"}},
                        "headers": {name: {"value": value} for name, value in headers.items()}, "cookies": {}}}


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


def test_the_module_uses_this_file_and_the_layers_header_names():
    """The Terraform module deploys this file as a cloudfront-js-2.0 viewer-request function, and the
    names it and the origin's custom header use are the ones edge_origin reads."""
    module = MODULE.read_text()
    assert 'file("${path.module}/viewer_request.js")' in module and 'runtime = "cloudfront-js-2.0"' in module
    assert f'"{edge_origin.SECRET_HEADER}"' in module
    code = FUNCTION.read_text()
    for name in (edge_origin.HOST_HEADER, edge_origin.VIEWER_HEADER, edge_origin.SECRET_HEADER):
        assert f"'{name}'" in code
    assert re.search(r"^function handler\(event\)", code, re.M)
    assert not re.search(r"\b(require|import|export|module\.exports)\b", code), "CloudFront Functions have no modules"
    assert len(code.encode()) <= 10 * 1024, "CloudFront Functions are at most 10 KB"
