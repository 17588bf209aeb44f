"""Webhook secrets sealed with KMS, through the local stack (moto's KMS encrypts for real and binds
the encryption context): a real `ttf --verify-webhook`, the row the packaged connect Lambda wrote,
and the packaged forward Lambda opening it to verify a signed delivery (issue 30 item 9)."""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
import boto3
import pytest

from tests.e2e.client import request
from tests.e2e.conftest import StackInfo

pytestmark = pytest.mark.usefixtures("stack")

SECRET = "e2e-sealed-webhook-secret-7f3a"


def _aws(stack: StackInfo, service: str):
    return boto3.client(service, endpoint_url=stack.aws_endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


async def test_the_row_holds_ciphertext_and_a_signed_webhook_still_passes(stack, agent_factory, origin):
    tunnel = agent_factory(origin, "--verify-webhook", f"github:{SECRET}")
    row = _aws(stack, "dynamodb").get_item(TableName=stack.connections_table,
                                           Key={"connectionId": {"S": tunnel.connection_id}})["Item"]
    blob = row["sealedHooks"]["B"]
    assert SECRET not in json.dumps({k: v for k, v in row.items() if k != "sealedHooks"}) and SECRET.encode() not in blob
    assert json.loads(row["policy"]["S"]) == {"v": 1}  # nothing else in this policy
    kms = _aws(stack, "kms")
    context = {"tunnel": tunnel.tunnel_id, "connection": tunnel.connection_id}
    assert json.loads(kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"]) == \
        [{"p": "github", "k": SECRET}]
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={**context, "tunnel": "another0tunl"})

    body = b'{"action":"opened","number":1}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        good = await request(session, "POST", tunnel.public_url, "/echo/hook", data=body,
                             headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"})
        assert good.status == 200, good.body[:300]
        assert json.loads(good.body)["sha256"] == hashlib.sha256(body).hexdigest()
        forged = await request(session, "POST", tunnel.public_url, "/echo/hook", data=body + b" ",
                               headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"})
        assert forged.status == 403 and forged.headers["x-tunnel-error"] == "webhook_signature_invalid"
