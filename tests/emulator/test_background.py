"""moto in-process (hooked), stream delivery with filters and partial batch failures, TTL, faults."""

from __future__ import annotations

import asyncio
import json
import time

import boto3
import botocore
import pytest
from botocore.config import Config

from emulator.mock_aws.background import StreamPoller, TtlReaper, failed_index, matches, run_schedule, schedule_interval
from emulator.mock_aws.moto_local import MotoService, disable_moto_lambda_invoke
from emulator.profiles import load_profile
from emulator.lambda_runtime.runtime import FunctionSpec, LambdaService
from emulator.stats import Faults, Stats
from emulator.stack import parse_args
from emulator.apigateway.wiring import Schedule, StreamMapping
from scripts.harness.wait import wait_until_async
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


@pytest.mark.parametrize("expression", ["rate(30 seconds)", "rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)",
                                        "rate(1.5 hours)", "rate(5  minutes)", "every 5 minutes"])
def test_schedules_eventbridge_refuses_are_not_run(expression):
    """EventBridge's rate grammar: a positive number, singular unit for 1, minutes at the finest
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html)."""
    with pytest.raises(ValueError):
        schedule_interval(expression)


async def test_an_invalid_schedule_never_fires():
    lambdas = LambdaService(runtime_config())
    schedule = Schedule(rule_name="r", rule_arn="arn:aws:events:us-east-1:1:rule/r", expression="rate(10 seconds)",
                        function="missing")
    await asyncio.wait_for(run_schedule(schedule, lambdas, "1", "us-east-1", interval_override=0.01), 2)


def test_cron_is_not_parsed_and_fires_every_minute():
    assert schedule_interval("cron(0 20 * * ? *)") == 60


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

    from emulator.mock_aws import moto_local

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


async def test_filters_apply_before_batching(moto, tmp_path):
    """Records matching no filter are dropped before batches are cut, so every batch is full of
    matching records (https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html)."""
    _, endpoint = moto
    stream_arn = make_table(endpoint, "batched")
    ddb = client("dynamodb", endpoint)
    for i in range(5):
        ddb.put_item(TableName="batched", Item={"requestId": {"S": f"r{i}"}, "status": {"S": "pending"}})
    for i, status in enumerate(["pending", "completed", "pending", "completed", "error", "pending", "completed",
                                "completed", "completed"]):
        ddb.put_item(TableName="batched", Item={"requestId": {"S": f"r{i % 5}"}, "status": {"S": status},
                                                "n": {"N": str(i)}})
    lambdas = LambdaService(runtime_config())
    lambdas.add(FunctionSpec(name="notifier", handler="app.handler", code_dir=TOYS / "stream",
                             environment={"OUT_DIR": str(tmp_path)}))
    mapping = StreamMapping(function="notifier", stream_arn=stream_arn, table_name="batched", batch_size=2,
                            filters=(COMPLETED_FILTER,), starting_position="TRIM_HORIZON")
    poller = StreamPoller(mapping, lambdas, endpoint, "us-east-1")
    task = asyncio.create_task(poller.run())
    log = tmp_path / "log.jsonl"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(log.read_text().splitlines() if log.exists() else []) < 6:
            await asyncio.sleep(0.05)
        delivered = [json.loads(line) for line in log.read_text().splitlines()]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await lambdas.stop_all()
    assert [int(r["dynamodb"]["NewImage"]["n"]["N"]) for r in delivered] == [1, 3, 4, 6, 7, 8]
    assert [r["batchSize"] for r in delivered] == [2, 2, 2, 2, 2, 2]  # batch-then-filter would give 1,1,1,1,2,...


def test_conditional_write_failures_have_dynamodbs_error_shape(moto):
    """ConditionalCheckFailedException, HTTP 400, for PutItem/UpdateItem/DeleteItem
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html#API_PutItem_Errors):
    the one shape our store recognises."""
    from httptunnel import aws

    _, endpoint = moto
    make_table(endpoint, "conditional")
    ddb = client("dynamodb", endpoint)
    key = {"requestId": {"S": "k"}}
    ddb.put_item(TableName="conditional", Item={**key, "ttl": {"N": "100"}})
    calls = [
        lambda: ddb.put_item(TableName="conditional", Item=key, ConditionExpression="attribute_not_exists(requestId)"),
        lambda: ddb.update_item(TableName="conditional", Key=key, UpdateExpression="SET a = :a",
                                ConditionExpression="#t > :now", ExpressionAttributeNames={"#t": "ttl"},
                                ExpressionAttributeValues={":a": {"S": "x"}, ":now": {"N": "200"}}),
        lambda: ddb.delete_item(TableName="conditional", Key=key, ConditionExpression="#t > :now",
                                ExpressionAttributeNames={"#t": "ttl"}, ExpressionAttributeValues={":now": {"N": "200"}}),
    ]
    for call in calls:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert aws.is_conditional_failure(info.value)
    assert ddb.get_item(TableName="conditional", Key=key)["Item"] == {**key, "ttl": {"N": "100"}}


