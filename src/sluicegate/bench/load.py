"""``bench load``: a multi-process keep-alive HTTP/1.1 load generator (the parent side).

Spawns ``--workers`` processes (``loadworker``: an event loop each, uvloop when installed) with their share
of the connections and requests, starts them at one instant, merges their figures into one result
(latency percentiles, req/s per second, errors by kind, status codes) and renders it. Each worker measures
its own CPU time, so the report says when the generator, not the server, was the bottleneck.
``calibrate`` measures the generator's ceiling against the built-in trivial server.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import time
from array import array
from typing import Any

from sluicegate.bench.loadworker import (
    MAX_SAMPLES,
    LoadSettings,
    _Budget,
    _Client,
    _Conn,
    _request_bytes,
    _Stats,
    _worker_entry,
    start_trivial_server,
)
from sluicegate.bench.report import Progress, fmt_bytes, fmt_num, table
from sluicegate.bench.results import Result, describe, percentile

__all__ = ["LoadSettings", "_Budget", "_Client", "_Conn", "_Stats", "calibrate", "render", "run_load",
           "start_trivial_server"]

# A worker whose process used this share of one core is itself the bottleneck.
SATURATED_CPU = 0.90


# ----------------------------------------------------------------------------------------------- parent side


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(settings: LoadSettings, progress: Progress | None = None) -> Result:
    """Run the load, merge the workers' figures and return the result document."""
    if settings.concurrency < 1 or settings.workers < 1:
        raise ValueError("--concurrency and --workers must be >= 1")
    _request_bytes(settings)  # validate the URL early
    workers = min(settings.workers, settings.concurrency)
    if settings.warmup > 0:
        warm = LoadSettings(**{**settings.__dict__, "duration": settings.warmup, "requests": None,
                               "warmup": 0.0})
        _run_workers(warm, workers, None)
    raw = _run_workers(settings, workers, progress)
    return _merge(settings, workers, raw)


def _run_workers(settings: LoadSettings, workers: int, progress: Progress | None) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    conns = _split(settings.concurrency, workers)
    reqs: list[int | None] = (
        list(_split(settings.requests, workers)) if settings.requests is not None else [None] * workers
    )
    counters: list[Any] = [ctx.Value("q", 0, lock=False) for _ in range(workers)]
    start_at = time.time() + 0.8 + 0.2 * workers  # every worker starts at the same moment
    pipes = []
    procs = []
    for i in range(workers):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker_entry, args=(child, settings, conns[i], reqs[i], start_at, counters[i]),
            daemon=True,
        )
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    results: list[dict[str, Any] | None] = [None] * workers
    try:
        while any(r is None for r in results):
            for i, pipe in enumerate(pipes):
                if results[i] is None and pipe.poll(0.05):
                    try:
                        results[i] = pipe.recv()
                    except EOFError:
                        results[i] = {"fatal": f"worker {i} died (exit code {procs[i].exitcode})"}
            if progress is not None:
                done = sum(c.value for c in counters)
                elapsed = max(0.0, time.time() - start_at)
                total = settings.requests
                frac = done / total if total else elapsed / (settings.duration or 1.0)
                rate = done / elapsed if elapsed > 0.2 else 0.0
                progress.update(frac, f"{done:,} requests  {rate:,.0f} req/s")
            time.sleep(0.2 if progress is not None else 0.05)
    finally:
        if progress is not None:
            progress.done()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():  # pragma: no cover
                proc.kill()
    fatal = [r["fatal"] for r in results if r is not None and "fatal" in r]
    if fatal:
        raise RuntimeError("load worker failed: " + "; ".join(fatal))
    return [r for r in results if r is not None]


