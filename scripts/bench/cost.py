"""Cost model: counted operations per request -> dollars per million requests on AWS.

    python -m scripts.bench.cost                         # reads bench/results.json (aws profile run if present)
    python -m scripts.bench.cost --results F --run local --memory-mb 256 --json
    python -m scripts.bench.count --profile aws --update bench/results.json   # count again, both edges (no latency)

Inputs are COUNTED, not estimated: `make bench` records, per 1 KB GET through the tunnel, the
emulator's /stats deltas (Lambda invocations and billed milliseconds by function, DynamoDB calls
by operation, PostToConnection calls, WebSocket messages each way, HTTP API requests). This file
only multiplies them by published prices. The few things that are NOT counted are explicit,
named assumptions (item sizes -> request units, memory size, how many agents stay connected),
printed under the table.

Prices: AWS us-east-1, list prices, first pricing tier, no free tier. Recorded on PRICES_DATE
from the pages in PRICE_SOURCES (this machine has no internet: re-check them before quoting).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[2]

PRICES_DATE = "2025-06-01"
PRICE_SOURCES = {
    "http_api": "https://aws.amazon.com/api-gateway/pricing/",
    "websocket": "https://aws.amazon.com/api-gateway/pricing/",
    "lambda": "https://aws.amazon.com/lambda/pricing/",
    "dynamodb": "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "eventbridge": "https://aws.amazon.com/eventbridge/pricing/",
    "data_transfer": "https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer",
    "snapstart": "https://aws.amazon.com/lambda/pricing/ (SnapStart; "
                 "https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html#snapstart-pricing)",
    "rest_api": "https://aws.amazon.com/api-gateway/pricing/ (REST APIs, first 333 M/month)",
    "function_url": "https://docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html "
                    "(no charge beyond the function's invocations and duration: https://aws.amazon.com/lambda/pricing/)",
    "cloudfront": "https://aws.amazon.com/cloudfront/pricing/ (HTTPS requests and data out, United States; "
                  "CloudFront Functions invocations) (verify: recorded from the design, not re-read here)",
    "lambda_streaming": "https://aws.amazon.com/lambda/pricing/ (streamed response bytes past 6 MB; verify)",
    "s3": "https://aws.amazon.com/s3/pricing/ (PUT/POST and GET requests, S3 Standard)",
    "sqs": "https://aws.amazon.com/sqs/pricing/ (FIFO requests; each 64 KB chunk of a payload is a request; "
           "rate (verify), as https://cloudburn.io/blog/amazon-sqs-pricing quotes it)",
}

# us-east-1, USD.
HTTP_API_PER_M = 1.00  # per million requests, first 300 M/month, metered in 512 KB increments
HTTP_API_INCREMENT = 512 * 1024
WS_MESSAGE_PER_M = 1.00  # per million messages (sent or received), first 1 B, 32 KB increments
WS_MESSAGE_INCREMENT = 32 * 1024
WS_CONNECTION_MINUTE_PER_M = 0.25  # per million connection-minutes
LAMBDA_REQUEST_PER_M = 0.20  # per million invocations
LAMBDA_GB_S = {"arm64": 0.0000133334, "x86_64": 0.0000166667}  # per GB-second, first tier
DDB_WRU_PER_M = 0.625  # on-demand write request units (after the 2024-11-01 price cut)
DDB_RRU_PER_M = 0.125  # on-demand read request units (after the 2024-11-01 price cut)
EVENTBRIDGE_PER_M = 1.00  # custom events put on a bus, 64 KB chunks
DATA_TRANSFER_OUT_PER_GB = 0.09  # internet egress, first 10 TB/month
# The edges of issue 23 (shared/README.md "The live web"): what each charges per caller request.
REST_API_PER_M = 3.50  # REST API requests, first 333 M/month; a streamed answer is metered per 10 MB
REST_STREAM_METER_BYTES = 10 * 1024 * 1024  # each further 10 MB of a streamed REST answer bills as a request (verify)
FUNCTION_URL_PER_M = 0.00  # a function URL has no request charge: only the invocation and its duration
CLOUDFRONT_HTTPS_PER_M = 1.00  # CloudFront HTTPS requests, United States ($0.0100 per 10,000)
CLOUDFRONT_FUNCTION_PER_M = 0.10  # a CloudFront Function on viewer request (the tunnel's Host -> a header)
CLOUDFRONT_DATA_OUT_PER_GB = 0.085  # CloudFront to the internet, United States, first 10 TB (origin -> CloudFront is free)
LAMBDA_STREAMED_PER_GB = 0.008  # streamed response bytes past the first 6 MB of each answer (verify)
LAMBDA_STREAM_FREE_BYTES = 6 * 1024 * 1024
S3_PUT_PER_M = 5.00  # PUT/POST (the agent's segment upload through the presigned form)
S3_GET_PER_M = 0.40  # GET (forward reading a segment); DeleteObject is free
# SnapStart (python3.12+): a cache charge for every published version while it is active (3 h
# minimum), per GB of the function's memory per second, and a restore charge per GB each time an
# execution environment is restored from the snapshot. Without SnapStart the init phase is billed
# as duration (since 2025-08-01, for ZIP functions on managed runtimes).
SNAPSTART_CACHE_GB_S = 0.0000015046
SNAPSTART_RESTORE_GB = 0.0001397998
SECONDS_PER_MONTH = 730 * 3600
SQS_FIFO_PER_M = 0.50  # FIFO queue requests, after the monthly free million; 64 KB of payload per request
SQS_REQUEST_INCREMENT = 64 * 1024

ORIGINAL_STATED = (5.50, 7.50)  # the original http-tunnel's stated $ per million requests
TARGET_PER_M = 5.50  # issue 16; any design on these services pays at least $4.65 (README Performance)

MINUTES_PER_MONTH = 730 * 60  # AWS bills a month as 730 hours

WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem"}
TRANSACT_WRITE_OPS = {"TransactWriteItems"}
BATCH_WRITE_OPS = {"BatchWriteItem"}
READ_OPS = {"GetItem", "Query", "Scan"}
BATCH_READ_OPS = {"BatchGetItem", "TransactGetItems"}
FREE_OPS = {
    # control plane and stream reads by a Lambda trigger are not billed per request
    "DescribeTable", "ListTables", "DescribeTimeToLive", "DescribeContinuousBackups",
    "ListTagsOfResource", "DescribeStream", "GetRecords", "GetShardIterator", "ListStreams",
}


@dataclass(frozen=True)
class Assumptions:
    """What is not counted. Every figure here is printed with the table."""

    memory_mb: Mapping[str, int] = field(default_factory=dict)  # function -> MB
    default_memory_mb: int = 128
    architecture: str = "arm64"
    # WRU per write call: 1 WRU per 1 KB of item (the larger of old and new image). For a 1 KB GET
    # the one write is the answer row: PutItem of the ~1.4 KB base64 response plus its attributes
    # (2 KB). Older designs also updated (2 KB) and deleted (billed on the deleted item, 2 KB)
    # a pending row. (A TTL expiry deletes for free.) Other write operations: write_units_per_write.
    write_units: Mapping[str, float] = field(default_factory=lambda: {"PutItem": 2.0, "UpdateItem": 2.0,
                                                                       "DeleteItem": 2.0})
    write_units_per_write: float = 2.0
    read_units_per_get: float = 1.0  # RRU per GetItem (strongly consistent, item <= 4 KB)
    read_units_per_query: float = 0.5  # RRU per Query (GSI reads are eventually consistent, <= 4 KB)
    events_per_request: float | None = None  # EventBridge entries; None = take the count
    # Terraform's traffic_log (one event per answer row, through stream_notifier). None = infer:
    # on when the run counted stream_notifier invocations.
    traffic_log: bool | None = None
    agents_connected: int = 1  # agents connected all month ...
    requests_per_month: float = 1_000_000  # ... sharing their connection-minutes over this many requests
    request_bytes: int = 1024  # caller -> API
    response_bytes: int = 1024  # API -> caller


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float  # units per request
    unit: str
    unit_price: float  # USD per unit
    note: str = ""

    @property
    def per_million(self) -> float:
        return self.quantity * self.unit_price * 1_000_000


@dataclass(frozen=True)
class CostModel:
    lines: list[Line]
    excluded: list[Line]
    assumptions: Assumptions

    @property
    def total_per_million(self) -> float:
        return sum(line.per_million for line in self.lines)


def increments(size: int, increment: int) -> int:
    """How many metered units one message/request of `size` bytes is billed as (at least one)."""
    return max(1, math.ceil(size / increment))


def dynamodb_units(calls: Mapping[str, float], a: Assumptions) -> tuple[float, float, list[str]]:
    """(write units, read units, unknown ops) per request from counted calls per request."""
    wru = rru = 0.0
    unknown: list[str] = []
    for op, n in calls.items():
        if op in WRITE_OPS or op in BATCH_WRITE_OPS:
            wru += n * a.write_units.get(op, a.write_units_per_write)
        elif op in TRANSACT_WRITE_OPS:
            wru += n * 2 * a.write_units.get(op, a.write_units_per_write)  # transactional writes cost double
        elif op == "GetItem":
            rru += n * a.read_units_per_get
        elif op in {"Query", "Scan"}:
            rru += n * a.read_units_per_query
        elif op in BATCH_READ_OPS:
            rru += n * a.read_units_per_get * (2 if op == "TransactGetItems" else 1)
        elif op in FREE_OPS:
            continue
        else:
            unknown.append(op)
    return wru, rru, unknown


EDGES = ("http_api", "function_url", "function_url_cloudfront", "rest")


def edge_lines(edge: str, per_request: Mapping[str, Any], a: Assumptions) -> list[Line]:
    """What the caller-facing edge charges per request: the only lines that differ between edges."""
    if edge == "http_api":
        http_requests = float(per_request.get("http_requests", 1.0))
        return [Line("API Gateway HTTP API", "requests", http_requests * increments(a.request_bytes, HTTP_API_INCREMENT),
                     "request", HTTP_API_PER_M / 1e6, "512 KB increments")]
    if edge == "rest":
        return [Line("API Gateway REST API", "requests", 1.0, "request", REST_API_PER_M / 1e6,
                     "one per caller request; a streamed answer adds one per further 10 MB")]
    if edge in ("function_url", "function_url_cloudfront"):
        lines = [Line("Lambda function URL", "requests", 1.0, "request", FUNCTION_URL_PER_M / 1e6,
                      "no request charge: the invocation and its duration are the Lambda lines")]
        if edge == "function_url_cloudfront":
            lines.append(Line("CloudFront", "HTTPS requests", 1.0, "request", CLOUDFRONT_HTTPS_PER_M / 1e6,
                              "caching disabled: every request reaches the origin"))
            lines.append(Line("CloudFront", "CloudFront Function", 1.0, "invocation", CLOUDFRONT_FUNCTION_PER_M / 1e6,
                              "viewer request: the tunnel's Host to a header"))
        return lines
    raise ValueError(f"unknown edge {edge!r} (known: {', '.join(EDGES)})")


def build(per_request: Mapping[str, Any], a: Assumptions, edge: str = "http_api") -> CostModel:
    """Cost lines from per-request counts (the shape `bench.py` writes under `per_request`), for
    requests reaching forward through ``edge`` (one of EDGES)."""
    lines: list[Line] = edge_lines(edge, per_request, a)

    ws = per_request.get("ws_messages", {})
    to_agent = float(ws.get("api_to_agent", per_request.get("post_to_connection", 0.0)))
    from_agent = float(ws.get("agent_to_api", 0.0))
    lines.append(Line(
        "API Gateway WebSocket", "messages API -> agent", to_agent * increments(a.request_bytes + 512, WS_MESSAGE_INCREMENT),
        "message", WS_MESSAGE_PER_M / 1e6, "32 KB increments; PostToConnection"))
    lines.append(Line(
        "API Gateway WebSocket", "messages agent -> API", from_agent * increments(a.response_bytes + 512, WS_MESSAGE_INCREMENT),
        "message", WS_MESSAGE_PER_M / 1e6, "32 KB increments"))
    conn_minutes = a.agents_connected * MINUTES_PER_MONTH / a.requests_per_month
    lines.append(Line(
        "API Gateway WebSocket", "connection-minutes", conn_minutes, "minute", WS_CONNECTION_MINUTE_PER_M / 1e6,
        f"{a.agents_connected} agent(s) x 730 h over {a.requests_per_month:,.0f} requests/month"))

    invocations: Mapping[str, float] = per_request.get("lambda_invocations", {})
    billed_ms: Mapping[str, float] = per_request.get("lambda_billed_ms", {})
    total_invocations = sum(float(v) for v in invocations.values())
    lines.append(Line(
        "Lambda", "invocations", total_invocations, "invocation", LAMBDA_REQUEST_PER_M / 1e6,
        ", ".join(f"{fn} {float(n):.2f}" for fn, n in sorted(invocations.items()) if n)))
    gb_price = LAMBDA_GB_S[a.architecture]
    for fn, ms in sorted(billed_ms.items()):
        if not ms:
            continue
        mem = a.memory_mb.get(fn, a.default_memory_mb)
        gb_s = float(ms) / 1000.0 * mem / 1024.0
        lines.append(Line(
            "Lambda", f"duration {fn}", gb_s, "GB-s", gb_price,
            f"{float(ms):.1f} billed ms x {mem} MB, {a.architecture}"))

    wru, rru, unknown = dynamodb_units(per_request.get("dynamodb_calls", {}), a)
    calls = per_request.get("dynamodb_calls", {})
    writes = ", ".join(f"{op} {float(n):.2f}" for op, n in sorted(calls.items())
                       if op not in READ_OPS | BATCH_READ_OPS | FREE_OPS and n)
    reads = ", ".join(f"{op} {float(n):.2f}" for op, n in sorted(calls.items()) if op in READ_OPS | BATCH_READ_OPS and n)
    lines.append(Line("DynamoDB on-demand", "write request units", wru, "WRU", DDB_WRU_PER_M / 1e6, writes))
    lines.append(Line("DynamoDB on-demand", "read request units", rru, "RRU", DDB_RRU_PER_M / 1e6, reads))
    if unknown:
        raise ValueError(f"no pricing rule for DynamoDB operation(s): {', '.join(sorted(unknown))}")

    if a.events_per_request is not None:
        events, note = a.events_per_request, "assumed"
    elif "eventbridge_events" in per_request:
        events, note = float(per_request["eventbridge_events"]), "counted PutEvents entries"
    else:
        invoked = per_request.get("lambda_invocations", {})
        traffic_log = a.traffic_log if a.traffic_log is not None else float(invoked.get("stream_notifier", 0.0)) > 0
        # one event per answer row; the response Lambda writes each, and stream_notifier batches
        # several rows per invocation, so count the answers
        answers = float(invoked.get("response", 0.0))
        events = answers if traffic_log else 0.0
        note = ("1 per answer row (= response invocations; stream_notifier batches them)" if traffic_log
                else "traffic_log = false: no stream mapping, no events")
    lines.append(Line("EventBridge", "custom events", events, "event", EVENTBRIDGE_PER_M / 1e6, note))

    excluded = [Line(
        "Data transfer out", "response bytes to the internet", a.response_bytes / 1024**3, "GB",
        DATA_TRANSFER_OUT_PER_GB, "not in the original's figure; first 100 GB/month are free")]
    return CostModel(lines=lines, excluded=excluded, assumptions=a)


# --- streamed answers (issue 23; the chunk channel of shared/README.md "The live web") ---------
CHUNK_RAW_MAX = 22 * 1024  # raw bytes per http_response_chunk frame (STREAM_CONTRACT: <= 22 KiB)
CHUNK_ITEM_OVERHEAD = 256  # bytes of a stored chunk item besides its base64 body: key, seq, ttl, forRequest
SEGMENT_BYTES = 8 * 1024 * 1024  # the bulk lane: one S3 object per segment
ACK_EVERY = 8  # forward posts one stream_ack per 8 frames read (or per second)
POLLS_PER_S_BUSY = 10  # forward's read schedule while a stream is busy (20 ms growing to 100 ms)


def base64_len(raw: int) -> int:
    return 4 * math.ceil(raw / 3)


def chunk_wru(raw: int) -> int:
    """WRU to write one chunk item of ``raw`` body bytes (1 per KB of item, base64 stored), = its delete's."""
    return max(1, math.ceil((base64_len(raw) + CHUNK_ITEM_OVERHEAD) / 1024))


