"""Agents prove who they are, through the running stack (moto + terraform + emulator).

Every JWT attack on $connect is refused with 401 and writes no row; reserved names go to their
holder only; random-looking ids cannot be squatted; the reclaim token the agent made is stored
nowhere, only its hash, in the reservation row; `make token` mints working tokens from the
secret Terraform generated into SSM. Tokens are crafted with PyJWT from the state file's auth
block (an implementation independent of the connect Lambda's verifier).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from httptunnel import protocol
from tests.e2e.client import request
from tests.e2e.conftest import IDP_AUDIENCE, IDP_KID, ROOT, StackInfo

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


def ddb(stack: StackInfo):
    return boto3.client("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def table(stack: StackInfo) -> list[dict]:
    return ddb(stack).scan(TableName=stack.connections_table)["Items"]


def keys(stack: StackInfo) -> set[str]:
    return {item["connectionId"]["S"] for item in table(stack)}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs(stack: StackInfo, **over) -> str:
    """An HS256 token signed with the deployment's secret; claims overridable (None removes one)."""
    now = int(time.time())
    claims = {"sub": "e2e-user", "iat": now, "exp": now + 600, "iss": stack.auth["issuer"], "aud": stack.auth["audience"]}
    claims.update(over)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, stack.auth["secret"], algorithm="HS256")


def rs(stack: StackInfo, key=None, kid: str = IDP_KID, **over) -> str:
    """An RS256 token of the stand-in identity provider (whose public key the stack's JWKS holds)."""
    now = int(time.time())
    claims = {"sub": "idp-user", "iat": now, "exp": now + 600, "iss": stack.auth["issuer"], "aud": IDP_AUDIENCE}
    claims.update(over)
    return jwt.encode(claims, key or stack.idp_key, algorithm="RS256", headers={"kid": kid})


def needs_idp(stack: StackInfo) -> None:
    if stack.idp_key is None:
        pytest.skip("a reused stack (HTTP_TUNNEL_E2E_STATE) has no JWKS of ours: the JWKS attacks need the session's")


async def handshake(session: aiohttp.ClientSession, stack: StackInfo, headers: dict[str, str]) -> int:
    """The $connect answer: 101 when the socket opened (closed again at once), else the refusal status."""
    try:
        ws = await session.ws_connect(stack.ws_url, headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 101


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


# --------------------------------------------------------------------------- JWT attacks

def _alg_none(stack: StackInfo) -> str:
    now = int(time.time())
    claims = {"sub": "mallory", "iat": now, "exp": now + 600, "iss": stack.auth["issuer"], "aud": stack.auth["audience"]}
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."


def _hs_keyed_with_the_rs_public_key(stack: StackInfo) -> str:
    pem = stack.idp_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"sub": "mallory", "iat": now, "exp": now + 600, "iss": stack.auth["issuer"], "aud": IDP_AUDIENCE}
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': IDP_KID}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


