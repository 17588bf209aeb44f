"""The candidate public edges of issue 23, side by side: modelled hops, limits, what bounds abuse.

`make bench` measures two edges on the local stack, both in front of the same tunnel: `http_api`
(today's HTTP API, `http_url`) and `function_url` (the Lambda function URL in RESPONSE_STREAM mode,
`stream_url`, served by forward_stream). The two others are derived here, never measured:
`function_url_cloudfront` (the same function URL behind CloudFront, as it is with a domain) is the
function URL's measured latency plus CloudFront's modelled hops; `rest` (REST API, STREAM through
an OpenAPI `body`) is the HTTP API's measured latency with the REST front door's modelled delay in
place of the HTTP API's (the same forward runs behind both; payload 1.0 instead of 2.0 is not
modelled). No REST emulator is built: REST is dropped on its cost (README, "Performance").

Every modelled hop names its source. The hops the emulator itself sleeps (emulator/profiles.py,
the `aws` profile) are read from there, so the sums below are the model the run actually used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from emulator.profiles import AWS, LOCAL, LatencyProfile
from httptunnel.limits import BODY_MAX, FORWARD_WAIT_S, LAMBDA_PAYLOAD_MAX, MAX_STREAM_CAP_S

from scripts.bench import cost

# CloudFront in front of the function URL (a domain set). AWS publishes no latency figure for a
# request CloudFront does not cache. Uncacheable ("dynamic") requests go from the edge location
# straight to the origin, not through the regional edge caches
# (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/HowCloudFrontWorks.html#CloudFrontRegionaleEdgeCaches),
# over connections CloudFront keeps open to the origin
# (https://aws.amazon.com/blogs/networking-and-content-delivery/accelerate-protect-and-make-dynamic-workloads-delivery-cost-efficient-with-amazon-cloudfront/).
# So the model is one more proxy hop of the same order as the HTTP API's front door (8 ms), taken
# from the upper side: 10 ms (verify on the first deployment: `make smoke` against both URLs).
# The caller -> edge and edge -> region round trips replace the caller -> region one and, like
# every internet round trip, are not modelled (emulator/profiles.py).
CLOUDFRONT_EDGE_MS = 10.0
# The viewer-request CloudFront Function (the tunnel's Host into a header): "sub-millisecond"
# execution (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-functions.html);
# modelled as a whole millisecond.
CLOUDFRONT_FUNCTION_MS = 1.0
# REST API front door. AWS launched HTTP APIs with "up to 60% lower latency" than REST APIs
# (https://aws.amazon.com/about-aws/whats-new/2020/03/api-gateway-private-integrations-aws-elb-cloudmap-http-apis-release/),
# so with the HTTP API's modelled 8 ms being 40 % of REST's: 8 / 0.4 = 20 ms.
REST_LATENCY_RATIO = 0.4
# Function URLs: the URL is Lambda's own front end invoking the function (InvokeWithResponseStream
# for RESPONSE_STREAM: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-url.html),
# so no API Gateway hop; the invoke itself is the profile's warm invoke hop (lambda_invoke_ms),
# which the emulator sleeps on the function URL too (emulator/stack.py, _stream_edge).


@dataclass(frozen=True)
class Hop:
    name: str
    ms: float
    source: str


def shared_hops(p: LatencyProfile) -> list[Hop]:
    """The hops every edge shares once forward runs: down to the agent, back through response."""
    return [
        Hop("forward invoke", p.lambda_invoke_ms, "emulator/profiles.py lambda_invoke_ms"),
        Hop("PostToConnection", p.post_to_connection_ms, "emulator/profiles.py post_to_connection_ms"),
        Hop("WebSocket API route", p.websocket_api_ms, "emulator/profiles.py websocket_api_ms"),
        Hop("response invoke", p.lambda_invoke_ms, "emulator/profiles.py lambda_invoke_ms"),
        Hop("PutItem (the answer)", p.dynamodb("PutItem"), "emulator/profiles.py dynamodb_ms"),
        Hop("GetItem (forward's read)", p.dynamodb("GetItem"), "emulator/profiles.py dynamodb_ms"),
    ]


def hops(edge: str, p: LatencyProfile = AWS) -> list[Hop]:
    """The modelled service delays on one buffered request's critical path through ``edge``."""
    if edge == "http_api":
        front = [Hop("HTTP API front door", p.http_api_ms, "emulator/profiles.py http_api_ms")]
    elif edge == "function_url":
        front = []
    elif edge == "function_url_cloudfront":
        front = [Hop("CloudFront edge", CLOUDFRONT_EDGE_MS, "scripts/bench/edges.py CLOUDFRONT_EDGE_MS"),
                 Hop("CloudFront Function", CLOUDFRONT_FUNCTION_MS, "scripts/bench/edges.py CLOUDFRONT_FUNCTION_MS")]
    elif edge == "rest":
        front = [Hop("REST API front door", p.http_api_ms / REST_LATENCY_RATIO,
                     "HTTP API's / 0.4 (scripts/bench/edges.py REST_LATENCY_RATIO)")]
    else:
        raise ValueError(f"unknown edge {edge!r} (known: {', '.join(cost.EDGES)})")
    return front + shared_hops(p)


def modelled_ms(edge: str, p: LatencyProfile = AWS) -> float:
    return round(sum(h.ms for h in hops(edge, p)), 2)


