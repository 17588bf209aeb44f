"""moto in-process (hooked), stream delivery with filters and partial batch failures, TTL, faults."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import boto3
import botocore
import pytest
from botocore.config import Config

from emulator.background import StreamPoller, TtlReaper, failed_index, matches, schedule_interval
from emulator.moto_local import MotoService, disable_moto_lambda_invoke
from emulator.profiles import load_profile
from emulator.runtime import FunctionSpec, LambdaService
from emulator.stats import Faults, Stats
from emulator.wiring import StreamMapping
from tests.emulator.conftest import TOYS, runtime_config

COMPLETED_FILTER = {"eventName": ["MODIFY"],
                    "dynamodb": {"NewImage": {"status": {"S": ["completed", "error"]}}}}


def record(event_name: str, status: str | None) -> dict:
    image = {"requestId": {"S": "r1"}}
    if status is not None:
        image["status"] = {"S": status}
    return {"eventName": event_name, "dynamodb": {"NewImage": image, "SequenceNumber": "1"}}


@pytest.mark.parametrize("event_name,status,expected", [
    ("MODIFY", "completed", True), ("MODIFY", "error", True), ("MODIFY", "pending", False),
    ("INSERT", "completed", False), ("MODIFY", None, False), ("REMOVE", None, False)])
def test_stream_filter_of_the_pending_table(event_name, status, expected):
    assert matches(COMPLETED_FILTER, record(event_name, status)) is expected


def test_filter_operators():
    assert matches({"a": [{"prefix": "ab"}]}, {"a": "abc"})
    assert not matches({"a": [{"anything-but": ["x", "y"]}]}, {"a": "x"})
    assert matches({"a": [{"exists": False}]}, {"b": 1})
    assert matches({"n": [{"numeric": [">", 1, "<=", 5]}]}, {"n": 5})
    assert not matches({"n": [{"numeric": [">", 1, "<=", 5]}]}, {"n": 6})


def test_failed_index_and_schedule_rates():
    batch = [{"dynamodb": {"SequenceNumber": s}} for s in ("10", "11", "12")]
    assert failed_index({"batchItemFailures": []}, batch) is None
    assert failed_index({"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}, batch) == 1
    assert failed_index({"batchItemFailures": [{"itemIdentifier": "nope"}]}, batch) == 0
    assert schedule_interval("rate(5 minutes)") == 300
    assert schedule_interval("rate(1 hour)") == 3600


@pytest.fixture(scope="module")
def moto():
    service = MotoService(Stats(), Faults(), load_profile("local"))
    endpoint = service.start()
    yield service, endpoint
    service.stop()


def client(service: str, endpoint: str, **config):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(**config) if config else None)


def make_table(endpoint: str, name: str) -> str:
    ddb = client("dynamodb", endpoint)
    described = ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": "requestId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "requestId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    return described["TableDescription"]["LatestStreamArn"]


def test_moto_invoke_hook_still_exists_in_this_moto():
    """The hooked attribute and its call sites (stream PutItem, backend invoke) are still there."""
    import inspect
    import types

    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.dynamodb.models.table import StreamShard

    from emulator import moto_local

    disable_moto_lambda_invoke()
    original = moto_local._ORIGINAL_INVOKE
    assert original is not None and original is not LambdaFunction.invoke
    assert list(inspect.signature(original).parameters) == ["self", "body", "request_headers", "response_headers"]
    assert "send_dynamodb_items" in inspect.getsource(StreamShard.add)
    assert "func.invoke(" in inspect.getsource(moto_local._ORIGINAL_SEND_DYNAMODB_ITEMS)
    assert list(inspect.signature(moto_local._ORIGINAL_SEND_DYNAMODB_ITEMS).parameters) == [
        "self", "function_arn", "items", "source"]
    assert LambdaBackend.send_dynamodb_items is not moto_local._ORIGINAL_SEND_DYNAMODB_ITEMS
    # StreamShard.add passes the shard's whole backlog and clears it only on a truthy result
    add_source = inspect.getsource(StreamShard.add)
    assert "send_dynamodb_items(" in add_source and "self.items," in add_source and "if result:" in add_source
    assert LambdaBackend.send_dynamodb_items(None, "arn", [object()], "src") == b""
    assert LambdaFunction.invoke(types.SimpleNamespace(function_name="f"), "{}", {}, {}) == b""


def test_put_item_keeps_stream_records_with_a_mapping(moto, tmp_path):
    _, endpoint = moto
    stream_arn = make_table(endpoint, "hooked")
    lam = client("lambda", endpoint)
    iam = client("iam", endpoint)
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return {}\n")
    lam.create_function(FunctionName="toy", Runtime="python3.12", Role=role, Handler="app.handler",
                        Code={"ZipFile": buf.getvalue()})
    lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName="toy", StartingPosition="TRIM_HORIZON")
    ddb = client("dynamodb", endpoint)
    ddb.put_item(TableName="hooked", Item={"requestId": {"S": "a"}})  # moto would invoke "toy" here
    streams = client("dynamodbstreams", endpoint)
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["eventName"] for r in streams.get_records(ShardIterator=iterator)["Records"]] == ["INSERT"]


async def test_stream_poller_filters_batches_and_retries_failures(moto, tmp_path):
    _, endpoint = moto
    stream_arn = make_table(endpoint, "pending")
    lambdas = LambdaService(runtime_config())
    lambdas.add(FunctionSpec(name="notifier", handler="app.handler", code_dir=TOYS / "stream",
                             environment={"OUT_DIR": str(tmp_path)}))
    mapping = StreamMapping(function="notifier", stream_arn=stream_arn, table_name="pending", batch_size=10,
                            filters=(COMPLETED_FILTER,), report_batch_item_failures=True)
    poller = StreamPoller(mapping, lambdas, endpoint, "us-east-1")
    task = asyncio.create_task(poller.run())
    try:
        ddb = client("dynamodb", endpoint)
        for rid in ("r1", "r2", "r3"):
            ddb.put_item(TableName="pending", Item={"requestId": {"S": rid}, "status": {"S": "pending"}})
        for rid in ("r1", "r2", "r3"):
            extra = {"fail": {"BOOL": True}} if rid == "r2" else {}
            ddb.put_item(TableName="pending", Item={"requestId": {"S": rid}, "status": {"S": "completed"}, **extra})
        log = tmp_path / "log.jsonl"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            lines = log.read_text().splitlines() if log.exists() else []
            if len(lines) >= 5:
                break
            await asyncio.sleep(0.05)
        delivered = [json.loads(line) for line in log.read_text().splitlines()]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await lambdas.stop_all()
    ids = [r["dynamodb"]["NewImage"]["requestId"]["S"] for r in delivered]
    assert ids == ["r1", "r2", "r3", "r2", "r3"]  # r2 failed once: retried from r2 on
    assert {r["eventName"] for r in delivered} == {"MODIFY"}
    assert all(r["eventSourceARN"] == stream_arn and r["eventSource"] == "aws:dynamodb" for r in delivered)
    assert isinstance(delivered[0]["dynamodb"]["ApproximateCreationDateTime"], float)


def test_ttl_reaper_deletes_only_expired_rows(moto):
    _, endpoint = moto
    make_table(endpoint, "ttl-table")
    ddb = client("dynamodb", endpoint)
    now = int(time.time())
    ddb.put_item(TableName="ttl-table", Item={"requestId": {"S": "old"}, "ttl": {"N": str(now - 5)}})
    ddb.put_item(TableName="ttl-table", Item={"requestId": {"S": "new"}, "ttl": {"N": str(now + 500)}})
    ddb.put_item(TableName="ttl-table", Item={"requestId": {"S": "none"}})
    assert TtlReaper(("ttl-table",), endpoint, "us-east-1").expire_once(now) == 1
    left = sorted(i["requestId"]["S"] for i in ddb.scan(TableName="ttl-table")["Items"])
    assert left == ["new", "none"]


def test_throttle_fault_and_dynamodb_counting(moto):
    service, endpoint = moto
    make_table(endpoint, "throttled")
    ddb = client("dynamodb", endpoint, retries={"total_max_attempts": 1, "mode": "standard"})
    service.stats.reset()
    service.faults.update({"dynamodb_throttle_rate": 1})
    try:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            ddb.get_item(TableName="throttled", Key={"requestId": {"S": "x"}})
        assert info.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    finally:
        service.faults.update({"dynamodb_throttle_rate": 0})
    ddb.get_item(TableName="throttled", Key={"requestId": {"S": "x"}})
    assert service.stats.snapshot()["dynamodb_calls"]["GetItem"] == 2