def _lines_total(lines: list[dict[str, Any]]) -> float:
    return float(sum(line["usd"] for line in lines))


def _line(what: str, quantity: float, unit_price: float) -> dict[str, Any]:
    return {"what": what, "quantity": round(quantity, 6), "unit_price_usd": unit_price, "usd": quantity * unit_price}


def frame_lines(raw: int, response_billed_ms: float, response_memory_mb: int, architecture: str) -> list[dict[str, Any]]:
    """One chunk frame of ``raw`` bytes on the event lane: agent message, response, write + delete, ack share."""
    frame_bytes = base64_len(raw) + 512  # the frame's JSON around the base64 body
    gb_s = response_billed_ms / 1000 * response_memory_mb / 1024
    return [
        _line("agent message ($default)", increments(frame_bytes, WS_MESSAGE_INCREMENT), WS_MESSAGE_PER_M / 1e6),
        _line("response invocation", 1.0, LAMBDA_REQUEST_PER_M / 1e6),
        _line(f"response duration ({response_billed_ms:.1f} ms x {response_memory_mb} MB)", gb_s,
              LAMBDA_GB_S[architecture]),
        _line(f"chunk item write + delete ({chunk_wru(raw)} + {chunk_wru(raw)} WRU)", 2 * chunk_wru(raw),
              DDB_WRU_PER_M / 1e6),
        _line(f"stream_ack share (1 per {ACK_EVERY} frames)", 1 / ACK_EVERY, WS_MESSAGE_PER_M / 1e6),
    ]


