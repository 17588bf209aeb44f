"""scripts/deploy (+ deploy/token.py) and emulator/mock_aws/terraform.py: arguments, commands, tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import jwt
import pytest
from moto import mock_aws

from httptunnel import auth
from emulator.mock_aws import terraform as tf_local
from scripts.deploy import __main__ as deploy
from scripts.deploy import token

pytestmark = pytest.mark.infra


def test_parse_vars():
    assert deploy.parse_vars(["allow_anonymous_agents=true", "jwks_url=https://x/y=z"]) == [
        "-var=allow_anonymous_agents=true", "-var=jwks_url=https://x/y=z"]
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


WS = "wss://a.execute-api.us-east-1.amazonaws.com/prod"
SECRET = "k" * 64


def outputs(**auth_over) -> dict:
    agent_auth = {"anonymous": False, "secret_parameter": "/http-tunnel/agent-jwt-secret", "secret_arn": "",
                  "issuer": "http-tunnel", "audience": "http-tunnel-agents", "max_lifetime": 0,
                  "subdomains_claim": "tunnel_subdomains", "region": "us-east-1"} | auth_over
    return {"ws_url": {"value": WS}, "http_url": {"value": "https://h"}, "agent_auth": {"value": agent_auth}}


def test_ttf_line_carries_the_operators_token():
    line = deploy.ttf_line(outputs(), "the.jwt.token")
    assert f"ttf -e {WS} -t the.jwt.token -p 3000" in line and "WARNING" not in line
    assert "Dashboard" not in line
    with_dashboard = deploy.ttf_line(outputs() | {"dashboard_url": {"value": "https://d"}}, "t")
    assert "Dashboard: https://d\n" in with_dashboard
    with pytest.raises(deploy.DeployError):
        deploy.ttf_line({}, "t")


def test_anonymous_deployment_gets_a_warning_and_no_token():
    assert deploy.operator_token(outputs(anonymous=True)) is None
    line = deploy.ttf_line(outputs(anonymous=True), None)
    assert line.startswith("WARNING: allow_anonymous_agents = true") and WS in line and " -t " not in line


def verify_with_connects_rules(monkeypatch, minted: str, **env: str) -> auth.Identity:
    for name in ("JWT_SECRET_SSM_PARAMETER", "JWT_SECRET_ARN", "JWKS", "JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE",
                 "JWT_MAX_LIFETIME", "JWT_SUBDOMAINS_CLAIM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWT_SECRET", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return auth.verify(minted)


def test_operator_token_is_minted_with_the_secret_in_ssm(monkeypatch):
    with mock_aws():
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/http-tunnel/agent-jwt-secret", Value=SECRET, Type="SecureString")
        minted = deploy.operator_token(outputs())
    identity = verify_with_connects_rules(monkeypatch, minted, JWT_ISSUER="http-tunnel",
                                          JWT_AUDIENCE="http-tunnel-agents")
    assert identity.subject == "operator"
    assert identity.claims["exp"] - identity.claims["iat"] == 7 * 86400  # issue 30 item 14: shorter than 30 days


def test_operator_token_failure_is_one_line():
    with mock_aws(), pytest.raises(deploy.DeployError, match="no token could be minted: cannot read the agent secret"):
        deploy.operator_token(outputs())  # the parameter does not exist


@pytest.mark.parametrize("text,seconds", [("3600", 3600), ("90m", 5400), ("12h", 43200), ("30d", 2592000),
                                          ("2w", 1209600), (" 1D ", 86400)])
def test_parse_ttl(text, seconds):
    assert token.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "5y", "-1d", "1.5h", "367d", "d"])
def test_parse_ttl_rejects(text):
    with pytest.raises(token.TokenError):
        token.parse_ttl(text)


def test_minted_tokens_pass_connects_checks_and_pyjwt(monkeypatch):
    minted = token.mint(SECRET, "alice", 3600, issuer="iss", audience="aud", subdomains=("alice-app", "docs"),
                        max_lifetime=3600)
    identity = verify_with_connects_rules(monkeypatch, minted, JWT_ISSUER="iss", JWT_AUDIENCE="aud",
                                          JWT_MAX_LIFETIME="3600")
    assert identity.subject == "alice" and auth.allowed_subdomains(identity) == ("alice-app", "docs")
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"], audience="aud", issuer="iss")
    assert claims["exp"] - claims["iat"] == 3600 and abs(claims["iat"] - time.time()) < 5
    custom = token.mint(SECRET, "bob", 60, subdomains=("bob-app",), subdomains_claim="names")
    assert jwt.decode(custom, SECRET, algorithms=["HS256"])["names"] == ["bob-app"]


@pytest.mark.parametrize("kwargs,message", [
    ({"secret": "short"}, "shorter than 32 bytes"),
    ({"sub": " "}, "must not be empty"),
    ({"subdomains": ("mycompanyapi",)}, "not a valid subdomain"),  # shaped like a generated id
    ({"subdomains": ("-bad",)}, "not a valid subdomain"),
    ({"ttl_s": 7200, "max_lifetime": 3600}, "exceeds this deployment's jwt_max_lifetime"),
])
def test_mint_refuses_what_connect_would_refuse(kwargs, message):
    args = {"secret": SECRET, "sub": "alice", "ttl_s": 60} | kwargs
    with pytest.raises(token.TokenError, match=message):
        token.mint(args.pop("secret"), args.pop("sub"), args.pop("ttl_s"), **args)


def test_default_ttl_follows_the_deployments_maximum(monkeypatch):
    settings = token.AuthSettings.from_outputs(outputs(max_lifetime=3600))
    monkeypatch.setattr(token, "read_secret", lambda s: SECRET)
    claims = jwt.decode(token.token_for(settings, "alice"), SECRET, algorithms=["HS256"], audience=settings.audience)
    assert claims["exp"] - claims["iat"] == 3600


def test_token_for_cannot_serve_anonymous_or_plain_value_deployments():
    with pytest.raises(token.TokenError, match="anonymous"):
        token.token_for(token.AuthSettings.from_outputs(outputs(anonymous=True)), "alice")
    with pytest.raises(token.TokenError, match="plain jwt_secret value"):
        token.read_secret(token.AuthSettings.from_outputs(outputs(secret_parameter="")))
    with pytest.raises(token.TokenError, match="no agent_auth"):
        token.AuthSettings.from_outputs({"ws_url": {"value": WS}})


def test_token_cli_errors_are_one_line(capsys, tmp_path):
    assert token.main(["--sub", "alice", "--stack", str(tmp_path / "missing.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read the local stack's state") and err.count("\n") == 1
    (tmp_path / "anon.json").write_text(json.dumps({"auth": None}))
    assert token.main(["--sub", "alice", "--stack", str(tmp_path / "anon.json")]) == 1
    assert "runs without auth" in capsys.readouterr().err
    assert token.main(["--sub", "", "--stack", str(tmp_path / "anon.json")]) == 1
    assert "SUB is required" in capsys.readouterr().err


def test_token_cli_prints_only_the_token(capsys, tmp_path, monkeypatch):
    state = {"region": "us-east-1", "aws_endpoint_url": "http://127.0.0.1:1",
             "auth": {"secret_parameter": "/p", "issuer": "i", "audience": "a", "max_lifetime": 0}}
    (tmp_path / "stack.json").write_text(json.dumps(state))
    seen = {}
    monkeypatch.setattr(token, "read_secret", lambda s: seen.setdefault("settings", s) and SECRET)
    assert token.main(["--sub", "carol", "--subdomains", "Carol-App, docs", "--stack", str(tmp_path / "stack.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"], audience="a", issuer="i")
    assert claims["tunnel_subdomains"] == ["carol-app", "docs"]
    assert seen["settings"].endpoint_url == "http://127.0.0.1:1" and seen["settings"].secret_parameter == "/p"


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


def test_zips_carry_bytecode_for_the_target_python(tmp_path):
    """Lambda mounts /opt and /var/task read-only: without shipped pycs each cold start compiles
    every module again. The pycs are unchecked-hash (valid whatever mtime the unzip gives)."""
    import subprocess
    import zipfile

    import pytest

    from scripts.package import __main__ as build
    interpreter = build.find_python("3.12")
    if interpreter is None:
        pytest.skip("no python3.12 on this machine to compile for the Lambda runtime")
    staged = tmp_path / "fn"
    (staged / "pkg").mkdir(parents=True)
    (staged / "handler.py").write_text("X = 1\n")
    (staged / "pkg" / "__init__.py").write_text("")
    assert build.compile_bytecode(staged, interpreter, "/var/task")
    build.write_zip(staged, tmp_path / "fn.zip", bytecode=True)
    with zipfile.ZipFile(tmp_path / "fn.zip") as zf:
        pyc = zf.read("__pycache__/handler.cpython-312.pyc")
        assert "pkg/__pycache__/__init__.cpython-312.pyc" in zf.namelist()
    magic = subprocess.run([interpreter, "-c", "import importlib.util, sys; "
                            "sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)"], capture_output=True, check=True)
    assert pyc[:4] == magic.stdout  # the target runtime's magic number
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, not checked against the source
    build.write_zip(staged, tmp_path / "plain.zip")  # without bytecode: no stray pycs from the tree
    with zipfile.ZipFile(tmp_path / "plain.zip") as zf:
        assert not [n for n in zf.namelist() if n.endswith(".pyc")]


def _layer_services() -> set[str]:
    """Every service the layer creates a client for: `aws.client("<service>", ...)` calls."""
    import ast

    found = set()
    for path in (Path(__file__).resolve().parents[2] / "shared" / "httptunnel").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "aws"):
                assert node.args and isinstance(node.args[0], ast.Constant), f"{path}: aws.client needs a literal name"
                found.add(node.args[0].value)
    return found


def test_the_layer_ships_a_model_for_every_service_it_calls():
    from scripts.package import __main__ as build

    assert _layer_services() == set(build.LAYER_SERVICES)


def test_pruned_botocore_keeps_what_a_client_reads(tmp_path):
    """The pruning keeps each listed service's newest model (as botocore picks it) and its entries in
    endpoints.json, in every partition; a client made on the pruned copy resolves the same endpoint
    as one made on the full botocore, and an unlisted service is unknown (not silently present)."""
    import shutil

    import botocore
    import botocore.exceptions
    import botocore.loaders
    import botocore.session

    from scripts.package import __main__ as build

    source, data = Path(botocore.__file__).parent / "data", tmp_path / "data"
    data.mkdir()
    for entry in source.iterdir():  # the top-level files, the listed services and one decoy
        if entry.is_file():
            shutil.copy(entry, data)
        elif entry.name in (*build.LAYER_SERVICES, "sqs"):
            shutil.copytree(entry, data / entry.name)
    build.prune_botocore_data(data, build.LAYER_SERVICES)
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == sorted(build.LAYER_SERVICES)
    for service in build.LAYER_SERVICES:
        [version] = [p for p in (data / service).iterdir()]
        assert not list(version.glob("examples-1.json*"))
    endpoints = json.loads((data / "endpoints.json").read_text())
    assert {p["partition"] for p in endpoints["partitions"]} >= {"aws", "aws-cn", "aws-us-gov"}
    assert set(endpoints["partitions"][0]["services"]) <= {"dynamodb", "events", "execute-api", "kms", "s3",
                                                             "secretsmanager", "ssm"}

    def session(pruned: bool) -> botocore.session.Session:
        s = botocore.session.Session()
        if pruned:
            s.register_component("data_loader", botocore.loaders.Loader(
                extra_search_paths=[str(data)], include_default_search_paths=False))
        return s

    creds = {"aws_access_key_id": "a", "aws_secret_access_key": "b"}
    for region in ("us-east-1", "eu-west-3", "cn-north-1", "us-gov-west-1"):
        for service in ("dynamodb", "events", "s3", "ssm", "secretsmanager"):
            full = session(False).create_client(service, region_name=region, **creds)
            pruned = session(True).create_client(service, region_name=region, **creds)
            assert pruned.meta.endpoint_url == full.meta.endpoint_url, (service, region)
            assert sorted(pruned.meta.service_model.operation_names) == sorted(full.meta.service_model.operation_names)
    for service, operation in (("dynamodb", "UpdateItem"), ("s3", "PutObject"), ("events", "PutEvents")):
        full_op = session(False).get_service_model(service).operation_model(operation)
        pruned_op = session(True).get_service_model(service).operation_model(operation)
        assert pruned_op.input_shape.members.keys() == full_op.input_shape.members.keys()
        assert pruned_op.http == full_op.http and pruned_op.metadata == full_op.metadata
    for service in build.LAYER_SERVICES:  # what botocore reads at run time, e.g. clientContextParams
        pruned_model, full_model = session(True).get_service_model(service), session(False).get_service_model(service)
        assert pruned_model.client_context_parameters == full_model.client_context_parameters
    with pytest.raises(botocore.exceptions.UnknownServiceError):
        session(True).create_client("sqs", region_name="us-east-1", **creds)


def test_a_service_botocore_lacks_is_a_clear_build_error(tmp_path):
    from scripts.package import __main__ as build

    (tmp_path / "dynamodb" / "2012-08-10").mkdir(parents=True)
    (tmp_path / "dynamodb" / "2012-08-10" / "service-2.json").write_text('{"metadata": {"endpointPrefix": "dynamodb"}}')
    (tmp_path / "endpoints.json").write_text('{"partitions": []}')
    with pytest.raises(SystemExit, match="nope"):
        build.prune_botocore_data(tmp_path, ("dynamodb", "nope"))
