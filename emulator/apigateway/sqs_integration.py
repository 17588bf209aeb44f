"""A WebSocket route's AWS service integration to SQS (the caller API's $default, issue 24).

Terraform (terraform/caller_queue.tf) gives the route ``integration_type = "AWS"``, an
``arn:aws:apigateway:<region>:sqs:path/<account>/<queue>`` URI, a form Content-Type and a request
template keyed ``$default``. Per frame the emulator renders that template the way API Gateway's mapping
templates would (the subset it uses: ``$context.<name>``, ``$input.body``, ``$util.urlEncode(...)``,
``$util.base64Encode(...)``; anything else is refused when the stack starts), reads the rendered form
as an SQS query request (``Action=SendMessage``, ``MessageGroupId``, ``MessageDeduplicationId``,
``MessageAttribute.N.*``, ``MessageBody``) and sends it to moto's SQS.

* One connection's frames are sent one after another, in the order the gateway read them off the
  socket (``OrderedSender``). That API Gateway keeps this order is *no source found, verify on the
  first deploy* (emulator/README.md).
* A body SQS would refuse (characters outside ``#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
  #x10000-#x10FFFF``: InvalidMessageContents,
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html) is refused
  here too (moto does not check), and the frame is dropped with a log line, as the integration's error.
* ``$util.urlEncode`` is Java's ``URLEncoder`` (space as ``+``), ``$util.base64Encode`` base64 of the
  UTF-8 bytes (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-mapping-template-reference.html).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, quote_plus

LOG = logging.getLogger("emulator.sqs_integration")
SQS_PATH = re.compile(r"^arn:[a-z-]+:apigateway:[a-z0-9-]+:sqs:path/(\d{12})/([A-Za-z0-9_-]{1,75}(?:\.fifo)?)$")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_SQS_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
UTIL: dict[str, Callable[[str], str]] = {
    "urlEncode": lambda v: quote_plus(v, safe="*"),
    "base64Encode": lambda v: base64.b64encode(v.encode("utf-8")).decode("ascii"),
}


class TemplateError(ValueError):
    """A request template the emulator cannot render (it would not guess what API Gateway does)."""


def sqs_queue(uri: str) -> tuple[str, str] | None:
    """(account, queue name) of an SQS path integration URI; None for anything else."""
    found = SQS_PATH.match(uri)
    return (found.group(1), found.group(2)) if found else None


def _expression(template: str, at: int, values: dict[str, str]) -> tuple[str, int]:
    """Evaluate the expression starting at ``template[at] == "$"``: (its value, the index after it)."""
    if template.startswith("$input.body", at):
        return values["$input.body"], at + len("$input.body")
    if template.startswith("$context.", at):
        name = _NAME.match(template, at + len("$context."))
        if name is None or f"$context.{name.group()}" not in values:
            raise TemplateError(f"unsupported context variable at {template[at:at + 40]!r}")
        return values[f"$context.{name.group()}"], name.end()
    if template.startswith("$util.", at):
        name = _NAME.match(template, at + len("$util."))
        if name is None or name.group() not in UTIL or not template.startswith("(", name.end()):
            raise TemplateError(f"unsupported $util function at {template[at:at + 40]!r}")
        if not template.startswith("$", name.end() + 1):
            raise TemplateError(f"$util.{name.group()} takes an expression here, at {template[at:at + 40]!r}")
        inner, end = _expression(template, name.end() + 1, values)
        if not template.startswith(")", end):
            raise TemplateError(f"unclosed $util.{name.group()}( at {template[at:at + 40]!r}")
        return UTIL[name.group()](inner), end + 1
    raise TemplateError(f"unsupported expression at {template[at:at + 40]!r}")


def render(template: str, context: dict[str, str], body: str) -> str:
    values = {f"$context.{k}": v for k, v in context.items()} | {"$input.body": body}
    out, at = [], 0
    while at < len(template):
        dollar = template.find("$", at)
        if dollar < 0:
            out.append(template[at:])
            break
        out.append(template[at:dollar])
        value, at = _expression(template, dollar, values)
        out.append(value)
    return "".join(out)


SAMPLE_CONTEXT = {"connectionId": "AAAAAAAAAAAAAAA=", "messageId": "AAAAAAAAAAAAAAA=", "requestId": "AAAAAAAAAAAAAAA=",
                  "eventType": "MESSAGE", "routeKey": "$default", "apiId": "abc", "stage": "live",
                  "domainName": "127.0.0.1", "requestTimeEpoch": "0", "connectedAt": "0"}


def send_message_request(form: str) -> dict[str, Any]:
    """The rendered form as SendMessage's parameters (without QueueUrl); TemplateError for anything else."""
    fields = parse_qs(form, keep_blank_values=True, strict_parsing=True)
    single = {}
    for key, values in fields.items():
        if len(values) != 1:
            raise TemplateError(f"{key} given {len(values)} times")
        single[key] = values[0]
    if single.pop("Action", None) != "SendMessage":
        raise TemplateError("the template must render Action=SendMessage")
    request: dict[str, Any] = {}
    attributes: dict[int, dict[str, str]] = {}
    for key, value in single.items():
        if key in ("MessageBody", "MessageGroupId", "MessageDeduplicationId"):
            request[key] = value
        elif key == "DelaySeconds":
            request[key] = int(value)
        elif (found := re.fullmatch(r"MessageAttribute\.(\d+)\.(Name|Value\.DataType|Value\.StringValue)", key)):
            attributes.setdefault(int(found.group(1)), {})[found.group(2)] = value
        else:
            raise TemplateError(f"unsupported SendMessage parameter {key!r}")
    if "MessageBody" not in request:
        raise TemplateError("the template renders no MessageBody")
    if attributes:
        request["MessageAttributes"] = {}
        for _, attr in sorted(attributes.items()):
            if set(attr) != {"Name", "Value.DataType", "Value.StringValue"}:
                raise TemplateError(f"message attribute {attr} needs a Name, a DataType and a StringValue")
            request["MessageAttributes"][attr["Name"]] = {"DataType": attr["Value.DataType"],
                                                          "StringValue": attr["Value.StringValue"]}
    return request