def stream_rates(edge: str, forward_memory_mb: int, response_memory_mb: int, response_billed_ms: float,
                 architecture: str = "arm64", event_sizes: tuple[int, ...] = (100, 1024)) -> dict[str, Any]:
    """Per event, per streamed minute and per streamed MB on ``edge``, from the price constants.

    ``response_billed_ms``: the response Lambda's billed ms per agent message (counted by the bench).
    The formulas are the design's (shared/README.md, "Per streamed MB, per streamed minute and per
    event"), with the chunk item priced by its stored (base64) size."""
    if edge == "http_api":
        return {"edge": edge, "streams": False, "note": "HTTP APIs cannot stream (whole answers only)"}
    events = {}
    for size in event_sizes:
        lines = frame_lines(size, response_billed_ms, response_memory_mb, architecture)
        events[str(size)] = {"event_bytes": size, "lines": lines, "usd_per_million": _lines_total(lines) * 1e6}
    minute = [
        _line(f"streaming forward open 60 s x {forward_memory_mb} MB", 60 * forward_memory_mb / 1024,
              LAMBDA_GB_S[architecture]),
        _line(f"reads at {POLLS_PER_S_BUSY}/s (strongly consistent, 1 RRU each)", 60 * POLLS_PER_S_BUSY,
              DDB_RRU_PER_M / 1e6),
    ]
    egress_per_gb = CLOUDFRONT_DATA_OUT_PER_GB if edge == "function_url_cloudfront" else DATA_TRANSFER_OUT_PER_GB
    per_mb = 1024 * 1024
    notice = frame_lines(200, response_billed_ms, response_memory_mb, architecture)  # a segment notice: a small frame
    bulk = [
        _line("segment upload (S3 POST), 1 per 8 MB", per_mb / SEGMENT_BYTES, S3_PUT_PER_M / 1e6),
        _line("segment read (S3 GET), 1 per 8 MB", per_mb / SEGMENT_BYTES, S3_GET_PER_M / 1e6),
        _line("segment notice (a small frame), 1 per 8 MB", per_mb / SEGMENT_BYTES, _lines_total(notice)),
    ]
    frames = math.ceil(per_mb / CHUNK_RAW_MAX)
    event_lane = [_line(f"{frames} frames of 22 KiB: " + line["what"], frames * line["quantity"], line["unit_price_usd"])
                  for line in frame_lines(CHUNK_RAW_MAX, response_billed_ms, response_memory_mb, architecture)]
    common = [
        _line("data out to the internet" + (" (CloudFront)" if edge == "function_url_cloudfront" else ""),
              1 / 1024, egress_per_gb),
        _line("Lambda streamed bytes (past the first 6 MB of an answer)", 1 / 1024, LAMBDA_STREAMED_PER_GB),
    ]
    if edge == "rest":
        common.append(_line("REST metering: 1 request per 10 MB streamed", per_mb / REST_STREAM_METER_BYTES,
                            REST_API_PER_M / 1e6))
    return {
        "edge": edge, "streams": True,
        "per_million_events": events,
        "per_minute": {"lines": minute, "usd": _lines_total(minute), "usd_per_hour": _lines_total(minute) * 60},
        "per_mb_bulk": {"lines": bulk + common, "usd": _lines_total(bulk + common)},
        "per_mb_event_lane": {"lines": event_lane + common, "usd": _lines_total(event_lane + common)},
        "assumptions": {"forward_memory_mb": forward_memory_mb, "response_memory_mb": response_memory_mb,
                        "response_billed_ms": response_billed_ms, "architecture": architecture,
                        "chunk_item_overhead_bytes": CHUNK_ITEM_OVERHEAD, "segment_bytes": SEGMENT_BYTES,
                        "ack_every": ACK_EVERY, "polls_per_s_busy": POLLS_PER_S_BUSY},
    }


