"""Load generator: aiohttp client, fixed request counts, latency percentiles, checked bodies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from scripts.bench import stats as bench_stats
from scripts.bench.origin import KB_BODY


@dataclass(frozen=True)
class Target:
    """Where to send requests: base URL (no trailing slash) plus headers (e.g. Host for localtunnel)."""

    name: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    def summary(self) -> dict:
        out = bench_stats.summarize(self.latencies_ms)
        out["rps"] = bench_stats.throughput(self.ok, self.elapsed_s)
        out["seconds"] = round(self.elapsed_s, 2)
        out["errors"] = len(self.errors)
        if self.errors:
            out["first_errors"] = sorted(set(self.errors))[:3]
        return out


def session(limit: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False)


async def get_kb(s: aiohttp.ClientSession, target: Target, result: LoadResult, path: str = "/kb") -> None:
    """One 1 KB GET; latency recorded only when status is 200 and the body is exactly KB_BODY."""
    t0 = time.perf_counter()
    try:
        async with s.get(target.url(path), headers=target.headers, allow_redirects=False) as resp:
            body = await resp.read()
            result.statuses[resp.status] += 1
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        result.errors.append(type(exc).__name__)
        return
    elapsed = (time.perf_counter() - t0) * 1000
    if resp.status != 200:
        result.errors.append(f"status {resp.status}")
    elif body != KB_BODY:
        result.errors.append(f"body mismatch ({len(body)} bytes)")
    else:
        result.latencies_ms.append(elapsed)


async def run(target: Target, concurrency: int, total: int, warmup: int = 0, path: str = "/kb",
              max_seconds: float | None = None) -> LoadResult:
    """`total` GETs with `concurrency` workers (1 = one at a time), after `warmup` unmeasured ones.

    With max_seconds, workers start no new request after that long (in-flight ones finish), so a
    slow subject costs bounded time; `ok` + `errors` says how many were actually made.
    """
    async with session(max(concurrency, 1)) as s:
        if warmup:
            scratch = LoadResult()
            await asyncio.gather(*(get_kb(s, target, scratch, path) for _ in range(min(warmup, concurrency))))
            for _ in range(max(0, warmup - concurrency)):
                await get_kb(s, target, scratch, path)
        result = LoadResult()
        remaining = total

        t0 = time.perf_counter()
        stop_at = None if max_seconds is None else t0 + max_seconds

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and (stop_at is None or time.perf_counter() < stop_at):
                remaining -= 1
                await get_kb(s, target, result, path)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - t0
    return result


async def transfer(target: Target, direction: str, size: int, kind: str = "binary", repeats: int = 2) -> dict:
    """Upload or download `size` bytes `repeats` times; sha256 checked; best time kept.

    kind "binary" uses application/octet-stream, "text" text/plain. Whatever happens (413, 502,
    a 307 to S3) is reported, never hidden: `status`, `via` (inline / redirect), `byte_exact`.
    """
    from scripts.bench.origin import blob, text  # same bytes the origin generates

    data = (text if kind == "text" else blob)(size, 7)
    digest = hashlib.sha256(data).hexdigest()
    ctype = "text/plain" if kind == "text" else "application/octet-stream"
    best: dict | None = None
    async with session(4) as s:
        for _ in range(repeats):
            t0 = time.perf_counter()
            rec: dict = {"direction": direction, "size": size, "kind": kind}
            try:
                if direction == "download":
                    path = f"/{'text' if kind == 'text' else 'blob'}?size={size}&seed=7"
                    async with s.get(target.url(path), headers=target.headers) as resp:
                        body = await resp.read()
                        rec["status"] = resp.status
                        rec["via"] = "redirect" if resp.history else "inline"
                        if resp.history:
                            rec["redirect_status"] = resp.history[0].status
                        got = hashlib.sha256(body).hexdigest()
                        rec["byte_exact"] = resp.status == 200 and got == digest
                        if resp.status != 200:
                            rec["detail"] = body[:200].decode(errors="replace")
                else:
                    headers = {**target.headers, "Content-Type": ctype}
                    async with s.post(target.url("/upload"), data=data, headers=headers) as resp:
                        body = await resp.read()
                        rec["status"] = resp.status
                        rec["via"] = "inline"
                        if resp.status == 200:
                            info = json.loads(body)
                            rec["byte_exact"] = info.get("sha256") == digest and info.get("size") == size
                        else:
                            rec["byte_exact"] = False
                            rec["detail"] = body[:200].decode(errors="replace")
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                rec.update(status=None, byte_exact=False, detail=f"{type(exc).__name__}: {exc}"[:200])
            rec["seconds"] = round(time.perf_counter() - t0, 4)
            rec["mb_per_s"] = bench_stats.mb_per_s(size, rec["seconds"]) if rec.get("byte_exact") else None
            if best is None or (rec.get("byte_exact") and (not best.get("byte_exact") or rec["seconds"] < best["seconds"])):
                best = rec
            if not rec.get("byte_exact") or rec["seconds"] > 5:
                break  # a failure is reported as is, a slow run is not repeated: retrying only burns time
    assert best is not None
    return best


async def paired(targets: list[Target], rounds: int, warmup: int = 5) -> dict[str, LoadResult]:
    """Sequential 1 KB GETs taking turns (A, B, A, B, ...): machine noise that drifts over seconds
    hits every target alike, so the difference of their medians holds on a loaded machine too."""
    results = {t.name: LoadResult() for t in targets}
    async with session(len(targets)) as s:
        scratch = LoadResult()
        for _ in range(warmup):
            for t in targets:
                await get_kb(s, t, scratch)
        t0 = time.perf_counter()
        for i in range(rounds):
            order = targets if i % 2 == 0 else targets[::-1]  # neither always goes first
            for t in order:
                await get_kb(s, t, results[t.name])
        for r in results.values():
            r.elapsed_s = time.perf_counter() - t0
    return results
