"""emulator/mock_aws/moto_speed.py: moto made cheaper per call, with nothing its clients parse changed.

Every DynamoDB / Streams answer produced while these tests run is rendered twice, by the fast
JSON writer and by moto's own shape serializer, and botocore's parser must read both the same.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from decimal import Decimal

import boto3
import botocore.parsers
import botocore.session
import pytest
from botocore.config import Config

from emulator.mock_aws import moto_speed
from emulator.mock_aws.moto_local import MotoService
from emulator.profiles import load_profile
from emulator.stats import Faults, Stats

REGION = "us-east-1"
MODELS = {name: botocore.session.get_session().get_service_model(name) for name in ("dynamodb", "dynamodbstreams")}


@pytest.fixture(scope="module")
def recorded():
    """An in-process moto (as the emulator tests run it) whose every result is rendered both ways."""
    service = MotoService(Stats(), Faults(), load_profile("local"))
    endpoint = service.start()  # build_app installs the fast path
    from moto.core.responses import ActionResult

    fast = ActionResult.execute_result
    original = moto_speed._ORIGINAL_EXECUTE_RESULT
    assert original is not None and fast is not original, "the fast JSON path is not installed"
    pairs: list[tuple[str, str, tuple, tuple]] = []

    def both(self, context):
        result = fast(self, context)
        pairs.append((context.service_model.service_name, context.operation_model.name,
                      result, original(self, context)))
        return result

    ActionResult.execute_result = both
    try:
        yield endpoint, pairs
    finally:
        ActionResult.execute_result = fast
        service.stop()


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(retries={"max_attempts": 0}))


def parsed(service: str, operation: str, rendered: tuple) -> dict:
    status, headers, body = rendered
    model = MODELS[service].operation_model(operation)
    parser = botocore.parsers.create_parser(MODELS[service].protocol)
    out = parser.parse({"status_code": int(status), "headers": headers,
                        "body": body.encode() if isinstance(body, str) else body}, model.output_shape)
    out.pop("ResponseMetadata", None)
    return out


def exercise(endpoint: str) -> None:
    """Every hot operation, with every attribute type, empty and paged results, and errors."""
    ddb = client("dynamodb", endpoint)
    ddb.create_table(
        TableName="speed", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "g-index", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    item = {"pk": {"S": "a"}, "g": {"S": "grp"}, "n": {"N": "12.50"}, "neg": {"N": "-3"},
            "b": {"B": bytes(range(256))}, "empty_b": {"B": b""}, "t": {"BOOL": True}, "z": {"NULL": True},
            "m": {"M": {"inner": {"S": "é ☃ \u0000"}, "bin": {"B": b"\x00\xff"}, "l": {"L": [{"N": "1"}, {"S": ""}]}}},
            "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"\x01", b"\x02\x03"]},
            "body": {"S": "x" * 5000}}
    assert ddb.put_item(TableName="speed", Item=item)
    ddb.put_item(TableName="speed", Item={**item, "n": {"N": "13"}}, ReturnValues="ALL_OLD")
    for i in range(5):
        ddb.put_item(TableName="speed", Item={"pk": {"S": f"k{i}"}, "g": {"S": "grp"}, "v": {"N": str(i)}})
    got = ddb.get_item(TableName="speed", Key={"pk": {"S": "a"}}, ConsistentRead=True)
    assert got["Item"]["b"]["B"] == bytes(range(256)) and got["Item"]["n"]["N"] == "13"
    ddb.get_item(TableName="speed", Key={"pk": {"S": "missing"}})
    ddb.get_item(TableName="speed", Key={"pk": {"S": "a"}}, ProjectionExpression="#m.bin, ss",
                 ExpressionAttributeNames={"#m": "m"})
    for returns in ("ALL_NEW", "UPDATED_OLD", "ALL_OLD", "UPDATED_NEW", "NONE"):
        ddb.update_item(TableName="speed", Key={"pk": {"S": "a"}}, ReturnValues=returns,
                        UpdateExpression="SET #s = :s, bin2 = :b ADD hits :one",
                        ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":s": {"S": returns}, ":b": {"B": b"\x00" * 3},
                                                   ":one": {"N": "1"}})
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(TableName="speed", Key={"pk": {"S": "a"}}, UpdateExpression="SET x = :x",
                        ConditionExpression="attribute_not_exists(pk)", ExpressionAttributeValues={":x": {"S": "1"}},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
    ddb.query(TableName="speed", IndexName="g-index", KeyConditionExpression="g = :g",
              ExpressionAttributeValues={":g": {"S": "grp"}}, Limit=2)
    ddb.query(TableName="speed", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
    page = ddb.scan(TableName="speed", Limit=3, ReturnConsumedCapacity="TOTAL")
    ddb.scan(TableName="speed", ExclusiveStartKey=page["LastEvaluatedKey"], Select="COUNT")
    ddb.batch_write_item(RequestItems={"speed": [{"PutRequest": {"Item": {"pk": {"S": "bw"}, "b": {"B": b"\x09"}}}},
                                                 {"DeleteRequest": {"Key": {"pk": {"S": "k0"}}}}]})
    ddb.batch_get_item(RequestItems={"speed": {"Keys": [{"pk": {"S": "bw"}}, {"pk": {"S": "a"}}, {"pk": {"S": "no"}}]}})
    ddb.delete_item(TableName="speed", Key={"pk": {"S": "a"}}, ReturnValues="ALL_OLD")
    ddb.delete_item(TableName="speed", Key={"pk": {"S": "gone"}})

    streams = client("dynamodbstreams", endpoint)
    arn = ddb.describe_table(TableName="speed")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=it, Limit=4)
    assert len(records["Records"]) == 4
    more = streams.get_records(ShardIterator=records["NextShardIterator"])
    assert more["Records"] and {r["eventName"] for r in more["Records"]} >= {"MODIFY", "REMOVE"}
    streams.get_records(ShardIterator=more["NextShardIterator"])  # empty


def test_fast_json_parses_exactly_like_moto(recorded):
    endpoint, pairs = recorded
    exercise(endpoint)
    fast_ops = {(s, o) for s, o, _, _ in pairs if (s, o) in moto_speed.FAST_OPERATIONS}
    assert fast_ops == moto_speed.FAST_OPERATIONS, f"not exercised: {moto_speed.FAST_OPERATIONS - fast_ops}"
    for service, operation, fast, original in pairs:
        assert fast[0] == original[0], (operation, fast[0], original[0])
        assert fast[1]["Content-Type"] == original[1]["Content-Type"]
        assert parsed(service, operation, fast) == parsed(service, operation, original), \
            f"{operation}\nfast: {fast[2][:2000]}\nmoto: {original[2][:2000]}"


def test_plain_renders_json_protocol_values():
    from datetime import datetime, timezone

    when = datetime(2026, 11, 25, 12, 0, 0, 500000, tzinfo=timezone.utc)
    assert moto_speed.plain({"a": None, "b": [b"\x00\xff", when], "c": {"d": Decimal("2"), "e": Decimal("0.5")}}) == \
        {"b": ["AP8=", when.timestamp()], "c": {"d": 2, "e": 0.5}}
    assert moto_speed.plain(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    assert moto_speed.plain(datetime(2026, 1, 1, 0, 0, 0, 123999)) == \
        datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() + 0.123  # truncated to the ms, as moto does


def test_method_names_are_memoised():
    import moto.core.responses as responses

    moto_speed.cache_method_names()
    assert hasattr(responses.method_names_from_class, "cache_info")
    from moto.dynamodb.responses import DynamoHandler

    assert "get_item" in responses.method_names_from_class(DynamoHandler)


def _raw_call(conn: http.client.HTTPConnection, target: str) -> tuple[int, str | None, dict]:
    conn.request("POST", "/", body=b"{}", headers={
        "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=x"})
    resp = conn.getresponse()
    return resp.status, resp.getheader("Connection"), json.loads(resp.read())


def test_server_keeps_connections_alive_and_stops(recorded):
    endpoint, _ = recorded
    host, port = endpoint.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        status, _, body = _raw_call(conn, "DynamoDB_20120810.ListTables")
        sock = conn.sock
        assert status == 200 and "TableNames" in body
        status, connection, _ = _raw_call(conn, "DynamoDB_20120810.ListTables")
        assert status == 200 and connection != "close" and conn.sock is sock, "the connection was not reused"
    finally:
        conn.close()

    server = moto_speed.KeepAliveServer("127.0.0.1", 0, lambda environ, start: (start("200 OK", []), [b"ok"])[1],
                                        threads=2)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    probe = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    probe.request("GET", "/")
    assert probe.getresponse().read() == b"ok"
    deadline = time.monotonic() + 10
    server.shutdown()
    server.server_close()
    serving.join(max(0.0, deadline - time.monotonic()))
    probe.close()
    assert not serving.is_alive(), "serve_forever did not return after shutdown"
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=2).request("GET", "/")


def _stream_table(endpoint: str, name: str):
    ddb = client("dynamodb", endpoint)
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    streams = client("dynamodbstreams", endpoint)
    arn = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    first = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    from moto.dynamodb.models import dynamodb_backends

    shard_model = dynamodb_backends["123456789012"][REGION].tables[name].stream_shard
    return ddb, streams, first, shard_model


def _numbers(page) -> list[int]:
    return [int(r["dynamodb"]["SequenceNumber"]) for r in page["Records"]]


def test_stream_records_are_capped_and_a_reader_at_the_head_loses_nothing(recorded, monkeypatch):
    endpoint, _ = recorded
    monkeypatch.setattr(moto_speed, "STREAM_RECORDS_KEPT", 10)
    monkeypatch.setattr(moto_speed, "STREAM_RECORDS_TRIM_TO", 6)
    ddb, streams, iterator, shard = _stream_table(endpoint, "capped")
    stale = iterator  # a reader that never moves
    seen: list[int] = []
    for round_ in range(5):
        for i in range(4):
            ddb.put_item(TableName="capped", Item={"pk": {"S": f"{round_}-{i}"}})
        page = streams.get_records(ShardIterator=iterator)
        seen += _numbers(page)
        iterator = page["NextShardIterator"]
        assert len(shard.items) <= 10
    assert len(seen) == 20 and seen == list(range(seen[0], seen[0] + 20)), "records lost or renumbered"
    late = streams.get_records(ShardIterator=stale)  # points at trimmed records: reads the oldest kept
    assert _numbers(late) == seen[-len(shard.items):]


def test_shard_iterators_expire(recorded, monkeypatch):
    endpoint, _ = recorded
    _, streams, iterator, _ = _stream_table(endpoint, "iterators")
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    stored = dynamodbstreams_backends["123456789012"][REGION].shard_iterators
    for _ in range(5):
        iterator = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
    before = len(stored)
    monkeypatch.setattr(moto_speed, "SHARD_ITERATOR_TTL_S", 0.0)
    streams.get_records(ShardIterator=iterator)
    assert before >= 6 and len(stored) == 0, (before, len(stored))


def test_moto_no_longer_tracks_every_model_instance(recorded):
    endpoint, _ = recorded
    from moto.dynamodb.models.table import StreamRecord
    from moto.dynamodbstreams.models import ShardIterator

    ddb, streams, iterator, _ = _stream_table(endpoint, "untracked")
    before = (len(StreamRecord.instances_tracked), len(ShardIterator.instances_tracked))
    for i in range(20):
        ddb.put_item(TableName="untracked", Item={"pk": {"S": str(i)}})
        iterator = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
    assert (len(StreamRecord.instances_tracked), len(ShardIterator.instances_tracked)) == before
