"""config is the only place reading the environment; the README table matches FUNCTION_VARIABLES."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from httptunnel import config

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "shared" / "httptunnel"


class RecordingEnv(dict):
    def __init__(self):
        super().__init__()
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


@pytest.mark.parametrize("getter", sorted(config.GETTER_VARIABLES))
def test_each_getter_reads_exactly_its_declared_variables(getter, monkeypatch):
    env = RecordingEnv()
    monkeypatch.setattr(os, "environ", env)
    try:
        getattr(config, getter)()
    except config.ConfigError:
        pass  # required variable missing: still recorded what it read
    assert env.read == set(config.GETTER_VARIABLES[getter])


def test_every_public_getter_is_declared():
    public = {n for n, v in vars(config).items() if callable(v) and not n.startswith("_")
              and getattr(v, "__module__", "") == config.__name__ and not isinstance(v, type)}
    assert public == set(config.GETTER_VARIABLES)


# The streaming function's Runtime API loop is the Lambda runtime itself (like awslambdaric), not a
# Lambda's logic: it reads only what the Lambda service injects into every runtime, and sets the
# invocation's X-Ray header where the SDKs look for it. Nothing configured by Terraform.
RUNTIME_LOOP = "runtime_api.py"
LAMBDA_INJECTED = {"AWS_LAMBDA_RUNTIME_API", "_HANDLER", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
                   "_X_AMZN_TRACE_ID"}


def test_no_other_layer_module_reads_the_environment():
    offenders = [p.name for p in LAYER.glob("*.py") if p.name not in ("config.py", RUNTIME_LOOP)
                 and re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text())]
    assert offenders == []
    handlers = [p for p in (ROOT / "lambdas").glob("*/handler.py") if re.search(r"os\.environ|getenv", p.read_text())]
    assert handlers == []


def test_the_runtime_loop_touches_only_what_lambda_injects_into_every_runtime():
    source = (LAYER / RUNTIME_LOOP).read_text()
    named = set(re.findall(r"[\"']([A-Z_][A-Z0-9_]*_[A-Z0-9_]+)[\"']", source))  # every ENV_LIKE string
    assert named and named <= LAMBDA_INJECTED, named - LAMBDA_INJECTED
    assert not re.search(r"os\.getenv|getenv\(", source)


def _readme_table() -> dict[str, set[str]]:
    """variable -> set of functions, from shared/README.md's environment table."""
    text = (ROOT / "shared" / "README.md").read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        users = {u.strip() for u in cells[1].split(",")}
        for var in re.findall(r"`([A-Z_0-9]+)`", cells[0]):
            out[var] = users
    return out


def test_readme_env_table_matches_code():
    table = _readme_table()
    declared: dict[str, set[str]] = {}
    for function, variables in config.FUNCTION_VARIABLES.items():
        for var in variables:
            declared.setdefault(var, set()).add(function)
    for var, functions in declared.items():
        users = table.get(var)
        assert users is not None, f"{var} missing from shared/README.md"
        assert users == {"all"} or users == functions, f"{var}: README says {users}, code {functions}"
    assert set(table) == set(declared)


def test_function_names_match_the_lambdas():
    from httptunnel import names
    assert set(config.FUNCTION_VARIABLES) == set(names.FUNCTIONS)
    assert {p.parent.name for p in (ROOT / "lambdas").glob("*/handler.py")} == set(names.FUNCTIONS)
