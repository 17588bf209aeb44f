"""Request ids the response Lambda can check without a read (channel v2, shared/README.md).

``<v>.<t>.<nonce>.<mac>``: ``v`` the key version (decimal), ``t`` the minting time in unix ms
(base 36), ``nonce`` 16 random bytes and ``mac`` the first 16 bytes of
HMAC-SHA256(key_v, ``"<v>.<t>.<nonce>|<connection id>"``), both base64url without padding.
An id is bound to the connection it was posted to and lives ``MAX_AGE_MS``; an id the streaming
edge minted (``long_lived``: the top bit of the nonce's first byte set, under the MAC like the rest)
lives ``LONG_MAX_AGE_MS``, since an answer there may take up to Lambda's 15 minutes (issue 23).

Standard library only: pure functions, keys and time passed in. Where the keys come from is
``config``/``request_keys`` business, not this module's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Mapping

MAX_AGE_MS = 30_000  # API Gateway has answered the caller after 30 s: no answer is wanted later
LONG_MAX_AGE_MS = 900_000  # the streaming edge: a request lasts at most Lambda's 15 minutes
FUTURE_SKEW_MS = 5_000  # clocks of two Lambdas may differ this much
NONCE_BYTES = 16
MAC_BYTES = 16
MIN_KEY_BYTES = 32

_ID_RE = re.compile(r"(\d{1,6})\.([0-9a-z]{1,11})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})")


@dataclass(frozen=True)
class Keys:
    """The key to mint with (``version``) and every key accepted (version -> key bytes)."""
    version: int
    keys: Mapping[int, bytes]

    def __post_init__(self) -> None:
        if self.version not in self.keys:
            raise ValueError(f"no key for the current version {self.version}")
        for v, key in self.keys.items():
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"request id key {v} is shorter than {MIN_KEY_BYTES} bytes")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _mac(key: bytes, head: str, connection_id: str) -> str:
    digest = hmac.new(key, f"{head}|{connection_id}".encode("utf-8"), hashlib.sha256).digest()
    return _b64(digest[:MAC_BYTES])


def mint(keys: Keys, connection_id: str, now_ms: int, long_lived: bool = False) -> str:
    nonce = bytearray(secrets.token_bytes(NONCE_BYTES))
    nonce[0] = (nonce[0] & 0x7F) | (0x80 if long_lived else 0)
    head = f"{keys.version}.{_base36(now_ms)}.{_b64(bytes(nonce))}"
    return f"{head}.{_mac(keys.keys[keys.version], head, connection_id)}"


def check(keys: Keys, request_id: str, connection_id: str, now_ms: int) -> str | None:
    """None when ``request_id`` was minted for ``connection_id`` under a known key and is still
    live; else why not (a short word for logs: ``shape``, ``key``, ``mac``, ``expired``, ``future``)."""
    match = _ID_RE.fullmatch(request_id)
    if match is None:
        return "shape"
    version, t36, nonce, mac = match.groups()
    key = keys.keys.get(int(version))
    if key is None:
        return "key"
    head = request_id[: match.start(4) - 1]
    if not hmac.compare_digest(_mac(key, head, connection_id), mac):
        return "mac"
    minted = int(t36, 36)
    long_lived = base64.urlsafe_b64decode(nonce + "==")[0] & 0x80
    if minted < now_ms - (LONG_MAX_AGE_MS if long_lived else MAX_AGE_MS):
        return "expired"
    if minted > now_ms + FUTURE_SKEW_MS:
        return "future"
    return None
