"""What Terraform creates first, read from `terraform graph -type=plan` (moto does not care, AWS does)."""

from __future__ import annotations

import re

import pytest

from scripts import tfenv

from .conftest import TERRAFORM_DIR

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
