"""Toy WebSocket API handlers for the emulator's own tests."""
import json
import os

import boto3

MANAGEMENT = boto3.client("apigatewaymanagementapi")


def connect(event, context):
    query = event.get("queryStringParameters") or {}
    if "save" in query:
        name = event["requestContext"]["connectionId"].replace("/", "_")
        with open(os.path.join(os.environ["CONNECT_DIR"], name), "w") as fh:
            json.dump(event, fh)
    if "refuse" in query:
        return {"statusCode": int(query["refuse"]), "body": "refused"}
    if "crash" in query:
        raise RuntimeError("connect crashed")
    if "protocol" in query:  # a subprotocol agreed the way AWS documents it: the result's header
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": query["protocol"]}}
    return {"statusCode": 200}


def default(event, context):
    connection_id = event["requestContext"]["connectionId"]
    body = event.get("body") or ""
    if body == "event":
        reply = json.dumps(event)
    elif body == "big":
        try:
            MANAGEMENT.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))
            reply = "big was accepted"
        except MANAGEMENT.exceptions.PayloadTooLargeException:
            reply = "big refused with 413"
    elif body == "gone":
        try:
            MANAGEMENT.post_to_connection(ConnectionId="nobody=", Data=b"x")
            reply = "gone was accepted"
        except MANAGEMENT.exceptions.GoneException:
            reply = "gone refused with 410"
    elif body == "info":
        info = MANAGEMENT.get_connection(ConnectionId=connection_id)
        reply = "info " + info["Identity"]["SourceIp"]
    elif body == "kick":
        MANAGEMENT.delete_connection(ConnectionId=connection_id)
        return {"statusCode": 200}
    else:
        reply = "echo:" + body
    MANAGEMENT.post_to_connection(ConnectionId=connection_id, Data=reply.encode())
    return {"statusCode": 200}


def disconnect(event, context):
    folder = os.environ["DISCONNECT_DIR"]
    connection_id = event["requestContext"]["connectionId"].replace("/", "_")
    with open(os.path.join(folder, connection_id), "w") as fh:
        json.dump(event, fh)
    return {"statusCode": 200}
