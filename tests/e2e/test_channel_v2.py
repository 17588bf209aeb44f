"""Channel v2 through the local stack: a forged answer writes no row; a throttled answer is
resent and answered; ids are verifiable and `ack` is agreed (shared/README.md)."""

from __future__ import annotations

import asyncio

import aiohttp
import boto3
import pytest

from httptunnel import protocol
from tests.e2e.client import request
from tests.e2e.test_admin import admin
from tests.e2e.test_failures import wait_posted


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as s:
        yield s


def answer_rows(stack, connection_id: str) -> list[dict]:
    ddb = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    items = ddb.scan(TableName=stack.pending_table, ConsistentRead=True)["Items"]
    return [i for i in items if i.get("connectionId", {}).get("S") == connection_id]


async def test_a_forged_answer_writes_no_row(session, agent_factory, origin, stack):
    victim = agent_factory(origin, "-v")
    call = asyncio.create_task(request(session, "GET", victim.public_url, "/sleep?s=3"))
    request_id = await wait_posted(victim)
    assert request_id.count(".") == 3, f"forward mints verifiable ids on the local stack: {request_id!r}"
    async with session.ws_connect(stack.ws_url, headers={"Authorization": f"Bearer {stack.token}",
                                                         "X-Tunnel-Capabilities": "ack"}) as attacker:
        await attacker.send_str(protocol.encode(protocol.Ready()))
        established = protocol.decode((await attacker.receive(timeout=10)).data)
        assert isinstance(established, protocol.ConnectionEstablished) and established.capabilities == ["ack"]
        for rid in (request_id, "0123456789abcdef0123456789abcdef", request_id[:-2] + "AA"):
            forged = protocol.HttpResponse(request_id=rid, status_code=299, headers={"x-forged": ["yes"]},
                                           body=protocol.b64encode(b"forged"), seq=0, ack=True)
            await attacker.send_str(protocol.encode(forged))
        reply = await asyncio.wait_for(call, 30)
        # the refusals are neither stored nor acknowledged: nothing comes back on the socket
        with pytest.raises(asyncio.TimeoutError):
            await attacker.receive(timeout=1.0)
    assert reply.status == 200 and reply.body == b"slept" and "x-forged" not in reply.headers
    assert answer_rows(stack, established.connection_id) == []


async def test_throttled_answers_are_resent_and_every_request_is_answered(session, agent_factory, origin, stack):
    agent = agent_factory(origin, "-v")
    # A quarter of the agent's messages are refused. An answer gets ~7 tries in the caller's 25 s
    # (resent after 1, 2, 4, 4 ... s): all refused is 0.25**7 per answer, 0.15% for 24 of them, and no
    # refusal at all is 0.75**24 = 0.1%. (At 0.5 and 12 answers, a 504 was 5%: CI met one.)
    count = 24
    await admin(session, stack, "POST", "/faults", {"agent_message_throttle_rate": 0.25})
    try:
        replies = await asyncio.gather(*(request(session, "GET", agent.public_url, f"/bytes?n={100 + i}")
                                         for i in range(count)))
    finally:
        await admin(session, stack, "POST", "/faults", {"agent_message_throttle_rate": 0})
    assert [r.status for r in replies] == [200] * count
    assert [len(r.body) for r in replies] == [100 + i for i in range(count)]
    log = agent.agent.log_path.read_text(errors="replace")
    assert "resending the answer" in log and "the gateway refused a message" in log
