"""``bench throughput-ab``: interleaved A/B of proxy variants under wrk (req/s, CPU per request).

The tool for "did this change make the relay faster?".

On a shared 2-core machine single wrk runs swing by +-30 % with the neighbours' load, so a before/after pair
of separate runs decides nothing. This runs every variant in every round, in alternating order, and reports
the median req/s and the median proxy CPU per request (process-tree CPU seconds / requests served, which is
steadier than req/s under foreign load).

A variant is one of ``bench throughput``'s targets (``nginx-w1``, ``nginx-w2``, ``baseline-w1``,
``sluicegate-w1``, ``sluicegate-w2``), ``granian-wN`` (sluicegate's app under granian), optionally followed by
``:VAR=value+VAR2=value`` environment settings for that process. ``PYTHONPATH=/path/to/other/checkout/src``
runs another checkout of sluicegate (``git worktree add /tmp/old HEAD~1``) against this one.

Each row also counts the proxy process tree's read and write system calls per request (``/proc/<pid>/io``
``syscr``/``syscw`` deltas over the wrk run: a count, not a timing): for a sluicegate worker, one write is the
origin request, the rest are the response's sends (how many pieces a page leaves in: issue 19 rows 2 and 4).

Run: ``sluicegate bench throughput-ab sluicegate-w1 sluicegate-w1:PYTHONPATH=/tmp/old/src
--pages page2k.bin,page200k.bin --rounds 6 --duration 3`` -> ``bench/results/publisher-ab.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites.throughput import Bench, run_wrk

VENV_BIN = Path(sys.executable).parent


def tree_syscalls(pid: int) -> tuple[int, int]:
    """(read, write) system calls made so far by ``pid`` and its descendants (processes that exit are lost)."""
    reads = writes = 0
    for p in lab.tree(pid):
        try:
            text = Path(f"/proc/{p}/io").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "syscr":
                reads += int(value)
            elif key == "syscw":
                writes += int(value)
    return reads, writes


def start(bench: Bench, tmp: Path, variant: str) -> tuple[int, lab.Proc | None]:
    target, _, env_spec = variant.partition(":")
    env = dict(os.environ)
    for item in filter(None, env_spec.split("+")):
        key, _, value = item.partition("=")
        env[key] = value
    if target.startswith("granian-w"):
        port = lab.free_port()
        workers = target.rsplit("-w", 1)[1]
        cfg = lab.write_sluicegate_config(tmp / f"granian-{port}.toml", origin_port=bench.origin_port, proxy_port=port,
                                      workers=int(workers))
        env["SLUICEGATE_CONFIG"] = str(cfg)
        argv = [str(VENV_BIN / "granian"), "--interface", "asgi", "--factory", "--loop", "uvloop", "--host",
                "127.0.0.1", "--port", str(port), "--workers", workers, "--no-ws", "--log-level", "warning",
                "sluicegate.server.app:create_app"]
        proc = bench.procs.add(lab.Proc(variant, argv, tmp / "granian.log", env=env))
        lab.wait_http(port, "/page2k.bin", proc)
        return port, proc
    saved = dict(os.environ)
    try:  # throughput.Bench starts its targets with this process's environment
        os.environ.clear()
        os.environ.update(env)
        return bench.start(target)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv: list[str] | None = None, *, name: str = "publisher-ab", prog: str = "throughput-ab",
         doc: str | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog=f"sluicegate bench {prog}", description=doc or __doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--pages", default="page2k.bin,page200k.bin", help="comma-separated (page2k.html too)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per wrk measurement")
    args = ap.parse_args(argv)
    pages = args.pages.split(",")
    tools = lab.ensure_apt({"nginx": "nginx", "wrk": "wrk"})
    runs: dict[str, dict[str, list[dict[str, float]]]] = {v: {p: [] for p in pages} for v in args.variants}
    with tempfile.TemporaryDirectory(prefix="sg-bench-ab-") as tmp, lab.Procs() as procs:
        d = Path(tmp)
        os.chmod(d, 0o755)
        bench = Bench(d, procs, tools)
        bench.prepare()
        for rnd in range(args.rounds):
            order = args.variants if rnd % 2 == 0 else args.variants[::-1]
            for variant in order:
                port, proc = start(bench, d, variant)
                for page in pages:
                    url = f"http://127.0.0.1:{port}/{page}"
                    run_wrk(bench.wrk, url, 1.0)
                    cpu0 = lab.tree_cpu_s(proc.pid) if proc else 0.0
                    sys0 = tree_syscalls(proc.pid) if proc else (0, 0)
                    res, _ = run_wrk(bench.wrk, url, args.duration)
                    cpu = (lab.tree_cpu_s(proc.pid) - cpu0) if proc else 0.0
                    sys1 = tree_syscalls(proc.pid) if proc else (0, 0)
                    n = max(1, res["requests"])
                    row = {"rps": res["rps"], "p99_ms": res["p99_ms"], "cpu_us_per_req": round(1e6 * cpu / n, 1),
                           "reads_per_req": round((sys1[0] - sys0[0]) / n, 2),
                           "writes_per_req": round((sys1[1] - sys0[1]) / n, 2)}
                    runs[variant][page].append(row)
                    lab.log(f"round {rnd} {variant:40} {page:13} {row['rps']:9.0f} req/s "
                        f"{row['cpu_us_per_req']:7.1f} us CPU/req  p99 {row['p99_ms']} ms  "
                        f"syscalls/req r {row['reads_per_req']} w {row['writes_per_req']}")
                if proc is not None:
                    procs.stop(proc)
    summary = {v: {p: {"rps_median": statistics.median(r["rps"] for r in rows),
                       "cpu_us_per_req_median": statistics.median(r["cpu_us_per_req"] for r in rows),
                       "cpu_us_per_req_per_round": [r["cpu_us_per_req"] for r in rows],
                       "writes_per_req_median": statistics.median(r["writes_per_req"] for r in rows),
                       "reads_per_req_median": statistics.median(r["reads_per_req"] for r in rows)}
                   for p, rows in by_page.items()} for v, by_page in runs.items()}
    print(f"\n{'variant':40} {'page':13} {'req/s (median)':>15} {'us CPU/req':>11} {'writes/req':>10} "
          f"{'reads/req':>9}")
    for v, by_page in summary.items():
        for p, s in by_page.items():
            print(f"{v:40} {p:13} {s['rps_median']:15.0f} {s['cpu_us_per_req_median']:11.1f} "
                  f"{s['writes_per_req_median']:10.2f} {s['reads_per_req_median']:9.2f}")
    result = {"benchmark": name, "rounds": args.rounds, "duration_s": args.duration, "runs": runs,
              "summary": summary, "method": __doc__}
    lab.log(f"wrote {lab.write_json(name, result)}")
    return result


if __name__ == "__main__":
    main()