def derived_p50(edge: str, measured: Mapping[str, float | None], p: LatencyProfile) -> float | None:
    """An edge's added p50 from a measured one: the measured edge plus/minus the modelled difference."""
    if edge in measured:
        return measured[edge]
    base = {"function_url_cloudfront": "function_url", "rest": "http_api"}[edge]
    value = measured.get(base)
    if value is None:
        return None
    return round(value + modelled_ms(edge, p) - modelled_ms(base, p), 2)


MB = 1024 * 1024
UPLOAD = f"~{LAMBDA_PAYLOAD_MAX * 3 // 4 / MB:.1f} MB binary (the 6 MB event, base64)"

# Upload, download and time limits per URL form (path: <edge>/<id>/..., subdomain: <id>.<domain>).
# Sources: shared/README.md "The live web" (AWS pages cited there) and httptunnel.limits.
LIMITS: dict[str, dict[str, str]] = {
    "http_api": {
        "streams": "no (whole answers)",
        "upload": UPLOAD,
        "download": f"{BODY_MAX // MB} MB (6 MB inline, then a 307 to S3)",
        "time_path": f"{FORWARD_WAIT_S} s (30 s integration cap, no raise)",
        "time_subdomain": f"{FORWARD_WAIT_S} s",
        "abuse": "stage + route throttles (20 rps, burst 100)",
    },
    "function_url": {
        "streams": "yes",
        "upload": UPLOAD,
        "download": "200 MB (6 MB fast, then 2 MB/s)",
        "time_path": f"max_stream_seconds (default 600, <= {MAX_STREAM_CAP_S})",
        "time_subdomain": "no subdomain without CloudFront (the URL is <url-id>.lambda-url.<region>.on.aws)",
        "abuse": "only forward_reserved_concurrency (mandatory): <= 10 x C requests/s",
    },
    "function_url_cloudfront": {
        "streams": "yes",
        "upload": UPLOAD,
        "download": "200 MB (6 MB fast, then 2 MB/s)",
        "time_path": f"max_stream_seconds (default 600, <= {MAX_STREAM_CAP_S}), <= 120 s of silence",
        "time_subdomain": f"max_stream_seconds (<= {MAX_STREAM_CAP_S}), <= 120 s of silence (origin read timeout)",
        "abuse": "forward_reserved_concurrency; WAF possible on CloudFront",
    },
    "rest": {
        "streams": "yes",
        "upload": UPLOAD + "; REST's own cap 10 MB",
        "download": "200 MB (10 MB fast, then 2 MB/s)",
        "time_path": "15 min, <= 5 min of silence",
        "time_subdomain": "15 min, <= 5 min of silence (wildcard custom domain, no CloudFront)",
        "abuse": "stage/route throttles, usage plans, WAF; forward_reserved_concurrency for held streams",
    },
}

TITLES = {"http_api": "http_api (today)", "function_url": "function_url",
          "function_url_cloudfront": "function_url + CloudFront", "rest": "rest (STREAM via OpenAPI)"}


def compare(runs: Mapping[str, Mapping[str, Any]], profile: str, memory_mb: Mapping[str, int]) -> dict[str, Any]:
    """One profile's edge rows from a stack run's ``edges`` section (what was measured there)."""
    p = AWS if profile == "aws" else LOCAL
    measured_p50 = {e: r.get("latency", {}).get("c1", {}).get("added", {}).get("p50") for e, r in runs.items()
                    if e in cost.EDGES}
    turns = runs.get("paired") or {}
    paired_p50 = {e: turns[e].get("added_p50") for e in cost.EDGES if isinstance(turns.get(e), dict)}
    rows: dict[str, Any] = {}
    for edge in cost.EDGES:
        run = runs.get(edge) or runs.get({"function_url_cloudfront": "function_url", "rest": "http_api"}.get(edge, ""), {})
        per_request = run.get("per_request")
        row: dict[str, Any] = {"measured": edge in runs,
                               "p50_added_ms": derived_p50(edge, measured_p50, p),
                               "paired_p50_added_ms": derived_p50(edge, paired_p50, p) if paired_p50 else None,
                               "modelled_hops_ms": modelled_ms(edge, p),
                               "hops": [{"name": h.name, "ms": h.ms, "source": h.source} for h in hops(edge, p)]}
        if edge in runs:
            row["rps_c32"] = run.get("latency", {}).get("c32", {}).get("rps")
        else:
            row["from"] = "function_url" if edge == "function_url_cloudfront" else "http_api"
        if per_request:
            model = cost.build(per_request, cost.Assumptions(memory_mb=memory_mb), edge=edge)
            row["usd_per_million"] = round(model.total_per_million, 4)
            row["cost_lines"] = {f"{line.service}: {line.item}": round(line.per_million, 4) for line in model.lines}
            response_ms = float(per_request.get("lambda_billed_ms", {}).get("response", 0.0)) / max(
                float(per_request.get("lambda_invocations", {}).get("response", 1.0)), 1e-9)
            row["stream"] = cost.stream_rates(edge, memory_mb.get("forward_stream", 512),
                                              memory_mb.get("response", 256), response_ms)
        row["limits"] = LIMITS[edge]
        rows[edge] = row
    return rows


def meets_default_target(row: Mapping[str, Any]) -> bool | None:
    """Issue 23's target for the default edge: buffered AWS-profile p50 added <= 55 ms at <= $5.24/M."""
    p50, usd = row.get("p50_added_ms"), row.get("usd_per_million")
    if p50 is None or usd is None:
        return None
    return bool(p50 <= DEFAULT_P50_MS and usd <= DEFAULT_USD_PER_M)


DEFAULT_P50_MS = 55.0
DEFAULT_USD_PER_M = 5.24
