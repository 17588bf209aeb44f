"""Webhook signature verifiers (stdlib only: the agent imports this module to validate its options).

Each verifier checks the EXACT body bytes API Gateway gave forward, before any decoding, with
a constant-time comparison (``hmac.compare_digest``); where the provider signs a timestamp,
the timestamp must be within the provider's replay window of now. Schemes, from each
provider's own documentation:

* github  - ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``; no timestamp.
  https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
* stripe  - ``Stripe-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=...]``;
  300 s tolerance (Stripe's libraries' default). https://stripe.com/docs/webhooks/signatures
* slack   - ``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`` with
  ``X-Slack-Request-Timestamp: <ts>`` within 5 minutes.
  https://api.slack.com/authentication/verifying-requests-from-slack
* shopify - ``X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>``; no timestamp.
  https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook
* hmac-sha256 - generic: ``HEADER: [PREFIX]<hex|base64 HMAC-SHA256(secret, body)>``; no timestamp.

Twilio is not offered: it signs the full public URL (scheme, host, path, query) plus the
sorted POST fields with HMAC-SHA1, and API Gateway hands forward a percent-DECODED path, so
the URL Twilio signed cannot be rebuilt byte for byte (``/a%2Fb`` and ``/a/b`` both arrive
as ``/a/b``); a verifier that fails on some valid requests is worse than none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Mapping

PROVIDERS = ("github", "stripe", "slack", "shopify", "hmac-sha256")
STRIPE_TOLERANCE_S = 300
SLACK_TOLERANCE_S = 300
SECRET_MAX = 256
PREFIX_MAX = 32
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_PREFIX = re.compile(r"[\x21-\x7e]{0,32}")


class WebhookError(ValueError):
    """A verifier spec that cannot be used (one readable line)."""


@dataclass(frozen=True)
class Verifier:
    provider: str
    secret: str
    header: str = ""  # hmac-sha256 only: the lower-cased header holding the signature
    encoding: str = "hex"  # hmac-sha256 only: hex or base64
    prefix: str = ""  # hmac-sha256 only: text before the signature, e.g. "sha256="

    def masked(self) -> str:
        shown = self.secret[:4] if len(self.secret) >= 16 else ""
        secret = f"{shown}…({len(self.secret)} chars)"
        if self.provider == "hmac-sha256":
            return f"hmac-sha256 header {self.header} {self.encoding}" + \
                (f" prefix {self.prefix!r}" if self.prefix else "") + f" secret {secret}"
        return f"{self.provider} secret {secret}"

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> bool:
        """headers: lower-cased names (API Gateway's payload 2.0). Never raises on network input."""
        now = time.time() if now is None else now
        key = self.secret.encode("utf-8")
        if self.provider == "github":
            return _equal(headers.get("x-hub-signature-256", ""), "sha256=" + _hex(key, body))
        if self.provider == "shopify":
            return _equal(headers.get("x-shopify-hmac-sha256", "").strip(), _b64(key, body))
        if self.provider == "stripe":
            return _stripe(key, headers.get("stripe-signature", ""), body, now)
        if self.provider == "slack":
            return _slack(key, headers, body, now)
        if self.provider == "hmac-sha256":
            given = headers.get(self.header, "").strip()
            if not given.startswith(self.prefix):
                return False
            given = given[len(self.prefix):]
            if self.encoding == "hex":
                return _equal(given.lower(), _hex(key, body))
            return _equal(given, _b64(key, body))
        return False


def _hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def _equal(given: str, expected: str) -> bool:
    """Constant-time (for equal lengths; the expected length is public)."""
    try:
        return hmac.compare_digest(given.encode("ascii"), expected.encode("ascii"))
    except UnicodeEncodeError:
        return False


def _timestamp(text: str, now: float, tolerance: int) -> int | None:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    value = int(text)
    return value if abs(now - value) <= tolerance else None


def _stripe(key: bytes, header: str, body: bytes, now: float) -> bool:
    stamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t" and stamp is None:
            stamp = value
        elif name == "v1":
            signatures.append(value)
    if stamp is None or not signatures or _timestamp(stamp, now, STRIPE_TOLERANCE_S) is None:
        return False
    expected = _hex(key, stamp.encode("ascii") + b"." + body)
    ok = False
    for signature in signatures[:8]:  # a rotation sends a few; do not let a header make us loop
        ok |= _equal(signature, expected)
    return ok


def _slack(key: bytes, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    stamp = headers.get("x-slack-request-timestamp", "").strip()
    if _timestamp(stamp, now, SLACK_TOLERANCE_S) is None:
        return False
    expected = "v0=" + _hex(key, b"v0:" + stamp.encode("ascii") + b":" + body)
    return _equal(headers.get("x-slack-signature", "").strip(), expected)


def _check_secret(secret: str, what: str) -> str:
    if not secret:
        raise WebhookError(f"{what}: the secret is empty")
    if len(secret) > SECRET_MAX:
        raise WebhookError(f"{what}: the secret is longer than {SECRET_MAX} characters")
    if not secret.isprintable() or not secret.isascii():
        raise WebhookError(f"{what}: the secret must be printable ASCII")
    return secret


def parse_spec(text: str) -> Verifier:
    """``PROVIDER:SECRET`` or ``hmac-sha256:HEADER:SECRET[:hex|base64][:PREFIX]``.

    A generic secret that itself contains ':' must be followed by an explicit ``:hex`` or
    ``:base64`` (the last such field ends the secret)."""
    provider, sep, rest = text.strip().partition(":")
    provider = provider.lower()
    if not sep:
        raise WebhookError("expected PROVIDER:SECRET (no ':' found)")
    if provider not in PROVIDERS:
        raise WebhookError(f"unknown webhook provider {provider[:40]!r} (known: {', '.join(PROVIDERS)})")
    if provider != "hmac-sha256":
        return Verifier(provider, _check_secret(rest, provider))
    header, sep, rest = rest.partition(":")
    if not sep or not _HEADER_NAME.fullmatch(header):
        raise WebhookError("hmac-sha256 needs HEADER:SECRET[:hex|base64][:PREFIX] with a valid header name")
    parts = rest.split(":")
    encoding, prefix, secret = "hex", "", rest
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in ("hex", "base64") and i >= len(parts) - 2:
            secret, encoding, prefix = ":".join(parts[:i]), parts[i], ":".join(parts[i + 1:])
            break
    if not _PREFIX.fullmatch(prefix):
        raise WebhookError(f"hmac-sha256: the prefix must be at most {PREFIX_MAX} visible ASCII characters")
    return Verifier("hmac-sha256", _check_secret(secret, "hmac-sha256"), header.lower(), encoding, prefix)


def from_fields(data: object) -> Verifier:
    """A verifier from its stored form (see policy.py); raises WebhookError."""
    if not isinstance(data, dict) or set(data) - {"p", "k", "h", "e", "x"}:
        raise WebhookError("a webhook entry must be an object with p, k (and h, e, x for hmac-sha256)")
    provider, secret = data.get("p"), data.get("k")
    if provider not in PROVIDERS or not isinstance(secret, str):
        raise WebhookError(f"unknown webhook provider {str(provider)[:40]!r} (known: {', '.join(PROVIDERS)})")
    _check_secret(secret, provider)
    if provider != "hmac-sha256":
        if len(data) != 2:
            raise WebhookError(f"{provider}: only p and k are allowed")
        return Verifier(provider, secret)
    header, encoding, prefix = data.get("h"), data.get("e", "hex"), data.get("x", "")
    if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header) or header != header.lower():
        raise WebhookError("hmac-sha256: h must be a lower-case header name")
    if encoding not in ("hex", "base64"):
        raise WebhookError("hmac-sha256: e must be hex or base64")
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise WebhookError(f"hmac-sha256: x must be at most {PREFIX_MAX} visible ASCII characters")
    return Verifier(provider, secret, header, encoding, prefix)


def to_fields(v: Verifier) -> dict[str, str]:
    if v.provider != "hmac-sha256":
        return {"p": v.provider, "k": v.secret}
    out = {"p": v.provider, "k": v.secret, "h": v.header}
    if v.encoding != "hex":
        out["e"] = v.encoding
    if v.prefix:
        out["x"] = v.prefix
    return out

