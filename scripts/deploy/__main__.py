"""Deploy http-tunnel with Terraform.

    python -m scripts.deploy apply       # real AWS: the preflight (scripts/deploy/doctor.py), then apply;
                                         # AWS_PROFILE / AWS_REGION; prints the ttf line with a token
    python -m scripts.deploy destroy     # real AWS
    python -m scripts.deploy localstack  # tflocal against a running LocalStack with API Gateway v2

Extra Terraform variables: `--var name=value` (repeatable) or a terraform.tfvars file in
terraform/. State is local (terraform/terraform.tfstate) unless `--state-bucket B` (make deploy
STATE_BUCKET=B) keeps it in S3 at <name_prefix>/terraform.tfstate with a lock file beside it
(use_lockfile, Terraform >= 1.10): for that run only, terraform/backend_s3_override.tf (ignored by
git) declares the S3 backend; an existing local state is copied there.
`make deploy` / `make destroy` / `make localstack-deploy` call this script.
After an apply on the function_url edge it adds forward_stream's lambda:InvokeFunction statement
conditioned on lambda:InvokedViaFunctionUrl (Terraform cannot: scripts/deploy/function_url.py).
After an apply it mints a token for the operator (subject `operator`, 7 days) with the
deployment's own secret and prints a ready `ttf -e ... -t ...` line. The token itself is printed
only to a terminal: when stdout is not a TTY (CI logs keep it), it goes to .local/operator-token
(mode 0600) and the line reads it from there. A deployment that lets anonymous agents in gets a
warning instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts import tfenv
from scripts.deploy import doctor, function_url, settings, token
from scripts.deploy.settings import DeployError, parse_vars

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
LOCALSTACK_DATA_DIR = ROOT / ".local" / "tf-localstack"
LOCALSTACK_STATE = ROOT / ".local" / "localstack" / "terraform.tfstate"


BACKEND_FILE = TERRAFORM_DIR / "backend_s3_override.tf"
BACKEND_TEXT = ('# Written by scripts/deploy for a run with --state-bucket, removed after it (ignored by git).\n'
                'terraform {\n  backend "s3" {}\n}\n')


def aws_env(base: dict[str, str], var_args: list[str] | None = None) -> dict[str, str]:
    """Environment for real AWS: the user's profile, the region the preflight names (AWS_REGION,
    AWS_DEFAULT_REGION, else the profile's own region), never a leftover local endpoint."""
    env = tfenv.terraform_env(base)
    for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
        del env[key]
    region = settings.region(TERRAFORM_DIR, env, var_args or [])
    env["TF_VAR_aws_region"] = region.name  # a tfvars file or --var still wins, as in Terraform
    env.setdefault("AWS_REGION", region.name)  # the S3 backend and the provider agree with it
    return env


def backend_args(state_bucket: str, prefix: str, region: str) -> list[str]:
    """`terraform init` arguments of the optional S3 backend (empty: local state)."""
    if not state_bucket:
        return []
    return [f"-backend-config=bucket={state_bucket}", f"-backend-config=key={prefix}/terraform.tfstate",
            f"-backend-config=region={region}", "-backend-config=use_lockfile=true", "-backend-config=encrypt=true",
            "-migrate-state", "-force-copy"]


def localstack_env(base: dict[str, str], endpoint: str) -> dict[str, str]:
    """Environment for tflocal: LocalStack's endpoint and its test credentials."""
    env = tfenv.terraform_env(base, data_dir=LOCALSTACK_DATA_DIR)
    env["AWS_ENDPOINT_URL"] = endpoint
    env.setdefault("AWS_ACCESS_KEY_ID", "test")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    env["TF_VAR_aws_region"] = env["AWS_DEFAULT_REGION"]
    # tflocal builds its provider override from AWS_ENDPOINT_URL (older releases: LOCALSTACK_HOSTNAME).
    env.setdefault("LOCALSTACK_HOSTNAME", endpoint.split("://", 1)[-1].split(":", 1)[0])
    return env


def build_check(build_dir: Path, arch_hint: str = "make build") -> None:
    missing = [p for p in [build_dir / "layer.zip"] if not p.is_file()]
    if missing:
        raise DeployError(f"{missing[0]} not found: run `{arch_hint}` first")