# --- caller WebSockets (issue 24; shared/README.md "Caller WebSockets", "Ordering") -------------
# Per caller frame, API Gateway's SQS integration sends one SendMessage (the frame base64 in the body);
# per batch Lambda's event source mapping makes one ReceiveMessage and one DeleteMessageBatch (what
# a caller_message invocation is). Empty long polls of an idle queue are not per message (Ordering).
SQS_RECEIVES_AND_DELETES_PER_BATCH = 2
SOCKET_ROW_WRU = 1.0  # the socket row (ws#<id>: ids, counters, ttl) is well under 1 KB
DEFAULT_BUDGET_PER_S = 100  # the agents' $default stage budget (Terraform websocket_throttling_rate_limit)
# Heartbeats of common WebSocket protocols; each crosses the tunnel as one round trip (a ping one way,
# its answer the other), so one message of the pair is the agent's (against the $default budget).
HEARTBEATS: dict[str, dict[str, Any]] = {
    "socket.io": {"period_s": 25.0, "heartbeat": "server ping every 25 s (pingInterval 25000), client pong",
                  "source": "https://socket.io/docs/v4/server-options/#pinginterval"},
    "graphql-ws": {"period_s": 10.0,
                   "heartbeat": "client keepAlive 10 s (ping/pong messages). ASSUMED: the client's default is 0 "
                                "(off: then only the 10-minute idle close), 10_000 is its docs' example; the server's "
                                "12 s keep-alive is WebSocket ping frames, which ttf's local socket answers itself "
                                "(aiohttp autoping), so they never cross the tunnel",
                   "source": "graphql-ws 6.4.2 as tests/browser/apps installs it: dist/client.js keepAlive = 0 and "
                             "dist/client.d.ts's example, dist/use/ws.js keepAlive = 12e3 with socket.ping()"},
    "phoenix": {"period_s": 30.0, "heartbeat": "client heartbeat every 30 s (heartbeatIntervalMs 30000), server reply",
                "source": "https://hexdocs.pm/phoenix/js/ (Socket heartbeatIntervalMs)"},
}


