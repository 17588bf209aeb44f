"""Channel v2 request ids: minted by forward, checked by response without a read (shared/README.md)."""

from __future__ import annotations

import re

import boto3
import pytest
from hypothesis import given, strategies as st

from httptunnel import config, id_keys, request_ids
from httptunnel.request_ids import Keys

KEY_1 = b"k" * 32
KEY_2 = b"second key, at least 32 bytes long"
NOW = 1_765_000_000_000
CONN = "L0SM9cOFvHcCIhw="


def test_an_id_has_todays_shape_and_verifies_for_its_connection() -> None:
    keys = Keys(1, {1: KEY_1})
    rid = request_ids.mint(keys, CONN, NOW)
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", rid) and len(rid) <= 72
    assert request_ids.check(keys, rid, CONN, NOW) is None
    assert request_ids.mint(keys, CONN, NOW) != rid  # a fresh nonce each time


def test_a_forged_id_is_refused() -> None:
    keys = Keys(1, {1: KEY_1})
    assert request_ids.check(keys, "0123456789abcdef0123456789abcdef", CONN, NOW) == "shape"  # today's uuid ids
    forged = request_ids.mint(Keys(1, {1: b"x" * 32}), CONN, NOW)  # the right shape, another key
    assert request_ids.check(keys, forged, CONN, NOW) == "mac"
    real = request_ids.mint(keys, CONN, NOW)
    v, t, nonce, mac = real.split(".")
    assert request_ids.check(keys, f"{v}.{t}.{nonce[::-1]}.{mac}", CONN, NOW) == "mac"  # nonce changed
    assert request_ids.check(keys, f"{v}.{int(t, 36) + 1:x}.{nonce}.{mac}", CONN, NOW) in ("mac", "shape")


def test_an_id_is_bound_to_the_connection_it_was_posted_to() -> None:
    keys = Keys(1, {1: KEY_1})
    rid = request_ids.mint(keys, CONN, NOW)
    assert request_ids.check(keys, rid, "R0oXAdfD0kwCH6w=", NOW) == "mac"


def test_a_replayed_id_is_refused_once_nobody_waits_for_it() -> None:
    keys = Keys(1, {1: KEY_1})
    rid = request_ids.mint(keys, CONN, NOW)
    assert request_ids.check(keys, rid, CONN, NOW + request_ids.MAX_AGE_MS) is None
    assert request_ids.check(keys, rid, CONN, NOW + request_ids.MAX_AGE_MS + 1) == "expired"
    assert request_ids.check(keys, rid, CONN, NOW - request_ids.FUTURE_SKEW_MS - 1) == "future"


def test_rotation_keeps_the_previous_version_and_drops_the_one_before() -> None:
    v1 = Keys(1, {1: KEY_1})
    old = request_ids.mint(v1, CONN, NOW)
    v2 = Keys(2, {2: KEY_2, 1: KEY_1})
    assert request_ids.check(v2, old, CONN, NOW) is None  # minted before the rotation: still good
    new = request_ids.mint(v2, CONN, NOW)
    assert new.startswith("2.") and request_ids.check(v2, new, CONN, NOW) is None
    v3 = Keys(3, {3: b"third key, also 32 bytes or more!", 2: KEY_2})
    assert request_ids.check(v3, old, CONN, NOW) == "key"
    assert request_ids.check(v1, new, CONN, NOW) == "key"  # an old container does not know version 2


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        Keys(1, {1: b"short"})
    with pytest.raises(ValueError):
        Keys(2, {1: KEY_1})


@given(st.text(max_size=140))
def test_check_never_raises_on_any_text(text: str) -> None:
    assert request_ids.check(Keys(1, {1: KEY_1}), text, CONN, NOW) is not None


def test_keys_come_from_two_ssm_slots_in_one_call(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/t/request-id-key-0", Value=KEY_2.decode(), Type="SecureString")
    ssm.put_parameter(Name="/t/request-id-key-1", Value=KEY_1.decode(), Type="SecureString")
    monkeypatch.setenv("REQUEST_ID_KEY_SSM_PREFIX", "/t/request-id-key-")
    monkeypatch.setenv("REQUEST_ID_KEY_VERSION", "2")
    keys = id_keys.current()
    assert keys is not None and keys.version == 2 and dict(keys.keys) == {2: KEY_2, 1: KEY_1}
    ssm.put_parameter(Name="/t/request-id-key-0", Value="z" * 40, Type="SecureString", Overwrite=True)
    assert id_keys.current() == keys  # fetched once per container


def test_a_missing_current_key_is_a_configuration_error(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUEST_ID_KEY_SSM_PREFIX", "/nothing/here-")
    with pytest.raises(config.ConfigError):
        id_keys.current()
    monkeypatch.setenv("REQUEST_ID_KEY_VERSION", "0")
    with pytest.raises(config.ConfigError):
        config.request_id_key_version()


def test_no_key_configured_means_unverifiable_ids(aws: None) -> None:
    assert id_keys.current() is None
