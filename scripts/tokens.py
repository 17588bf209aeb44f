"""Agent tokens (HS256) minted with a deployment's own secret: what the local stack's dev token
(emulator/stack.py) and `make token` (scripts/deploy/token.py) share. The emulator may import
it (ARCHITECTURE.md: the emulator takes from scripts/ only the harness and the shared helpers,
scripts.tfenv and this module); `make token`'s command line and Terraform reading stay in
scripts/deploy/token.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from httptunnel import auth, routing

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
