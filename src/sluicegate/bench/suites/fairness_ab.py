"""``sluicegate bench fairness --ab N``: heavy-response throughput, sliced vs unsliced, for a noisy machine.

The sluicegate targets of the fairness bench run side by side; N sets of each heavy load alone alternate
between them (order reversed every set). CPU is the proxy tree's on-CPU nanoseconds
(``/proc/<pid>/task/*/schedstat``, not the 10 ms ticks of ``stat``); the proxy's write syscalls per set
(``/proc/<pid>/io`` ``syscw``) are reported with it (each mid-body send is one). Medians over the sets.
-> ``bench/results/publisher-fairness-ab.json``. The loads, targets and servers are ``fairness``'s.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites.fairness import LOADS, TARGETS, Bench


def tree_oncpu_s(pid: int) -> float:
    """On-CPU seconds of ``pid``'s process tree (scheduler nanoseconds: finer than the 10 ms ticks of stat)."""
    total = 0
    for p in lab.sysstat.tree(pid):
        try:
            for task in os.scandir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task.name}/schedstat") as f:
                    total += int(f.read().split()[0])
        except OSError:
            continue
    return total / 1e9


def tree_writes(pid: int) -> int:
    """write-family syscalls of ``pid``'s process tree (``/proc/<pid>/io`` ``syscw``)."""
    total = 0
    for p in lab.sysstat.tree(pid):
        try:
            with open(f"/proc/{p}/io") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("syscw:"))
        except (OSError, StopIteration):
            continue
    return total


def pause_counts(admin_port: int) -> tuple[float, float, float]:
    """The worker's slice pauses so far: (lane, light) from ``sluicegate_publisher_slice_pauses_total``, and
    the spent slices that ran on without a pause (``sluicegate_publisher_slices_stretched_total``)."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    got = dict(re.findall(r'^sluicegate_publisher_slice_pauses_total\{pause="(\w+)"\} (\S+)$', text, re.M))
    stretched = re.search(r"^sluicegate_publisher_slices_stretched_total (\S+)$", text, re.M)
    return float(got.get("lane", 0.0)), float(got.get("light", 0.0)), float(stretched[1]) if stretched else 0.0


async def measure_ab(bench: Bench, sets: int, loads: list[str] | None = None) -> list[dict[str, Any]]:
    """Heavy loads alone (``loads``: all of ``LOADS`` by default), sluicegate targets side by side, ``sets``
    alternated sets per load."""
    targets = [t for t in TARGETS if t != "nginx"]
    started = {t: bench.start(t) for t in targets}
    rows: list[dict[str, Any]] = []
    try:
        for t in targets:  # warm-up (imports, first connections): not counted
            await bench.heavy_alone(*started[t], "b: 4 x 5 MiB pages")
        for i in range(sets):
            order = targets if i % 2 == 0 else targets[::-1]
            for load in loads or LOADS:
                for t in order:
                    port, proc = started[t]
                    p0 = pause_counts(bench.admin_of[port])
                    c0, w0 = tree_oncpu_s(proc.pid), tree_writes(proc.pid)
                    alone = await bench.heavy_alone(port, proc, load)
                    cpu, writes = tree_oncpu_s(proc.pid) - c0, tree_writes(proc.pid) - w0
                    p1 = pause_counts(bench.admin_of[port])
                    lane, light, stretched = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
                    mib = LOADS[load]["decoded_mib"] * len(LOADS[load]["paths"])
                    rows.append({"target": t, "load": load, "set": i, "oncpu_s": cpu, "writes": writes,
                                 "mib_per_oncpu_s": mib / cpu, "wall_s": alone["wall_s"],
                                 "pauses": lane + light, "light_pauses": light, "stretched": stretched,
                                 "loadavg_1m": lab.loadavg1()})
                    lab.log(f"  set {i + 1}/{sets} {t:11s} {load:20s} {mib / cpu:6.2f} MiB per CPU-s, "
                            f"{writes} writes, {lane + light:.0f} pauses ({light:.0f} light), "
                            f"{stretched:.0f} stretched, load {lab.loadavg1():.1f}")
    finally:
        for _, proc in started.values():
            bench.procs.stop(proc)
    return rows


def summarize_ab(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for load in LOADS:
        base_rows = [r for r in rows if r["target"] == "unsliced" and r["load"] == load]
        base = [r["mib_per_oncpu_s"] for r in base_rows]
        for t in dict.fromkeys(r["target"] for r in rows):
            rs = [r for r in rows if r["target"] == t and r["load"] == load]
            if not rs:
                continue
            m = lab.med([r["mib_per_oncpu_s"] for r in rs])
            ratio = m / lab.med(base) if base else float("nan")
            mean_ratio = _mean(rs) / _mean(base_rows) if base_rows else float("nan")
            out[f"{t} | {load}"] = {"mib_per_cpu_s": m, "ratio_vs_unsliced": ratio,
                                    "writes_per_set": lab.med([r["writes"] for r in rs]), "sets": len(rs),
                                    "mean_ratio_vs_unsliced": mean_ratio,
                                    "pauses_per_set": lab.med([r.get("pauses", 0) for r in rs]),
                                    "light_pauses_per_set": lab.med([r.get("light_pauses", 0) for r in rs]),
                                    "stretched_per_set": lab.med([r.get("stretched", 0) for r in rs]),
                                    "loadavg_1m": lab.med([r["loadavg_1m"] for r in rs])}
    return out


def _mean(rows: list[dict[str, Any]]) -> float:
    return float(sum(r["mib_per_oncpu_s"] for r in rows)) / len(rows)


def report(rows: list[dict[str, Any]], args: argparse.Namespace, started: float, sizes: dict[str, int]) -> None:
    ab = summarize_ab(rows)
    print()
    print(lab.table(["target | load", "MiB / CPU-s", "vs unsliced (medians)", "(means)", "writes / set",
                     "pauses / set", "light", "stretched", "sets", "load avg"],
                    [[k, v["mib_per_cpu_s"], v["ratio_vs_unsliced"], v["mean_ratio_vs_unsliced"], v["writes_per_set"],
                      v["pauses_per_set"], v["light_pauses_per_set"], v["stretched_per_set"], v["sets"],
                      v["loadavg_1m"]]
                     for k, v in ab.items()]))
    path = lab.write_json("publisher-fairness-ab", {
        "command": f"sluicegate bench fairness --ab {args.ab} --loads {args.loads} --bomb-cap-mib {args.bomb_cap_mib} "
                   f"--slice-ms {args.slice_ms} --stretch-ms {args.stretch_ms or '(default)'} "
                   f"--piece-bytes {args.piece_bytes} --hash-seed {args.hash_seed}",
        "started": started, "file_sizes": sizes, "summary": ab, "rows": rows, "hash_seed": args.hash_seed,
        "machine": lab.machine(), "versions": lab.versions([]),
        "note": "CPU = on-CPU ns of the proxy's process tree (schedstat); medians over alternated sets",
    })
    print(f"\nwrote {path}")
