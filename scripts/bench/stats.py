"""Small statistics used by the benchmark and the load suite (pure functions, unit-tested)."""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(data[lo])
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/max of latencies in milliseconds (rounded to 0.01 ms)."""
    if not latencies_ms:
        return {"n": 0}
    return {
        "n": len(latencies_ms),
        "p50": round(percentile(latencies_ms, 50), 2),
        "p90": round(percentile(latencies_ms, 90), 2),
        "p99": round(percentile(latencies_ms, 99), 2),
        "mean": round(sum(latencies_ms) / len(latencies_ms), 2),
        "max": round(max(latencies_ms), 2),
    }


def added(over: Mapping[str, float], base: Mapping[str, float], keys: Iterable[str] = ("p50", "p90", "p99")) -> dict[str, float]:
    """Added latency of a tunnelled path over the direct path, percentile by percentile."""
    return {k: round(over[k] - base[k], 2) for k in keys if k in over and k in base}


def per_request(before: Mapping, after: Mapping, requests: int) -> dict:
    """Counter deltas (nested dicts of numbers) divided by the number of requests made."""
    if requests <= 0:
        raise ValueError("requests must be positive")
    out: dict = {}
    for key in set(before) | set(after):
        a, b = after.get(key, 0), before.get(key, 0)
        if isinstance(a, Mapping) or isinstance(b, Mapping):
            out[key] = per_request(b if isinstance(b, Mapping) else {}, a if isinstance(a, Mapping) else {}, requests)
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            out[key] = round((a - b) / requests, 4)
    return out


def throughput(count: int, seconds: float) -> float:
    """Requests per second (0 when nothing was timed)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def mb_per_s(size_bytes: int, seconds: float) -> float:
    return round(size_bytes / (1024 * 1024) / seconds, 2) if seconds > 0 else 0.0
