"""The soak: load held at a fraction of the measured maximum on a mixed workload, RSS sampled over time.

Run by ``python -m sluicegate.bench.suites.faults --soak SECONDS`` against the suite's server (2 workers). Mixed
workload, every response checked byte for byte (``faultnet.fetch``): an HTML page the rewriter scans (32 KB),
a 64 KB asset-like binary, an SSE stream of 5 events. First the maximum: 5 s closed-loop with 16 clients.
Then an open loop at ``fraction`` of it for ``seconds``; RSS sampled every 10 s (every seconds/10 when
shorter), reported with its least-squares slope (MB per minute; growth = a leak), errors (anything not exact)
and p99 latency per window (stability). The checked client is Python, so one process would be the bottleneck
long before the proxy: ``procs`` client processes (spawned, each an event loop) share the clients and the open
loop's rate, and their figures are merged. Must not know the proxy's internals.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any, Protocol

from sluicegate.bench.suites.faultnet import fetch

MIX = ["/page/32768", "/body/65536", "/body/65536", "/sse"]


class _Server(Protocol):
    port: int

    @property
    def host(self) -> str: ...

    def rss(self) -> int: ...


async def _closed_loop(port: int, host: str, seconds: float, clients: int, first: int) -> int:
    stop = time.monotonic() + seconds
    done = 0

    async def loop_(i: int) -> None:
        nonlocal done
        k = i
        while time.monotonic() < stop:
            if (await fetch(port, MIX[k % len(MIX)], host, timeout=10)).verdict == "exact":
                done += 1
            k += 1

    await asyncio.gather(*(loop_(first + i) for i in range(clients)))
    return done


async def _open_loop(port: int, host: str, seconds: float, rate: float, t0_wall: float,
                     first: int, step: int) -> tuple[list[tuple[float, float]], list[str], int]:
    """Requests ``first, first + step, ...`` of the merged schedule (request k is due at k / rate)."""
    latencies: list[tuple[float, float]] = []  # (t since the common start, seconds)
    errors: list[str] = []
    tasks: set[asyncio.Task[None]] = set()
    mono0 = time.monotonic() - (time.time() - t0_wall)

    async def one(k: int) -> None:
        o = await fetch(port, MIX[k % len(MIX)], host, timeout=30)
        if o.verdict == "exact":
            latencies.append((time.monotonic() - mono0, o.seconds))
        else:
            errors.append(f"{o.verdict}: {o.detail}")

    k, sent = first, 0
    while (due := k / rate) < seconds:
        now = time.monotonic() - mono0
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.create_task(one(k))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        k += step
        sent += 1
    await asyncio.gather(*tasks)
    return latencies, errors, sent


def _child(conn: Connection, job: tuple[Any, ...]) -> None:
    import uvloop  # a runtime dependency (the workers run on it)

    kind, *params = job
    conn.send(uvloop.run(_closed_loop(*params) if kind == "max" else _open_loop(*params)))
    conn.close()


def _in_processes(jobs: list[tuple[Any, ...]]) -> list[Any]:
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for job in jobs:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, job), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    out = [p.recv() for p in pipes]
    for proc in procs:
        proc.join()
    return out


async def _max_rate(server: _Server, seconds: float = 5.0, clients: int = 16, procs: int = 1) -> float:
    t0 = time.monotonic()
    if procs <= 1:
        done = await _closed_loop(server.port, server.host, seconds, clients, 0)
    else:
        share = max(1, clients // procs)
        jobs = [("max", server.port, server.host, seconds, share, i * share) for i in range(procs)]
        done = sum(await asyncio.to_thread(_in_processes, jobs))
    return done / (time.monotonic() - t0)


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def soak(server: _Server, seconds: float, fraction: float, procs: int = 1) -> dict[str, Any]:
    """Hold ``fraction`` of the measured maximum for ``seconds``; ``procs`` checked-client processes."""
    peak = await _max_rate(server, clients=16 * max(1, procs), procs=procs)
    rate = max(1.0, peak * fraction)
    interval = min(10.0, max(1.0, seconds / 10))
    print(f"  soak: max {peak:.0f} req/s measured ({procs} client process(es)); holding {rate:.0f} req/s for "
          f"{seconds:g}s", flush=True)
    samples: list[tuple[float, float]] = []  # (t, RSS MB)
    t0 = time.monotonic()
    t0_wall = time.time() + 0.5  # the children start their schedule together, half a second from now

    async def sampler() -> None:
        while time.monotonic() - t0 < seconds:
            samples.append((time.monotonic() - t0, await asyncio.to_thread(server.rss) / 1e6))
            await asyncio.sleep(interval)

    sampling = asyncio.create_task(sampler())
    step = max(1, procs)
    if step == 1:
        parts = [await _open_loop(server.port, server.host, seconds, rate, t0_wall, 0, 1)]
    else:
        jobs = [("open", server.port, server.host, seconds, rate, t0_wall, i, step) for i in range(step)]
        parts = await asyncio.to_thread(_in_processes, jobs)
    await sampling
    latencies = [x for lat, _, _ in parts for x in lat]
    errors = [e for _, errs, _ in parts for e in errs]
    k = sum(n for _, _, n in parts)
    windows = []
    for start in range(0, int(seconds), int(interval) or 1):
        lat = sorted(s for t, s in latencies if start <= t < start + interval)
        if lat:
            windows.append(round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1))
    p99s = sorted(windows)
    return {
        "seconds": seconds, "max_rps": round(peak, 1), "rate_rps": round(rate, 1), "requests": k,
        "client_processes": step, "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
        "rss_mb": [(round(t, 1), round(m, 1)) for t, m in samples],
        "rss_slope_mb_per_min": round(_slope([t for t, _ in samples], [m for _, m in samples]) * 60, 3),
        "p99_ms_per_window": windows,
        "p99_ms_windows_median": statistics.median(p99s) if p99s else 0.0,
        "p99_ms_windows_max": p99s[-1] if p99s else 0.0,
    }


def markdown(s: dict[str, Any]) -> str:
    rss = [m for _, m in s["rss_mb"]]
    window = s["seconds"] / max(1, len(s["p99_ms_per_window"]))
    return (
        f"Soak: {s['seconds']:g} s at {s['rate_rps']:.0f} req/s (max measured {s['max_rps']:.0f}), mixed HTML page / "
        f"64 KB binary / SSE, every response checked byte for byte: {s['requests']} requests, **{s['errors']} "
        f"errors**; RSS {min(rss, default=0):.0f}–{max(rss, default=0):.0f} MB, slope "
        f"**{s['rss_slope_mb_per_min']:+.2f} MB/min**; p99 per {window:.0f} s "
        f"window: median {s.get('p99_ms_windows_median', 0):.1f} ms, max {s.get('p99_ms_windows_max', 0):.1f} ms "
        f"({s.get('client_processes', 1)} client process(es)); every window (ms): {s['p99_ms_per_window']}\n"
    )
