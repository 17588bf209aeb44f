"""The Terraform variables a deploy will run with, as far as the preflight needs them, and the region.

Terraform's own precedence, for the scalar variables the preflight reads (strings, numbers,
booleans, null): the default in terraform/variables.tf, then TF_VAR_<name> from the environment,
then terraform/terraform.tfvars, then terraform/*.auto.tfvars (in name order), then `--var`.
Maps, lists and multi-line values are not read (the preflight needs none of them);
tests/infra/test_doctor.py checks this reading against `terraform console`.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass
from pathlib import Path

Scalar = str | int | float | bool | None


class DeployError(RuntimeError):
    """A precondition failed or a command exited non-zero."""


def parse_vars(items: list[str]) -> list[str]:
    """--var name=value items -> terraform -var arguments (validated)."""
    args = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise DeployError(f"--var needs name=value, got {item!r}")
        args.append(f"-var={name.strip()}={value}")
    return args

_VARIABLE = re.compile(r'^variable\s+"([A-Za-z0-9_]+)"\s*\{(.*?)^\}', re.S | re.M)
_DEFAULT = re.compile(r"^\s{2}default\s*=\s*(.+?)\s*$", re.M)
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.+?)\s*$", re.M)
DEFAULT_REGION = "us-east-1"  # terraform/variables.tf's aws_region default


def parse_scalar(text: str) -> tuple[bool, Scalar]:
    """(True, value) for an HCL string/number/bool/null literal; (False, None) for anything else."""
    text = re.sub(r"\s+#.*$", "", text.strip())
    if text == "null":
        return True, None
    if text in ("true", "false"):
        return True, text == "true"
    if re.fullmatch(r"-?\d+", text):
        return True, int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return True, float(text)
    if len(text) >= 2 and text[0] == text[-1] == '"' and "${" not in text:
        try:
            return True, json.loads(text)
        except ValueError:
            return False, None
    return False, None


def defaults(terraform_dir: Path) -> dict[str, Scalar]:
    values: dict[str, Scalar] = {}
    for name, body in _VARIABLE.findall((terraform_dir / "variables.tf").read_text()):
        match = _DEFAULT.search(body)
        if match:
            ok, value = parse_scalar(match.group(1))
            if ok:
                values[name] = value
    return values


def tfvars_file(path: Path) -> dict[str, Scalar]:
    values: dict[str, Scalar] = {}
    for name, raw in _ASSIGN.findall(path.read_text()):
        ok, value = parse_scalar(raw)
        if ok:
            values[name] = value
    return values


def cli_var(item: str) -> tuple[str, Scalar]:
    """A `-var=name=value` argument (what scripts.deploy.parse_vars makes), as Terraform reads it."""
    name, _, value = item.removeprefix("-var=").partition("=")
    ok, parsed = parse_scalar(value)
    return name, parsed if ok and not isinstance(parsed, str) else value


def effective(terraform_dir: Path, env: dict[str, str], var_args: list[str]) -> dict[str, Scalar]:
    values = defaults(terraform_dir)
    for key, raw in env.items():
        if key.startswith("TF_VAR_"):
            ok, parsed = parse_scalar(raw)
            values[key[7:]] = parsed if ok and not isinstance(parsed, str) else raw
    files = [terraform_dir / "terraform.tfvars", *sorted(terraform_dir.glob("*.auto.tfvars"))]
    for path in files:
        if path.is_file():
            values.update(tfvars_file(path))
    for item in var_args:
        name, value = cli_var(item)
        values[name] = value
    return values


@dataclass(frozen=True)
class Region:
    name: str
    source: str


def profile_region(env: dict[str, str]) -> str | None:
    """The region configured for AWS_PROFILE (or the default profile) in ~/.aws/config."""
    path = Path(env.get("AWS_CONFIG_FILE") or Path(env.get("HOME", str(Path.home()))) / ".aws" / "config")
    if not path.is_file():
        return None
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return None
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    section = "default" if profile == "default" else f"profile {profile}"
    region = parser.get(section, "region", fallback=None) if parser.has_section(section) else None
    return region.strip() if region else None


def region(terraform_dir: Path, env: dict[str, str], var_args: list[str]) -> Region:
    """Where the deploy goes, and why: --var aws_region, a tfvars file, AWS_REGION, AWS_DEFAULT_REGION,
    the profile's configured region, else the variable's default (us-east-1)."""
    for item in reversed(var_args):
        name, value = cli_var(item)
        if name == "aws_region":
            return Region(str(value), "--var aws_region")
    files = [terraform_dir / "terraform.tfvars", *sorted(terraform_dir.glob("*.auto.tfvars"))]
    for path in reversed(files):
        if path.is_file() and isinstance(tfvars_file(path).get("aws_region"), str):
            return Region(str(tfvars_file(path)["aws_region"]), f"aws_region in terraform/{path.name}")
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(key):
            return Region(env[key], key)
    configured = profile_region(env)
    if configured:
        profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
        return Region(configured, f"region of profile {profile} (~/.aws/config)")
    return Region(DEFAULT_REGION, "nothing set: the aws_region variable's default")


def local_state(terraform_dir: Path) -> Path:
    return terraform_dir / "terraform.tfstate"


def platform() -> str:
    """Terraform's name for this machine's platform (darwin_arm64, linux_amd64, windows_amd64, ...)."""
    import platform as _platform

    system = _platform.system().lower()
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{system}_{arch}"
