"""The one outer edge of all six handlers (httptunnel.edge): context in every log line, clean answers."""

from __future__ import annotations

import json

import pytest

from httptunnel import cleanup, connect, disconnect, edge, events, forward, response, stream_notifier

from .helpers import FakeContext, load_handler

INNER = {"connect": (connect, "connect"), "disconnect": (disconnect, "disconnect"),
         "forward": (forward, "forward"), "response": (response, "handle"),
         "cleanup": (cleanup, "run"), "stream_notifier": (stream_notifier, "notify")}
STREAM_EVENT = {"Records": [{"dynamodb": {"SequenceNumber": "11"}}, {"dynamodb": {"SequenceNumber": "12"}}]}
EXPECTED = {  # (answer to a malformed event, answer to anything else that escapes)
    "connect": ({"statusCode": 400, "body": "bad request"}, {"statusCode": 500, "body": "internal error"}),
    "disconnect": ({"statusCode": 400, "body": "bad request"}, {"statusCode": 500, "body": "internal error"}),
    "response": ({"statusCode": 200}, {"statusCode": 200}),
    "cleanup": ({"ok": False}, {"ok": False}),
    "stream_notifier": ({"batchItemFailures": [{"itemIdentifier": "11"}, {"itemIdentifier": "12"}]},) * 2,
}


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name", sorted(INNER))
@pytest.mark.parametrize("failure", ["bad_event", "crash"])
def test_every_handler_answers_cleanly_and_logs_which_invocation_failed(name, failure, monkeypatch, capsys):
    module, attr = INNER[name]

    def inner(*_args):
        if failure == "bad_event":
            raise events.BadEvent("no requestContext")
        raise RuntimeError("boom: the table is on fire")

    monkeypatch.setattr(module, attr, inner)
    handler = load_handler(name)
    ctx = FakeContext(function_name=f"t-{name}", aws_request_id=f"req-{name}-{failure}")
    answer = handler(STREAM_EVENT if name == "stream_notifier" else {}, ctx)
    if name == "forward":
        status, code = (400, "invalid_request") if failure == "bad_event" else (502, "internal_error")
        assert answer["statusCode"] == status and answer["headers"]["x-tunnel-error"] == code
    else:
        assert answer == EXPECTED[name][0 if failure == "bad_event" else 1]
    (line,) = [line for line in log_lines(capsys) if line["level"] == "ERROR"]
    assert line["aws_request_id"] == f"req-{name}-{failure}" and line["function_name"] == f"t-{name}"
    assert line["msg"] == ("malformed event" if failure == "bad_event" else "invocation failed")
    if failure == "crash":
        assert line["error"] == "RuntimeError" and "boom" in line["detail"]
    assert "Traceback" not in json.dumps(answer)


def test_context_is_bound_for_the_invocation_only_and_cold_start_is_once_per_process(monkeypatch, capsys):
    monkeypatch.setattr(edge, "_cold", True)
    seen: list[str] = []

    @edge.lambda_edge(bad_event=edge.ws_status(400), failure=edge.ws_status(500))
    def handler(event, context):
        from httptunnel import log
        log.info("inside", request_id="r1")
        seen.append("called")
        return {"statusCode": 200}

    handler({}, FakeContext(aws_request_id="first"))
    handler({}, FakeContext(aws_request_id="second"))
    from httptunnel import log
    log.info("outside")
    first, second, outside = log_lines(capsys)
    assert (first["aws_request_id"], first["cold_start"], first["request_id"]) == ("first", True, "r1")
    assert (second["aws_request_id"], second["cold_start"]) == ("second", False)
    assert "aws_request_id" not in outside and "cold_start" not in outside
    assert seen == ["called", "called"]
