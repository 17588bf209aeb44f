"""`make doctor` (scripts/deploy/doctor.py) and the checks `make deploy` runs before it applies.

AWS answers come from moto (in-process), except where moto has none: Lambda GetAccountSettings
("Not yet implemented" in moto 5) and an expired SSO token are stubbed answers.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import exceptions as bx
from moto import mock_aws

from scripts import tfenv
from scripts.deploy import __main__ as deploy
from scripts.deploy import doctor, settings

from .conftest import ROOT, TERRAFORM_DIR

pytestmark = pytest.mark.infra

REGION = "eu-west-1"
VERSION_CHECK = ROOT / "scripts" / "deploy" / "version_check.sh"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


class Lambda:
    """Stubbed answers for what moto lacks: lambda:GetAccountSettings."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    def get_account_settings(self) -> dict[str, Any]:
        if self.limit is None:
            raise bx.ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetAccountSettings")
        return {"AccountLimit": {"ConcurrentExecutions": self.limit, "UnreservedConcurrentExecutions": self.limit}}


def moto_clients(limit: int | None = 1000, sts: Any = None):
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service == "lambda":
            return Lambda(limit)
        if service == "sts" and sts is not None:
            return sts
        made.setdefault(service, boto3.client(service, region_name=REGION))
        return made[service]

    return client