@dataclass(frozen=True)
class SqsIntegration:
    """What discover read from the route's integration (checked by ``check`` when the stack starts)."""
    account: str
    queue_name: str
    template: str
    content_type: str

    def check(self) -> None:
        if self.content_type != "application/x-www-form-urlencoded":
            raise TemplateError(f"the SQS integration must send a form, not {self.content_type!r}")
        send_message_request(render(self.template, SAMPLE_CONTEXT, "sample ünïcode \x00 body"))


class OrderedSender:
    """One connection's frames to SQS, one SendMessage at a time, in the order they were read.

    ``due`` is when a frame may leave (read time + the WebSocket API's routing latency from the
    profile): a latency for each frame, not a wait that adds up over a burst."""

    def __init__(self, send: Callable[[dict[str, Any]], Any]) -> None:
        self.send = send
        self.frames: asyncio.Queue[tuple[float, dict[str, Any]] | None] = asyncio.Queue()
        self.task = asyncio.create_task(self.run())

    def put(self, request: dict[str, Any], delay_s: float) -> None:
        self.frames.put_nowait((time.monotonic() + delay_s, request))

    def close(self) -> None:
        """Send what was read, then stop."""
        self.frames.put_nowait(None)

    async def run(self) -> None:
        while True:
            item = await self.frames.get()
            if item is None:
                return
            due, request = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await asyncio.to_thread(self.send, request)
            except Exception as exc:  # noqa: BLE001 - the integration's error: this frame is lost
                LOG.warning(json.dumps({"event": "sqs_integration_failed", "error": str(exc)[:300]}))


def invalid_for_sqs(body: str) -> bool:
    return _SQS_INVALID.search(body) is not None
