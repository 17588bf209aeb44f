"""JWT verification for $connect.

(Over 300 lines: every check of a security boundary in one place, HS via hmac, RS/ES via a JWKS,
and the key-material loaders, so a reviewer reads one file.)

* HS256/384/512 are verified here with the standard library (``hmac``) against the shared
  secret (``JWT_SECRET``, or fetched once per container from SSM ``JWT_SECRET_SSM_PARAMETER`` /
  Secrets Manager ``JWT_SECRET_ARN``). A deployment without a JWKS never imports PyJWT or
  cryptography, which keeps the connect Lambda's cold start small.
* RS256/384/512 (RSA keys) and ES256/ES384 (EC keys on P-256/P-384) are verified with a key
  from a JWKS (``JWKS`` inline JSON, or ``JWKS_URL`` fetched over HTTPS, never following a
  redirect off https, cached for ``JWKS_CACHE_S``; an unknown ``kid`` triggers at most one
  refetch per ``JWKS_REFETCH_MIN_S``). PyJWT and cryptography are imported only on this path.
* Claims, whatever the algorithm: ``exp`` and ``sub`` required; ``nbf``/``iat`` checked when
  present (``LEEWAY_S``); ``iss``/``aud`` when ``JWT_ISSUER``/``JWT_AUDIENCE`` are set (a token
  that names an audience is refused when none is configured, RFC 7519 4.1.3); with
  ``JWT_MAX_LIFETIME`` also ``iat`` required and ``exp - iat`` at most that many seconds.
* Rejected: ``alg: none`` and every algorithm not listed above, a key of the wrong family for
  the algorithm (an HS token is never checked against a public key), an EC key on the wrong
  curve, unknown ``kid``, bad signature, a ``crit`` header.
* Configuration errors (``ConfigError``, the handler answers 500, never a built-in default):
  auth required with no key material; an HS secret shorter than ``MIN_HS_SECRET_BYTES``;
  a JWKS without ``JWT_AUDIENCE`` (a token minted for another app of a shared identity
  provider would pass); ``JWKS_URL`` not https.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from . import aws, config

HS_ALGS: dict[str, Callable[..., Any]] = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
RS_ALGS = ("RS256", "RS384", "RS512")
ES_ALGS = {"ES256": "secp256r1", "ES384": "secp384r1"}  # alg -> the only curve it may use (RFC 7518 3.4)
MIN_HS_SECRET_BYTES = 32  # RFC 7518 3.2: a key at least as long as the hash output (256 bits for HS256)
LEEWAY_S = 5
JWKS_CACHE_S = 300
JWKS_REFETCH_MIN_S = 30
JWKS_FETCH_TIMEOUT_S = 3
JWKS_MAX_BYTES = 1_000_000
MAX_TOKEN_LEN = 8192
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


class Unauthorized(Exception):
    """Token missing or invalid (the reason is logged, never the token)."""


@dataclass(frozen=True)
class Identity:
    subject: str
    claims: dict[str, Any]
    alg: str = ""  # the token's algorithm: HS tokens are bound to the secret's version (connect, cleanup)


@dataclass(frozen=True)
class _PublicKey:
    kty: str  # "RSA" or "EC"
    curve: str  # cryptography's curve name for EC keys, "" for RSA
    key: Any  # a cryptography public key


# --------------------------------------------------------------------------- key material

SECRET_CACHE_S = 300.0  # a warm connect reads the SSM secret again after this long (rotation reaches it)
_ssm_secrets: dict[str, tuple[float, str, int]] = {}  # name -> (read at, value, parameter version)


def _secret_from_ssm(name: str) -> str:
    return _ssm_secret(name)[0]


def _ssm_secret(name: str) -> tuple[str, int]:
    """(value, SSM parameter version), read at most every SECRET_CACHE_S per container."""
    now = time.monotonic()
    hit = _ssm_secrets.get(name)
    if hit is not None and now - hit[0] < SECRET_CACHE_S:
        return hit[1], hit[2]
    out = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    value, version = str(out["Value"]), int(out.get("Version", 0))
    _ssm_secrets[name] = (now, value, version)
    return value, version


def secret_version() -> int | None:
    """The SSM parameter version of the HS secret this container verifies with (None: not from SSM).
    connect stores it on the connection row; cleanup closes rows of an older version."""
    name = config.jwt_secret_ssm_parameter()
    return _ssm_secret(name)[1] if name and not config.jwt_secret() else None


def current_secret_version() -> int | None:
    """The SSM parameter's version now, without reading the secret itself (cleanup: no decryption)."""
    name = config.jwt_secret_ssm_parameter()
    if not name:
        return None
    return int(aws.client("ssm").get_parameter(Name=name, WithDecryption=False)["Parameter"].get("Version", 0))


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


