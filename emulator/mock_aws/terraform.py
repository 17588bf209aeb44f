"""Apply the SAME root module (terraform/) to a moto server, fast and offline.

    from emulator.mock_aws.terraform import apply_local
    outputs = apply_local("http://127.0.0.1:5000", ROOT / "build" / "local", state_dir, {})

    python -m emulator.mock_aws.terraform apply   --endpoint http://127.0.0.1:5000 --state-dir .local/stack
    python -m emulator.mock_aws.terraform destroy --endpoint http://127.0.0.1:5000 --state-dir .local/stack

What makes it fast without a second, hand-written setup:
- `terraform init` runs once into .local/tf-local/ (TF_DATA_DIR) and is reused until a
  .tf file under terraform/ changes; only the state lives in state_dir.
- `local_fast_apply = true` keeps every resource but skips the provider's waits that only
  make sense on real AWS (see terraform/variables_local_stack.tf).
- high -parallelism (moto answers instantly; the graph is wide).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from scripts import tfenv

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
DATA_DIR = ROOT / ".local" / "tf-local"
PARALLELISM = 30
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class TerraformError(RuntimeError):
    """A terraform command failed; the message holds its output tail."""


def local_env(moto_endpoint: str, region: str = "us-east-1") -> dict[str, str]:
    """Environment for terraform against moto: endpoint, dummy keys, no profile, offline init."""
    if not moto_endpoint.startswith(("http://", "https://")):
        raise ValueError(f"moto_endpoint must be an http(s) URL, got {moto_endpoint!r}")
    base = {k: v for k, v in os.environ.items()
            if not (k.startswith("AWS_") or k.startswith("TF_VAR_"))}
    env = tfenv.terraform_env(base, data_dir=DATA_DIR)
    env.update(DUMMY_CREDENTIALS)
    env.update({"AWS_ENDPOINT_URL": moto_endpoint.rstrip("/"), "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region, "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def _config_digest() -> str:
    """Hash of every .tf file of the root module and its modules (what init depends on)."""
    h = hashlib.sha256()
    for path in sorted(TERRAFORM_DIR.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        h.update(str(path.relative_to(TERRAFORM_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _run(args: list[str], env: dict[str, str], timeout: float = 900) -> str:
    proc = tfenv.terraform(args, TERRAFORM_DIR, env, check=False, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout[-3000:] + "\n" + proc.stderr[-6000:]).strip()
        raise TerraformError(f"terraform {args[0]} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def ensure_init(env: dict[str, str]) -> bool:
    """Run `terraform init` into DATA_DIR unless it is current. Returns True when it ran.

    A file lock serialises concurrent callers (parallel tests share DATA_DIR)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    stamp = DATA_DIR / ".init-digest"
    with open(DATA_DIR / ".init-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = _config_digest()
        if stamp.exists() and stamp.read_text() == digest and (DATA_DIR / "providers").is_dir():
            return False
        _run(["init", "-input=false", "-no-color", "-backend=false"], env)
        stamp.write_text(digest)
        return True


def local_vars(build_dir: Path, extra_vars: dict) -> dict:
    """Variables of a local apply: the build's arch/runtime, fast mode, then extra_vars."""
    build_dir = Path(build_dir).resolve()
    if not (build_dir / "layer.zip").is_file():
        raise FileNotFoundError(f"{build_dir}/layer.zip not found: run `make build-local` first")
    info_path = build_dir / "build.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    values = {
        "build_dir": str(build_dir),
        "local_fast_apply": True,
        "local_plain_http": True,  # moto over http:// would refuse everything under the TLS-only bucket policies
        "log_retention_days": 1,
    }
    if info.get("arch"):
        values["lambda_architecture"] = info["arch"]
    if info.get("runtime"):
        values["lambda_runtime"] = info["runtime"]
    values.update(extra_vars or {})
    return values


def _write_vars(state_dir: Path, values: dict) -> Path:
    path = state_dir / "local.tfvars.json"
    path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    return path


def outputs(state_dir: Path, env: dict[str, str]) -> dict:
    """`terraform output -json` of the state in state_dir, as name -> value."""
    state = Path(state_dir).resolve() / "terraform.tfstate"
    raw = json.loads(_run(["output", "-json", "-no-color", f"-state={state}"], env))
    return {name: item["value"] for name, item in raw.items()}


def apply_local(moto_endpoint: str, build_dir: Path, state_dir: Path, extra_vars: dict) -> dict:
    """Apply terraform/ to the moto server at moto_endpoint; return the outputs (name -> value).

    Re-applying with the same state_dir only changes what changed. Raises TerraformError with
    terraform's output when it fails, FileNotFoundError when the build is missing."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = local_env(moto_endpoint, str((extra_vars or {}).get("aws_region", "us-east-1")))
    var_file = _write_vars(state_dir, local_vars(build_dir, extra_vars))
    ensure_init(env)
    _run(["apply", "-auto-approve", "-input=false", "-no-color", f"-parallelism={PARALLELISM}",
          f"-var-file={var_file}", f"-state={state_dir / 'terraform.tfstate'}"], env)
    return outputs(state_dir, env)


def destroy_local(moto_endpoint: str, state_dir: Path) -> None:
    """Destroy what apply_local created (same variables, read back from state_dir)."""
    state_dir = Path(state_dir).resolve()
    var_file = state_dir / "local.tfvars.json"
    if not var_file.is_file():
        raise FileNotFoundError(f"{var_file} not found: nothing was applied in {state_dir}")
    env = local_env(moto_endpoint)
    ensure_init(env)
    _run(["destroy", "-auto-approve", "-input=false", "-no-color", f"-parallelism={PARALLELISM}",
          f"-var-file={var_file}", f"-state={state_dir / 'terraform.tfstate'}"], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="terraform apply/destroy of terraform/ against moto")
    parser.add_argument("action", choices=("apply", "destroy", "output"))
    parser.add_argument("--endpoint", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "local")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local" / "stack")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="extra terraform variable (repeatable)")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--var needs NAME=VALUE, got {item!r}")
        extra[name] = value
    try:
        started = time.monotonic()
        if args.action == "apply":
            print(json.dumps(apply_local(args.endpoint, args.build_dir, args.state_dir, extra), indent=2))
        elif args.action == "destroy":
            destroy_local(args.endpoint, args.state_dir)
        else:
            print(json.dumps(outputs(args.state_dir, local_env(args.endpoint)), indent=2))
        print(f"{args.action}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    except (TerraformError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