def built(tmp_path: Path, arch: str = "arm64", runtime: str = "python3.12") -> Path:
    build = tmp_path / "build"
    build.mkdir(parents=True, exist_ok=True)
    (build / "layer.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (build / "build.json").write_text(json.dumps({"arch": arch, "runtime": runtime}))
    return build


def tf_dir(tmp_path: Path, tfvars: str = "", state: bool = False) -> Path:
    folder = tmp_path / "terraform"
    folder.mkdir(parents=True)
    for name in ("variables.tf", ".terraform.lock.hcl"):
        shutil.copy(TERRAFORM_DIR / name, folder / name)
    if tfvars:
        (folder / "terraform.tfvars").write_text(tfvars)
    if state:
        (folder / "terraform.tfstate").write_text("{}")
    return folder


def run(tmp_path: Path, var_args: list[str] | None = None, *, tfvars: str = "", state: bool = False,
        clients=None, build: Path | None = None, **kwargs: Any) -> dict[str, doctor.Check]:
    env = {"AWS_REGION": REGION, "HOME": str(tmp_path)}
    checks = doctor.run_checks(env=env, var_args=var_args or [], clients=clients or moto_clients(),
                               terraform_dir=tf_dir(tmp_path, tfvars, state), build_dir=build or built(tmp_path),
                               tf_version=(1, 11, 4), platform="darwin_arm64", **kwargs)
    print(doctor.table(checks))
    return {c.name: c for c in checks}


def test_a_ready_account_passes(aws, tmp_path):
    checks = run(tmp_path)
    assert not doctor.failed(list(checks.values()))
    assert checks["credentials"].detail.startswith("account 123456789012")
    assert checks["region"].detail == f"{REGION} (from AWS_REGION)"
    assert checks["lambda concurrency"].status == doctor.OK


def test_concurrency_quota_of_a_new_account_stops_the_deploy(aws, tmp_path):
    checks = run(tmp_path, clients=moto_clients(limit=10))
    check = checks["lambda concurrency"]
    assert check.status == doctor.FAIL
    assert "quota 10, the throttles need 722" in check.detail
    assert "--quota-code L-B99A9384" in check.fix and f"--region {REGION}" in check.fix
    assert doctor.failed(list(checks.values()))


def test_concurrency_override_turns_the_failure_into_a_warning(aws, tmp_path):
    checks = run(tmp_path, clients=moto_clients(limit=10), allow_low_concurrency=True)
    assert checks["lambda concurrency"].status == doctor.WARN
    assert not doctor.failed(list(checks.values()))


def test_needed_concurrency_follows_the_throttles():
    base = settings.defaults(TERRAFORM_DIR)
    assert doctor.needed_concurrency(base) == 100 + 20 * 25 + 100 + 20 + 2
    assert doctor.needed_concurrency({**base, "http_throttling_rate_limit": 2, "http_throttling_burst_limit": 5}) == \
        5 + 50 + 100 + 20 + 2
    # a ceiling on forward caps its share; AWS keeps 100 unreserved beside any reservation
    assert doctor.needed_concurrency({**base, "forward_reserved_concurrency": 50}) == 50 + 100 + 20 + 2
    quiet = {"websocket_throttling_rate_limit": 10, "websocket_connect_throttling_burst_limit": 1}
    assert doctor.needed_concurrency({**base, **quiet, "forward_reserved_concurrency": 50}) == 50 + 100
    # the hook for streamed responses (live-web): each holds an execution for its whole life
    assert doctor.needed_concurrency(base, streaming_holds=30) == doctor.needed_concurrency(base) + 30


def test_expired_sso_token_names_the_login(aws, tmp_path, monkeypatch):
    class ExpiredSso:
        def get_caller_identity(self) -> dict[str, str]:
            raise bx.TokenRetrievalError(provider="sso", error_msg="Token has expired and refresh failed")

    monkeypatch.setenv("AWS_PROFILE", "work")
    env = {"AWS_REGION": REGION, "AWS_PROFILE": "work"}
    checks = doctor.run_checks(env=env, var_args=[], clients=moto_clients(sts=ExpiredSso()),
                               terraform_dir=tf_dir(tmp_path), build_dir=built(tmp_path), tf_version=(1, 11, 0))
    assert checks[0].status == doctor.FAIL and "SSO token" in checks[0].detail
    assert checks[0].fix == "aws sso login --profile work"


def test_no_credentials_fail_without_a_traceback(tmp_path, monkeypatch):
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": REGION}
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    checks = doctor.run_checks(env=env, var_args=[], terraform_dir=tf_dir(tmp_path), build_dir=built(tmp_path),
                               tf_version=(1, 11, 0))
    assert checks[0].name == "credentials" and checks[0].status == doctor.FAIL
    assert "no AWS credentials" in checks[0].detail


def test_region_of_the_profile_is_used(tmp_path):
    """A profile's configured region used to be ignored: it deployed to us-east-1 unless AWS_REGION was set."""
    config = tmp_path / "config"
    config.write_text("[profile work]\nregion = ap-southeast-2\n")
    env = {"AWS_PROFILE": "work", "AWS_CONFIG_FILE": str(config)}
    region = settings.region(TERRAFORM_DIR, env, [])
    assert region == settings.Region("ap-southeast-2", "region of profile work (~/.aws/config)")
    assert deploy.aws_env(env)["TF_VAR_aws_region"] == "ap-southeast-2"
    assert settings.region(TERRAFORM_DIR, {**env, "AWS_REGION": "eu-north-1"}, []).name == "eu-north-1"
    assert settings.region(TERRAFORM_DIR, env, ["-var=aws_region=sa-east-1"]).name == "sa-east-1"


def test_certificate_pending_validation_fails(aws, tmp_path):
    acm = boto3.client("acm", region_name=REGION)
    arn = acm.request_certificate(DomainName="t.example.com", SubjectAlternativeNames=["*.t.example.com"],
                                  ValidationMethod="DNS")["CertificateArn"]
    checks = run(tmp_path, ["-var=domain_name=t.example.com", f"-var=certificate_arn={arn}"])
    assert checks["certificate"].status == doctor.FAIL and "PENDING_VALIDATION" in checks["certificate"].detail
    other = arn.replace(REGION, "us-east-1")
    checks = run(tmp_path / "b", ["-var=domain_name=t.example.com", f"-var=certificate_arn={other}"])
    assert checks["certificate"].status == doctor.FAIL and "certificate in us-east-1" in checks["certificate"].detail


def test_full_log_resource_policies_fail(aws, tmp_path):
    logs = boto3.client("logs", region_name=REGION)
    for i in range(doctor.LOG_RESOURCE_POLICY_LIMIT):
        logs.put_resource_policy(policyName=f"someone-else-{i}", policyDocument="{}")
    assert run(tmp_path)["log resource policies"].status == doctor.FAIL
    logs.delete_resource_policy(policyName="someone-else-0")
    logs.put_resource_policy(policyName="http-tunnel-events-to-traffic-log", policyDocument="{}")
    assert run(tmp_path / "b")["log resource policies"].status == doctor.OK


@pytest.mark.parametrize("prefix, status", [("a" * 28, doctor.OK), ("a" * 29, doctor.FAIL), ("a" * 32, doctor.FAIL)])
def test_name_prefix_must_fit_the_bucket_prefix(aws, tmp_path, prefix, status):
    assert run(tmp_path, [f"-var=name_prefix={prefix}"])["names"].status == status


def test_build_must_match_the_variables(aws, tmp_path):
    checks = run(tmp_path, ["-var=lambda_runtime=python3.13"])
    assert checks["build"].status == doctor.FAIL
    assert "built for python3.12, lambda_runtime = python3.13" in checks["build"].detail
    assert "LAMBDA_RUNTIME=python3.13" in checks["build"].fix
    checks = run(tmp_path / "b", ["-var=lambda_runtime=python3.13"], build=built(tmp_path / "b", runtime="python3.13"))
    assert checks["build"].status == doctor.OK


def test_resources_without_state_fail(aws, tmp_path):
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/http-tunnel/agent-jwt-secret", Value="x",
                                                          Type="SecureString")
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName="/aws/lambda/http-tunnel-forward")
    checks = run(tmp_path)
    assert checks["state"].status == doctor.FAIL
    assert "/http-tunnel/agent-jwt-secret" in checks["state"].detail
    assert "/aws/lambda/http-tunnel-forward" in checks["state"].detail
    assert run(tmp_path / "b", state=True)["state"].status == doctor.OK
    assert run(tmp_path / "c", state_bucket="my-state")["state"].status == doctor.OK
    assert run(tmp_path / "d", ["-var=name_prefix=other-stack"])["state"].status == doctor.OK