def commands(action: str, var_args: list[str], auto_approve: bool, tool: str = "terraform",
             state: Path | None = None, init_args: list[str] | None = None) -> list[list[str]]:
    """The terraform (or tflocal) command lines an action runs, in order."""
    chdir = f"-chdir={TERRAFORM_DIR}"
    approve = ["-auto-approve"] if auto_approve else []
    state_args = [f"-state={state}"] if state else []
    init = [tool, chdir, "init", "-input=false", *(init_args or [])]
    if action == "apply" or action == "localstack":
        return [init,
                [tool, chdir, "apply", "-input=false", *approve, *state_args, *var_args],
                [tool, chdir, "output", "-json", *state_args]]
    if action == "destroy":
        return [init, [tool, chdir, "destroy", "-input=false", *approve, *state_args, *var_args]]
    raise DeployError(f"unknown action {action!r}")


OPERATOR_SUB = "operator"
OPERATOR_TTL_S = 7 * 24 * 3600  # short: it may be pasted into places that keep it
TOKEN_FILE = ROOT / ".local" / "operator-token"
ANONYMOUS_WARNING = ("WARNING: allow_anonymous_agents = true: anyone who finds {ws_url} can open tunnels with "
                     "public URLs on this deployment's domain and certificate. Remove it to require tokens.")


def token_text(agent_token: str, tty: bool, path: Path = TOKEN_FILE) -> str:
    """What the ttf line shows for the token: the token on a terminal; otherwise a shell
    substitution reading it from ``path``, written with mode 0600 (never into a CI log)."""
    if tty:
        return agent_token
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT: set it
        os.write(fd, agent_token.encode("ascii") + b"\n")
    finally:
        os.close(fd)
    os.replace(partial, path)
    return f'"$(cat {path})"'


def ttf_line(outputs: dict, agent_token: str | None = None) -> str:
    """What to run next: the ttf line, with the operator's token unless agents are anonymous."""
    ws_url = outputs.get("ws_url", {}).get("value")
    http_url = outputs.get("http_url", {}).get("value")
    if not ws_url:
        raise DeployError("terraform output has no ws_url")
    dashboard = outputs.get("dashboard_url", {}).get("value")
    head = f"Public URL base: {http_url}\n" + (f"Dashboard: {dashboard}\n" if dashboard else "")
    if agent_token is None:
        return (f"{ANONYMOUS_WARNING.format(ws_url=ws_url)}\n\n{head}"
                f"Run the agent next to your app:\n\n    ttf -e {ws_url} -p 3000\n")
    return (f"{head}Run the agent next to your app (token for '{OPERATOR_SUB}', valid 7 days; "
            f"more with `make token SUB=name`):\n\n    ttf -e {ws_url} -t {agent_token} -p 3000\n")


def operator_token(outputs: dict, endpoint_url: str = "") -> str | None:
    """A token for the operator, minted with the deployed secret; None when agents are anonymous."""
    try:
        settings = dataclasses.replace(token.AuthSettings.from_outputs(outputs), endpoint_url=endpoint_url)
        if settings.anonymous:
            return None
        return token.token_for(settings, OPERATOR_SUB, min(OPERATOR_TTL_S, settings.max_lifetime or OPERATOR_TTL_S))
    except token.TokenError as exc:
        raise DeployError(f"deployed, but no token could be minted: {exc}") from None


def grant_function_url(outputs: dict, env: dict[str, str], clients: doctor.Clients | None = None) -> str:
    """After an apply on the function_url edge: the InvokeFunction statement conditioned on
    lambda:InvokedViaFunctionUrl, which Terraform cannot write (scripts/deploy/function_url.py)."""
    from botocore import exceptions as bx

    statement = function_url.wanted(outputs)
    if statement is None:
        return "public_edge = http_api: no function URL to grant"
    clients = clients or doctor.session_clients(env, env["TF_VAR_aws_region"])
    try:
        return function_url.ensure(clients("lambda"), statement)
    except (bx.ClientError, bx.BotoCoreError, LookupError) as exc:
        raise DeployError(f"deployed, but the function URL's lambda:InvokeFunction statement could not be added "
                          f"({exc}): the URL answers 403 until it is; run make deploy again") from None


