"""What Terraform creates first, read from `terraform graph -type=plan` (moto does not care, AWS does)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from scripts import tfenv

from .conftest import ROOT, TERRAFORM_DIR

pytestmark = pytest.mark.infra


def plan_graph(env: dict[str, str]) -> dict[str, set[str]]:
    """node -> the nodes it depends on (the plan graph: module variables and outputs included)."""
    proc = tfenv.terraform(["graph", "-type=plan"], TERRAFORM_DIR, env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    graph: dict[str, set[str]] = {}
    for src, dst in re.findall(r'"\[root\] ([^"]+)" -> "\[root\] ([^"]+)"', proc.stdout):
        graph.setdefault(src.removesuffix(" (expand)"), set()).add(dst.removesuffix(" (expand)"))
    assert graph, proc.stdout[:2000]
    return graph


def depends_on(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("stage", ["module.websocket_api.aws_apigatewayv2_stage.this",
                                   "module.http_api.aws_apigatewayv2_stage.this"])
def test_api_mappings_wait_for_their_stage(tf_initialized, stage):
    """With domain_name set, AWS answers "Invalid stage identifier specified" to a mapping created
    before its stage (aws/serverless-application-model#192, serverless/serverless#4029). A stage
    named by a plain string gives Terraform no reason to wait; a value read from the stage does."""
    graph = plan_graph(tf_initialized)
    mapping = "module.domain.aws_apigatewayv2_api_mapping.this"
    assert mapping in graph
    assert stage in depends_on(graph, mapping), f"{mapping} may be created before {stage}"


def test_plan_has_no_warnings(tf_initialized, tmp_path):
    """Some warnings (a lifecycle rule without `filter`, deprecated arguments) appear only at plan,
    not at validate: plan the root against moto with the default variables and fail on any."""
    from moto.server import ThreadedMotoServer

    from emulator.mock_aws import terraform as tf_local

    build = ROOT / "build" / "local"
    if not (build / "layer.zip").is_file():
        pytest.skip("build/local/layer.zip missing: run `make build-local` (make test does)")
    work = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, work, ignore=shutil.ignore_patterns(".terraform", "tests", "*.tfstate*", "*.tfvars"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        env = tf_local.local_env(f"http://127.0.0.1:{server.get_host_and_port()[1]}")
        env["TF_DATA_DIR"] = tf_initialized["TF_DATA_DIR"]
        proc = subprocess.run(["terraform", f"-chdir={work}", "plan", "-json", "-input=false", "-lock=false",
                               f"-var=build_dir={build}"], env=env, capture_output=True, text=True, timeout=900)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    warnings = [m["diagnostic"] for m in messages if m.get("type") == "diagnostic"]
    assert any(m.get("type") == "change_summary" for m in messages), proc.stdout[-2000:]
    assert not warnings, json.dumps(warnings, indent=1)