async def test_ttl_expiry_is_off_unless_asked():
    """DynamoDB deletes expired items "typically within two days" and they still show up in reads
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateTimeToLive.html):
    the local stack (and so the e2e suite) never expires rows by default."""
    assert parse_args([]).ttl_interval == 0
    reaper = TtlReaper(("t",), "http://127.0.0.1:9", "us-east-1")
    await asyncio.wait_for(reaper.run(0), 1)  # returns at once: no sweep task
    assert reaper.deleted == 0


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


def test_cached_dispatch_routes_like_moto_and_remembers(moto):
    """The remembered app is moto's own choice per (service, region, target prefix); other calls use moto's routing."""
    service, endpoint = moto
    from emulator.mock_aws.moto_local import CachedDispatch

    dispatch = service.server.app.app
    assert isinstance(dispatch, CachedDispatch)
    make_table(endpoint, "routed")
    client("dynamodb", endpoint).describe_table(TableName="routed")
    client("dynamodbstreams", endpoint).list_streams()
    client("events", endpoint).list_rules()
    client("s3", endpoint).list_buckets()  # path-routed service: never cached
    keys = set(dispatch.apps)
    assert ("dynamodb", "us-east-1", "DynamoDB_20120810") in keys
    assert ("dynamodb", "us-east-1", "DynamoDBStreams_20120810") in keys
    assert ("events", "us-east-1", "AWSEvents") in keys
    assert not any(k[0] == "s3" for k in keys)
    for key, app in dispatch.apps.items():
        environ = {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{key[1]}/{key[0]}/aws4_request, "
                                         "SignedHeaders=host, Signature=x",
                   "HTTP_X_AMZ_TARGET": f"{key[2]}.Op" if key[2] else "", "PATH_INFO": "/", "HTTP_HOST": "x"}
        assert dispatch.dispatcher.get_application(environ) is app


def test_update_item_is_atomic_for_concurrent_readers(moto):
    """moto applies SET actions one by one; the gate serialises DynamoDB calls so a reader never
    sees a half-applied UpdateItem (status completed, body missing)."""
    import concurrent.futures

    _, endpoint = moto
    make_table(endpoint, "atomic")
    ddb = client("dynamodb", endpoint, max_pool_connections=50)
    torn = []

    def writer(i: int) -> None:
        key = {"requestId": {"S": f"r{i}"}}
        ddb.put_item(TableName="atomic", Item={**key, "status": {"S": "pending"}})
        ddb.update_item(TableName="atomic", Key=key,
                        UpdateExpression="SET #s = :s, " + ", ".join(f"a{j} = :v" for j in range(40)) + ", body = :b",
                        ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":s": {"S": "completed"}, ":v": {"S": "x"}, ":b": {"S": "body"}})

    def reader(i: int) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            item = ddb.get_item(TableName="atomic", Key={"requestId": {"S": f"r{i}"}}, ConsistentRead=True).get("Item")
            if item and item["status"]["S"] == "completed":
                if "body" not in item:
                    torn.append(i)
                return

    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        futures = [pool.submit(reader, i) for i in range(24)] + [pool.submit(writer, i) for i in range(24)]
        for f in futures:
            f.result()
    assert torn == []


