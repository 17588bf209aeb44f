"""Toy HTTP API handler for the emulator's own tests (payload 2.0)."""
import base64
import hashlib
import json
import os
import sys
import time


def handler(event, context):
    path = event["rawPath"]
    if path == "/error":
        raise RuntimeError("boom")
    if path == "/sleep":
        time.sleep(float(event["queryStringParameters"]["s"]))
        return {"statusCode": 200, "body": "slept"}
    if path == "/big-result":
        return {"statusCode": 200, "body": "x" * (6 * 1024 * 1024 + 10)}
    if path == "/bare":
        return {"hello": "world"}
    if path == "/bare-string":
        return "Hello from Lambda!"
    if path == "/multi":
        return {"statusCode": 200, "headers": {"x-one": "1"}, "multiValueHeaders": {"x-multi": ["a", "b"]},
                "body": "m"}
    if path == "/no-type":
        return {"statusCode": 200, "body": "plain"}
    if path == "/no-flag":
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "aGk="}
    if path == "/empty":
        return {"statusCode": 204}
    if path == "/server":
        return {"statusCode": 200, "headers": {"server": "mine"}, "body": "s"}
    if path == "/head":
        length = "1234" if event["requestContext"]["http"]["method"] == "HEAD" else "4"
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream", "content-length": length},
                "body": "" if length == "1234" else "full"}
    if path == "/bad":
        return {"statusCode": "two hundred"}
    if path == "/binary":
        raw = bytes(range(256))
        return {"statusCode": 201, "headers": {"content-type": "application/octet-stream", "x-one": "1"},
                "cookies": ["a=1; Path=/", "b=2"], "body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    if path == "/sha":
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event.get("body", "").encode()
        return {"statusCode": 200, "body": hashlib.sha256(raw).hexdigest()}
    if path == "/env":
        mods = {}
        for name in ("boto3", "aiohttp", "moto", "pytest"):
            try:
                __import__(name)
                mods[name] = True
            except ImportError:
                mods[name] = False
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps({"env": dict(os.environ), "path": sys.path, "cwd": os.getcwd(),
                                    "version": list(sys.version_info[:2]), "modules": mods,
                                    "remaining": context.get_remaining_time_in_millis(),
                                    "function_name": context.function_name})}
    print("a print must not break the protocol")
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