def sqs_requests(frames: float, batches: float, frame_bytes: int = 100) -> float:
    """SQS FIFO requests for ``frames`` caller frames taken in ``batches``: each SendMessage bills one
    request per 64 KB of its base64 body, each batch one ReceiveMessage and one DeleteMessageBatch."""
    if frames < 0 or batches < 0 or frame_bytes < 0:
        raise ValueError("frames, batches and frame_bytes must be >= 0")
    return frames * increments(base64_len(frame_bytes), SQS_REQUEST_INCREMENT) + \
        batches * SQS_RECEIVES_AND_DELETES_PER_BATCH


def _gb_s(billed_ms: float, memory_mb: int) -> float:
    return billed_ms / 1000 * memory_mb / 1024


def caller_to_app_lines(billed_ms: float, memory_mb: int = 256, architecture: str = "arm64",
                        batch: int = 1, frame_bytes: int = 100) -> list[dict[str, Any]]:
    """One caller message to the app, ``batch`` frames per caller_message invocation (1: sent alone).
    ``billed_ms``: caller_message's billed ms per invocation."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    share = 1 / batch
    return [
        _line("caller message in (caller API)", increments(frame_bytes, WS_MESSAGE_INCREMENT), WS_MESSAGE_PER_M / 1e6),
        _line(f"SQS FIFO requests (send, 1/{batch} receive + delete)", sqs_requests(1, share, frame_bytes),
              SQS_FIFO_PER_M / 1e6),
        _line("caller_message invocation", share, LAMBDA_REQUEST_PER_M / 1e6),
        _line(f"caller_message duration ({billed_ms:.1f} ms x {memory_mb} MB)", share * _gb_s(billed_ms, memory_mb),
              LAMBDA_GB_S[architecture]),
        _line("socket row UpdateItem (inSeq)", share * SOCKET_ROW_WRU, DDB_WRU_PER_M / 1e6),
        _line("ws_message post to the agent", share, WS_MESSAGE_PER_M / 1e6),
    ]


def app_to_caller_lines(billed_ms: float, memory_mb: int = 256, architecture: str = "arm64",
                        batch: int = 1, message_bytes: int = 100) -> list[dict[str, Any]]:
    """One app message to the caller, ``batch`` messages per agent ws_message (1: a quiet socket).
    ``billed_ms``: the response Lambda's billed ms per invocation."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    share = 1 / batch
    return [
        _line("agent ws_message ($default)", share, WS_MESSAGE_PER_M / 1e6),
        _line("response invocation", share, LAMBDA_REQUEST_PER_M / 1e6),
        _line(f"response duration ({billed_ms:.1f} ms x {memory_mb} MB)", share * _gb_s(billed_ms, memory_mb),
              LAMBDA_GB_S[architecture]),
        _line("socket row UpdateItems (claim, posted)", share * 2 * SOCKET_ROW_WRU, DDB_WRU_PER_M / 1e6),
        _line("post to the caller", increments(message_bytes, WS_MESSAGE_INCREMENT), WS_MESSAGE_PER_M / 1e6),
        _line("ws_ack post to the agent", share, WS_MESSAGE_PER_M / 1e6),
    ]


