"""The soak: load held at a fraction of the measured maximum on a mixed workload, RSS sampled over time.

Run by ``python -m sluicegate.bench.suites.faults --soak SECONDS`` against the suite's server (2 workers). Mixed
workload, every response checked byte for byte (``faultnet.fetch``): an HTML page the rewriter scans (32 KB),
a 64 KB asset-like binary, an SSE stream of 5 events. First the maximum: 5 s closed-loop with 16 clients.
Then an open loop at ``fraction`` of it for ``seconds``; RSS sampled every 10 s (every seconds/10 when
shorter), reported with its least-squares slope (MB per minute; growth = a leak), errors (anything not exact)
and p99 latency per window (stability). Must not know the proxy's internals.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, Protocol

from sluicegate.bench.suites.faultnet import fetch

MIX = ["/page/32768", "/body/65536", "/body/65536", "/sse"]


class _Server(Protocol):
    port: int

    @property
    def host(self) -> str: ...

    def rss(self) -> int: ...


async def _max_rate(server: _Server, seconds: float = 5.0, clients: int = 16) -> float:
    stop = time.monotonic() + seconds
    done = 0

    async def loop_(i: int) -> None:
        nonlocal done
        k = i
        while time.monotonic() < stop:
            if (await fetch(server.port, MIX[k % len(MIX)], server.host, timeout=10)).verdict == "exact":
                done += 1
            k += 1

    t0 = time.monotonic()
    await asyncio.gather(*(loop_(i) for i in range(clients)))
    return done / (time.monotonic() - t0)


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def soak(server: _Server, seconds: float, fraction: float) -> dict[str, Any]:
    peak = await _max_rate(server)
    rate = max(1.0, peak * fraction)
    interval = min(10.0, max(1.0, seconds / 10))
    print(f"  soak: max {peak:.0f} req/s measured; holding {rate:.0f} req/s for {seconds:g}s", flush=True)
    latencies: list[tuple[float, float]] = []  # (t, seconds)
    errors: list[str] = []
    samples: list[tuple[float, float]] = []  # (t, RSS MB)
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.monotonic()

    async def one(k: int) -> None:
        o = await fetch(server.port, MIX[k % len(MIX)], server.host, timeout=30)
        if o.verdict == "exact":
            latencies.append((time.monotonic() - t0, o.seconds))
        else:
            errors.append(f"{o.verdict}: {o.detail}")

    async def sampler() -> None:
        while time.monotonic() - t0 < seconds:
            samples.append((time.monotonic() - t0, await asyncio.to_thread(server.rss) / 1e6))
            await asyncio.sleep(interval)

    sampling = asyncio.create_task(sampler())
    k = 0
    while (now := time.monotonic() - t0) < seconds:
        due = k / rate
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(one(k))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        k += 1
    await asyncio.gather(*tasks)
    await sampling
    windows = []
    for start in range(0, int(seconds), int(interval) or 1):
        lat = sorted(s for t, s in latencies if start <= t < start + interval)
        if lat:
            windows.append(round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1))
    return {
        "seconds": seconds, "max_rps": round(peak, 1), "rate_rps": round(rate, 1), "requests": k,
        "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
        "rss_mb": [(round(t, 1), round(m, 1)) for t, m in samples],
        "rss_slope_mb_per_min": round(_slope([t for t, _ in samples], [m for _, m in samples]) * 60, 3),
        "p99_ms_per_window": windows,
    }


def markdown(s: dict[str, Any]) -> str:
    rss = [m for _, m in s["rss_mb"]]
    return (
        f"Soak: {s['seconds']:g} s at {s['rate_rps']:.0f} req/s (max measured {s['max_rps']:.0f}), mixed HTML page / "
        f"64 KB binary / SSE, every response checked byte for byte: {s['requests']} requests, **{s['errors']} "
        f"errors**; RSS {min(rss, default=0):.0f}–{max(rss, default=0):.0f} MB, slope "
        f"**{s['rss_slope_mb_per_min']:+.2f} MB/min**; p99 per window (ms): {s['p99_ms_per_window']}\n"
    )
