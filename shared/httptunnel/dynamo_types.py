"""DynamoDB's attribute-value JSON <-> Python, with boto3's semantics and without importing boto3.

`boto3.dynamodb.types` would pull in all of boto3 (its session, s3transfer, multiprocessing):
about 20 ms of every cold start, for two small functions. These follow boto3's rules, and
tests/unit/test_dynamo_types.py holds them to boto3's own serializer on generated values:
* numbers are ``int`` or ``Decimal`` (``float`` is refused: it is inexact), written within
  DynamoDB's 38-digit context, and read back as ``Decimal``;
* ``bytes``/``bytearray`` are binary; read back as ``bytes`` (boto3 wraps them in its
  ``Binary``; nothing here stores binary, and a stream record's base64 text is decoded);
* sets hold one type (strings, numbers or binary); an empty set is refused here (boto3 writes
  ``{"NS": []}``, which DynamoDB refuses with a ValidationException).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

DYNAMODB_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def _number(value: int | Decimal) -> str:
    return str(DYNAMODB_CONTEXT.create_decimal(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def serialize(value: Any) -> dict[str, Any]:
    """One Python value as a DynamoDB AttributeValue (``{"S": "x"}``, ``{"N": "1"}``, ...)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use int or Decimal instead.")
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, Set):
        return _serialize_set(value)
    if isinstance(value, Mapping):
        return {"M": {str(k): serialize(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f"Unsupported type {type(value).__name__!r} for value {value!r}")


def _serialize_set(values: Set[Any]) -> dict[str, Any]:
    if not values:
        raise TypeError("DynamoDB cannot store an empty set")
    if all(_is_number(v) for v in values):
        return {"NS": [_number(v) for v in values]}
    if all(isinstance(v, str) for v in values):
        return {"SS": list(values)}
    if all(isinstance(v, (bytes, bytearray)) for v in values):
        return {"BS": [bytes(v) for v in values]}
    raise TypeError("a DynamoDB set holds one type: strings, numbers or binary")


def _binary(value: Any) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def deserialize(attr: Mapping[str, Any]) -> Any:
    """One DynamoDB AttributeValue as Python (numbers as ``Decimal``)."""
    if len(attr) != 1:
        raise TypeError(f"an AttributeValue has exactly one type key, got {sorted(attr)!r}")
    kind, raw = next(iter(attr.items()))
    if kind == "S":
        return raw
    if kind == "N":
        return DYNAMODB_CONTEXT.create_decimal(raw)
    if kind == "BOOL":
        return bool(raw)
    if kind == "NULL":
        return None
    if kind == "B":
        return _binary(raw)
    if kind == "M":
        return {k: deserialize(v) for k, v in raw.items()}
    if kind == "L":
        return [deserialize(v) for v in raw]
    if kind == "SS":
        return set(raw)
    if kind == "NS":
        return {DYNAMODB_CONTEXT.create_decimal(v) for v in raw}
    if kind == "BS":
        return {_binary(v) for v in raw}
    raise TypeError(f"unknown DynamoDB type {kind!r}")
