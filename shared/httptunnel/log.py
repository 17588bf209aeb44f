"""Structured logs: one JSON object per line on stdout (CloudWatch picks it up as is).

Every line carries ``request_id``, ``tunnel_id`` and ``connection_id`` keys (null when not
known) so one grep follows a request across functions, and, inside an invocation, the Lambda
context (``aws_request_id``, ``function_name``, ``cold_start``) bound by :mod:`httptunnel.edge`
in the manner of Powertools' ``inject_lambda_context``. Never pass bodies or tokens.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from . import config

_LOGGER = logging.getLogger("httptunnel")
_LOGGER.propagate = False
_ID_KEYS = ("request_id", "tunnel_id", "connection_id")
_CONTEXT: dict[str, Any] = {}  # the current invocation's Lambda context fields (one at a time per process)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "msg": record.getMessage(),
        }
        for key in _ID_KEYS:
            line[key] = fields.get(key)
        line.update(_CONTEXT)
        for key, value in fields.items():
            if key not in line:
                line[key] = value
        return json.dumps(line, default=str, separators=(",", ":"))


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Always writes to the CURRENT sys.stdout (Lambda's, or a test's capture)."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _setup() -> None:
    if any(isinstance(h, _StdoutHandler) for h in _LOGGER.handlers):
        return
    handler = _StdoutHandler()
    handler.setFormatter(_JsonFormatter())
    _LOGGER.addHandler(handler)


def _level() -> int:
    try:
        name = config.log_level()
    except config.ConfigError:
        return logging.INFO
    return getattr(logging, name, logging.INFO) if isinstance(getattr(logging, name, None), int) else logging.INFO


def bind(**context: Any) -> None:
    """Add these fields to every line until :func:`unbind` (the invocation's Lambda context)."""
    _CONTEXT.update(context)


def unbind() -> None:
    _CONTEXT.clear()


def emit(level: int, msg: str, **fields: Any) -> None:
    _setup()
    _LOGGER.setLevel(_level())
    _LOGGER.log(level, msg, extra={"fields": fields})


def info(msg: str, **fields: Any) -> None:
    emit(logging.INFO, msg, **fields)


def warning(msg: str, **fields: Any) -> None:
    emit(logging.WARNING, msg, **fields)


def error(msg: str, **fields: Any) -> None:
    emit(logging.ERROR, msg, **fields)


def debug(msg: str, **fields: Any) -> None:
    emit(logging.DEBUG, msg, **fields)



def audit(msg: str, **fields: Any) -> None:
    """An always-on line (whatever LOG_LEVEL says): the connect/disconnect audit trail."""
    _setup()
    _LOGGER.setLevel(logging.DEBUG)
    _LOGGER.log(logging.INFO, msg, extra={"fields": {"audit": True, **fields}})
