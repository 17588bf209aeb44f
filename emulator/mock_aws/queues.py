"""SQS FIFO -> Lambda, as Lambda's event source mapping runs it (the caller frames queue, issue 24).

* moto's SQS is the queue (moto 5.2.5, pinned in constraints.txt). Its ``receive_message`` keeps FIFO
  group order the way SQS does: it returns a queue's messages in the order they were sent and skips
  every message of a group that has a message in flight (received, not yet deleted, visibility not
  expired) (``moto/sqs/models.py`` ``SQSBackend.receive_message``, ``pending_message_groups``). A
  batch may hold several groups, each group's messages in order.
* moto does not lock that check: two ReceiveMessage calls at once could both see a group as free.
  This poller makes one ReceiveMessage call at a time (the invocations then run concurrently, up to
  ``concurrency``), so one group is never in two invocations at once.
* moto's own delivery (``Queue.add_message`` receiving for a registered mapping inside SendMessage)
  is switched off (``moto_local.disable_moto_lambda_invoke``): the emulator delivers.
* Lambda's side (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html,
  https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html): up to ``BatchSize``
  (10 for FIFO) messages per invocation; a successful invocation's messages are deleted, except, with
  ``ReportBatchItemFailures``, the ones it names (an unknown identifier fails the batch); a failed
  invocation deletes nothing. What is not deleted becomes visible again when its visibility timeout
  ends (moto), and the queue's redrive policy moves it to the dead-letter queue after
  ``maxReceiveCount`` receives (moto).
* Before each invocation: the latency profile's ``sqs_fifo_ms`` (SendMessage + the poller picking it
  up) and the fault ``ws_jitter_s`` (0..that, uniform: one group's invocations never overlap, so the
  delays cannot reorder it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from emulator.apigateway.sqs_integration import SqsIntegration
from emulator.apigateway.wiring import QueueMapping
from emulator.lambda_runtime.runtime import LambdaService
from emulator.mock_aws.moto_local import internal_client
from emulator.stats import Faults

LOG = logging.getLogger("emulator.mock_aws.queues")
LONG_POLL_S = 1  # ReceiveMessage WaitTimeSeconds: moto wakes the call as soon as a message arrives
CONCURRENCY = 8  # invocations at once (Lambda: up to the number of active message groups)
BUSY_POLL_S = 0.05  # with batches in flight and nothing receivable: ask again after one ends, or this long


def log(event: str, **fields: Any) -> None:
    LOG.info(json.dumps({"event": event, **fields}))


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message as Lambda delivers it (the SQS event's record)."""
    attributes = {name: {"stringValue": value.get("StringValue"), "stringListValues": [], "binaryListValues": [],
                         "dataType": value.get("DataType", "String")}
                  for name, value in (message.get("MessageAttributes") or {}).items()}
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": dict(message.get("Attributes") or {}), "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody", ""), "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
            "awsRegion": region}


def failed_ids(response: Any, batch: list[dict[str, Any]]) -> set[str] | None:
    """The messageIds a ReportBatchItemFailures answer names; None = the whole batch failed."""
    if not isinstance(response, dict):
        return set()
    ids = {r["messageId"] for r in batch}
    named: set[str] = set()
    for failure in response.get("batchItemFailures") or []:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if identifier not in ids:
            return None  # an unknown or empty identifier: Lambda fails the whole batch
        named.add(identifier)
    return named


