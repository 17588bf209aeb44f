"""The caller frames path in the emulator (issue 24): the SQS integration's template, and the FIFO
poller over moto's SQS (one message group in one invocation at a time, in order, partial failures)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from emulator.apigateway.sqs_integration import (SqsIntegration, TemplateError, invalid_for_sqs, render,
                                                 send_message_request, sqs_queue)
from emulator.apigateway.wiring import QueueMapping
from emulator.mock_aws.moto_local import MotoService, disable_moto_lambda_invoke
from emulator.mock_aws.queues import FifoPoller, sqs_sender
from emulator.profiles import load_profile
from emulator.stats import Faults, Stats
from scripts.harness.wait import wait_until_async

# terraform/caller_queue.tf's template, as Terraform gives it to API Gateway
TEMPLATE = ("Action=SendMessage&MessageGroupId=$util.urlEncode($context.connectionId)"
            "&MessageDeduplicationId=$util.urlEncode($context.messageId)&MessageAttribute.1.Name=connectionId"
            "&MessageAttribute.1.Value.DataType=String"
            "&MessageAttribute.1.Value.StringValue=$util.urlEncode($context.connectionId)"
            "&MessageBody=$util.urlEncode($util.base64Encode($input.body))")
CONTEXT = {"connectionId": "p0+pVkm/Y0KcyLc=", "messageId": "a+b/c=", "requestId": "r"}


def test_the_template_renders_the_send_message_terraform_asks_for():
    body = "nul\x00 + & = é 🌍 \u2028"
    request = send_message_request(render(TEMPLATE, CONTEXT, body))
    assert request == {
        "MessageGroupId": "p0+pVkm/Y0KcyLc=", "MessageDeduplicationId": "a+b/c=",
        "MessageAttributes": {"connectionId": {"DataType": "String", "StringValue": "p0+pVkm/Y0KcyLc="}},
        "MessageBody": base64.b64encode(body.encode()).decode()}
    assert not invalid_for_sqs(request["MessageBody"])
    raw = send_message_request(render(TEMPLATE.replace("$util.base64Encode($input.body)", "$input.body"), CONTEXT, body))
    assert raw["MessageBody"] == body and invalid_for_sqs(raw["MessageBody"]), "SQS would refuse the NUL"
    assert sqs_queue("arn:aws:apigateway:us-east-1:sqs:path/123456789012/q-caller-frames.fifo") == (
        "123456789012", "q-caller-frames.fifo")
    assert sqs_queue("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/f/invocations") is None


@pytest.mark.parametrize("template", ["Action=SendMessage&MessageBody=$input.json('$')",
                                      "Action=SendMessage&MessageBody=$context.nope",
                                      "Action=SendMessage&MessageBody=$util.escapeJavaScript($input.body)",
                                      "Action=SendMessage&MessageBody=$util.urlEncode($input.body",
                                      "Action=DeleteQueue&MessageBody=x", "Action=SendMessage&QueueUrl=x&MessageBody=x"])
def test_a_template_the_emulator_cannot_render_is_refused_when_the_stack_starts(template):
    with pytest.raises(TemplateError):
        SqsIntegration("123456789012", "q.fifo", template, "application/x-www-form-urlencoded").check()


@dataclass
class Invocation:
    ok: bool
    answer: Any

    def result(self) -> Any:
        return self.answer


class FakeLambda:
    """caller_message's contract: records of a group in order; it may fail a record (and must then
    name the group's later records too). Records what it saw and whether a group ever overlapped."""

    def __init__(self, fail_once: set[str] | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.busy: set[str] = set()
        self.overlaps = 0
        self.fail_once = set(fail_once or ())
        self.rng = random.Random(7)

    async def invoke(self, function: str, event: dict[str, Any]) -> Invocation:
        groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        self.overlaps += len(groups & self.busy)
        self.busy |= groups
        try:
            await asyncio.sleep(self.rng.uniform(0, 0.02))  # the handler's own time, random
            failed: list[str] = []
            broken: set[str] = set()
            for record in event["Records"]:
                group, body = record["attributes"]["MessageGroupId"], record["body"]
                if group in broken or body in self.fail_once:
                    self.fail_once.discard(body)
                    broken.add(group)
                    failed.append(record["messageId"])
                    continue
                self.seen.append((group, body))
            return Invocation(True, {"batchItemFailures": [{"itemIdentifier": i} for i in failed]})
        finally:
            self.busy -= groups


@pytest.fixture(scope="module")
def moto():
    disable_moto_lambda_invoke()
    service = MotoService(Stats(), Faults(), load_profile("local"))
    endpoint = service.start()
    yield endpoint
    service.stop()


def make_queue(endpoint: str, name: str, visibility: int = 30) -> tuple[str, str]:
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", "VisibilityTimeout": str(visibility)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


async def run_poller(endpoint: str, name: str, frames: list[tuple[str, str]], fake: FakeLambda, jitter: float,
                     visibility: int = 30) -> FifoPoller:
    url, arn = make_queue(endpoint, name, visibility)
    send = sqs_sender(endpoint, "us-east-1")
    integration = SqsIntegration("123456789012", name, TEMPLATE, "application/x-www-form-urlencoded")
    faults = Faults()
    faults.update({"ws_jitter_s": jitter})
    poller = FifoPoller(QueueMapping("caller_message", arn, url, batch_size=10, report_batch_item_failures=True),
                        fake, endpoint, "us-east-1", faults)  # type: ignore[arg-type]
    task = asyncio.create_task(poller.run())
    try:
        for index, (group, text) in enumerate(frames):
            request = send_message_request(render(integration.template, {"connectionId": group, "messageId": str(index),
                                                                         "requestId": str(index)}, text))
            await asyncio.to_thread(send, integration, request)
        # seen: the function had them; delivered: their deletes came back (the last batch's delete can
        # still be on its way when the function has returned)
        await wait_until_async(lambda: len(fake.seen) >= len(frames) and poller.delivered >= len(frames), 60,
                               what="every frame delivered and deleted")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return poller


async def test_1000_frames_of_three_sockets_reach_the_function_in_order_with_random_delays(moto):
    """0-50 ms of random delay before every invocation (fault ws_jitter_s), a random handler time, 8
    invocations at once: each socket's frames still arrive in order, once, never two batches of one
    socket at a time."""
    frames = [(f"sock-{i % 3}", f"frame {i} \x00") for i in range(1000)]
    fake = FakeLambda()
    poller = await run_poller(moto, "order.fifo", frames, fake, jitter=0.05)
    for group in ("sock-0", "sock-1", "sock-2"):
        got = [base64.b64decode(b).decode() for g, b in fake.seen if g == group]
        assert got == [t for g, t in frames if g == group]
    assert fake.overlaps == 0 and poller.delivered == 1000
    assert poller.invocations < 1000, "batches, not one invocation per frame"


async def test_a_failed_frame_comes_back_with_its_sockets_later_frames_in_order(moto):
    """The function fails frame 5 of sock-a (reporting it and sock-a's later frames): sock-b's frames are
    deleted, sock-a's come back after the visibility timeout (1 s here), still in order, none twice."""
    frames = [("sock-a" if i % 2 else "sock-b", f"f{i}") for i in range(30)]
    fail = base64.b64encode(b"f5").decode()
    fake = FakeLambda(fail_once={fail})
    await run_poller(moto, "retry.fifo", frames, fake, jitter=0.0, visibility=1)
    for group in ("sock-a", "sock-b"):
        got = [base64.b64decode(b).decode() for g, b in fake.seen if g == group]
        assert got == [t for g, t in frames if g == group]


def test_lambda_records_carry_what_caller_message_reads():
    from emulator.mock_aws.queues import failed_ids, lambda_record

    record = lambda_record({"MessageId": "m", "ReceiptHandle": "h", "Body": "Ym9keQ==", "MD5OfBody": "x",
                            "Attributes": {"MessageGroupId": "c"},
                            "MessageAttributes": {"connectionId": {"DataType": "String", "StringValue": "c"}}},
                           "arn:aws:sqs:us-east-1:1:q.fifo", "us-east-1")
    assert record["messageAttributes"]["connectionId"]["stringValue"] == "c" and record["eventSource"] == "aws:sqs"
    assert json.loads(json.dumps(record))["attributes"]["MessageGroupId"] == "c"
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m"}]}, [record]) == {"m"}
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, [record]) is None
    assert failed_ids(None, [record]) == set()


def test_moto_does_not_receive_a_mapped_queues_messages_inside_send_message(moto):
    """Without the hook moto's Queue.add_message receives the messages for a registered mapping (its
    Lambda does nothing here): each receive counts towards maxReceiveCount and holds the group."""
    import io
    import zipfile

    def aws(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    url, arn = make_queue(moto, "mapped.fifo")
    role = aws("iam").create_role(RoleName="fifo-reader", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return {}\n")
    lam = aws("lambda")
    lam.create_function(FunctionName="reader", Runtime="python3.12", Role=role, Handler="app.handler",
                        Code={"ZipFile": buf.getvalue()})
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="reader", BatchSize=10,
                                    FunctionResponseTypes=["ReportBatchItemFailures"])
    sqs = aws("sqs")
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="1")
    (message,) = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1", "nobody received it before us"
    # moto is shared by the module's tests (test_background maps a stream of its own): ours is among them
    assert arn in [m["EventSourceArn"] for m in lam.list_event_source_mappings()["EventSourceMappings"]]