def _check_secret_length(secret: str) -> None:
    if len(secret.encode("utf-8")) < MIN_HS_SECRET_BYTES:
        raise config.ConfigError(f"the HS secret is shorter than {MIN_HS_SECRET_BYTES} bytes")


@dataclass(frozen=True)
class _CachedJwks:
    keys: dict[str, _PublicKey]  # kid -> key ("" kid when the JWK had none)
    fetched_at: float


_jwks_lock = threading.Lock()
_jwks_cache: dict[str, _CachedJwks] = {}


def _parse_jwks(text: str) -> dict[str, _PublicKey]:
    import jwt  # PyJWT + cryptography: only deployments with a JWKS pay for the import
    from jwt.exceptions import PyJWKError

    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise config.ConfigError("JWKS is not valid JSON") from None
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise config.ConfigError("JWKS must be an object with a 'keys' list")
    keys: dict[str, _PublicKey] = {}
    for jwk in data["keys"]:
        # Only RSA and EC signing keys: an 'oct' (symmetric) key here would re-open HS confusion.
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC") or jwk.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(jwk).key
        except (PyJWKError, ValueError, TypeError):
            continue
        if hasattr(key, "public_key"):  # a JWK that (wrongly) carries the private part
            key = key.public_key()
        curve = getattr(getattr(key, "curve", None), "name", "") if jwk["kty"] == "EC" else ""
        keys[str(jwk.get("kid", ""))] = _PublicKey(jwk["kty"], curve, key)
    return keys


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a JWKS redirect only to another https URL (urllib would follow https -> http)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urllib.parse.urlsplit(newurl).scheme.lower() != "https":
            raise urllib.error.URLError("JWKS redirect off https refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _fetch_jwks(url: str) -> str:
    if urllib.parse.urlsplit(url).scheme.lower() != "https":
        raise urllib.error.URLError("JWKS_URL is not https")  # check_configured reports it first
    opener = urllib.request.build_opener(_HttpsOnlyRedirects, urllib.request.HTTPSHandler(context=_tls_context()))
    with opener.open(url, timeout=JWKS_FETCH_TIMEOUT_S) as resp:
        body: bytes = resp.read(JWKS_MAX_BYTES)
        return body.decode("utf-8")


def _jwks_from_url(url: str, kid: str) -> dict[str, _PublicKey]:
    now = time.monotonic()
    with _jwks_lock:
        cached = _jwks_cache.get(url)
        fresh = cached is not None and now - cached.fetched_at < JWKS_CACHE_S
        may_refetch = cached is None or now - cached.fetched_at >= JWKS_REFETCH_MIN_S
        if cached is not None and (fresh and (kid in cached.keys or not may_refetch)):
            return cached.keys
        try:
            keys = _parse_jwks(_fetch_jwks(url))
        except (OSError, ValueError, config.ConfigError) as exc:
            if cached is not None:
                return cached.keys  # keep serving the last good set while the IdP is down
            if isinstance(exc, config.ConfigError):
                raise  # the URL answers, but not with a JWKS: a deployment mistake (500)
            raise Unauthorized(f"JWKS fetch failed: {type(exc).__name__}") from None
        _jwks_cache[url] = _CachedJwks(keys=keys, fetched_at=now)
        return keys


def clear_caches() -> None:
    with _jwks_lock:
        _jwks_cache.clear()
    _ssm_secrets.clear()
    _secret_from_secrets_manager.cache_clear()


def public_keys(kid: str) -> dict[str, _PublicKey]:
    if config.jwks():
        return _parse_jwks(config.jwks())
    if config.jwks_url():
        return _jwks_from_url(config.jwks_url(), kid)
    return {}


def check_configured() -> None:
    """Raise ConfigError when auth is required but the key material cannot be trusted or is missing."""
    has_hs = bool(config.jwt_secret() or config.jwt_secret_ssm_parameter() or config.jwt_secret_arn())
    has_jwks = bool(config.jwks() or config.jwks_url())
    if not (has_hs or has_jwks):
        raise config.ConfigError("REQUIRE_AUTH=true but no JWT_SECRET*/JWKS/JWKS_URL is configured")
    if config.jwt_secret():
        _check_secret_length(config.jwt_secret())
    if has_jwks and not config.jwt_audience():
        raise config.ConfigError("a JWKS needs JWT_AUDIENCE: without it a token the identity provider "
                                 "minted for any other app would be accepted")
    if config.jwks_url() and urllib.parse.urlsplit(config.jwks_url()).scheme.lower() != "https":
        raise config.ConfigError("JWKS_URL must be an https:// URL")
    config.jwt_max_lifetime()  # raises ConfigError when malformed


# --------------------------------------------------------------------------- verification

def _b64url(segment: str) -> bytes:
    if not _SEGMENT.fullmatch(segment):
        raise Unauthorized("malformed token")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise Unauthorized("malformed token") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Unauthorized(f"malformed token {what}") from None
    if not isinstance(value, dict):
        raise Unauthorized(f"malformed token {what}")
    return value


def _verify_signature(alg: str, header: dict[str, Any], signing_input: bytes, signature: bytes) -> None:
    if alg in HS_ALGS:
        secret = hs_secret()
        if not secret:
            raise Unauthorized(f"{alg} tokens are not accepted (no shared secret configured)")
        _check_secret_length(secret)
        expected = hmac.new(secret.encode("utf-8"), signing_input, HS_ALGS[alg]).digest()
        if not hmac.compare_digest(expected, signature):
            raise Unauthorized("bad signature")
        return
    if alg not in RS_ALGS and alg not in ES_ALGS:
        raise Unauthorized(f"algorithm not allowed: {alg!r}")
    kid = str(header.get("kid", ""))
    keys = public_keys(kid)
    if not keys:
        raise Unauthorized(f"{alg} tokens are not accepted (no JWKS configured)")
    if kid in keys:
        found = keys[kid]
    elif not kid and len(keys) == 1:
        found = next(iter(keys.values()))
    else:
        raise Unauthorized("unknown kid")
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    if alg in RS_ALGS:
        if found.kty != "RSA":
            raise Unauthorized(f"{alg} token for a non-RSA key")
        verifier: Any = RSAAlgorithm(getattr(RSAAlgorithm, "SHA" + alg[2:]))
    else:
        if found.kty != "EC" or found.curve != ES_ALGS[alg]:
            raise Unauthorized(f"{alg} token for a key that is not on {ES_ALGS[alg]}")
        verifier = ECAlgorithm(getattr(ECAlgorithm, "SHA" + alg[2:]))
    if not verifier.verify(signing_input, found.key, signature):
        raise Unauthorized("bad signature")


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unauthorized(f"{name} must be a number")
    return float(value)


def _check_claims(claims: dict[str, Any], now: float) -> str:
    exp = _number(claims, "exp")
    if exp is None:
        raise Unauthorized("exp is required")
    if exp <= now - LEEWAY_S:
        raise Unauthorized("expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + LEEWAY_S:
        raise Unauthorized("not yet valid")
    iat = _number(claims, "iat")
    if iat is not None and iat > now + LEEWAY_S:
        raise Unauthorized("issued in the future")
    max_lifetime = config.jwt_max_lifetime()
    if max_lifetime:
        if iat is None:
            raise Unauthorized("iat is required when JWT_MAX_LIFETIME is set")
        if exp - iat > max_lifetime or exp - now > max_lifetime + LEEWAY_S:
            raise Unauthorized("token lifetime exceeds JWT_MAX_LIFETIME")
    issuer = config.jwt_issuer()
    if issuer and claims.get("iss") != issuer:
        raise Unauthorized("wrong issuer")
    audience = config.jwt_audience()
    aud = claims.get("aud")
    if audience:
        if not (aud == audience or (isinstance(aud, list) and audience in aud)):
            raise Unauthorized("wrong audience")
    elif aud is not None:
        raise Unauthorized("token names an audience but none is configured")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Unauthorized("sub must be a non-empty string")
    return subject


def verify(token: str, now: float | None = None) -> Identity:
    """Verify a JWT; raises Unauthorized with a loggable reason (no token content), ConfigError."""
    if not token or len(token) > MAX_TOKEN_LEN:
        raise Unauthorized("missing or oversized token")
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("malformed token")
    header = _json_object(_b64url(parts[0]), "header")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise Unauthorized("algorithm not allowed: None")
    if "crit" in header:
        raise Unauthorized("crit header: no extensions are supported")  # RFC 7515 4.1.11
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    _verify_signature(alg, header, signing_input, _b64url(parts[2]))
    claims = _json_object(_b64url(parts[1]), "payload")
    subject = _check_claims(claims, time.time() if now is None else now)
    return Identity(subject=subject, claims=claims, alg=alg)


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
