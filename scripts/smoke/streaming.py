"""`make smoke`'s streaming check: one SSE endpoint with timed events through the deployment's
streaming edge (issue 23).

The smoke origin writes 20 events 200 ms apart (`/sse`), each stamped with the time it was
written; this check reads them through the stream URL (`<stream base>/<tunnel id>/sse`, the path
form) with a plain http.client connection and notes when each arrives. Origin and caller run on
this machine, so arrival - written is the per-event delay on one clock. It reports p50/p95 and
fails when the stream is cut, out of order, or not live: a buffering edge hands every event over
after the last one was written. The delay itself is reported, not judged: on a deployment it
includes two internet round trips (to AWS and back through the agent) that the local stack's
targets (<= 250 ms p50, <= 500 ms p95) do not.

Which URL: `--stream-url`, else terraform's `function_url` output (set with
`public_edge = "function_url"`). A deployment with neither has no streaming edge, and the check
says so as "not checkable" (it fails nothing).
"""

from __future__ import annotations

import http.client
import json
import ssl
import time

from scripts.smoke.client import split
from scripts.smoke.context import Context
from scripts.smoke.verdict import CheckFailed, NotCheckable

STREAMING = "streaming: SSE, 20 events 200 ms apart"
EVENTS = 20
GAP_MS = 200
NO_EDGE = ("this deployment has no streaming edge (terraform output function_url is null: public_edge = "
           "\"http_api\", whose answers are whole); pass --stream-url to check one")


def stream_url(ctx: Context) -> str:
    if not ctx.stream_url:
        raise NotCheckable(NO_EDGE)
    return f"{ctx.stream_url.rstrip('/')}/{ctx.tunnel.tunnel_id}/sse?n={EVENTS}&ms={GAP_MS}"


def read_events(url: str, timeout: float) -> tuple[int, list[tuple[dict, float]]]:
    """GET url; (status, [(event data, arrival time.time())]) as each event's blank line is read."""
    scheme, dial, port, host, target = split(url)
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(dial, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(dial, port, timeout=timeout)
    try:
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        conn.putheader("Accept", "text/event-stream")
        conn.endheaders()
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, []
        events: list[tuple[dict, float]] = []
        data: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = resp.readline()
            if not raw:
                break
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif not line and data:
                events.append((json.loads("\n".join(data)), time.time()))
                data = []
        return resp.status, events
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def verdict(status: int, events: list[tuple[dict, float]]) -> str:
    """The detail line, or CheckFailed: whole, in order, and live."""
    if status != 200:
        raise CheckFailed(f"status {status} from the stream URL")
    ids = [int(data["i"]) for data, _ in events]
    if ids != list(range(EVENTS)):
        raise CheckFailed(f"{len(ids)} of {EVENTS} events, in this order: {ids[:25]}")
    delays = [(arrived - float(data["t"])) * 1000 for data, arrived in events]
    last_written = max(float(data["t"]) for data, _ in events)
    early = sum(1 for _, arrived in events if arrived < last_written)
    detail = (f"per-event delay p50 {percentile(delays, 50):.0f} ms, p95 {percentile(delays, 95):.0f} ms, "
              f"max {max(delays):.0f} ms; {early} of {EVENTS} arrived before the last was written")
    if early < EVENTS - 2:
        raise CheckFailed(f"not live (the edge buffers the answer): {detail}")
    return detail


def check_stream(ctx: Context) -> str:
    url = stream_url(ctx)
    status, events = read_events(url, timeout=EVENTS * GAP_MS / 1000 + 30)
    return verdict(status, events)
