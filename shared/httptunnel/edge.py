"""The one outer edge of every handler: Lambda context in the logs, errors turned into answers.

    @lambda_edge(bad_event=ws_status(400), failure=ws_status(500))
    def handler(event, context): ...

Each invocation binds ``aws_request_id``, ``function_name`` and ``cold_start`` (true for the
first invocation of this process) to every log line, like Powertools' ``inject_lambda_context``
without the dependency. A malformed event (:class:`events.BadEvent`) is logged and answered with
``bad_event(event)``; anything else escaping the handler is logged with its type and answered
with ``failure(event)``, so no caller ever sees a traceback and the log says which invocation
failed. What a "clean answer" is depends on the trigger, hence the two answer functions.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from . import events, log, names

Event = Any
Answer = Callable[[Event], Any]
Handler = Callable[[Event, Any], Any]

_cold = True


def lambda_edge(*, bad_event: Answer, failure: Answer) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        def handler(event: Event, context: Any) -> Any:
            global _cold
            cold, _cold = _cold, False
            log.bind(aws_request_id=getattr(context, "aws_request_id", None),
                     function_name=getattr(context, "function_name", None), cold_start=cold)
            try:
                return fn(event, context)
            except events.BadEvent as exc:
                answer = bad_event(event)
                log.error("malformed event", error=str(exc)[:300], **_answered(answer))
                return answer
            except Exception as exc:  # the outer edge: log it, answer cleanly
                answer = failure(event)
                log.error("invocation failed", error=type(exc).__name__, detail=str(exc)[:300], **_answered(answer))
                return answer
            finally:
                log.unbind()
        return handler
    return wrap


def _answered(answer: Any) -> dict[str, Any]:
    """`status` and `error_code` of an API Gateway answer, logged with the failure: on forward's
    log group the observability metric filter counts them like a "forwarded" line."""
    if not isinstance(answer, dict) or "statusCode" not in answer:
        return {}
    headers = answer.get("headers") or {}
    return {"status": answer["statusCode"], "error_code": headers.get(names.ERROR_HEADER)}


def ws_status(status: int, body: str | None = None) -> Answer:
    """A WebSocket route answer ($connect: the handshake status; $default/$disconnect: ignored by the API)."""
    text = body if body is not None else {200: "", 400: "bad request", 500: "internal error"}.get(status, "")
    return lambda _event: events.ws_response(status, text)


def http_error(status: int, code: str, message: str) -> Answer:
    """A public HTTP answer with our x-tunnel-error code."""
    return lambda _event: events.error_response(status, code, message)


def every_record_failed(event: Event) -> dict[str, Any]:
    """Stream batch: report every record as failed, so Lambda retries exactly this batch."""
    records = event.get("Records", []) if isinstance(event, dict) else []
    ids = [str((r.get("dynamodb") or {}).get("SequenceNumber", "")) for r in records if isinstance(r, dict)]
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids if i]}


def schedule_failed(_event: Event) -> dict[str, Any]:
    """Schedule: the next tick retries; an error return would only make EventBridge retry sooner."""
    return {"ok": False}
