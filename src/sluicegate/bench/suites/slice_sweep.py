"""Choosing ``[event_loop] slice_ms`` and ``piece_bytes``: heavy-transform CPU cost vs how long the loop is held.

In one process and one event loop (uvloop, as served), the publisher's own sliced transform
(``publisher.relay.BodyWork.feed`` with its ``WorkLane``) rewrites a gzip'd link-heavy HTML page (``--mib``,
default 20) and re-encodes it, while a probe timer measures its own lateness every 1 ms (the loop-lag
monitor's method, finer). Per (slice_ms, piece_bytes): CPU seconds of the whole run (``process_time``, the
figure to trust on a shared machine; measured in a run without the probe), probe lateness p50/p99/max (in a
second run with it), and the number of pauses. ``slice_ms = 0`` is unsliced; ``0 ms / 64 KiB`` is the relay as
it was before issue 24 (64 KiB decoded pieces, one read transformed in one go): the reference. No sockets:
only the transform and the loop; the real relay adds client writes.

Usage: sluicegate bench slice-sweep [--mib 20] [--repeat 3]
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
from sluicegate.publisher.app import PublisherApp
from sluicegate.publisher.processors import build_processor
from sluicegate.publisher.relay import BodyWork
from sluicegate.publisher.slicing import Slice, lane_for

ORIGIN = "http://127.0.0.1:9000"
CASES = [(0.0, 65536), (0.0, 16384), (0.5, 16384), (1.0, 16384), (1.0, 32768), (2.0, 16384), (2.0, 32768),
         (5.0, 16384)]
READ = 256 * 1024  # one origin read (origin_read_buffer_bytes)


async def one(blob: bytes, slice_ms: float, piece: int, with_probe: bool) -> dict[str, Any]:
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
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0
    done = True
    if ptask is not None:
        await ptask
    return {"slice_ms": slice_ms, "piece_bytes": piece, "cpu_s": cpu, "wall_s": wall, "pauses": work.slice.pauses,
            "probe_p50_ms": pct(late, 50), "probe_p99_ms": pct(late, 99),
            "probe_max_ms": max(late) if late else float("nan"), "out_bytes": sent}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench slice-sweep", description=__doc__)
    ap.add_argument("--mib", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = results_dir() / "slice-sweep-page.html.gz"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    write_gzip_html(tmp, ORIGIN, args.mib << 20)
    blob = tmp.read_bytes()
    tmp.unlink()
    rows: list[dict[str, Any]] = []
    for rep in range(args.repeat):
        order = CASES if rep % 2 == 0 else list(reversed(CASES))
        for slice_ms, piece in order:
            # CPU without the probe (its own wake-ups would be charged to the sliced runs), lateness with it
            r = uvloop.run(one(blob, slice_ms, piece, with_probe=False))
            lat = uvloop.run(one(blob, slice_ms, piece, with_probe=True))
            r.update({k: lat[k] for k in ("probe_p50_ms", "probe_p99_ms", "probe_max_ms")})
            r["repeat"] = rep
            rows.append(r)
            print(f"  slice {slice_ms:g} ms piece {piece}: cpu {r['cpu_s']:.2f} s, probe p99 {r['probe_p99_ms']:.1f}"
                  f" max {r['probe_max_ms']:.1f} ms, pauses {r['pauses']}", flush=True)
    out = []
    ref = statistics.median(r["cpu_s"] for r in rows if r["slice_ms"] == 0 and r["piece_bytes"] == 65536)
    for slice_ms, piece in CASES:
        rs = [r for r in rows if r["slice_ms"] == slice_ms and r["piece_bytes"] == piece]
        cpu = statistics.median(r["cpu_s"] for r in rs)
        out.append({"slice_ms": slice_ms, "piece_bytes": piece, "cpu_s": cpu, "cpu_vs_unsliced_64k": cpu / ref,
                    "mib_per_cpu_s": args.mib / cpu, "probe_p99_ms": statistics.median(r["probe_p99_ms"] for r in rs),
                    "probe_max_ms": statistics.median(r["probe_max_ms"] for r in rs),
                    "pauses": statistics.median(r["pauses"] for r in rs)})
    head = ["slice ms", "piece", "CPU s", "vs unsliced 64K", "MiB/cpu-s", "probe p99 ms", "probe max ms", "pauses"]
    print(table(head,
                [[o["slice_ms"], o["piece_bytes"], o["cpu_s"], o["cpu_vs_unsliced_64k"], o["mib_per_cpu_s"],
                  o["probe_p99_ms"], o["probe_max_ms"], o["pauses"]] for o in out]))
    path = write_json("slice-sweep", {"mib": args.mib, "summary": out, "rows": rows,
                                      "note": "shared machine: CPU seconds are the comparable figure"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
