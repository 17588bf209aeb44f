"""Webhook secrets sealed with the deployment's KMS key (issue 30 item 9): connect writes only
ciphertext bound to the row, forward opens it once per container and still verifies; a row
whose secrets cannot be opened fails closed (502, nothing reaches the agent); a row written
before sealing is honoured. moto's KMS binds the encryption context as AWS does (AES-GCM AAD);
it does not evaluate key policies: tests/infra/test_kms_policy.py checks who may decrypt."""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import time

import boto3
import pytest

from httptunnel import names, policy, sealed, store, tunnels

from .helpers import CONN_TABLE, connect_agent, load_handler, ws_event
from .test_forward_basic import FakeAgent, http_event, ok

SECRET = "whsec-sealed-0123456789abcdef"
OTHER = "shopify-sealed-secret-value-42"


def hook_headers(*hooks: str, **more) -> dict[str, str]:
    return {policy.HEADER: policy.to_header(policy.build(hooks=list(hooks), **more))}


def row(connection_id: str) -> dict:
    return boto3.client("dynamodb").get_item(TableName=CONN_TABLE, Key={"connectionId": {"S": connection_id}})["Item"]


def signed(tunnel_id: str, body: bytes, secret: str = SECRET) -> dict:
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return http_event(tunnel_id, method="POST", body=body, headers={"x-hub-signature-256": sig})


@pytest.fixture
def kms_key(aws, monkeypatch) -> str:
    arn = boto3.client("kms").create_key(Description="http-tunnel secrets (test)")["KeyMetadata"]["Arn"]
    monkeypatch.setenv("SECRETS_KMS_KEY_ID", arn)
    return arn


@pytest.fixture
def decrypts(monkeypatch) -> list[dict]:
    """Every KMS Decrypt the layer makes (the kwargs), counted at the client."""
    calls: list[dict] = []
    real = sealed._kms

    def counting():
        client = real()

        class Counting:
            def encrypt(self, **kw):
                return client.encrypt(**kw)

            def decrypt(self, **kw):
                calls.append(kw)
                return client.decrypt(**kw)
        return Counting()
    monkeypatch.setattr(sealed, "_kms", counting)
    return calls


def test_the_row_holds_no_webhook_secret_in_plain_text(kms_key, mgmt, ctx):
    tid = connect_agent("conn-A", headers=hook_headers(f"github:{SECRET}", f"shopify:{OTHER}",
                                                        deny=["10.0.0.0/8"]))["tunnel_id"]
    item = row("conn-A")
    blob = item[names.CONN_SEALED_HOOKS]["B"]
    flat = json.dumps({k: v for k, v in item.items() if k != names.CONN_SEALED_HOOKS})
    for secret in (SECRET, OTHER):
        assert secret not in flat and secret.encode() not in blob
    public = policy.parse(item["policy"]["S"])
    assert public.hooks == () and public.deny[0].compressed == "10.0.0.0/8"  # the rest stays readable
    kms = boto3.client("kms")
    opened = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"tunnel": tid, "connection": "conn-A"})
    assert [h["k"] for h in json.loads(opened["Plaintext"])] == [SECRET, OTHER]
    assert opened["KeyId"] == kms_key
    with pytest.raises(kms.exceptions.InvalidCiphertextException):  # bound to its row
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"tunnel": tid, "connection": "conn-B"})


def test_forward_verifies_a_signed_webhook_and_decrypts_once_per_container(kms_key, mgmt, ctx, decrypts):
    tid = connect_agent("conn-A", headers=hook_headers(f"github:{SECRET}"))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    body = b'{"action":"opened","bytes":"\xff\x00"}'
    for _ in range(3):
        tunnels.CONNECTIONS.clear()  # the row read again each time: the opened policy is remembered
        assert load_handler("forward")(signed(tid, body), ctx)["statusCode"] == 200
    forged = load_handler("forward")(signed(tid, body, secret="not-the-secret"), ctx)
    assert forged["statusCode"] == 403 and forged["headers"]["x-tunnel-error"] == "webhook_signature_invalid"
    assert len(agent.requests) == 3
    assert len(decrypts) == 1 and decrypts[0]["KeyId"] == kms_key
    assert decrypts[0]["EncryptionContext"] == {"tunnel": tid, "connection": "conn-A"}


def test_a_ciphertext_moved_to_another_row_fails_closed(kms_key, mgmt, ctx):
    connect_agent("conn-A", headers=hook_headers(f"github:{SECRET}"))
    victim = connect_agent("conn-B", headers=hook_headers("github:the-victims-own-secret-123"))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-B", ok())
    ddb = boto3.client("dynamodb")
    ddb.update_item(TableName=CONN_TABLE, Key={"connectionId": {"S": "conn-B"}},
                    UpdateExpression="SET sealedHooks = :b",
                    ExpressionAttributeValues={":b": row("conn-A")[names.CONN_SEALED_HOOKS]})
    result = load_handler("forward")(signed(victim, b"{}"), ctx)  # signed with conn-A's secret
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "internal_error"
    assert agent.requests == []


def test_a_row_holding_secrets_both_ways_fails_closed(kms_key, mgmt, ctx):
    tid = connect_agent("conn-A", headers=hook_headers(f"github:{SECRET}"))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    boto3.client("dynamodb").update_item(
        TableName=CONN_TABLE, Key={"connectionId": {"S": "conn-A"}}, UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": "policy"},
        ExpressionAttributeValues={":p": {"S": policy.build(hooks=["github:attacker-chosen-secret"]).to_json()}})
    result = load_handler("forward")(signed(tid, b"{}", secret="attacker-chosen-secret"), ctx)
    assert result["statusCode"] == 502 and agent.requests == []


