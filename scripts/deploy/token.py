"""Mint an agent token (HS256) with a deployment's own secret.

    make token SUB=alice [SUBDOMAINS=a,b] [TTL=30d] [STACK=1]
    python -m scripts.deploy.token --sub alice [--subdomains a,b] [--ttl 30d]
                                   [--state terraform.tfstate | --stack .local/stack.json]

How agents authenticate comes from Terraform's `agent_auth` output (`terraform output` of
terraform/, or of --state); the secret itself is read from where that output says it lives
(the generated SSM SecureString, or your jwt_secret_arn) through boto3, with the same
credentials as `make deploy` (AWS_PROFILE, ...). `--stack` mints for the local stack instead:
its settings from the state file's auth block, the secret read through SSM from its moto.
Only the token goes to stdout, so `ttf -t "$(make -s token SUB=alice)"` works.

Tokens carry sub, iat, exp, and iss/aud when the deployment checks them; SUBDOMAINS become the
names claim (`tunnel_subdomains` unless jwt_subdomains_claim says otherwise), which lets the
holder reserve them with `ttf --subdomain`. The token is signed here with the standard library.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from httptunnel import auth, routing

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
DEFAULT_TTL_S = 30 * 24 * 3600
MAX_TTL_S = 366 * 24 * 3600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TTL = re.compile(r"(\d+)([smhdw]?)")


class TokenError(Exception):
    """A bad argument or a deployment we cannot mint for: one readable line."""


@dataclass(frozen=True)
class AuthSettings:
    """Terraform's `agent_auth` output (or the local stack's auth block)."""
    anonymous: bool = False
    secret_parameter: str = ""
    secret_arn: str = ""
    issuer: str = ""
    audience: str = ""
    max_lifetime: int = 0
    subdomains_claim: str = "tunnel_subdomains"
    region: str = ""
    endpoint_url: str = ""  # the local stack's moto; "" = AWS

    @classmethod
    def from_outputs(cls, outputs: dict[str, Any]) -> "AuthSettings":
        """From `terraform output -json` (name -> {"value": ...})."""
        value = outputs.get("agent_auth", {}).get("value")
        if not isinstance(value, dict):
            raise TokenError("terraform output has no agent_auth: deploy this version first (make deploy)")
        return cls(anonymous=bool(value.get("anonymous")), secret_parameter=value.get("secret_parameter") or "",
                   secret_arn=value.get("secret_arn") or "", issuer=value.get("issuer") or "",
                   audience=value.get("audience") or "", max_lifetime=int(value.get("max_lifetime") or 0),
                   subdomains_claim=value.get("subdomains_claim") or "tunnel_subdomains",
                   region=value.get("region") or "")

    @classmethod
    def from_stack(cls, state: dict[str, Any]) -> "AuthSettings":
        block = state.get("auth")
        if not isinstance(block, dict):
            raise TokenError("the local stack runs without auth (no auth block in its state file)")
        return cls(secret_parameter=block.get("secret_parameter") or "", issuer=block.get("issuer") or "",
                   audience=block.get("audience") or "", max_lifetime=int(block.get("max_lifetime") or 0),
                   subdomains_claim=block.get("subdomains_claim") or "tunnel_subdomains",
                   region=state.get("region") or "us-east-1", endpoint_url=state.get("aws_endpoint_url") or "")


def parse_ttl(text: str) -> int:
    """'3600', '90m', '12h', '30d', '2w' -> seconds (1 s .. 366 d)."""
    match = _TTL.fullmatch(text.strip().lower())
    if not match:
        raise TokenError(f"TTL must be a number with an optional unit s/m/h/d/w (e.g. 30d), got {text!r}")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not 0 < seconds <= MAX_TTL_S:
        raise TokenError(f"TTL must be between 1 s and 366 d, got {text!r}")
    return seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(secret: str, sub: str, ttl_s: int, *, issuer: str = "", audience: str = "",
         subdomains: tuple[str, ...] = (), subdomains_claim: str = "tunnel_subdomains", max_lifetime: int = 0,
         now: int | None = None) -> str:
    """An HS256 JWT the connect Lambda accepts (checked against the same rules it applies)."""
    if len(secret.encode("utf-8")) < auth.MIN_HS_SECRET_BYTES:
        raise TokenError(f"the secret is shorter than {auth.MIN_HS_SECRET_BYTES} bytes: connect would refuse it")
    if not sub.strip():
        raise TokenError("SUB (the token's subject) must not be empty")
    bad = [name for name in subdomains if not routing.is_valid_name(name)]
    if bad:
        raise TokenError(f"not a valid subdomain name: {bad[0]!r} (3-32 of [a-z0-9-], no leading/trailing '-', "
                         "not 12 letters/digits like a generated id)")
    if max_lifetime and ttl_s > max_lifetime:
        raise TokenError(f"TTL {ttl_s} s exceeds this deployment's jwt_max_lifetime ({max_lifetime} s)")
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {"sub": sub.strip(), "iat": issued, "exp": issued + ttl_s}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    if subdomains:
        claims[subdomains_claim] = list(subdomains)
    signing_input = (_b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode()) + "."
                     + _b64(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def read_secret(settings: AuthSettings) -> str:
    """The HS256 secret, from SSM (SecureString, decrypted) or Secrets Manager."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    kwargs: dict[str, Any] = {}
    if settings.region:
        kwargs["region_name"] = settings.region
    if settings.endpoint_url:  # the local stack's moto (or a LocalStack): any credentials do
        kwargs["endpoint_url"] = settings.endpoint_url
        if not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
            kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        if settings.secret_parameter:
            out = boto3.client("ssm", **kwargs).get_parameter(Name=settings.secret_parameter, WithDecryption=True)
            return str(out["Parameter"]["Value"])
        if settings.secret_arn:
            return str(boto3.client("secretsmanager", **kwargs).get_secret_value(
                SecretId=settings.secret_arn)["SecretString"])
    except (BotoCoreError, ClientError) as exc:
        where = settings.secret_parameter or settings.secret_arn
        raise TokenError(f"cannot read the agent secret {where}: {exc}") from None
    raise TokenError("this deployment's HS secret is a plain jwt_secret value, not in SSM or Secrets Manager: "
                     "sign tokens with it yourself, or drop it and let Terraform generate one")