class FifoPoller:
    def __init__(self, mapping: QueueMapping, lambdas: LambdaService, endpoint: str, region: str,
                 faults: Faults | None = None, delivery_delay_s: float = 0.0, concurrency: int = CONCURRENCY) -> None:
        self.mapping = mapping
        self.lambdas = lambdas
        self.client = internal_client("sqs", endpoint, region)
        self.region = region
        self.faults = faults or Faults()
        self.delivery_delay_s = delivery_delay_s
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.visibility_s: int | None = None  # the queue's VisibilityTimeout (read when first needed)
        self.finished = asyncio.Event()  # a delivery ended (its messages deleted, or left to come back)
        self.delivered = 0  # messages deleted after their invocation
        self.invocations = 0

    async def call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, method), **kwargs)

    async def run(self) -> None:
        """One ReceiveMessage at a time. With nothing in flight it long-polls (moto answers as soon as a
        message is sent); with batches in flight it asks without waiting and, finding nothing (their
        groups are held), waits for one to finish: moto's long poll wakes on a new message only, not
        when a delete frees a group."""
        try:
            while True:
                await self.slots.acquire()
                in_flight = bool(self.tasks)
                self.finished.clear()
                try:
                    page = await self.call("receive_message", QueueUrl=self.mapping.queue_url,
                                           MaxNumberOfMessages=max(1, min(self.mapping.batch_size, 10)),
                                           WaitTimeSeconds=0 if in_flight else LONG_POLL_S,
                                           AttributeNames=["All"], MessageAttributeNames=["All"])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the poller must survive moto hiccups
                    self.slots.release()
                    log("queue_poll_failed", queue=self.mapping.queue_arn, error=str(exc))
                    await asyncio.sleep(1.0)
                    continue
                messages = page.get("Messages") or []
                if not messages:
                    self.slots.release()
                    if in_flight:
                        try:
                            await asyncio.wait_for(self.finished.wait(), BUSY_POLL_S)
                        except asyncio.TimeoutError:
                            pass
                    continue
                batch = [lambda_record(m, self.mapping.queue_arn, self.region) for m in messages]
                task = asyncio.create_task(self.deliver(batch))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        finally:
            for task in list(self.tasks):
                task.cancel()

    async def hold_back(self, kept: list[dict[str, Any]]) -> None:
        """What was not deleted comes back after the visibility timeout (SQS), and in order: moto, when a
        group's messages all become visible at once, hands out a later one before the first (its
        ``receive_message`` frees the group when it meets the LAST pending message of the group, after
        skipping the earlier ones in the same pass). So each group's first kept message gets one second
        more than the rest: by the time it is visible, the rest are no longer pending."""
        if self.visibility_s is None:
            found = await self.call("get_queue_attributes", QueueUrl=self.mapping.queue_url,
                                    AttributeNames=["VisibilityTimeout"])
            self.visibility_s = int(found["Attributes"]["VisibilityTimeout"])
        firsts: set[str] = set()
        for record in kept:
            group = record["attributes"].get("MessageGroupId", "")
            timeout = self.visibility_s + (0 if group in firsts else 1)
            firsts.add(group)
            await self.call("change_message_visibility", QueueUrl=self.mapping.queue_url,
                            ReceiptHandle=record["receiptHandle"], VisibilityTimeout=timeout)

    async def deliver(self, batch: list[dict[str, Any]]) -> None:
        try:
            delay = self.delivery_delay_s + self.faults.jitter(self.faults.settings.ws_jitter_s)
            if delay:
                await asyncio.sleep(delay)
            invocation = await self.lambdas.invoke(self.mapping.function, {"Records": batch})
            self.invocations += 1
            if not invocation.ok:
                failed: set[str] | None = None
            elif self.mapping.report_batch_item_failures:
                failed = failed_ids(invocation.result(), batch)
            else:
                failed = set()
            done = [] if failed is None else [r for r in batch if r["messageId"] not in failed]
            if len(done) < len(batch):
                log("queue_records_not_deleted", function=self.mapping.function, count=len(batch) - len(done),
                    handler_failed=not invocation.ok)
                await self.hold_back([r for r in batch if r not in done])
            if done:
                entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)]
                out = await self.call("delete_message_batch", QueueUrl=self.mapping.queue_url, Entries=entries)
                self.delivered += len(out.get("Successful") or [])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - what was not deleted comes back after its visibility timeout
            log("queue_delivery_failed", queue=self.mapping.queue_arn, error=str(exc))
        finally:
            self.slots.release()
            self.finished.set()


def sqs_sender(endpoint: str, region: str) -> Any:
    """What an API's SQS integration calls (from a thread): SendMessage to its queue on moto."""
    client = internal_client("sqs", endpoint, region)
    urls: dict[tuple[str, str], str] = {}

    def send(integration: SqsIntegration, request: dict[str, Any]) -> None:
        key = (integration.account, integration.queue_name)
        if key not in urls:
            urls[key] = client.get_queue_url(QueueName=integration.queue_name,
                                             QueueOwnerAWSAccountId=integration.account)["QueueUrl"]
        client.send_message(QueueUrl=urls[key], **request)
    return send
