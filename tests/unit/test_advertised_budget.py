"""The agent socket's message budget, advertised in ``connection_established.limits`` (issue 29 x 23):
the field's wire shape, both sides' tolerance of fields they do not know, and the response Lambda
filling it from AGENT_MESSAGE_RATE_LIMIT / AGENT_MESSAGE_BURST_LIMIT."""

from __future__ import annotations

import json

import pytest

from httptunnel import protocol

from .helpers import connect_agent

ESTABLISHED = {"type": "connection_established", "connection_id": "c1", "tunnel_id": "t1",
               "public_url": "https://t1.example.test"}


def test_limits_round_trip() -> None:
    message = protocol.ConnectionEstablished("c1", "t1", "https://t1.example.test",
                                             limits={"messages_per_s": 30.0, "messages_burst": 60.0})
    frame = protocol.encode(message)
    assert json.loads(frame)["limits"] == {"messages_per_s": 30.0, "messages_burst": 60.0}
    assert protocol.decode(frame) == message


def test_an_older_server_sends_no_limits_and_the_field_is_left_out_when_none() -> None:
    assert protocol.decode(json.dumps(ESTABLISHED)).limits is None  # type: ignore[union-attr]
    assert "limits" not in json.loads(protocol.encode(protocol.ConnectionEstablished("c1", "t1", "u")))


def test_the_burst_is_optional_and_keys_a_later_server_adds_are_left_out() -> None:
    frame = json.dumps(ESTABLISHED | {"limits": {"messages_per_s": 5, "bytes_per_s": 1000}, "later": [1]})
    assert protocol.decode(frame).limits == {"messages_per_s": 5}  # type: ignore[union-attr]


def test_an_older_agents_decoder_ignores_the_new_field() -> None:
    """Agents before this field decode with the same rule as today: unknown fields are ignored. The
    schema-driven decoder drops what no dataclass field names; shown here on a field this one lacks."""
    frame = json.dumps(ESTABLISHED | {"limits": {"messages_per_s": 30, "messages_burst": 60},
                                      "a_field_from_the_future": {"x": 1}})
    message = protocol.decode(frame)
    assert isinstance(message, protocol.ConnectionEstablished) and message.tunnel_id == "t1"


def test_the_server_ignores_unknown_fields_of_agent_frames() -> None:
    """The other direction: a newer agent's extra fields on what it sends do not break the server."""
    assert isinstance(protocol.decode('{"type":"ready","pacing":{"rate":24}}'), protocol.Ready)
    chunk = protocol.decode('{"type":"http_response_chunk","request_id":"r","seq":1,"body":"eA==","paced":true}')
    assert isinstance(chunk, protocol.HttpResponseChunk) and chunk.body == "eA=="


@pytest.mark.parametrize("limits", [
    {"messages_burst": 60},  # no rate
    {"messages_per_s": 0},
    {"messages_per_s": -1},
    {"messages_per_s": "30"},
    {"messages_per_s": True},
    {"messages_per_s": 30, "messages_burst": 0.5},
    {"messages_per_s": 30, "messages_burst": "60"},
])
def test_malformed_limits_are_a_protocol_error_that_names_the_field(limits: dict) -> None:
    with pytest.raises(protocol.ProtocolError, match=r"connection_established: limits\.messages_"):
        protocol.decode(json.dumps(ESTABLISHED | {"limits": limits}))


@pytest.mark.parametrize("raw", ["Infinity", "NaN", "1e999"])
def test_a_rate_that_is_not_finite_is_refused(raw: str) -> None:
    frame = json.dumps(ESTABLISHED)[:-1] + f',"limits":{{"messages_per_s":{raw}}}}}'
    with pytest.raises(protocol.ProtocolError, match="messages_per_s"):
        protocol.decode(frame)


def test_limits_must_be_an_object() -> None:
    with pytest.raises(protocol.ProtocolError, match="limits"):
        protocol.decode(json.dumps(ESTABLISHED | {"limits": [30, 60]}))


def test_the_response_lambda_advertises_its_budget(aws, mgmt, monkeypatch) -> None:
    monkeypatch.setenv("AGENT_MESSAGE_RATE_LIMIT", "30")
    monkeypatch.setenv("AGENT_MESSAGE_BURST_LIMIT", "60")
    established = connect_agent("conn-A")
    assert established["limits"] == {"messages_per_s": 30.0, "messages_burst": 60.0}
    assert protocol.decode(json.dumps(established)).limits == established["limits"]  # type: ignore[union-attr]


def test_a_rate_without_a_burst_advertises_the_bucket_the_lambda_counts_with(aws, mgmt, monkeypatch) -> None:
    monkeypatch.setenv("AGENT_MESSAGE_RATE_LIMIT", "30")
    monkeypatch.delenv("AGENT_MESSAGE_BURST_LIMIT", raising=False)
    assert connect_agent("conn-A")["limits"] == {"messages_per_s": 30.0, "messages_burst": 30.0}


def test_no_budget_no_limits(aws, mgmt, monkeypatch) -> None:
    monkeypatch.delenv("AGENT_MESSAGE_RATE_LIMIT", raising=False)
    monkeypatch.setenv("AGENT_MESSAGE_BURST_LIMIT", "60")
    assert "limits" not in connect_agent("conn-A")