def round_trip_lines(per_round_trip: Mapping[str, Any], memory_mb: Mapping[str, int], default_memory_mb: int = 128,
                     architecture: str = "arm64", caller_frames: float = 1.0) -> list[dict[str, Any]]:
    """One counted round trip (caller -> app -> caller), priced: the emulator's /stats deltas per round
    trip (WebSocket messages of both APIs, invocations and billed ms by function, DynamoDB calls), and
    SQS requests from ``caller_frames`` per round trip and the counted caller_message invocations."""
    invocations = {k: float(v) for k, v in per_round_trip.get("lambda_invocations", {}).items()}
    billed = {k: float(v) for k, v in per_round_trip.get("lambda_billed_ms", {}).items()}
    calls = {k: float(v) for k, v in per_round_trip.get("dynamodb_calls", {}).items()}
    write_ops = WRITE_OPS | TRANSACT_WRITE_OPS | BATCH_WRITE_OPS
    read_ops = READ_OPS | BATCH_READ_OPS
    unknown = set(calls) - write_ops - read_ops - FREE_OPS
    if unknown:
        raise ValueError(f"no price for DynamoDB operations {sorted(unknown)}")
    messages = sum(float(v) for v in per_round_trip.get("ws_messages", {}).values())
    lines = [
        _line("WebSocket messages, both APIs (counted)", messages, WS_MESSAGE_PER_M / 1e6),
        _line("SQS FIFO requests (1 send per caller frame, receive + delete per caller_message invocation)",
              sqs_requests(caller_frames, invocations.get("caller_message", 0.0)), SQS_FIFO_PER_M / 1e6),
        _line("Lambda invocations (counted)", sum(invocations.values()), LAMBDA_REQUEST_PER_M / 1e6),
    ]
    for fn, ms in sorted(billed.items()):
        if ms > 0:
            mb = memory_mb.get(fn, default_memory_mb)
            lines.append(_line(f"{fn} duration ({ms:.1f} ms x {mb} MB)", _gb_s(ms, mb), LAMBDA_GB_S[architecture]))
    writes = sum(v for k, v in calls.items() if k in write_ops)
    reads = sum(v for k, v in calls.items() if k in read_ops)
    # a batch call counts as one item: what the window caught of other work (cleanup's batches), not the socket's
    lines.append(_line(f"DynamoDB writes ({SOCKET_ROW_WRU:g} WRU each: the socket row; a batch call as one item)",
                       writes * SOCKET_ROW_WRU, DDB_WRU_PER_M / 1e6))
    if reads:
        lines.append(_line("DynamoDB reads (1 RRU each; a batch call as one item)", reads, DDB_RRU_PER_M / 1e6))
    return lines


def connection_hour_usd() -> float:
    """One caller socket open for an hour: 60 connection-minutes on the caller API."""
    return 60 * WS_CONNECTION_MINUTE_PER_M / 1e6


def idle_hour(round_trip_usd: float, period_s: float, agent_messages_per_heartbeat: float = 1.0,
              budget_per_s: float = DEFAULT_BUDGET_PER_S) -> dict[str, Any]:
    """An idle socket-hour with a heartbeat every ``period_s``: its connection-minutes and one round
    trip per heartbeat, and the agent messages it spends of the agents' $default budget."""
    if period_s <= 0 or budget_per_s <= 0:
        raise ValueError("period_s and budget_per_s must be > 0")
    beats = 3600 / period_s
    per_s = agent_messages_per_heartbeat / period_s
    return {"heartbeats_per_hour": beats, "usd": connection_hour_usd() + beats * round_trip_usd,
            "heartbeat_usd_per_hour": beats * round_trip_usd, "connection_usd_per_hour": connection_hour_usd(),
            "agent_messages_per_s": per_s, "default_budget_per_s": budget_per_s,
            "share_of_default_budget": per_s / budget_per_s,
            "sockets_to_fill_budget": math.floor(budget_per_s / per_s) if per_s else None}


