"""sealed: the edge policy's webhook secrets under the deployment's own KMS key.

Webhook secrets are the one part of an edge policy forward must hold in plain text (it computes
HMACs with them), so they are the one part the connection row does not hold in plain text:

* connect, before it writes the row: ``seal(policy_json, tunnel_id, connection_id)`` takes the
  ``hooks`` out of the canonical policy and encrypts them (their JSON, the webhooks' stored
  form) with one KMS ``Encrypt`` under ``SECRETS_KMS_KEY_ID``, with the encryption context
  ``{"tunnel": <tunnel id>, "connection": <connection id>}``. The row keeps the rest of the
  policy in ``policy`` (basic-auth hashes, CIDRs, header rules: what forward reads without KMS)
  and the ciphertext in ``sealedHooks`` (binary).
* forward, when it loads the tunnel's connection: ``opened(conn)`` decrypts the ciphertext with
  the row's own context (a ciphertext copied onto another row does not decrypt there) and puts
  the hooks back, so the policy the gate parses and checks is exactly the one connect
  accepted. A warm container remembers each opened policy (``OPENED``: at most
  ``OPENED_MAX``, each no longer than a connection row lives), so a tunnel costs one
  ``Decrypt`` per container, not one per request.

Direct ``Encrypt``, not envelope encryption: the hooks are at most 4096 bytes (the whole policy
is capped at ``policy.POLICY_MAX``, which is KMS ``Encrypt``'s own plaintext limit), and an
envelope would cost the same one KMS call each side (``GenerateDataKey`` / ``Decrypt`` of the
data key) plus local AES code to get right.

Fails closed: a row whose sealed hooks cannot be opened (KMS refused, the ciphertext or its
context is wrong, the row holds hooks both ways) gets ``UNREADABLE`` as its policy, which
does not parse, so forward answers 502 ``internal_error`` and the request never reaches the
agent unverified. Rows written before sealing (hooks in ``policy``, no ``sealedHooks``) are
honoured as they are: the row lives at most ``store.CONNECTION_TTL_S``, only connect writes
rows, and anyone who could write a row could as well write one with no policy at all.

No key configured (``SECRETS_KMS_KEY_ID`` empty: the layer used without this project's
Terraform, or the unit tests): the policy is stored as it is, as before sealing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import aws, config, log, names, policy, store, webhooks
from .ttlmap import TTLMap

OPENED_MAX = 1024  # opened policies a warm container remembers (as many as tunnels it remembers)
# Not a JSON document: policy.parse refuses it, so the gate answers 502 and nothing goes through.
UNREADABLE = "sealed webhook secrets could not be opened"
# A KMS hiccup must not eat forward's 25 s: a few seconds, then the request fails closed.
_KMS_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})

# hash of (tunnel, connection, ciphertext, the row's public policy) -> the whole policy's JSON
OPENED: TTLMap[bytes, str] = TTLMap(OPENED_MAX)


class SealError(RuntimeError):
    """connect could not seal the secrets (KMS refused or failed): the connect is refused."""


def context(tunnel_id: str, connection_id: str) -> dict[str, str]:
    """The encryption context binding a ciphertext to its row (the key policy requires both keys)."""
    return {names.SEALED_CONTEXT_TUNNEL: tunnel_id, names.SEALED_CONTEXT_CONNECTION: connection_id}


def _kms() -> Any:
    return aws.client("kms", config=_KMS_CONFIG)


def seal(policy_json: str | None, tunnel_id: str, connection_id: str) -> tuple[str | None, bytes | None]:
    """The row's ``policy`` and ``sealedHooks``: (the policy without its hooks, their ciphertext).
    Unchanged (and None) when there are no hooks or no key. Raises SealError."""
    key_id = config.secrets_kms_key_id()
    if not policy_json or not key_id:
        return policy_json, None
    parsed = policy.parse(policy_json)  # connect's own canonical JSON: it parses
    if not parsed.hooks:
        return policy_json, None
    hooks = json.dumps([webhooks.to_fields(v) for v in parsed.hooks], separators=(",", ":"), ensure_ascii=True)
    try:
        out = _kms().encrypt(KeyId=key_id, Plaintext=hooks.encode("ascii"),
                             EncryptionContext=context(tunnel_id, connection_id))
    except (ClientError, BotoCoreError) as exc:
        raise SealError(f"KMS Encrypt failed: {aws.error_code(exc) or type(exc).__name__}") from None
    return dataclasses.replace(parsed, hooks=()).to_json(), bytes(out["CiphertextBlob"])


def _opened_key(conn: store.Connection, blob: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (conn.tunnel_id.encode(), conn.connection_id.encode(), blob, (conn.policy or "").encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    return digest.digest()


def _open(conn: store.Connection, blob: bytes) -> str:
    """The whole policy's JSON; raises ClientError/BotoCoreError (KMS), PolicyError or WebhookError."""
    public = policy.parse(conn.policy or "")
    if public.hooks:
        raise policy.PolicyError("the row holds webhook secrets both sealed and in plain text")
    kwargs = {"KeyId": key_id} if (key_id := config.secrets_kms_key_id()) else {}
    out = _kms().decrypt(CiphertextBlob=blob, EncryptionContext=context(conn.tunnel_id, conn.connection_id),
                         **kwargs)
    try:
        fields = json.loads(bytes(out["Plaintext"]).decode("ascii"))
    except (ValueError, RecursionError):
        raise policy.PolicyError("sealed webhook secrets are not JSON") from None
    if not isinstance(fields, list) or not 0 < len(fields) <= policy.MAX_HOOKS:
        raise policy.PolicyError(f"sealed webhook secrets must be a list of 1-{policy.MAX_HOOKS} entries")
    hooks = tuple(webhooks.from_fields(f) for f in fields)
    return dataclasses.replace(public, hooks=hooks).to_json()


def opened(conn: store.Connection | None) -> store.Connection | None:
    """forward: the connection with its whole policy (hooks decrypted), remembered per container;
    ``UNREADABLE`` as its policy when they cannot be opened. Rows without sealed hooks pass as they are."""
    if conn is None or conn.sealed_hooks is None:
        return conn
    key = _opened_key(conn, conn.sealed_hooks)
    whole = OPENED.get(key)
    if whole is None:
        try:
            whole = _open(conn, conn.sealed_hooks)
        except (ClientError, BotoCoreError, policy.PolicyError, webhooks.WebhookError) as exc:
            log.error("sealed webhook secrets could not be opened: the tunnel's requests are refused (502)",
                      connection_id=conn.connection_id, tunnel_id=conn.tunnel_id,
                      error=aws.error_code(exc) or type(exc).__name__)
            return dataclasses.replace(conn, policy=UNREADABLE)
        OPENED.put(key, whole, ttl_s=store.CONNECTION_TTL_S)
    return dataclasses.replace(conn, policy=whole)