ATTACKS = {
    "no token": lambda s: None,
    "alg none": _alg_none,
    "HS token keyed with the RS public key": _hs_keyed_with_the_rs_public_key,
    "expired": lambda s: hs(s, iat=int(time.time()) - 7200, exp=int(time.time()) - 60),
    "not yet valid": lambda s: hs(s, nbf=int(time.time()) + 3600),
    "wrong audience": lambda s: hs(s, aud="some-other-app"),
    "wrong issuer": lambda s: hs(s, iss="https://evil.example"),
    "no exp": lambda s: hs(s, exp=None),
    "wrong secret": lambda s: jwt.encode({"sub": "mallory", "exp": int(time.time()) + 600, "iat": int(time.time()),
                                          "iss": s.auth["issuer"], "aud": s.auth["audience"]},
                                         "a-guess-at-the-secret-that-is-long-enough", algorithm="HS256"),
    "unknown kid with a JWKS": lambda s: rs(s, kid="not-in-the-jwks"),
    "RS token from a foreign key": lambda s: rs(s, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "JWKS token for another app": lambda s: rs(s, aud="some-other-app"),
    "over the maximum lifetime": lambda s: hs(s, exp=int(time.time()) + s.auth["max_lifetime"] + 3600),
}
NEEDS_IDP = {"HS token keyed with the RS public key", "unknown kid with a JWKS", "RS token from a foreign key",
             "JWKS token for another app"}


async def test_valid_tokens_are_accepted_hs_and_jwks(session, stack):
    """The controls: without them a refusal below could be a broken configuration, not a caught attack."""
    needs_idp(stack)
    assert await handshake(session, stack, bearer(hs(stack))) == 101
    assert await handshake(session, stack, bearer(rs(stack))) == 101
    assert await handshake(session, stack, bearer(stack.token)) == 101


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_jwt_attack_is_refused_with_401_and_writes_no_row(session, stack, attack):
    if attack in NEEDS_IDP:
        needs_idp(stack)
    if attack == "over the maximum lifetime" and not stack.auth.get("max_lifetime"):
        pytest.skip("this stack sets no jwt_max_lifetime (the session's stack does)")
    token = ATTACKS[attack](stack)
    before = keys(stack)
    headers = {"X-Tunnel-Reclaim-Token": secrets.token_urlsafe(32)} | (bearer(token) if token else {})
    assert await handshake(session, stack, headers) == 401
    assert keys(stack) - before == set(), "a refused $connect wrote a row"


# --------------------------------------------------------------------------- reserved names

async def test_a_reserved_name_is_granted_to_its_holder_and_refused_to_anyone_else(session, stack, agent_factory,
                                                                                   origin):
    name = f"alice-{secrets.token_hex(3)}"
    alice = hs(stack, sub="alice", tunnel_subdomains=[name])
    tunnel = agent_factory(origin, "-t", alice, "--subdomain", name)
    assert tunnel.tunnel_id == name and name in tunnel.public_url
    reply = await request(session, "GET", tunnel.public_url, "/bytes?n=5")
    assert reply.status == 200 and len(reply.body) == 5

    before = keys(stack)
    bob_granted_too = hs(stack, sub="bob", tunnel_subdomains=[name])
    assert await handshake(session, stack, bearer(bob_granted_too, **{"X-Tunnel-Subdomain": name})) == 409
    carol_not_granted = hs(stack, sub="carol", tunnel_subdomains=["carol-app"])
    assert await handshake(session, stack, bearer(carol_not_granted, **{"X-Tunnel-Subdomain": name})) == 403
    assert await handshake(session, stack, bearer(stack.token, **{"X-Tunnel-Subdomain": name})) == 403
    assert await handshake(session, stack, {"X-Tunnel-Subdomain": name}) == 401
    assert keys(stack) - before == set()
    # the name still answers with alice's service
    assert (await request(session, "GET", tunnel.public_url, "/bytes?n=3")).status == 200

    # alice's second agent (same subject) takes it over, as a restarted agent would
    assert await handshake(session, stack, bearer(alice, **{"X-Tunnel-Subdomain": name})) == 101


async def test_squatting_a_random_looking_id_or_a_name_fails(session, stack, tunnel):
    """Issue 11's attack: a user whose token grants nothing asks for `mycompanyapi` (12 chars of
    [a-z0-9], shaped like a generated id) with a reclaim token of their own."""
    mallory = hs(stack, sub="mallory")
    own_token = secrets.token_urlsafe(32)
    before = keys(stack)
    # reclaiming an id nobody was given: there is no reservation, so there is no reclaim
    assert await handshake(session, stack, bearer(mallory, **{"X-Tunnel-Id": "mycompanyapi",
                                                               "X-Tunnel-Reclaim-Token": own_token})) == 409
    # asking for it as a name: names never look like generated ids, even when a token grants one
    granted = hs(stack, sub="mallory", tunnel_subdomains=["mycompanyapi"])
    assert await handshake(session, stack, bearer(granted, **{"X-Tunnel-Subdomain": "mycompanyapi"})) == 400
    # a live tunnel's id with a token that is not its own
    assert await handshake(session, stack, bearer(mallory, **{"X-Tunnel-Id": tunnel.tunnel_id,
                                                               "X-Tunnel-Reclaim-Token": own_token})) == 409
    # a name is not an id: it cannot be "reclaimed"
    assert await handshake(session, stack, bearer(mallory, **{"X-Tunnel-Id": "my-company-api",
                                                               "X-Tunnel-Reclaim-Token": own_token})) == 400
    assert keys(stack) - before == set()
    assert (await request(session, "GET", tunnel.public_url, "/bytes?n=4")).status == 200


# --------------------------------------------------------------------------- reclaim tokens

def saved_tunnel(state_dir: Path) -> dict:
    files = list(state_dir.glob("tunnel-*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


async def test_the_agents_reclaim_token_is_stored_only_as_a_hash(stack, agent_factory, origin, tmp_path):
    agent = agent_factory(origin)
    saved = saved_tunnel(tmp_path / "ttf-state")
    token = saved["reclaim_token"]
    assert saved["version"] == 2 and saved["tunnel_id"] == agent.tunnel_id and len(token) >= 43
    items = table(stack)
    assert token not in json.dumps(items), "the reclaim token is stored in the table"
    assert not any("reclaimToken" in item for item in items)
    row = next(i for i in items if i["connectionId"]["S"] == agent.connection_id)
    assert set(row) <= {"connectionId", "tunnelId", "connectedAt", "ttl", "domainName", "stage", "subject",
                        "subdomain", "rewrite", "rewriteJson", "capabilities", "secretVersion"}, \
        "nothing secret on the connection row (the GSI projects ALL; secretVersion is the HS secret's SSM version number)"
    assert row["capabilities"]["S"] == "ack,stream,ws"  # channel v2: what ttf and the server both speak
    reservation = next(i for i in items if i["connectionId"]["S"] == f"reservation#{agent.tunnel_id}")
    assert reservation["tokenHash"]["S"] == hashlib.sha256(token.encode()).hexdigest()
    assert reservation["ownerSub"]["S"] == stack.auth["subject"]


async def test_connection_established_carries_no_token(session, stack):
    own = secrets.token_urlsafe(32)
    async with session.ws_connect(stack.ws_url, headers=bearer(stack.token, **{"X-Tunnel-Reclaim-Token": own})) as ws:
        await ws.send_str(protocol.encode(protocol.Ready()))
        raw = (await ws.receive(timeout=10)).data
    message = json.loads(raw)
    assert message["type"] == "connection_established" and "reclaim_token" not in message
    assert own not in raw


async def test_another_users_reclaim_token_does_not_move_the_tunnel(session, stack, agent_factory, origin, tmp_path):
    """Even holding a leaked reclaim token, another subject cannot take the id over."""
    agent = agent_factory(origin)
    token = saved_tunnel(tmp_path / "ttf-state")["reclaim_token"]
    other = hs(stack, sub="someone-else")
    before = keys(stack)
    assert await handshake(session, stack, bearer(other, **{"X-Tunnel-Id": agent.tunnel_id,
                                                             "X-Tunnel-Reclaim-Token": token})) == 409
    assert keys(stack) - before == set()


# --------------------------------------------------------------------------- make token

async def test_make_token_mints_from_the_secret_terraform_put_in_ssm(session, stack, agent_factory, origin):
    name = f"carol-{secrets.token_hex(3)}"
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "scripts.deploy.token", "--stack", str(stack.state_file),
                         "--sub", "carol", "--subdomains", name, "--ttl", "2h"],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    claims = jwt.decode(token, stack.auth["secret"], algorithms=["HS256"], audience=stack.auth["audience"])
    assert claims["sub"] == "carol" and claims["tunnel_subdomains"] == [name] and claims["exp"] - claims["iat"] == 7200
    tunnel = agent_factory(origin, "-t", token, "--subdomain", name)
    assert tunnel.tunnel_id == name
    assert (await request(session, "GET", tunnel.public_url, "/bytes?n=2")).status == 200