def socket_rates(per_round_trip: Mapping[str, Any], memory_mb: Mapping[str, int],
                 architecture: str = "arm64") -> dict[str, Any]:
    """Everything `make bench` states about caller WebSockets' cost, from one run's counts."""
    invocations = per_round_trip.get("lambda_invocations", {})
    billed = per_round_trip.get("lambda_billed_ms", {})

    def per_invocation_ms(fn: str) -> float:
        n = float(invocations.get(fn, 0.0))
        return float(billed.get(fn, 0.0)) / n if n else 0.0

    counted = round_trip_lines(per_round_trip, memory_mb, architecture=architecture)
    rt_usd = _lines_total(counted)
    up = caller_to_app_lines(per_invocation_ms("caller_message"), memory_mb.get("caller_message", 256), architecture)
    down = app_to_caller_lines(per_invocation_ms("response"), memory_mb.get("response", 256), architecture)
    burst = caller_to_app_lines(per_invocation_ms("caller_message"), memory_mb.get("caller_message", 256),
                                architecture, batch=10)
    return {
        "prices_date": PRICES_DATE,
        "price_sources": {k: PRICE_SOURCES[k] for k in ("websocket", "lambda", "dynamodb", "sqs")},
        "round_trip_lines": counted, "usd_per_million_round_trips": rt_usd * 1e6,
        "caller_to_app": {"lines": up, "usd_per_million": _lines_total(up) * 1e6, "sent": "alone"},
        "caller_to_app_burst_of_10": {"lines": burst, "usd_per_million": _lines_total(burst) * 1e6},
        "app_to_caller": {"lines": down, "usd_per_million": _lines_total(down) * 1e6, "sent": "alone (quiet socket)"},
        "connection_hour_usd": connection_hour_usd(),
        "idle_hour": {name: {**hb, **idle_hour(rt_usd, hb["period_s"])} for name, hb in HEARTBEATS.items()},
        "assumptions": {"socket_row_wru": SOCKET_ROW_WRU, "message_bytes": 100, "architecture": architecture,
                        "heartbeat": "one round trip per beat (ping + answer), 1 agent message of the two",
                        "not_counted": "SQS requests (derived from the counted caller_message invocations), the "
                                       "agent's own connection-minutes and pings (paid whether or not sockets are open)"},
    }


def render_text(model: CostModel, title: str = "") -> str:
    a = model.assumptions
    rows = [("service", "item", "per request", "unit price $", "$ per 1M req", "note")]
    for line in model.lines:
        rows.append((line.service, line.item, f"{line.quantity:.4g} {line.unit}", f"{line.unit_price:.10g}",
                     f"{line.per_million:.4f}", line.note))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = [title] if title else []
    for i, r in enumerate(rows):
        out.append("  ".join(c.ljust(widths[j]) if j < 2 else c.rjust(widths[j]) for j, c in enumerate(r[:5])) + "  " + r[5])
        if i == 0:
            out.append("-" * (sum(widths) + 8))
    out.append("-" * (sum(widths) + 8))
    total = model.total_per_million
    verdict = "meets" if total <= TARGET_PER_M else "misses"
    out.append(f"TOTAL ${total:.2f} per million requests  (target <= ${TARGET_PER_M:.2f}: {verdict}; "
               f"original stated ${ORIGINAL_STATED[0]:.2f}-{ORIGINAL_STATED[1]:.2f})")
    for line in model.excluded:
        out.append(f"not in total: {line.service} {line.item}: ${line.per_million:.2f} per million ({line.note})")
    out.append(f"assumptions: {a.architecture}, memory {dict(a.memory_mb) or a.default_memory_mb} MB, "
               f"WRU per write {dict(a.write_units)} (else {a.write_units_per_write}), {a.read_units_per_get} RRU/GetItem, "
               f"{a.read_units_per_query} RRU/Query, {a.agents_connected} agent(s) over "
               f"{a.requests_per_month:,.0f} requests/month")
    out.append(f"prices: us-east-1 list prices recorded {PRICES_DATE}: "
               + ", ".join(sorted(set(PRICE_SOURCES.values()))))
    return "\n".join(out)


def to_json(model: CostModel) -> dict[str, Any]:
    return {
        "prices_date": PRICES_DATE,
        "price_sources": PRICE_SOURCES,
        "lines": [{"service": l.service, "item": l.item, "per_request": l.quantity, "unit": l.unit,
                   "unit_price_usd": l.unit_price, "usd_per_million": round(l.per_million, 6), "note": l.note}
                  for l in model.lines],
        "excluded": [{"service": l.service, "item": l.item, "usd_per_million": round(l.per_million, 6),
                      "note": l.note} for l in model.excluded],
        "total_usd_per_million": round(model.total_per_million, 6),
        "target_usd_per_million": TARGET_PER_M,
        "original_stated_usd_per_million": list(ORIGINAL_STATED),
        "assumptions": {
            "architecture": model.assumptions.architecture,
            "memory_mb": dict(model.assumptions.memory_mb),
            "default_memory_mb": model.assumptions.default_memory_mb,
            "write_units": dict(model.assumptions.write_units),
            "write_units_per_write": model.assumptions.write_units_per_write,
            "read_units_per_get": model.assumptions.read_units_per_get,
            "read_units_per_query": model.assumptions.read_units_per_query,
            "agents_connected": model.assumptions.agents_connected,
            "requests_per_month": model.assumptions.requests_per_month,
        },
    }


def pick_per_request(results: Mapping[str, Any], run: str | None) -> tuple[str, Mapping[str, Any]]:
    """The per-request counts of one stack run in a bench results.json (aws profile preferred)."""
    stacks = results.get("stack", {})
    if not stacks:
        raise ValueError("results have no 'stack' section (was the local stack measured?)")
    name = run or ("aws" if "aws" in stacks else next(iter(stacks)))
    if name not in stacks:
        raise ValueError(f"no stack run {name!r} in results (have: {', '.join(stacks)})")
    per_request = stacks[name].get("per_request")
    if not per_request:
        raise ValueError(f"stack run {name!r} has no per_request counts")
    return name, per_request


