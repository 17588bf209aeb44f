"""`make doctor`: what would make `make deploy` fail, found before anything is applied.

    python -m scripts.deploy.doctor [--var name=value ...] [--allow-low-concurrency] [--state-bucket B]

One table, one line per check, each failing or doubtful line with its fix. Exits 1 when a check
fails (the deploy would fail, or would leave a deployment that cannot serve), 0 otherwise;
warnings do not change the exit status. `make deploy` (scripts.deploy apply) runs the same checks
first and stops on a failure.

The checks: credentials and account (an expired SSO token included); the region and where it
came from; Terraform >= 1.11 and Python >= 3.11; the provider lock for this platform; the Lambda
concurrency quota against what the configured throttles need; the certificate when a domain is
set (and, on the function_url edge, CloudFront's us-east-1 certificate for <domain> and *.<domain>);
on a deployed function_url edge, forward_stream's InvokeFunction statement conditioned on
lambda:InvokedViaFunctionUrl (scripts/deploy/function_url.py); the CloudWatch Logs resource policy
count; name lengths; the build against the variables; resources with this prefix in the account
while there is no state to say they are ours.

Every AWS call goes through `clients(service)`, so tests give it moto, or stubbed answers where
moto has none (Lambda GetAccountSettings).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.deploy import settings

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
BUILD_DIR = ROOT / "build"

MIN_TERRAFORM = (1, 11)
MIN_PYTHON = (3, 11)
CONCURRENCY_QUOTA_CODE = "L-B99A9384"  # Lambda: Concurrent executions (Service Quotas)
UNRESERVED_MINIMUM = 100  # AWS keeps this many executions unreserved in every account and region
LOG_RESOURCE_POLICY_LIMIT = 10  # CloudWatch Logs resource policies per account and region
FORWARD_HOLD_SECONDS = 25  # forward waits this long for an answer (httptunnel.limits)
# "${name_prefix}-bodies-" must fit modules/private_bucket's bucket_prefix (at most 36 characters).
NAME_PREFIX_MAX = 36 - len("-bodies-")

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


Clients = Callable[[str], Any]


def needed_concurrency(values: dict[str, settings.Scalar], streaming_holds: int = 0) -> int:
    """Concurrent executions the configured throttles can ask for at once.

    forward: every public request holds one execution for up to FORWARD_HOLD_SECONDS, so the HTTP
    API's burst plus its rate over that time (the ceiling forward_reserved_concurrency sets, if
    lower). Beside it, what must still run while forward is at its peak: the agents' answers
    (response, one per WebSocket message, each well under a second: the WebSocket rate),
    $connect's burst, and cleanup + stream_notifier (1 each).
    `streaming_holds`: executions held open by streamed responses, counted here once the live-web
    work lands (0 until then: nothing streams today).
    """
    burst = int(values.get("http_throttling_burst_limit") or 0)
    rate = float(values.get("http_throttling_rate_limit") or 0)
    forward = burst + math.ceil(rate * FORWARD_HOLD_SECONDS)
    reserved = values.get("forward_reserved_concurrency")
    if isinstance(reserved, int) and reserved > 0:
        forward = min(forward, reserved)
    answers = math.ceil(float(values.get("websocket_throttling_rate_limit") or 0))
    connects = int(values.get("websocket_connect_throttling_burst_limit") or 0)
    needed = forward + answers + connects + 2 + streaming_holds
    if isinstance(reserved, int) and reserved > 0:
        needed = max(needed, reserved + UNRESERVED_MINIMUM)
    return needed


def quota_request(region: str, value: int) -> str:
    return (f"aws service-quotas request-service-quota-increase --service-code lambda "
            f"--quota-code {CONCURRENCY_QUOTA_CODE} --desired-value {value} --region {region}")


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


# ------------------------------------------------------------------------------------------ checks

def check_credentials(clients: Clients, env: dict[str, str]) -> Check:
    from botocore import exceptions as bx

    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or ""
    login = f"aws sso login --profile {profile}" if profile else "aws sso login"
    try:
        ident = clients("sts").get_caller_identity()
    except (bx.TokenRetrievalError, bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError) as exc:
        return Check("credentials", FAIL, f"the SSO token is missing or expired ({exc.__class__.__name__})", login)
    except bx.NoCredentialsError:
        return Check("credentials", FAIL, "no AWS credentials found",
                     "export AWS_PROFILE=<profile> (see `aws configure list-profiles`), or run `aws configure`")
    except bx.ProfileNotFound as exc:
        return Check("credentials", FAIL, str(exc), "aws configure list-profiles: set AWS_PROFILE to one of them")
    except bx.ClientError as exc:
        code = _error_code(exc)
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return Check("credentials", FAIL, f"the credentials have expired ({code})",
                         login if profile else "refresh the session credentials (AWS_SESSION_TOKEN)")
        return Check("credentials", FAIL, f"sts:GetCallerIdentity failed: {code or exc}",
                     "check the access key / profile (`aws sts get-caller-identity`)")
    except bx.BotoCoreError as exc:
        return Check("credentials", FAIL, f"{exc.__class__.__name__}: {exc}", "check AWS_PROFILE and ~/.aws/config")
    who = f"as {ident.get('Arn')}" + (f" (profile {profile})" if profile else "")
    return Check("credentials", OK, f"account {ident.get('Account')} {who}")


def check_region(region: settings.Region) -> Check:
    if region.source.startswith("nothing set"):
        return Check("region", WARN, f"{region.name} ({region.source})",
                     "export AWS_REGION=<region>, or set region in your profile, if you meant another one")
    return Check("region", OK, f"{region.name} (from {region.source})")


def terraform_version(run: Callable[[list[str]], str] | None = None) -> tuple[int, ...] | None:
    if run is None:
        if shutil.which("terraform") is None:
            return None

        def run(cmd: list[str]) -> str:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).stdout

    out = run(["terraform", "version", "-json"])
    try:
        text = json.loads(out)["terraform_version"]
    except (ValueError, KeyError, TypeError):
        match = re.search(r"v(\d+\.\d+\.\d+)", out)
        if not match:
            return None
        text = match.group(1)
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def check_terraform(version: tuple[int, ...] | None) -> Check:
    fix = ("macOS: brew install hashicorp/tap/terraform (Homebrew's own `terraform` formula stays at 1.5.7); "
           "elsewhere https://developer.hashicorp.com/terraform/install")
    if version is None:
        return Check("terraform", FAIL, "terraform not found on PATH", fix)
    shown = ".".join(map(str, version))
    if version[:2] < MIN_TERRAFORM:
        return Check("terraform", FAIL, f"{shown}: need >= 1.11 (write-only attributes, S3 use_lockfile)", fix)
    return Check("terraform", OK, shown)


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    shown = ".".join(map(str, version))
    if version[:2] < MIN_PYTHON:
        return Check("python", FAIL, f"{shown}: need >= 3.11",
                     "macOS ships 3.9: brew install python@3.12, then make install PYTHON=python3.12")
    return Check("python", OK, shown)


def check_provider_lock(lock_text: str, platform: str) -> Check:
    block = re.search(r'provider "registry.terraform.io/hashicorp/aws" \{(.*?)\n\}', lock_text, re.S)
    if not block:
        return Check("provider lock", FAIL, "terraform/.terraform.lock.hcl has no hashicorp/aws entry",
                     "git checkout terraform/.terraform.lock.hcl")
    zips = re.findall(r'"zh:[0-9a-f]{64}"', block.group(1))
    if not zips:
        fix = ("git checkout terraform/.terraform.lock.hcl (the committed lock holds every platform's hash)"
               if platform != "linux_amd64" else "")
        status = FAIL if platform != "linux_amd64" else WARN
        return Check("provider lock", status,
                     f"no registry (zh:) hashes: init on {platform} cannot verify the provider package", fix)
    return Check("provider lock", OK, f"{len(zips)} registry package hashes (this machine: {platform})")


def check_concurrency(clients: Clients, values: dict[str, settings.Scalar], region: str, allow_low: bool,
                      streaming_holds: int = 0) -> Check:
    from botocore import exceptions as bx

    needed = needed_concurrency(values, streaming_holds)
    try:
        account = clients("lambda").get_account_settings()
    except (bx.ClientError, bx.BotoCoreError) as exc:
        return Check("lambda concurrency", WARN, f"lambda:GetAccountSettings failed ({_error_code(exc) or exc}): "
                     f"the quota is unknown; the throttles need {needed}",
                     f"aws lambda get-account-settings --region {region}")
    limit = int(account.get("AccountLimit", {}).get("ConcurrentExecutions", 0))
    detail = (f"quota {limit}, the throttles need {needed} (forward holds up to "
              f"{FORWARD_HOLD_SECONDS} s per request; plus answers, $connect, cleanup)")
    if limit >= needed:
        return Check("lambda concurrency", OK, detail)
    fix = (f"{quota_request(region, max(needed, 1000))}  (quota {CONCURRENCY_QUOTA_CODE}); or lower "
           "http_throttling_rate_limit / _burst_limit; or --allow-low-concurrency (ALLOW_LOW_CONCURRENCY=1) to deploy anyway")
    if allow_low:
        return Check("lambda concurrency", WARN, detail + "; deploying anyway (--allow-low-concurrency): "
                     "a page load can take every execution and answers then end in 504", fix)
    return Check("lambda concurrency", FAIL, detail + ": about that many parallel requests would take every "
                 "execution and the agents' answers would be throttled (504s)", fix)


def check_certificate(clients: Clients, values: dict[str, settings.Scalar], region: str) -> Check:
    from botocore import exceptions as bx

    domain = str(values.get("domain_name") or "")
    if not domain:
        return Check("certificate", OK, "no domain_name: the execute-api URLs are used")
    arn = str(values.get("certificate_arn") or "")
    if not arn:
        return Check("certificate", FAIL, f"domain_name = {domain} but no certificate_arn",
                     f"aws acm request-certificate --domain-name {domain} --subject-alternative-names '*.{domain}' "
                     f"--validation-method DNS --region {region}; then set certificate_arn")
    arn_region = arn.split(":")[3] if arn.count(":") >= 5 else ""
    if arn_region and arn_region != region:
        return Check("certificate", FAIL, f"certificate in {arn_region}, deploying to {region}: API Gateway "
                     "regional domains need a certificate of their own region", f"request one in {region}")
    try:
        cert = clients("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    except (bx.ClientError, bx.BotoCoreError) as exc:
        return Check("certificate", FAIL, f"acm:DescribeCertificate failed: {_error_code(exc) or exc}",
                     "check certificate_arn")
    status = cert.get("Status")
    if status != "ISSUED":
        return Check("certificate", FAIL, f"{arn.rsplit('/', 1)[-1]} is {status}",
                     "add the DNS validation records ACM lists (aws acm describe-certificate) and wait for ISSUED")
    names = set(cert.get("SubjectAlternativeNames") or []) | {cert.get("DomainName")}
    wanted = [domain, str(values.get("websocket_domain_name") or "") or f"ws.{domain}"]
    if values.get("wildcard_domain", True):
        wanted.append(f"*.{domain}")
    missing = [n for n in wanted if n not in names and f"*.{n.split('.', 1)[-1]}" not in names]
    if missing:
        return Check("certificate", FAIL, f"ISSUED but does not cover {', '.join(missing)}",
                     "request a certificate for <domain> and *.<domain>")
    return Check("certificate", OK, f"ISSUED, covers {', '.join(wanted)}")


def check_cloudfront_certificate(clients: Clients, values: dict[str, settings.Scalar]) -> Check:
    """With a domain on the function_url edge, CloudFront serves <domain> and *.<domain>: its
    certificate must be an ISSUED us-east-1 certificate covering both (``clients`` are us-east-1's)."""
    from botocore import exceptions as bx

    name = "cloudfront certificate"
    domain = str(values.get("domain_name") or "")
    arn = str(values.get("cloudfront_certificate_arn") or "") or str(values.get("certificate_arn") or "")
    request = (f"aws acm request-certificate --region us-east-1 --domain-name {domain} "
               f"--subject-alternative-names '*.{domain}' --validation-method DNS; then set cloudfront_certificate_arn")
    if not arn:
        return Check(name, FAIL, f"domain_name = {domain} on public_edge = function_url but no certificate", request)
    if (arn.split(":")[3] if arn.count(":") >= 5 else "") != "us-east-1":
        return Check(name, FAIL, f"{arn.rsplit('/', 1)[-1]} is not in us-east-1: CloudFront (in front of the function "
                     "URL for <domain> and *.<domain>) uses us-east-1 certificates only", request)
    try:
        cert = clients("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    except (bx.ClientError, bx.BotoCoreError) as exc:
        return Check(name, FAIL, f"acm:DescribeCertificate in us-east-1 failed: {_error_code(exc) or exc}",
                     "check cloudfront_certificate_arn (or certificate_arn)")
    status = cert.get("Status")
    if status != "ISSUED":
        return Check(name, FAIL, f"{arn.rsplit('/', 1)[-1]} is {status}",
                     "add the DNS validation records ACM lists (aws acm describe-certificate --region us-east-1) "
                     "and wait for ISSUED")
    names = set(cert.get("SubjectAlternativeNames") or []) | {cert.get("DomainName")}
    wanted = [domain] + ([f"*.{domain}"] if values.get("wildcard_domain", True) else [])
    missing = [n for n in wanted if n not in names and f"*.{n.split('.', 1)[-1]}" not in names]
    if missing:
        return Check(name, FAIL, f"ISSUED but does not cover {', '.join(missing)}", request)
    return Check(name, OK, f"us-east-1, ISSUED, covers {', '.join(wanted)}")


def check_function_url_permission(clients: Clients, values: dict[str, settings.Scalar]) -> Check:
    """On a deployed function_url edge: forward_stream's policy holds the InvokeFunction statement
    conditioned on lambda:InvokedViaFunctionUrl (make deploy adds it; Terraform cannot), and no
    statement lets anyone invoke it directly."""
    from botocore import exceptions as bx

    from scripts.deploy import function_url

    name = "function URL permission"
    function = f"{values.get('name_prefix')}-forward-stream"
    try:
        statements = function_url.policy_statements(clients("lambda"), function)
    except (bx.ClientError, bx.BotoCoreError) as exc:
        return Check(name, WARN, f"lambda:GetPolicy of {function} failed: {_error_code(exc) or exc}",
                     f"aws lambda get-policy --function-name {function}")
    if statements is None:
        return Check(name, OK, f"{function} is not deployed yet: make deploy adds the statement after the apply")
    opened = function_url.open_invokes(statements)
    if opened:
        return Check(name, FAIL, f"{function} lets anyone invoke it directly ({', '.join(opened)}): any AWS account "
                     "can send it forged events (forged source IP, your bill)",
                     f"aws lambda remove-permission --function-name {function} --statement-id <sid>; make deploy adds "
                     "the conditioned statement")
    if not any(function_url.is_conditioned(s) for s in statements):
        if not function_url.has_url(clients("lambda"), function):
            return Check(name, OK, f"{function} has no function URL yet (public_edge was http_api): make deploy "
                         "adds the statement after the apply creates it")
        return Check(name, WARN, f"{function} lacks lambda:InvokeFunction conditioned on "
                     f"{function_url.CONDITION_KEY}: its function URL answers 403",
                     "make deploy (adds it after the apply; Terraform does not manage it)")
    return Check(name, OK, f"{function}: InvokeFunction only through the function URL")


def check_log_policies(clients: Clients, values: dict[str, settings.Scalar]) -> Check:
    from botocore import exceptions as bx

    ours = f"{values.get('name_prefix')}-events-to-traffic-log"
    try:
        policies = clients("logs").describe_resource_policies().get("resourcePolicies", [])
    except (bx.ClientError, bx.BotoCoreError) as exc:
        return Check("log resource policies", WARN, f"logs:DescribeResourcePolicies failed: {_error_code(exc) or exc}")
    names = [p.get("policyName") for p in policies]
    if ours in names:
        return Check("log resource policies", OK, f"{len(names)} of {LOG_RESOURCE_POLICY_LIMIT}, ours among them")
    if len(names) >= LOG_RESOURCE_POLICY_LIMIT:
        return Check("log resource policies", FAIL,
                     f"{len(names)} of {LOG_RESOURCE_POLICY_LIMIT} per region: the traffic log's policy cannot be added",
                     "aws logs describe-resource-policies: delete one no longer used (aws logs delete-resource-policy)")
    return Check("log resource policies", OK, f"{len(names)} of {LOG_RESOURCE_POLICY_LIMIT}; the deploy adds 1")


def check_names(values: dict[str, settings.Scalar]) -> Check:
    prefix = str(values.get("name_prefix") or "")
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}[a-z0-9]", prefix):
        return Check("names", FAIL, f"name_prefix {prefix!r}: 3-32 lowercase letters, digits or '-', "
                     "starting with a letter", "set name_prefix")
    if len(prefix) > NAME_PREFIX_MAX:
        return Check("names", FAIL, f"name_prefix is {len(prefix)} characters: the body bucket's prefix "
                     f"'{prefix}-bodies-' would pass S3's 36-character prefix limit",
                     f"a name_prefix of at most {NAME_PREFIX_MAX} characters")
    return Check("names", OK, f"name_prefix {prefix} ({len(prefix)} of {NAME_PREFIX_MAX} characters)")


def check_build(build_dir: Path, values: dict[str, settings.Scalar]) -> Check:
    info_path = build_dir / "build.json"
    arch, runtime = values.get("lambda_architecture"), values.get("lambda_runtime")
    build_cmd = f"make build LAMBDA_ARCH={arch} LAMBDA_RUNTIME={runtime}"
    if not info_path.is_file() or not (build_dir / "layer.zip").is_file():
        return Check("build", FAIL, f"no build in {build_dir}", build_cmd)
    info = json.loads(info_path.read_text())
    problems = []
    if info.get("arch") != arch:
        problems.append(f"built for {info.get('arch')}, lambda_architecture = {arch}")
    if info.get("runtime") != runtime:
        problems.append(f"built for {info.get('runtime')}, lambda_runtime = {runtime}")
    if problems:
        return Check("build", FAIL, "; ".join(problems) + " (the layer's compiled packages would not load)", build_cmd)
    return Check("build", OK, f"{info.get('arch')} {info.get('runtime')}")


def existing_resources(clients: Clients, prefix: str) -> list[str]:
    """What this stack's names already name in the account (nothing reads the state here)."""
    from botocore import exceptions as bx

    found: list[str] = []
    probes: list[tuple[str, Callable[[], list[str]]]] = [
        ("ssm", lambda: [p["Name"] for p in clients("ssm").describe_parameters(
            ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/{prefix}/"]}]).get("Parameters", [])]),
        ("logs", lambda: [g["logGroupName"] for g in clients("logs").describe_log_groups(
            logGroupNamePrefix=f"/aws/lambda/{prefix}-").get("logGroups", [])]),
        ("dynamodb", lambda: [t for t in clients("dynamodb").list_tables().get("TableNames", [])
                              if t.startswith(f"{prefix}-")]),
        ("s3", lambda: [b["Name"] for b in clients("s3").list_buckets().get("Buckets", [])
                        if b["Name"].startswith((f"{prefix}-bodies-", f"{prefix}-code-"))]),
    ]
    for _service, probe in probes:
        try:
            found += probe()
        except (bx.ClientError, bx.BotoCoreError):
            continue
    return found


def check_state(clients: Clients, values: dict[str, settings.Scalar], terraform_dir: Path, state_bucket: str) -> Check:
    prefix = str(values.get("name_prefix") or "")
    if state_bucket:
        return Check("state", OK, f"s3://{state_bucket}/{prefix}/terraform.tfstate (use_lockfile)")
    state = settings.local_state(terraform_dir)
    if state.is_file():
        return Check("state", OK, f"local: {state.relative_to(terraform_dir.parent)} (keep it: a re-clone or "
                     "`git clean -x` loses it; STATE_BUCKET=<bucket> keeps it in S3)")
    found = existing_resources(clients, prefix)
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        return Check("state", FAIL, f"no state here, but the account already has {shown}: the apply would "
                     "collide with them",
                     "restore terraform/terraform.tfstate (or STATE_BUCKET=<the bucket that holds it>), or pick "
                     "another name_prefix")
    return Check("state", OK, "new deployment; state will be local: terraform/terraform.tfstate "
                 "(STATE_BUCKET=<bucket> keeps it in S3)")


# ------------------------------------------------------------------------------------------ run

def session_clients(env: dict[str, str], region: str) -> Clients:
    """botocore clients for the user's profile and the deploy's region (one per service)."""
    import botocore.session

    session = botocore.session.Session(profile=env.get("AWS_PROFILE") or None)
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = session.create_client(service, region_name=region)
        return made[service]

    return client


def run_checks(*, env: dict[str, str], var_args: list[str], clients: Clients | None = None,
               terraform_dir: Path = TERRAFORM_DIR, build_dir: Path = BUILD_DIR, allow_low_concurrency: bool = False,
               state_bucket: str = "", tf_version: tuple[int, ...] | None | str = "detect",
               platform: str | None = None, us_east_1: Clients | None = None) -> list[Check]:
    """Every check; ``clients`` answer for the deploy's region, ``us_east_1`` for CloudFront's
    certificates (default: the same profile in us-east-1)."""
    region = settings.region(terraform_dir, env, var_args)
    values = settings.effective(terraform_dir, env, var_args)
    values["aws_region"] = region.name
    if clients is None:
        clients = session_clients(env, region.name)
        us_east_1 = us_east_1 or session_clients(env, "us-east-1")
    version = terraform_version() if tf_version == "detect" else tf_version
    assert not isinstance(version, str)
    checks = [check_credentials(clients, env), check_region(region), check_terraform(version), check_python(),
              check_provider_lock((terraform_dir / ".terraform.lock.hcl").read_text(), platform or settings.platform()),
              check_names(values), check_build(build_dir, values)]
    if checks[0].status == FAIL:  # every AWS question would fail the same way
        return checks
    checks += [check_concurrency(clients, values, region.name, allow_low_concurrency),
               check_certificate(clients, values, region.name), check_log_policies(clients, values),
               check_state(clients, values, terraform_dir, state_bucket)]
    if values.get("public_edge") == "function_url":
        checks.append(check_function_url_permission(clients, values))
        if values.get("domain_name"):
            checks.append(check_cloudfront_certificate(us_east_1 or clients, values))
    return checks


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  {'result':<6}  detail", f"{'-' * width}  ------  ------"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status:<6}  {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':<{width}}  {'':<6}  fix: {c.fix}")
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    lines.append(f"{failed} failed, {warned} warnings, {len(checks) - failed - warned} ok")
    return "\n".join(lines)


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m scripts.deploy.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument("--allow-low-concurrency", action="store_true",
                        default=os.environ.get("ALLOW_LOW_CONCURRENCY", "") not in ("", "0"))
    parser.add_argument("--state-bucket", default=os.environ.get("STATE_BUCKET", ""))
    args = parser.parse_args(argv)
    try:
        var_args = settings.parse_vars(args.var)
    except settings.DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    checks = run_checks(env=dict(os.environ), var_args=var_args, build_dir=args.build_dir,
                        allow_low_concurrency=args.allow_low_concurrency, state_bucket=args.state_bucket)
    print(table(checks))
    return 1 if failed(checks) else 0


if __name__ == "__main__":
    raise SystemExit(main())
