"""Choosing ``[event_loop] slice_ms`` and ``piece_bytes``: heavy-transform CPU cost vs how long the loop is held.

In one process and one event loop (uvloop, as served), the publisher's own sliced transform
(``publisher.relay.BodyWork.feed`` with its ``WorkLane``) rewrites a gzip'd link-heavy HTML page (``--mib``,
default 20) and re-encodes it, while a probe timer measures its own lateness every 1 ms (the loop-lag
monitor's method, finer). Per (slice_ms, piece_bytes): CPU seconds of the whole run (``process_time``, the
figure to trust on a shared machine; measured in a run without the probe), probe lateness p50/p99/max (in a
second run with it), and the number of pauses. ``slice_ms = 0`` is unsliced; ``0 ms / 64 KiB`` is the relay as
it was before issue 24 (64 KiB decoded pieces, one read transformed in one go): the reference. No sockets:
only the transform and the loop; the real relay adds client writes.

``--concurrent N`` runs N such responses at once (each ``--mib``), as the fairness bench's load (b) does with
4 x 5 MiB, and ``--turn-ms`` lists values of ``slicing.TURN_S`` to try for the sliced cases: how much of its
own work a response does before the lane switches to the next heavy response (0 = every slice, as before
2026-12-07; the default is 32 ms). With N = 1 the turn never matters.

Usage: sluicegate bench slice-sweep [--mib 20] [--repeat 3] [--concurrent 1] [--turn-ms 32]
  -> prints a table, writes bench/results/slice-sweep.json
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import MutableMapping
from typing import Any

import uvloop

from sluicegate.bench.lab import pct, results_dir, table, write_json
from sluicegate.config.model import Settings
from sluicegate.dev.origin.content import write_gzip_html
from sluicegate.gate import Kind
from sluicegate.pipeline.codecs import decoder_for, encoder_for
from sluicegate.publisher import slicing
from sluicegate.publisher.app import PublisherApp
from sluicegate.publisher.processors import build_processor
from sluicegate.publisher.relay import BodyWork
from sluicegate.publisher.slicing import Slice, lane_for

ORIGIN = "http://127.0.0.1:9000"
CASES = [(0.0, 65536), (0.0, 16384), (0.5, 16384), (1.0, 16384), (1.0, 32768), (2.0, 16384), (2.0, 32768),
         (5.0, 16384)]
READ = 256 * 1024  # one origin read (origin_read_buffer_bytes)


async def one(blob: bytes, slice_ms: float, piece: int, with_probe: bool, concurrent: int = 1) -> dict[str, Any]:
    """``concurrent`` responses transform ``blob`` at once; CPU and pauses are their sums."""
    if concurrent == 1:
        return await _one(blob, slice_ms, piece, with_probe)
    rs = await asyncio.gather(*(_one(blob, slice_ms, piece, with_probe) for _ in range(concurrent)))
    cpu0 = min(r["cpu0"] for r in rs)
    return {**rs[0], "cpu_s": max(r["cpu1"] for r in rs) - cpu0, "wall_s": max(r["wall_s"] for r in rs),
            "pauses": sum(r["pauses"] for r in rs), "out_bytes": sum(r["out_bytes"] for r in rs),
            "probe_p99_ms": max(r["probe_p99_ms"] for r in rs), "probe_max_ms": max(r["probe_max_ms"] for r in rs)}


async def _one(blob: bytes, slice_ms: float, piece: int, with_probe: bool) -> dict[str, Any]:
    settings = Settings.model_validate({"publisher": {"origin_url": ORIGIN, "public_hosts": ["127.0.0.1:8080"]}})
    rw = PublisherApp(settings).rewriter("http", "127.0.0.1:8080")
    loop = asyncio.get_running_loop()
    work = BodyWork(
        decoder_for("gzip", 1 << 40, piece),
        build_processor(Kind.HTML, rw, settings, navigation_request=True, content_type="text/html"),
        encoder_for("gzip", gzip_level=3),
        Slice(lane_for(loop), slice_ms / 1000, "bench", "sweep"),
        1 << 40,
    )
    late: list[float] = []
    done = False
    sent = 0

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal sent
        sent += len(message["body"])

    async def probe() -> None:
        while not done:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            late.append(max(0.0, loop.time() - due) * 1000)

    ptask = asyncio.create_task(probe()) if with_probe else None
    await asyncio.sleep(0.01)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(0, len(blob), READ):
        await work.feed(blob[i : i + READ], send)
        data = work.take()
        sent += len(data)
        await asyncio.sleep(0)  # the real relay's read would let the loop run here when the origin is slower
    sent += len(work.tail())
    cpu1 = time.process_time()
    cpu = cpu1 - cpu0
    wall = time.perf_counter() - t0
    done = True
    if ptask is not None:
        await ptask
    return {"slice_ms": slice_ms, "piece_bytes": piece, "cpu_s": cpu, "cpu0": cpu0, "cpu1": cpu1, "wall_s": wall,
            "pauses": work.slice.pauses,
            "probe_p50_ms": pct(late, 50), "probe_p99_ms": pct(late, 99),
            "probe_max_ms": max(late) if late else float("nan"), "out_bytes": sent}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench slice-sweep", description=__doc__)
    ap.add_argument("--mib", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrent", type=int, default=1, help="responses transformed at once (each --mib)")
    ap.add_argument("--turn-ms", default=f"{slicing.TURN_S * 1000:g}",
                    help="comma-separated slicing.TURN_S values (ms) for the sliced cases")
    args = ap.parse_args(argv)
    tmp = results_dir() / "slice-sweep-page.html.gz"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    write_gzip_html(tmp, ORIGIN, args.mib << 20)
    blob = tmp.read_bytes()
    tmp.unlink()
    turns = [float(t) for t in args.turn_ms.split(",")]
    cases = [(sl, pc, t if sl else turns[0]) for sl, pc in CASES for t in (turns if sl else turns[:1])]
    default_turn = slicing.TURN_S
    rows: list[dict[str, Any]] = []
    for rep in range(args.repeat):
        order = cases if rep % 2 == 0 else list(reversed(cases))
        for slice_ms, piece, turn_ms in order:
            slicing.TURN_S = turn_ms / 1000
            try:
                # CPU without the probe (its own wake-ups would be charged to the sliced runs), lateness with it
                r = uvloop.run(one(blob, slice_ms, piece, False, args.concurrent))
                lat = uvloop.run(one(blob, slice_ms, piece, True, args.concurrent))
            finally:
                slicing.TURN_S = default_turn
            r.update({k: lat[k] for k in ("probe_p50_ms", "probe_p99_ms", "probe_max_ms")})
            r["repeat"] = rep
            r["turn_ms"] = turn_ms
            rows.append(r)
            print(f"  slice {slice_ms:g} ms piece {piece} turn {turn_ms:g} ms: cpu {r['cpu_s']:.2f} s, probe p99 "
                  f"{r['probe_p99_ms']:.1f} max {r['probe_max_ms']:.1f} ms, pauses {r['pauses']}", flush=True)
    out = []
    ref = statistics.median(r["cpu_s"] for r in rows if r["slice_ms"] == 0 and r["piece_bytes"] == 65536)
    mib = args.mib * args.concurrent
    for slice_ms, piece, turn_ms in cases:
        rs = [r for r in rows if r["slice_ms"] == slice_ms and r["piece_bytes"] == piece and r["turn_ms"] == turn_ms]
        cpu = statistics.median(r["cpu_s"] for r in rs)
        out.append({"slice_ms": slice_ms, "piece_bytes": piece, "turn_ms": turn_ms if slice_ms else None,
                    "cpu_s": cpu, "cpu_vs_unsliced_64k": cpu / ref,
                    "mib_per_cpu_s": mib / cpu, "probe_p99_ms": statistics.median(r["probe_p99_ms"] for r in rs),
                    "probe_max_ms": statistics.median(r["probe_max_ms"] for r in rs),
                    "pauses": statistics.median(r["pauses"] for r in rs)})
    head = ["slice ms", "piece", "turn ms", "CPU s", "vs unsliced 64K", "MiB/cpu-s", "probe p99 ms", "probe max ms",
            "pauses"]
    print(table(head,
                [[o["slice_ms"], o["piece_bytes"], o["turn_ms"] if o["turn_ms"] is not None else "-", o["cpu_s"],
                  o["cpu_vs_unsliced_64k"], o["mib_per_cpu_s"], o["probe_p99_ms"], o["probe_max_ms"], o["pauses"]]
                 for o in out]))
    name = "slice-sweep" if args.concurrent == 1 else f"slice-sweep-x{args.concurrent}"
    path = write_json(name, {"mib": args.mib, "concurrent": args.concurrent, "summary": out, "rows": rows,
                             "command": f"sluicegate bench slice-sweep --mib {args.mib} --repeat {args.repeat} "
                                        f"--concurrent {args.concurrent} --turn-ms {args.turn_ms}",
                             "note": "shared machine: CPU seconds are the comparable figure"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