def test_deploy_applies_nothing_when_the_preflight_fails(tmp_path, monkeypatch):
    """`make deploy` = scripts.deploy apply: the preflight runs first and terraform is never called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "terraform-calls"
    fake = bin_dir / "terraform"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\necho 'Terraform v1.11.4'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert deploy.main(["apply", "--build-dir", str(built(tmp_path))]) == 1
    assert not calls.exists() or "apply" not in calls.read_text()
    assert deploy.main(["apply", "--dry-run", "--build-dir", str(built(tmp_path)), "--state-bucket", "b1"]) == 0


def test_s3_backend_arguments():
    args = deploy.backend_args("my-state", "http-tunnel", "eu-west-1")
    assert "-backend-config=use_lockfile=true" in args and "-backend-config=key=http-tunnel/terraform.tfstate" in args
    assert deploy.backend_args("", "http-tunnel", "eu-west-1") == []
    assert 'backend "s3"' in deploy.BACKEND_TEXT


def fake_tools(tmp_path: Path, python: str, terraform: str | None) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    py = bin_dir / "fakepython"
    py.write_text(f"#!/bin/sh\necho {python}\n")
    py.chmod(0o755)
    if terraform is not None:
        tf = bin_dir / "terraform"
        tf.write_text(f"#!/bin/sh\necho 'Terraform v{terraform}'\necho 'on darwin_arm64'\n")
        tf.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}, py


@pytest.mark.parametrize("python, terraform, ok, words", [
    ("3.11.7", "1.11.4", True, "Terraform 1.11.4 ok"),
    ("3.9.6", "1.11.4", False, "Python 3.9.6; need Python >= 3.11"),
    ("3.12.1", "1.5.7", False, "brew install hashicorp/tap/terraform"),
    ("3.12.1", None, False, "terraform not found on PATH"),
    ("3.12.1", "2.0.0", True, "Terraform 2.0.0 ok"),
])
def test_version_check_runs_before_any_python(tmp_path, python, terraform, ok, words):
    env, py = fake_tools(tmp_path, python, terraform)
    proc = subprocess.run(["bash", str(VERSION_CHECK), str(py)], env=env, capture_output=True, text=True, timeout=30)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    assert words in proc.stdout


def test_settings_read_the_variables_as_terraform_does(tf_initialized, tmp_path):
    """settings.effective against `terraform console`, for the variables the preflight reads."""
    work = tmp_path / "root"
    shutil.copytree(TERRAFORM_DIR, work, ignore=shutil.ignore_patterns(".terraform", "tests", "*.tfstate*"))
    (work / "terraform.tfvars").write_text('http_throttling_rate_limit = 7 # a comment\nname_prefix = "from-tfvars"\n'
                                           "forward_reserved_concurrency = 40\n")
    (work / "b.auto.tfvars").write_text("websocket_connect_throttling_burst_limit = 9\n")
    env = {**tf_initialized, "TF_VAR_http_throttling_burst_limit": "33", "TF_VAR_name_prefix": "from-env"}
    var_args = ["-var=lambda_runtime=python3.13", "-var=build_dir=/tmp/x"]
    names = ["http_throttling_rate_limit", "http_throttling_burst_limit", "websocket_throttling_rate_limit",
             "websocket_connect_throttling_burst_limit", "forward_reserved_concurrency", "name_prefix",
             "lambda_runtime", "lambda_architecture", "domain_name", "wildcard_domain"]
    expr = "jsonencode([" + ", ".join(f"var.{n}" for n in names) + "])"
    proc = subprocess.run(["terraform", f"-chdir={work}", "console", *var_args], input=expr + "\n", env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from_terraform = json.loads(json.loads(proc.stdout.strip()))
    ours = settings.effective(work, env, var_args)
    assert [ours[n] for n in names] == from_terraform
    assert tfenv.find_mirror() is not None


@pytest.mark.parametrize("length, refused", [(28, False), (29, True), (32, True)])
def test_root_refuses_a_name_prefix_the_bucket_module_would(tf_initialized, length, refused):
    """A name_prefix of 29-32 characters used to pass the root's validation and fail the bucket
    module's (bucket_prefix "<name_prefix>-bodies-", at most 36) in the middle of a plan."""
    assert doctor.NAME_PREFIX_MAX == 28
    proc = subprocess.run(["terraform", f"-chdir={TERRAFORM_DIR}", "console", "-no-color",
                           f"-var=name_prefix={'a' * length}"], input="var.name_prefix\n", env=tf_initialized,
                          capture_output=True, text=True, timeout=300)
    assert ("name_prefix must be 3-28" in proc.stderr) == refused, proc.stdout + proc.stderr
