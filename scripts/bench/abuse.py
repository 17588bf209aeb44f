"""What one anonymous caller can make the operator pay per hour, before and after the edge limits.

    python -m scripts.bench.abuse            # the markdown table README.md quotes ("The public edge")

Two attacks need nothing but the public URL:
  * unknown tunnel: requests to /<random>/ -- forward answers 404 after one GSI Query and one
    GetItem of the name's reservation (none: nothing is connecting, nothing to wait for);
  * held request: requests to a tunnel that never answers (an agent that reads and ignores, or a
    legitimate app with a slow endpoint): forward holds each one for its full 25 s wait.
Rates: the HTTP API throttle (token bucket) and the account's Lambda concurrency, whichever binds
first: a held request keeps a forward Lambda for 25 s, so concurrency C allows C / 25 req/s.
Prices come from scripts.bench.cost (us-east-1 list prices); the per-request operations are the
layer's own (poll schedule from httptunnel.forward). What is not counted is named in ASSUMED.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from httptunnel import limits, waiting

from scripts.bench import cost

# Before issue 12: the stage throttle Terraform set (1,000 rps, burst 500) and no reservation.
BEFORE = {"rate": 1000.0, "burst": 500}
# After: terraform/variables.tf defaults (tests/bench/test_abuse.py holds them equal).
AFTER = {"rate": 20.0, "burst": 100}
ACCOUNT_CONCURRENCY = 1000  # the default Lambda concurrency quota per region (new accounts: as low as 10)
FORWARD_MEMORY_GB = 512 / 1024  # terraform/main.tf function_defaults.forward
LOG_INGEST_PER_GB = 0.50  # CloudWatch Logs ingestion, us-east-1

ASSUMED = {
    "404 billed duration": "20 ms (one GSI Query, one GetItem and the log line)",
    "log bytes per request": "700 B (forward's JSON line + the API access log line)",
    "reads": "strongly consistent GetItem of a small item = 1 RRU; GSI Query = 0.5 RRU",
    "writes": "put, give-up update and delete of the pending row = 1 WRU each",
    "held request": "one PostToConnection (1 WebSocket message), one traffic event, ~1 stream_notifier "
                    "invocation at 128 MB for 50 ms",
}


def polls_in(wait_s: float) -> int:
    """Pending-row reads forward makes while waiting wait_s for an answer that never comes."""
    waited, delay, reads = 0.0, waiting.POLL_START_S, 0
    while waited < wait_s:
        reads += 1
        waited += delay
        delay = waiting.next_poll_delay(delay, waited)
    return reads


@dataclass(frozen=True)
class Cost:
    per_request: float  # USD
    lines: dict[str, float]  # item -> USD per request


def _lambda(gb: float, seconds: float) -> float:
    return cost.LAMBDA_REQUEST_PER_M / 1e6 + gb * seconds * cost.LAMBDA_GB_S["arm64"]


def unknown_tunnel() -> Cost:
    lines = {
        "HTTP API": cost.HTTP_API_PER_M / 1e6,
        "forward Lambda": _lambda(FORWARD_MEMORY_GB, 0.020),
        "DynamoDB": (0.5 + 1) * cost.DDB_RRU_PER_M / 1e6,  # the GSI Query + the reservation's GetItem
        "logs": 700 / 1e9 * LOG_INGEST_PER_GB,
    }
    return Cost(sum(lines.values()), lines)


def held_request(wait_s: float = limits.FORWARD_WAIT_S) -> Cost:
    reads = 0.5 + polls_in(wait_s) + int(wait_s / waiting.ALIVE_CHECK_S)
    lines = {
        "HTTP API": cost.HTTP_API_PER_M / 1e6,
        "forward Lambda": _lambda(FORWARD_MEMORY_GB, wait_s + 0.1),
        "DynamoDB": reads * cost.DDB_RRU_PER_M / 1e6 + 3 * cost.DDB_WRU_PER_M / 1e6,
        "WebSocket + events": cost.WS_MESSAGE_PER_M / 1e6 + cost.EVENTBRIDGE_PER_M / 1e6 + _lambda(0.125, 0.05),
        "logs": 700 / 1e9 * LOG_INGEST_PER_GB,
    }
    return Cost(sum(lines.values()), lines)


def held_rate(rate: float, concurrency: int, wait_s: float = limits.FORWARD_WAIT_S) -> float:
    """Sustained held requests per second: the throttle or concurrency / wait, whichever is lower."""
    return min(rate, concurrency / wait_s)


def peak_concurrency(rate: float, burst: int, wait_s: float = limits.FORWARD_WAIT_S) -> int:
    """Forward Lambdas busy at once when every request is held: the bucket's burst plus a wait's refill."""
    return int(burst + rate * wait_s)


def rows(reserved: int | None = 100) -> list[tuple[str, str, str]]:
    """(attack, before, after) cells of the README table."""
    u, h = unknown_tunnel(), held_request()

    def per_hour(rate: float, c: Cost) -> str:
        return f"${rate * 3600 * c.per_request:,.2f}/h ({rate:g} req/s)"

    out = [
        ("requests to unknown tunnels (404)", per_hour(BEFORE["rate"], u), per_hour(AFTER["rate"], u)),
        ("requests a tunnel holds 25 s", per_hour(held_rate(BEFORE["rate"], ACCOUNT_CONCURRENCY), h),
         per_hour(held_rate(AFTER["rate"], ACCOUNT_CONCURRENCY), h)),
        ("forward Lambdas busy at once (held requests)",
         f"{ACCOUNT_CONCURRENCY:,} = the account's whole quota: every function in the region is throttled",
         f"at most {peak_concurrency(AFTER['rate'], AFTER['burst']):,} (burst {AFTER['burst']} + "
         f"{AFTER['rate']:g} req/s x 25 s)"),
    ]
    if reserved:
        out.append((f"held, with forward_reserved_concurrency = {reserved}", "(no such setting)",
                    per_hour(held_rate(AFTER["rate"], reserved), h) + f"; at most {reserved} busy"))
    return out


def table(reserved: int | None = 100) -> str:
    lines = ["| what one anonymous caller can do | before (stage 1,000 rps, burst 500) | after (defaults: 20 rps, burst 100) |",
             "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(reserved)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reserved", type=int, default=100, help="forward_reserved_concurrency for the last row")
    args = parser.parse_args(argv)
    print(table(args.reserved))
    u, h = unknown_tunnel(), held_request()
    print(f"\nper request: unknown tunnel ${u.per_request * 1e6:.2f}/M, held ${h.per_request * 1e6:.2f}/M "
          f"({polls_in(limits.FORWARD_WAIT_S)} polls in 25 s)")
    for name, value in ASSUMED.items():
        print(f"assumed: {name}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