def test_gate_runs_one_dynamodb_call_at_a_time():
    """Deterministic half of the above: DynamoDB and Streams calls (counted or internal) never overlap."""
    import threading

    from emulator.mock_aws.moto_local import GatedApp

    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def app(environ, start_response):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.005)
        with lock:
            state["now"] -= 1
        start_response("200 OK", [])
        return [b"{}"]

    gate = GatedApp(app, Stats(), Faults(), load_profile("local"))
    environs = [{"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem"},
                {"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem", "HTTP_X_EMULATOR_INTERNAL": "1"},
                {"HTTP_X_AMZ_TARGET": "DynamoDBStreams_20120810.GetRecords", "HTTP_X_EMULATOR_INTERNAL": "1"}]
    threads = [threading.Thread(target=lambda e=e: gate(dict(e), lambda *a: None)) for e in environs * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["max"] == 1


def test_jsonpath_cache_hook_point_still_exists_in_this_moto():
    """moto's EventTemplateParser imports jsonpath_ng.ext.parse at call time (so the cache applies)."""
    import inspect

    import jsonpath_ng.ext
    from moto.events.utils import EventTemplateParser

    from emulator.mock_aws.moto_local import cache_moto_jsonpath

    assert "from jsonpath_ng.ext import parse" in inspect.getsource(EventTemplateParser.parse)
    cache_moto_jsonpath()
    assert jsonpath_ng.ext.parse("$.detail") is jsonpath_ng.ext.parse("$.detail")
    event = {"version": "0", "id": "1", "detail-type": "t", "source": "s", "account": "123456789012",
             "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {"a": 1},
             "ingestion-time": 0}
    template = '{"d": <d>}'
    assert EventTemplateParser.parse(template, {"d": "$.detail"}, event) == {"d": {"a": 1}}


def test_fair_lock_serves_waiters_in_arrival_order():
    import threading

    from emulator.mock_aws.moto_local import FairLock

    lock, order = FairLock(), []
    lock.__enter__()
    threads = []
    for i in range(5):
        started = threading.Event()

        def take(i=i, started=started):
            started.set()
            with lock:
                order.append(i)

        t = threading.Thread(target=take)
        t.start()
        started.wait(5)
        # wait (deadline-based) until this thread is queued before starting the next one
        deadline = time.monotonic() + 5
        while len(lock._waiters) < i + 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        threads.append(t)
    lock.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]
    with lock:  # free again afterwards
        pass


@pytest.mark.parametrize("first_init", ["slow", "fails"])
async def test_a_failed_init_is_retried_on_the_next_invocation(first_init, tmp_path, monkeypatch):
    from emulator.lambda_runtime import runtime

    monkeypatch.setattr(runtime, "INIT_TIMEOUT_S", 1.0)
    lambdas = LambdaService(runtime_config())
    env = {"OUT_DIR": str(tmp_path), "FIRST_INIT": first_init, "FIRST_INIT_SLEEP": "3"}
    lambdas.add(FunctionSpec(name="slowinit", handler="app.handler", code_dir=TOYS / "slowinit", environment=env))
    try:
        first = await lambdas.workers["slowinit"].invoke("{}", 5.0)
        assert first["ok"] is False
        assert first["error"]["errorType"] == ("Runtime.InitTimeout" if first_init == "slow" else "Runtime.ImportModuleError")
        second = await lambdas.workers["slowinit"].invoke("{}", 5.0)
        assert second["ok"] is True, second
        assert json.loads(second["payload"]) == {"inits": 2}  # a fresh init, not the failed sandbox
    finally:
        await lambdas.workers["slowinit"].stop()


async def test_a_recycled_worker_starts_cold_on_its_next_invocation(tmp_path):
    """POST /lambdas/recycle's engine: an idle worker is dropped, the next call runs init again."""
    lambdas = LambdaService(runtime_config())
    env = {"OUT_DIR": str(tmp_path), "FIRST_INIT": "quick"}
    lambdas.add(FunctionSpec(name="slowinit", handler="app.handler", code_dir=TOYS / "slowinit", environment=env))
    worker = lambdas.workers["slowinit"]
    try:
        assert json.loads((await worker.invoke("{}", 5.0))["payload"]) == {"inits": 1}
        assert json.loads((await worker.invoke("{}", 5.0))["payload"]) == {"inits": 1}  # warm: no new init
        assert await lambdas.recycle() == {"slowinit": True}
        assert json.loads((await worker.invoke("{}", 5.0))["payload"]) == {"inits": 2}
        stats = lambdas.cold_starts()["slowinit"]
        assert stats["cold_starts"] == 2 and stats["last_init_ms"] > 0
    finally:
        await worker.stop()


async def test_a_worker_with_an_invocation_in_flight_is_not_recycled(tmp_path):
    lambdas = LambdaService(runtime_config())
    lambdas.add(FunctionSpec(name="toy-http", handler="app.handler", code_dir=TOYS / "http"))
    worker = lambdas.workers["toy-http"]
    event = json.dumps({"rawPath": "/sleep", "queryStringParameters": {"s": "1"}})
    try:
        await worker.ensure_started()
        call = asyncio.create_task(worker.invoke(event, 5.0))
        await wait_until_async(lambda: worker.in_flight == 1, 5)
        assert await lambdas.recycle(["toy-http"]) == {"toy-http": False}
        assert (await call)["ok"] is True  # the call in flight was not disturbed
        assert await lambdas.recycle(["toy-http"]) == {"toy-http": True}
    finally:
        await worker.stop()
