"""forward's wait ends early enough to answer within the Lambda's own timeout (issue 25, item 5).

The wait used to be the configured 25 s whatever the invocation had left: with a function timeout
under wait + the time a big answer takes (or a slow start), a late answer ran forward past its
timeout and the caller got API Gateway's 500 instead of the tunnel's 504.
"""

from __future__ import annotations

import time

from httptunnel import waiting

from .helpers import FakeContext, connect_agent, load_handler
from .test_forward_basic import FakeAgent, http_event


def test_wait_leaves_the_answer_reserve_of_the_remaining_time():
    assert waiting.wait_seconds(25.0, None) == 25.0
    assert waiting.wait_seconds(25.0, 29_000) == 25.0  # the deployed defaults: unchanged
    assert waiting.wait_seconds(25.0, 26_000) == 26.0 - waiting.ANSWER_RESERVE_S
    assert waiting.wait_seconds(25.0, 1_000) == 0.0


def test_forward_answers_504_before_the_lambda_times_out(aws, mgmt, monkeypatch):
    monkeypatch.setenv("FORWARD_WAIT_SECONDS", "6")
    tid = connect_agent("conn-A")["tunnel_id"]
    FakeAgent(mgmt, "conn-A", lambda msg: None)  # the agent never answers
    started = time.monotonic()  # the invocation has 4.5 s left: wait 0.5 s (4 s reserve), not 6
    result = load_handler("forward")(http_event(tid), FakeContext(remaining_ms=4_500))
    elapsed = time.monotonic() - started
    assert result["statusCode"] == 504
    assert elapsed < 2.5, f"waited {elapsed:.1f} s of a 0.5 s budget"
