"""botocore clients, created once per process under a lock.

botocore, not boto3: the layer never needs boto3's resources or transfer manager, and importing
boto3 costs every cold start about 20 ms more (s3transfer, multiprocessing). The layer ships its
own botocore, pruned to the services it calls (scripts/package; shared/README.md "Cold starts"),
so creating a client parses a few small models instead of listing ~400 services and reading the
1.2 MB endpoints file.

A session is not thread-safe for client creation, and the local emulator may run several
handler invocations in threads of one process. Clients themselves are thread-safe once
created. ``reset()`` drops them (tests).
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
from botocore.config import Config

_lock = threading.Lock()
_session: botocore.session.Session | None = None
_clients: dict[tuple[str, str], Any] = {}


def client(service: str, endpoint_url: str | None = None, config: Config | None = None) -> Any:
    key = (service, endpoint_url or "")
    found = _clients.get(key)
    if found is not None:
        return found
    global _session
    with _lock:
        found = _clients.get(key)
        if found is not None:
            return found
        if _session is None:
            _session = botocore.session.Session()
        kwargs: dict[str, Any] = {}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        if config is not None:
            kwargs["config"] = config
        made = _session.create_client(service, **kwargs)
        _clients[key] = made
        return made


def reset() -> None:
    global _session
    with _lock:
        _clients.clear()
        _session = None


# --------------------------------------------------------------------------- errors
# The one reading of botocore's ClientError (``exc.response``: {"Error": {"Code": ...},
# "ResponseMetadata": {"HTTPStatusCode": ...}}). Duck-typed, so any exception may be asked.

def error_code(exc: BaseException) -> str:
    """The AWS error code (``ConditionalCheckFailedException``, ``GoneException``, ``404``...); "" if none."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return str(error.get("Code") or "") if isinstance(error, dict) else ""


def http_status(exc: BaseException) -> int:
    """The HTTP status AWS answered with; 0 if unknown."""
    response = getattr(exc, "response", None)
    meta = response.get("ResponseMetadata") if isinstance(response, dict) else None
    return int(meta.get("HTTPStatusCode") or 0) if isinstance(meta, dict) else 0


def is_conditional_failure(exc: BaseException) -> bool:
    """DynamoDB refused a write because its ConditionExpression did not hold."""
    return error_code(exc) == "ConditionalCheckFailedException"