def terraform_outputs(state: Path | None = None) -> dict[str, Any]:
    """`terraform output -json` of terraform/ (or of a state file)."""
    from scripts import tfenv

    args = ["output", "-json", "-no-color"] + ([f"-state={state}"] if state else [])
    try:
        proc = tfenv.terraform(args, TERRAFORM_DIR, tfenv.terraform_env(), check=False)
    except FileNotFoundError:
        raise TokenError("terraform not found on PATH") from None
    if proc.returncode != 0:
        raise TokenError(f"terraform output failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    outputs = json.loads(proc.stdout or "{}")
    if not outputs:
        raise TokenError("no deployment found (terraform output is empty): run make deploy first")
    return outputs


def token_for(settings: AuthSettings, sub: str, ttl_s: int | None = None, subdomains: tuple[str, ...] = ()) -> str:
    """Read the deployment's secret and mint; ttl_s None = 30 days, or the deployment's maximum if shorter."""
    if settings.anonymous:
        raise TokenError("this deployment lets anonymous agents connect (allow_anonymous_agents): no token needed")
    if ttl_s is None:
        ttl_s = min(DEFAULT_TTL_S, settings.max_lifetime or DEFAULT_TTL_S)
    return mint(read_secret(settings), sub, ttl_s, issuer=settings.issuer, audience=settings.audience,
                subdomains=subdomains, subdomains_claim=settings.subdomains_claim,
                max_lifetime=settings.max_lifetime)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make token", description="Mint an agent token with the deployed secret.")
    parser.add_argument("--sub", required=True, help="the token's subject: who this agent is (owner of its names)")
    parser.add_argument("--subdomains", default="", help="comma-separated names the holder may reserve")
    parser.add_argument("--ttl", default="", help="lifetime, e.g. 3600, 12h, 30d (default 30d)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state", type=Path, help="terraform state file of the deployment (default: terraform/)")
    where.add_argument("--stack", type=Path, help="mint for the local stack described by this state file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.sub.strip():
            raise TokenError("SUB is required: make token SUB=alice (the token's subject)")
        subdomains = tuple(n.strip().lower() for n in args.subdomains.split(",") if n.strip())
        ttl_s = parse_ttl(args.ttl) if args.ttl else None
        if args.stack:
            try:
                settings = AuthSettings.from_stack(json.loads(args.stack.read_text()))
            except (OSError, ValueError) as exc:
                raise TokenError(f"cannot read the local stack's state {args.stack}: {exc}") from None
        else:
            settings = AuthSettings.from_outputs(terraform_outputs(args.state))
        print(token_for(settings, args.sub, ttl_s, subdomains))
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