def snapstart(memory_mb: Mapping[str, int], init_ms: Mapping[str, float], architecture: str = "arm64") -> dict[str, Any]:
    """What `snap_start = true` costs, per function and in total: the cache for one active version
    per function for a month, and per cold start the restore charge next to what the init phase
    it replaces is billed (``init_ms``: a measured cold init, e.g. bench's cold_init)."""
    rows = {}
    for fn, mb in sorted(memory_mb.items()):
        gb = mb / 1024
        init_s = init_ms.get(fn, 0.0) / 1000
        rows[fn] = {"memory_mb": mb,
                    "cache_usd_per_month": round(gb * SECONDS_PER_MONTH * SNAPSTART_CACHE_GB_S, 4),
                    "restore_usd_per_cold_start": round(gb * SNAPSTART_RESTORE_GB, 12),
                    "init_ms": round(init_s * 1000, 1),
                    "init_billed_usd_per_cold_start": round(gb * init_s * LAMBDA_GB_S[architecture], 12)}
    return {"architecture": architecture, "prices_date": PRICES_DATE, "functions": rows,
            "cache_usd_per_month": round(sum(r["cache_usd_per_month"] for r in rows.values()), 2),
            "restore_usd_per_million_cold_starts": round(
                sum(r["restore_usd_per_cold_start"] for r in rows.values()) * 1_000_000, 2),
            "init_usd_per_million_cold_starts": round(
                sum(r["init_billed_usd_per_cold_start"] for r in rows.values()) * 1_000_000, 2)}


def render_snapstart(model: Mapping[str, Any]) -> str:
    lines = [f"SnapStart, us-east-1 {model['architecture']} list prices recorded {model['prices_date']}: "
             f"cache ${SNAPSTART_CACHE_GB_S:.10f}/GB-s while a version is active, restore ${SNAPSTART_RESTORE_GB:.10f}/GB",
             f"  {'function':16} {'MB':>5} {'cache $/month':>14} {'restore $/cold start':>21} "
             f"{'init ms':>8} {'init billed $/cold start':>25}"]
    for fn, r in model["functions"].items():
        lines.append(f"  {fn:16} {r['memory_mb']:>5} {r['cache_usd_per_month']:>14.4f} "
                     f"{r['restore_usd_per_cold_start']:>21.8f} {r['init_ms']:>8.0f} "
                     f"{r['init_billed_usd_per_cold_start']:>25.8f}")
    lines.append(f"  all six: cache ${model['cache_usd_per_month']:.2f} per month; per million cold starts of every "
                 f"function: restore ${model['restore_usd_per_million_cold_starts']:.2f} vs init billed "
                 f"${model['init_usd_per_million_cold_starts']:.2f}")
    return "\n".join(lines)


def terraform_memory_mb(root: Path = ROOT) -> dict[str, int]:
    """memory_size per function as the Terraform root module states it (`name = { memory_size = N ...`)."""
    import re

    found: dict[str, int] = {}
    for tf in sorted((root / "terraform").glob("*.tf")):
        for m in re.finditer(r'(\w+)\s*=\s*\{[^{}]*?memory_size\s*=\s*(\d+)', tf.read_text(errors="replace")):
            found.setdefault(m.group(1), int(m.group(2)))
    return found


def _parse_memory(values: list[str]) -> tuple[int, dict[str, int]]:
    default, per_fn = 128, {}
    for v in values:
        if "=" in v:
            fn, mb = v.split("=", 1)
            per_fn[fn] = int(mb)
        else:
            default = int(v)
    return default, per_fn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--run", help="which stack run of results.json (local / aws); default aws if present")
    p.add_argument("--memory-mb", action="append", default=[], metavar="[FN=]MB",
                   help="Lambda memory (repeatable; FN=MB for one function). Default 128")
    p.add_argument("--architecture", choices=sorted(LAMBDA_GB_S), default="arm64")
    p.add_argument("--write-units-per-write", type=float, default=None,
                   help="WRU for EVERY write call (default: 1 PutItem, 2 UpdateItem, 2 DeleteItem)")
    p.add_argument("--agents", type=int, default=1)
    p.add_argument("--requests-per-month", type=float, default=1_000_000)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        name, per_request = pick_per_request(results, args.run)
    except (OSError, ValueError) as exc:
        print(f"cost: {exc}", file=sys.stderr)
        return 2
    default_mb, per_fn = _parse_memory(args.memory_mb)
    if not args.memory_mb:
        per_fn = terraform_memory_mb()
    units = {} if args.write_units_per_write is None else {"write_units": {},
                                                            "write_units_per_write": args.write_units_per_write}
    a = Assumptions(memory_mb=per_fn, default_memory_mb=default_mb, architecture=args.architecture,
                    agents_connected=args.agents, requests_per_month=args.requests_per_month, **units)
    try:
        model = build(per_request, a)
    except ValueError as exc:
        print(f"cost: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(to_json(model), indent=2))
    else:
        print(render_text(model, f"Cost per million 1 KB requests, from counted operations of the {name!r} run"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