def check_localstack(endpoint: str) -> None:
    """Fail early, with a clear message, when LocalStack is not there or lacks API Gateway v2."""
    import localstack_client.session  # the design card: scripts talking to LocalStack use it

    session = localstack_client.session.Session(localstack_host=endpoint.split("://", 1)[-1])
    try:
        session.client("apigatewayv2").get_apis()
    except Exception as exc:  # noqa: BLE001 - any failure means we cannot deploy there
        raise DeployError(
            f"LocalStack at {endpoint} does not answer API Gateway v2 ({exc.__class__.__name__}: {exc}). "
            "API Gateway v2 (HTTP + WebSocket APIs) needs LocalStack Pro (or Ultimate/Enterprise), "
            "started with LOCALSTACK_AUTH_TOKEN set; the free Community image lacks it."
        ) from None


def run(cmds: list[list[str]], env: dict[str, str]) -> str:
    output = ""
    for cmd in cmds:
        capture = cmd[2] == "output"
        proc = subprocess.run(cmd, env=env, text=True, capture_output=capture)
        if proc.returncode != 0:
            raise DeployError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode})"
                              + (f":\n{proc.stderr}" if capture else ""))
        if capture:
            output = proc.stdout
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Deploy http-tunnel with Terraform")
    parser.add_argument("action", choices=("apply", "destroy", "localstack"))
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="terraform variable (repeatable)")
    parser.add_argument("--yes", action="store_true", help="skip terraform's confirmation prompt")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--localstack-endpoint", default=os.environ.get("LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566"))
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--state-bucket", default=os.environ.get("STATE_BUCKET", ""),
                        help="keep the state in this S3 bucket (use_lockfile) instead of terraform/terraform.tfstate")
    parser.add_argument("--allow-low-concurrency", action="store_true",
                        default=os.environ.get("ALLOW_LOW_CONCURRENCY", "") not in ("", "0"),
                        help="deploy although the Lambda concurrency quota is below what the throttles need")
    parser.add_argument("--skip-doctor", action="store_true", help="apply without the preflight checks")
    args = parser.parse_args(argv)

    try:
        var_args = parse_vars(args.var)
        if args.action in ("apply", "localstack"):
            build_check(args.build_dir)
            var_args.insert(0, f"-var=build_dir={args.build_dir.resolve()}")
        if args.action == "localstack":
            tool = "tflocal"
            cmds = commands("localstack", var_args, auto_approve=True, tool=tool, state=LOCALSTACK_STATE)
        else:
            tool = "terraform"
            env = aws_env(dict(os.environ), var_args)
            values = settings.effective(TERRAFORM_DIR, env, var_args)
            init_args = backend_args(args.state_bucket, str(values.get("name_prefix")), env["TF_VAR_aws_region"])
            cmds = commands(args.action, var_args, auto_approve=args.yes, init_args=init_args)
        if args.dry_run:
            print("\n".join(" ".join(c) for c in cmds))
            return 0
        if shutil.which(tool) is None:
            hint = " (pip install terraform-local)" if tool == "tflocal" else ""
            raise DeployError(f"{tool} not found on PATH{hint}")
        if args.action == "localstack":
            LOCALSTACK_STATE.parent.mkdir(parents=True, exist_ok=True)
            check_localstack(args.localstack_endpoint)
            env = localstack_env(dict(os.environ), args.localstack_endpoint)
        else:
            if not (os.environ.get("AWS_PROFILE") or os.environ.get("AWS_ACCESS_KEY_ID")):
                print("note: neither AWS_PROFILE nor AWS_ACCESS_KEY_ID is set; using the default credential chain",
                      file=sys.stderr)
            if args.action == "apply" and not args.skip_doctor:
                checks = doctor.run_checks(env=dict(os.environ), var_args=var_args, build_dir=args.build_dir,
                                           allow_low_concurrency=args.allow_low_concurrency,
                                           state_bucket=args.state_bucket)
                print(doctor.table(checks) + "\n", flush=True)
                if doctor.failed(checks):
                    raise DeployError("the preflight found what would fail (above); nothing was applied")
        if args.state_bucket and tool == "terraform":
            BACKEND_FILE.write_text(BACKEND_TEXT)
        try:
            out = run(cmds, env)
        finally:
            BACKEND_FILE.unlink(missing_ok=True)
        if args.action != "destroy":
            outputs = json.loads(out)
            if args.action == "apply":
                print(grant_function_url(outputs, env))
            endpoint = args.localstack_endpoint if args.action == "localstack" else ""
            minted = operator_token(outputs, endpoint)
            print(ttf_line(outputs, None if minted is None else token_text(minted, sys.stdout.isatty())))
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
