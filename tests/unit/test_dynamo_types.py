"""httptunnel.dynamo_types writes and reads exactly what boto3's TypeSerializer/TypeDeserializer do.

The layer stopped importing boto3 (about 20 ms of every cold start); these hold the replacement to
boto3's own rules on generated values, and on the cases boto3 refuses.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from httptunnel import dynamo_types

BOTO_SER = TypeSerializer()
BOTO_DE = TypeDeserializer()

numbers = st.one_of(
    st.integers(min_value=-(10**37), max_value=10**37),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), st.binary(max_size=20))
sets = st.one_of(st.frozensets(st.text(max_size=8), min_size=1, max_size=4).map(set),
                 st.frozensets(st.integers(-1000, 1000), min_size=1, max_size=4).map(set),
                 st.frozensets(st.binary(min_size=1, max_size=8), min_size=1, max_size=4).map(set))
values = st.recursive(st.one_of(scalars, sets),
                      lambda inner: st.one_of(st.lists(inner, max_size=4),
                                              st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _canon(attr: dict[str, Any]) -> Any:
    """Order-free form of one AttributeValue (sets are lists in no particular order)."""
    [(kind, raw)] = attr.items()
    if kind in ("SS", "NS", "BS"):
        return kind, sorted(bytes(x) if isinstance(x, (bytes, bytearray, Binary)) else x for x in raw)
    if kind == "B":
        return kind, bytes(raw)
    if kind == "M":
        return kind, {k: _canon(v) for k, v in raw.items()}
    if kind == "L":
        return kind, [_canon(v) for v in raw]
    return kind, raw


def _unwrap(value: Any) -> Any:
    """boto3 reads binary as its Binary wrapper; ours reads bytes."""
    if isinstance(value, Binary):
        return value.value
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, set):
        return {_unwrap(v) for v in value}
    return value


@settings(max_examples=300, deadline=None)
@given(values)
def test_serialize_matches_boto3(value: Any) -> None:
    assert _canon(dynamo_types.serialize(value)) == _canon(BOTO_SER.serialize(value))


@settings(max_examples=300, deadline=None)
@given(values)
def test_deserialize_matches_boto3(value: Any) -> None:
    attr = BOTO_SER.serialize(value)
    assert dynamo_types.deserialize(attr) == _unwrap(BOTO_DE.deserialize(attr))


def test_numbers_come_back_as_decimal() -> None:
    assert dynamo_types.deserialize({"N": "25000"}) == Decimal(25000)
    assert isinstance(dynamo_types.deserialize({"N": "1.5"}), Decimal)


@pytest.mark.parametrize("bad", [1.5, {1, "a"}, object()])
def test_what_boto3_refuses_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError):
        BOTO_SER.serialize(bad)
    with pytest.raises(TypeError):
        dynamo_types.serialize(bad)


def test_an_empty_set_is_refused_before_the_call() -> None:
    """boto3 writes ``{"NS": []}``, which DynamoDB itself rejects (ValidationException); refuse it here."""
    assert BOTO_SER.serialize(set()) == {"NS": []}
    with pytest.raises(TypeError):
        dynamo_types.serialize(set())


def test_a_number_beyond_38_digits_is_refused_like_boto3() -> None:
    big = Decimal("1." + "1" * 40)
    with pytest.raises(Exception) as boto_error:
        BOTO_SER.serialize(big)
    with pytest.raises(type(boto_error.value)):
        dynamo_types.serialize(big)


def test_stream_binary_is_base64_text() -> None:
    """Lambda delivers a stream record's binary attribute as base64 text in the event JSON."""
    assert dynamo_types.deserialize({"B": base64.b64encode(b"\x00\xff").decode()}) == b"\x00\xff"
    assert dynamo_types.deserialize({"BS": [base64.b64encode(b"a").decode()]}) == {b"a"}


def test_a_malformed_attribute_value_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        dynamo_types.deserialize({"S": "a", "N": "1"})
    with pytest.raises(TypeError):
        dynamo_types.deserialize({"X": "a"})