def test_forward_fails_closed_when_kms_refuses(kms_key, mgmt, ctx, monkeypatch):
    tid = connect_agent("conn-A", headers=hook_headers(f"github:{SECRET}"))["tunnel_id"]
    agent = FakeAgent(mgmt, "conn-A", ok())
    # forward names another key than the one that sealed: KMS refuses (moto enforces no key
    # policy and ignores a disabled key on Decrypt; this refusal it does make)
    monkeypatch.setenv("SECRETS_KMS_KEY_ID", boto3.client("kms").create_key()["KeyMetadata"]["Arn"])
    result = load_handler("forward")(signed(tid, b"{}"), ctx)
    assert result["statusCode"] == 502 and result["headers"]["x-tunnel-error"] == "internal_error"
    assert agent.requests == [] and len(sealed.OPENED) == 0  # a failure is not remembered as opened


def test_connect_refuses_when_the_secrets_cannot_be_sealed(kms_key, mgmt, ctx, monkeypatch):
    monkeypatch.setenv("SECRETS_KMS_KEY_ID", kms_key.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000")
    result = load_handler("connect")(ws_event("connect.json", "conn-A", headers=hook_headers(f"github:{SECRET}")), ctx)
    assert result["statusCode"] == 500
    assert store.get_connection("conn-A") is None  # nothing stored in plain text instead


def test_a_policy_without_webhooks_costs_no_kms_call(kms_key, mgmt, ctx, decrypts):
    tid = connect_agent("conn-A", headers=hook_headers(deny=["10.0.0.0/8"]))["tunnel_id"]
    assert names.CONN_SEALED_HOOKS not in row("conn-A")
    FakeAgent(mgmt, "conn-A", ok())
    assert load_handler("forward")(http_event(tid), ctx)["statusCode"] == 200
    assert decrypts == []


def test_a_row_written_before_sealing_is_honoured(aws, mgmt, ctx, monkeypatch):
    """Rows from before this change hold the secrets in ``policy``: forward keeps verifying with
    them until the row expires (at most 2 h 10 min; the agent's next connect seals)."""
    tid = connect_agent("conn-A", headers=hook_headers(f"github:{SECRET}"))["tunnel_id"]  # no key yet
    assert SECRET in row("conn-A")["policy"]["S"] and names.CONN_SEALED_HOOKS not in row("conn-A")
    arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv("SECRETS_KMS_KEY_ID", arn)  # the deployment now seals
    agent = FakeAgent(mgmt, "conn-A", ok())
    assert load_handler("forward")(signed(tid, b"{}"), ctx)["statusCode"] == 200
    assert load_handler("forward")(signed(tid, b"{}", secret="wrong"), ctx)["statusCode"] == 403
    assert len(agent.requests) == 1


def test_opened_policy_is_the_one_connect_accepted(kms_key):
    whole = policy.build(hooks=[f"github:{SECRET}", "hmac-sha256:X-Sig:s3cr3t-value:base64:v1="],
                         allow=["203.0.113.0/24"], basic_auth=["alice:pw"]).to_json()
    public, blob = sealed.seal(whole, "tunnel00000a", "conn-A")
    assert blob is not None and public is not None and "s3cr3t" not in public
    conn = store.Connection("conn-A", "tunnel00000a", 1, policy=public, sealed_hooks=blob)
    opened = sealed.opened(conn)
    assert opened is not None and opened.policy == whole
    assert sealed.opened(store.Connection("conn-A", "tunnel00000b", 1, policy=public, sealed_hooks=blob)).policy \
        == sealed.UNREADABLE
    with pytest.raises(policy.PolicyError):
        policy.parse(sealed.UNREADABLE)  # so the gate refuses it (502) and never runs open


def test_without_a_key_the_policy_is_stored_as_it_is(aws):
    whole = policy.build(hooks=[f"github:{SECRET}"]).to_json()
    assert sealed.seal(whole, "tunnel00000a", "conn-A") == (whole, None)


def test_measures_opening_first_and_remembered(kms_key, decrypts):
    """What the README's latency row points at: the first open of a row is one KMS Decrypt (here
    moto in-process, not AWS), later ones are a dictionary lookup. Printed with -s."""
    whole = policy.build(hooks=[f"github:{SECRET}"], deny=["10.0.0.0/8"]).to_json()
    public, blob = sealed.seal(whole, "tunnel00000a", "conn-A")
    conn = store.Connection("conn-A", "tunnel00000a", 1, policy=public, sealed_hooks=blob)
    first, remembered = [], []
    for _ in range(30):
        sealed.OPENED.clear()
        for times in (first, remembered):
            started = time.perf_counter()
            opened = sealed.opened(conn)
            times.append(time.perf_counter() - started)
            assert opened is not None and opened.policy == whole
    assert len(decrypts) == 30  # one per cleared cache, none for the remembered opens
    print(f"\nsealed.opened: first (one KMS Decrypt, moto in-process) p50 {statistics.median(first) * 1000:.2f} ms, "
          f"remembered p50 {statistics.median(remembered) * 1000:.3f} ms (30 rounds)")
