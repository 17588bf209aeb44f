"""Where the request-id keys come from (channel v2): SSM, once per container.

Two SecureString parameters, ``<REQUEST_ID_KEY_SSM_PREFIX>0`` and ``...1``: version N's key is in
slot N mod 2, so the slot of the previous version still holds its key after a rotation
(Terraform rewrites only the new version's slot). Both are read with one GetParameters call the
first time a container needs them. ``REQUEST_ID_KEY`` (the current key itself) is for tests.
Nothing configured: ``None`` (ids are then plain ``uuid4().hex``, not verifiable).
"""

from __future__ import annotations

import functools

from . import aws, config, log
from .request_ids import MIN_KEY_BYTES, Keys


@functools.lru_cache(maxsize=4)
def _from_ssm(prefix: str, version: int) -> Keys:
    names = {v: f"{prefix}{v % 2}" for v in (version, version - 1) if v >= 0}
    out = aws.client("ssm").get_parameters(Names=sorted(set(names.values())), WithDecryption=True)
    values = {p["Name"]: str(p["Value"]).encode("utf-8") for p in out.get("Parameters", [])}
    keys = {v: values[name] for v, name in names.items() if name in values and len(values[name]) >= MIN_KEY_BYTES}
    if version not in keys:
        raise config.ConfigError(f"request id key {names[version]} is missing or shorter than {MIN_KEY_BYTES} bytes")
    return Keys(version, keys)


@functools.lru_cache(maxsize=4)
def _from_value(value: str, version: int) -> Keys:
    if len(value.encode("utf-8")) < MIN_KEY_BYTES:
        raise config.ConfigError(f"REQUEST_ID_KEY must be at least {MIN_KEY_BYTES} bytes")
    return Keys(version, {version: value.encode("utf-8")})


_warned: list[bool] = []


def current() -> Keys | None:
    """The keys to mint and verify with, or None when this deployment has none (logged once)."""
    version = config.request_id_key_version()
    if config.request_id_key():
        return _from_value(config.request_id_key(), version)
    if config.request_id_key_ssm_prefix():
        return _from_ssm(config.request_id_key_ssm_prefix(), version)
    if not _warned:
        _warned.append(True)
        log.warning("request ids are not verifiable: no REQUEST_ID_KEY_SSM_PREFIX is configured")
    return None


def reset() -> None:
    """Forget cached keys (tests)."""
    _from_ssm.cache_clear()
    _from_value.cache_clear()
    _warned.clear()
