"""scripts/deploy and emulator/mock_aws/terraform.py: argument parsing and command construction."""

from __future__ import annotations

import json

import pytest

from emulator.mock_aws import terraform as tf_local
from scripts.deploy import __main__ as deploy

pytestmark = pytest.mark.infra


def test_parse_vars():
    assert deploy.parse_vars(["require_auth=true", "jwks_url=https://x/y=z"]) == [
        "-var=require_auth=true", "-var=jwks_url=https://x/y=z"]
    with pytest.raises(deploy.DeployError, match="name=value"):
        deploy.parse_vars(["novalue"])
    with pytest.raises(deploy.DeployError):
        deploy.parse_vars(["=x"])


def test_apply_commands_end_with_outputs():
    cmds = deploy.commands("apply", ["-var=a=b"], auto_approve=False)
    assert [c[2] for c in cmds] == ["init", "apply", "output"]
    assert "-auto-approve" not in cmds[1] and "-var=a=b" in cmds[1]
    assert cmds[2][-1] == "-json"


def test_destroy_and_localstack_commands(tmp_path):
    assert [c[2] for c in deploy.commands("destroy", [], auto_approve=True)] == ["init", "destroy"]
    cmds = deploy.commands("localstack", [], auto_approve=True, tool="tflocal", state=tmp_path / "s.tfstate")
    assert all(c[0] == "tflocal" for c in cmds)
    assert f"-state={tmp_path / 's.tfstate'}" in cmds[1] and "-auto-approve" in cmds[1]
    with pytest.raises(deploy.DeployError):
        deploy.commands("nuke", [], auto_approve=True)


def test_dry_run_prints_commands(capsys, tmp_path):
    (tmp_path / "layer.zip").write_bytes(b"zip")
    assert deploy.main(["apply", "--dry-run", "--build-dir", str(tmp_path), "--var", "name_prefix=demo"]) == 0
    out = capsys.readouterr().out
    assert "terraform" in out and "-var=name_prefix=demo" in out and f"-var=build_dir={tmp_path}" in out


def test_missing_build_is_a_clear_error(capsys, tmp_path):
    assert deploy.main(["apply", "--build-dir", str(tmp_path / "nope")]) == 1
    assert "make build" in capsys.readouterr().err


def test_ttf_line():
    line = deploy.ttf_line({"ws_url": {"value": "wss://a.execute-api.us-east-1.amazonaws.com/prod"},
                            "http_url": {"value": "https://h"}})
    assert "ttf --endpoint wss://a.execute-api.us-east-1.amazonaws.com/prod" in line
    assert "Dashboard" not in line
    with_dashboard = deploy.ttf_line({"ws_url": {"value": "wss://a/prod"}, "dashboard_url": {"value": "https://d"}})
    assert "Dashboard: https://d\n" in with_dashboard
    with pytest.raises(deploy.DeployError):
        deploy.ttf_line({})


def test_aws_env_drops_local_endpoints():
    env = deploy.aws_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_S3": "x",
                          "AWS_REGION": "eu-west-1", "PATH": "/usr/bin"})
    assert not any(k.startswith("AWS_ENDPOINT_URL") for k in env)
    assert env["TF_VAR_aws_region"] == "eu-west-1"


def test_localstack_env_points_at_localstack():
    env = deploy.localstack_env({"PATH": "/usr/bin"}, "http://127.0.0.1:4566")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_ACCESS_KEY_ID"] == "test"


def test_tf_local_vars_follow_the_build(tmp_path):
    (tmp_path / "layer.zip").write_bytes(b"zip")
    (tmp_path / "build.json").write_text(json.dumps({"arch": "x86_64", "runtime": "python3.13"}))
    values = tf_local.local_vars(tmp_path, {"name_prefix": "t1"})
    assert values["lambda_architecture"] == "x86_64" and values["lambda_runtime"] == "python3.13"
    assert values["local_fast_apply"] is True and values["name_prefix"] == "t1"
    assert values["local_plain_http"] is True  # moto cannot evaluate the TLS-only bucket policies
    assert values["build_dir"] == str(tmp_path.resolve())


def test_tf_local_rejects_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="make build-local"):
        tf_local.local_vars(tmp_path, {})
    with pytest.raises(ValueError):
        tf_local.local_env("127.0.0.1:5000")
    env = tf_local.local_env("http://127.0.0.1:5000/")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000" and env["TF_DATA_DIR"] == str(tf_local.DATA_DIR)
