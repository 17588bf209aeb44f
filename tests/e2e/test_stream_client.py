"""A real streaming client library through the tunnel (issue 23, item 10): the official `openai`
SDK, pointed with base_url at the tunnel, reads an OpenAI-style chunk stream (`data: {...}` chunks,
then `data: [DONE]`) that a fake server behind `ttf` writes 200 ms apart
(scripts/bench/sse.py chat_handler, served by the benchmark origin).

Through both edges the SDK must get every token, in order. Through the function URL edge
(`stream_url`) the chunks must also arrive live: each one long before the stream ends (forward_stream
and ttf both speak the `stream` capability: STREAM_CONTRACT.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from scripts.bench import sse
from scripts.harness.proc import Proc
from tests.e2e.conftest import StackInfo, Tunnel, start_agent

ROOT = Path(__file__).resolve().parents[2]
GAP_MS = 200


@pytest.fixture(scope="module")
def bench_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The benchmark origin (scripts/bench/origin.py): /sse, /sse-page, /v1/chat/completions."""
    folder = tmp_path_factory.mktemp("bench-origin")
    proc = Proc([sys.executable, "-m", "scripts.bench.origin", "--port", "0"], "bench-origin",
                folder / "origin.log", cwd=ROOT).start()
    try:
        yield int(proc.wait_json(lambda d: d.get("event") == "listening", 30)["port"])
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def bench_tunnel(stack: StackInfo, bench_origin: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    tunnel = start_agent(stack, bench_origin, tmp_path_factory.mktemp("bench-agent"))
    try:
        yield tunnel
    finally:
        tunnel.agent.stop()


def stream_base(stack: StackInfo, tunnel: Tunnel) -> str:
    if not stack.stream_url:
        pytest.fail("the local stack wrote no stream_url (the function URL edge is part of every stack)")
    return f"{stack.stream_url.rstrip('/')}/{tunnel.tunnel_id}"


def chat(base_url: str) -> tuple[list[str], list[float], list[float]]:
    """One streamed chat completion through the SDK: tokens, when each chunk was written, when it arrived."""
    import openai

    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="not-used", max_retries=0, timeout=60)
    try:
        stream = client.chat.completions.create(model="tunnel-test", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, extra_query={"ms": str(GAP_MS)})
        tokens, written, arrived = [], [], []
        for chunk in stream:
            arrived.append(time.time())
            written.append(float((chunk.model_extra or {})["t"]))
            if chunk.choices and chunk.choices[0].delta.content:
                tokens.append(chunk.choices[0].delta.content)
        return tokens, written, arrived
    finally:
        client.close()


@pytest.mark.parametrize("edge", ["http_api", "function_url"])
def test_the_sdk_reads_every_token_in_order(stack: StackInfo, bench_tunnel: Tunnel, edge: str) -> None:
    base = bench_tunnel.path_based_url.rstrip("/") if edge == "http_api" else stream_base(stack, bench_tunnel)
    tokens, written, _ = chat(base)
    assert "".join(tokens) == "".join(sse.CHAT_TOKENS)
    assert written == sorted(written) and len(written) == len(sse.CHAT_TOKENS) + 1


def test_the_sdk_gets_chunks_live_through_the_stream_url(stack: StackInfo, bench_tunnel: Tunnel) -> None:
    tokens, written, arrived = chat(stream_base(stack, bench_tunnel))
    assert "".join(tokens) == "".join(sse.CHAT_TOKENS)
    delays = [a - w for a, w in zip(arrived, written, strict=True)]
    # live: the first chunks reach the SDK before the origin has even written the last one (a
    # buffered edge delivers all of them after it), and no chunk waits a whole second
    early = sum(1 for a in arrived[:-2] if a < written[-1])
    assert early == len(arrived) - 2, json.dumps({"arrived_before_the_end": early, "delays_s": delays})
    assert sorted(delays)[len(delays) // 2] < 1.0, delays