def _merge(settings: LoadSettings, workers: int, raw: list[dict[str, Any]]) -> Result:
    latencies: list[float] = []
    for part in raw:
        arr = array("d")
        arr.frombytes(part["latencies"])
        latencies.extend(arr)
    errors: dict[str, int] = {}
    statuses: dict[str, int] = {}
    per_second: list[int] = []
    for part in raw:
        for k, v in part["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in part["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
        for i, v in enumerate(part["per_second"]):
            while len(per_second) <= i:
                per_second.append(0)
            per_second[i] += v
    elapsed = max(p["elapsed"] for p in raw)
    done = sum(p["done"] for p in raw)
    in_window = sum(p["in_window"] for p in raw)
    total_bytes = sum(p["bytes"] for p in raw)
    cpu = [p["cpu"] / p["wall"] if p["wall"] > 0 else 0.0 for p in raw]
    cpu_total = sum(p["cpu"] for p in raw)
    non_http_errors = sum(v for k, v in errors.items() if not k.startswith("http_"))
    result = Result("load", settings.as_dict())
    lat_ms = [x * 1000.0 for x in latencies]
    stats = describe(lat_ms)
    gen_bound = max(cpu) >= SATURATED_CPU
    summary = {
        "requests": done,
        "elapsed_s": elapsed,
        "rps": in_window / elapsed if elapsed > 0 else 0.0,
        "bytes_per_s": total_bytes / elapsed if elapsed > 0 else 0.0,
        "body_bytes": total_bytes,
        "latency_ms": {
            "p50": stats.get("median"),
            "p90": stats.get("p90"),
            "p99": percentile(lat_ms, 99) if lat_ms else None,
            "max": stats.get("max"),
            "mean": stats.get("mean"),
        },
        "errors": errors,
        "errors_total": non_http_errors + errors.get("http_4xx", 0) + errors.get("http_5xx", 0),
        "statuses": statuses,
        "connections_opened": sum(p["connects"] for p in raw),
        "generator": {
            "workers": workers,
            "loop": raw[0].get("loop", "?") if raw else "?",
            "cpu_per_worker": cpu,
            "cpu_us_per_request": cpu_total / done * 1e6 if done else None,
            # what one fully busy generator core could sustain at this cost per request
            "ceiling_rps_per_core": done / cpu_total if done and cpu_total > 0 else None,
            "saturated": gen_bound,
            "verdict": (
                "the load generator used >= 90 % of a core per worker: it may be the bottleneck "
                "(figures are a lower bound; try --workers or run it on another machine)"
                if gen_bound
                else "the load generator had spare CPU: the figures measure the server"
            ),
        },
        "per_second": per_second,
    }
    result.extra["load"] = summary
    if len(lat_ms) > MAX_SAMPLES:
        rnd = random.Random(0)
        kept = rnd.sample(lat_ms, MAX_SAMPLES)
    else:
        kept = lat_ms
    result.samples["load"] = {
        "latency_ms": kept,
        # whole seconds only (the last one is partial); the spread of these is the run's noise
        "rps": [float(v) for v in per_second[: int(elapsed)]] or [summary["rps"]],
    }
    result.extra["latency_samples_kept"] = len(kept)
    return result


def render(result: Result) -> str:
    s = result.extra["load"]
    lat = s["latency_ms"]
    gen = s["generator"]
    lines = [
        f"{result.settings['url']}  concurrency {result.settings['concurrency']}, "
        f"{gen['workers']} worker process(es), {gen['loop']}",
        table(
            ["requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "throughput", "errors"],
            [[
                f"{s['requests']:,}",
                fmt_num(s["rps"], 0),
                fmt_num(lat["p50"], 2),
                fmt_num(lat["p90"], 2),
                fmt_num(lat["p99"], 2),
                fmt_num(lat["max"], 1),
                fmt_bytes(s["bytes_per_s"]) + "/s",
                str(s["errors_total"]),
            ]],
        ),
    ]
    if s["errors"]:
        lines.append("errors by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())))
    lines.append("statuses: " + (", ".join(f"{k} x{v}" for k, v in sorted(s["statuses"].items())) or "none"))
    cpu = ", ".join(f"{c * 100:.0f} %" for c in gen["cpu_per_worker"])
    per_req = gen["cpu_us_per_request"]
    lines.append(
        f"generator overhead: CPU per worker {cpu} of one core; "
        f"{fmt_num(per_req, 1)} us CPU per request (~{fmt_num(gen['ceiling_rps_per_core'], 0)} req/s per "
        f"generator core) -> {gen['verdict']}"
    )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- calibration


def calibrate(
    concurrency: int, duration: float, workers: int, server_processes: int = 1,
    progress: Progress | None = None,
) -> Result:
    """The generator's ceiling: the same load against a server that answers every request with 2 KB
    from memory. Shares the box with that server, so it is a lower bound of the generator alone."""
    url, stop = start_trivial_server(server_processes)
    try:
        settings = LoadSettings(url=url, concurrency=concurrency, duration=duration, workers=workers,
                                warmup=0.5)
        result = run_load(settings, progress)
    finally:
        stop()
    result.command = "load-calibrate"
    result.settings["calibration"] = {
        "server": "built-in asyncio protocol server, fixed 2,048-byte response",
        "server_processes": server_processes,
        "cpu_count": os.cpu_count(),
    }
    return result
