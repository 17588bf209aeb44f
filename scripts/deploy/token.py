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
import json
import sys
from pathlib import Path
from typing import Any

# The core lives in scripts/tokens.py (the local stack mints its dev token with it too); these
# names stay importable from here.
from scripts.tokens import (DEFAULT_TTL_S, MAX_TTL_S, AuthSettings, TokenError, mint, parse_ttl,  # noqa: F401
                            read_secret)

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"


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
