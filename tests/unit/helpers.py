"""Helpers for the Lambda unit tests: event fixtures, handler loading, a fake management API, tables."""

from __future__ import annotations

import copy
import importlib.util
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

from httptunnel import (auth, aws, edge_origin, gate, id_keys, management, names, protocol, sealed, stream_holds,
                        to_agent, tunnels, waiting)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
REGION = "us-east-1"
CONN_TABLE = "test-connections"
PENDING_TABLE = "test-pending"
BUCKET = "test-bodies"
WS_ENDPOINT = "https://abc123ws.execute-api.us-east-1.amazonaws.com/prod"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def load_handler(name: str) -> Callable[[Any, Any], Any]:
    spec = importlib.util.spec_from_file_location(f"lambda_{name}_handler", ROOT / "lambdas" / name / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@dataclass
class FakeContext:
    """The bits of the Lambda context object our handlers may touch."""
    function_name: str = "test-fn"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _client_error(code: str, status: int, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


@dataclass
class FakeManagement:
    """Stands in for the apigatewaymanagementapi client (moto has none)."""
    posts: list[tuple[str, str, str]] = field(default_factory=list)  # (endpoint, connection_id, text)
    gone: set[str] = field(default_factory=set)
    closed: list[str] = field(default_factory=list)
    post_gone_left: dict[str, int] = field(default_factory=dict)  # 410 on the next N posts only
    forbidden_left: dict[str, int] = field(default_factory=dict)
    on_post: Callable[[str, dict[str, Any]], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, endpoint: str) -> "FakeManagement._Bound":
        return FakeManagement._Bound(self, endpoint)

    def messages(self, connection_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(t) for _, c, t in self.posts if connection_id in (None, c)]

    @dataclass
    class _Bound:
        fake: "FakeManagement"
        endpoint: str

        def post_to_connection(self, ConnectionId: str, Data: bytes) -> dict[str, Any]:
            fake = self.fake
            if ConnectionId in fake.gone:
                raise _client_error("GoneException", 410, "PostToConnection")
            with fake.lock:
                gone_left = fake.post_gone_left.get(ConnectionId, 0)
                if gone_left:
                    fake.post_gone_left[ConnectionId] = gone_left - 1
                    raise _client_error("GoneException", 410, "PostToConnection")
                left = fake.forbidden_left.get(ConnectionId, 0)
                if left:
                    fake.forbidden_left[ConnectionId] = left - 1
                    raise _client_error("ForbiddenException", 403, "PostToConnection")
                fake.posts.append((self.endpoint, ConnectionId, Data.decode("utf-8")))
            if fake.on_post is not None:
                fake.on_post(ConnectionId, json.loads(Data))
            return {}

        def delete_connection(self, ConnectionId: str) -> dict[str, Any]:
            if ConnectionId in self.fake.gone:
                raise _client_error("GoneException", 410, "DeleteConnection")
            with self.fake.lock:
                self.fake.closed.append(ConnectionId)
            return {}

        def get_connection(self, ConnectionId: str) -> dict[str, Any]:
            if ConnectionId in self.fake.gone:
                raise _client_error("GoneException", 410, "GetConnection")
            return {"ConnectedAt": "2026-11-25T13:00:00Z"}


def create_tables(ddb: Any) -> None:
    ddb.create_table(
        TableName=CONN_TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": names.CONN_PK, "AttributeType": "S"},
                              {"AttributeName": names.CONN_TUNNEL_ID, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": names.CONN_PK, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": names.TUNNEL_INDEX,
                                 "KeySchema": [{"AttributeName": names.CONN_TUNNEL_ID, "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    ddb.create_table(
        TableName=PENDING_TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": names.PENDING_PK, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": names.PENDING_PK, "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})


def cold_start() -> None:
    """A fresh process: no boto3 clients, no JWKS, nothing a warm forward instance remembers."""
    aws.reset()
    auth.clear_caches()
    id_keys.reset()
    edge_origin.reset()
    to_agent.ACKS.clear()
    for remembered in (tunnels.CONNECTIONS, waiting.ANSWER_TIMES, gate.POLICIES, gate.DENIED_BUDGETS, sealed.OPENED,
                       stream_holds.FULL, stream_holds.RECENT):
        remembered.clear()


def ws_event(name: str, connection_id: str, body: str | None = None, headers: dict[str, str] | None = None,
             query: dict[str, str] | None = None) -> dict[str, Any]:
    event = copy.deepcopy(load_event(name))
    event["requestContext"]["connectionId"] = connection_id
    if body is not None:
        event["body"] = body
    if headers:
        event["headers"] = {**event.get("headers", {}), **headers}
    if query is not None:
        event["queryStringParameters"] = query
    return event


def connect_agent(connection_id: str, **kwargs: Any) -> dict[str, Any]:
    """Run $connect then `ready`; returns the connection_established message."""
    result = load_handler("connect")(ws_event("connect.json", connection_id, **kwargs), FakeContext())
    assert result["statusCode"] == 200, result
    load_handler("response")(ws_event("default_message.json", connection_id, '{"type":"ready"}'), FakeContext())
    return store_established(connection_id)


def store_established(connection_id: str) -> dict[str, Any]:
    fake = management._client.__self__  # type: ignore[attr-defined]
    msgs = [m for m in fake.messages(connection_id) if m["type"] == "connection_established"]
    assert msgs, "no connection_established posted"
    return msgs[-1]


def encode(msg: protocol.Message) -> str:
    return protocol.encode(msg)
