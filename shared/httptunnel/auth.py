"""JWT verification for $connect (PyJWT).

* HS256/384/512 verified with the shared secret (``JWT_SECRET``, or fetched once per
  container from SSM ``JWT_SECRET_SSM_PARAMETER`` / Secrets Manager ``JWT_SECRET_ARN``).
* RS256/384/512 verified with an RSA key from a JWKS (``JWKS`` inline JSON, or ``JWKS_URL``
  fetched over HTTPS and cached for ``JWKS_CACHE_S``; an unknown ``kid`` triggers at most
  one refetch per ``JWKS_REFETCH_MIN_S``).
* ``exp`` and ``sub`` are required; ``nbf``/``iat`` are checked when present; ``iss``/``aud``
  when ``JWT_ISSUER``/``JWT_AUDIENCE`` are set.
* Rejected: ``alg: none``, any algorithm without configured key material of ITS family
  (an HS token is never checked against an RSA public key), unknown ``kid``, bad signature.
* Auth required with no key material at all: ``ConfigError`` (the handler answers 500), never
  a built-in default.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError, PyJWKError

from . import aws, config

HS_ALGS = ("HS256", "HS384", "HS512")
RS_ALGS = ("RS256", "RS384", "RS512")
LEEWAY_S = 5
JWKS_CACHE_S = 300
JWKS_REFETCH_MIN_S = 30
JWKS_FETCH_TIMEOUT_S = 3
MAX_TOKEN_LEN = 8192


class Unauthorized(Exception):
    """Token missing or invalid (the reason is logged, never the token)."""


@dataclass(frozen=True)
class Identity:
    subject: str
    claims: dict[str, Any]


# --------------------------------------------------------------------------- key material

@functools.lru_cache(maxsize=4)
def _secret_from_ssm(name: str) -> str:
    out = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)
    return str(out["Parameter"]["Value"])


@functools.lru_cache(maxsize=4)
def _secret_from_secrets_manager(arn: str) -> str:
    return str(aws.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def hs_secret() -> str:
    if config.jwt_secret():
        return config.jwt_secret()
    if config.jwt_secret_ssm_parameter():
        return _secret_from_ssm(config.jwt_secret_ssm_parameter())
    if config.jwt_secret_arn():
        return _secret_from_secrets_manager(config.jwt_secret_arn())
    return ""


@dataclass(frozen=True)
class _CachedJwks:
    keys: dict[str, Any]  # kid -> RSA public key ("" kid when the JWK had none)
    fetched_at: float


_jwks_lock = threading.Lock()
_jwks_cache: dict[str, _CachedJwks] = {}


def _parse_jwks(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise config.ConfigError("JWKS is not valid JSON") from None
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise config.ConfigError("JWKS must be an object with a 'keys' list")
    keys: dict[str, Any] = {}
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue  # only RSA signing keys: an 'oct' key here would re-open HS confusion
        try:
            keys[str(jwk.get("kid", ""))] = jwt.PyJWK(jwk, algorithm="RS256").key
        except PyJWKError:
            continue
    return keys


def _fetch_jwks(url: str) -> str:
    with urllib.request.urlopen(url, timeout=JWKS_FETCH_TIMEOUT_S) as resp:  # noqa: S310 (configured URL)
        body: bytes = resp.read(1_000_000)
        return body.decode("utf-8")


def _jwks_from_url(url: str, kid: str) -> dict[str, Any]:
    now = time.monotonic()
    with _jwks_lock:
        cached = _jwks_cache.get(url)
        fresh = cached is not None and now - cached.fetched_at < JWKS_CACHE_S
        may_refetch = cached is None or now - cached.fetched_at >= JWKS_REFETCH_MIN_S
        if cached is not None and (fresh and (kid in cached.keys or not may_refetch)):
            return cached.keys
        try:
            keys = _parse_jwks(_fetch_jwks(url))
        except (OSError, ValueError) as exc:
            if cached is not None:
                return cached.keys  # keep serving the last good set while the IdP is down
            raise Unauthorized(f"JWKS fetch failed: {type(exc).__name__}") from None
        _jwks_cache[url] = _CachedJwks(keys=keys, fetched_at=now)
        return keys


def clear_caches() -> None:
    with _jwks_lock:
        _jwks_cache.clear()
    _secret_from_ssm.cache_clear()
    _secret_from_secrets_manager.cache_clear()


def rsa_keys(kid: str) -> dict[str, Any]:
    if config.jwks():
        return _parse_jwks(config.jwks())
    if config.jwks_url():
        return _jwks_from_url(config.jwks_url(), kid)
    return {}


def check_configured() -> None:
    """Raise ConfigError when auth is required but no key material is configured."""
    if not (config.jwt_secret() or config.jwt_secret_ssm_parameter() or config.jwt_secret_arn()
            or config.jwks() or config.jwks_url()):
        raise config.ConfigError("REQUIRE_AUTH=true but no JWT_SECRET*/JWKS/JWKS_URL is configured")


# --------------------------------------------------------------------------- verification

def _key_for(header: dict[str, Any]) -> Any:
    alg = header.get("alg")
    if alg in HS_ALGS:
        secret = hs_secret()
        if not secret:
            raise Unauthorized(f"{alg} tokens are not accepted (no shared secret configured)")
        return secret
    if alg in RS_ALGS:
        kid = str(header.get("kid", ""))
        keys = rsa_keys(kid)
        if not keys:
            raise Unauthorized(f"{alg} tokens are not accepted (no JWKS configured)")
        if kid in keys:
            return keys[kid]
        if not kid and len(keys) == 1:
            return next(iter(keys.values()))
        raise Unauthorized("unknown kid")
    raise Unauthorized(f"algorithm not allowed: {alg!r}")


def verify(token: str) -> Identity:
    """Verify a JWT; raises Unauthorized with a loggable reason (no token content)."""
    if not token or len(token) > MAX_TOKEN_LEN:
        raise Unauthorized("missing or oversized token")
    try:
        header = jwt.get_unverified_header(token)
    except InvalidTokenError:
        raise Unauthorized("malformed token") from None
    key = _key_for(header)
    issuer = config.jwt_issuer() or None
    audience = config.jwt_audience() or None
    options: jwt.types.Options = {"require": ["exp", "sub"], "verify_aud": audience is not None}
    try:
        claims = jwt.decode(token, key=key, algorithms=[header["alg"]], issuer=issuer, audience=audience,
                            options=options, leeway=LEEWAY_S)
    except InvalidTokenError as exc:
        raise Unauthorized(type(exc).__name__) from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("sub must be a non-empty string")
    return Identity(subject=subject, claims=claims)


def bearer_token(headers: dict[str, str], query: dict[str, str]) -> str:
    """``Authorization: Bearer <jwt>`` (headers lower-cased), else ``?token=``."""
    value = headers.get("authorization", "")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    return query.get("token", "")


def allowed_subdomains(identity: Identity) -> tuple[str, ...]:
    value = identity.claims.get(config.jwt_subdomains_claim())
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()
