"""Cost of observability: JSON access log + cross-worker metrics on vs both off, 2 workers, small pages.

What it measures: ``wrk -t2 -c64`` requests/s and the proxy's CPU time per request (its whole process tree:
supervisor + 2 workers) for two small pages served by an origin nginx (``bench throughput``'s origin):
  * 2 KB HTML (Stream route: rewritten) and 2 KB binary (PassThrough),
through two ``sluicegate serve --workers 2`` instances that differ only in
  * ``on``:  ``[server] access_log = "json"`` (one line per request to stdout, a file here) and
             ``[admin] metrics = true`` (per-request metrics, multi-process files summed by the supervisor);
  * ``off``: ``access_log = "off"`` and ``[admin] metrics = false``.
Both are started once and measured alternately (on, off, off, on, ...) ``--runs`` times per page, so both see
the same background load; the overhead is reported from the medians and from each adjacent pair. On a shared
machine, CPU µs per request is the steadier figure; req/s is wall-clock under contention. Goal: <= 10 %.

``--before REV``: one more instance, ``on-before``, with the "on" settings but sluicegate's ``src`` as of git
revision REV (the files that differ are taken from REV, compiled fast paths of unchanged modules reused): the
before/after of a change measured in the same run. ``--control`` adds ``off-b``, a second "off" instance (A/A):
its distance from "off" is the noise of this machine. Besides medians, every mode is reported as the median of
its per-run ratios to "off" measured in the same run (adjacent in time, so less exposed to load swings).

Run: ``sluicegate bench observability`` (about 3 minutes)
  -> ``bench/results/publisher-observability.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites.throughput import Bench, run_wrk

PAGES = {"2 KB html": "page2k.html", "2 KB bin": "page2k.bin"}
MODES = {
    "on": ('access_log = "json"', "metrics = true"),
    "off": ('access_log = "off"', "metrics = false"),
    # --split: which half costs what
    "log-only": ('access_log = "json"', "metrics = false"),
    "metrics-only": ('access_log = "off"', "metrics = true"),
    # --control: a second "off" instance (A/A): how far two identical instances differ on this machine
    "off-b": ('access_log = "off"', "metrics = false"),
    # --before REV: "on" with the code of another revision
    "on-before": ('access_log = "json"', "metrics = true"),
}
REPO = lab.repo_root() or Path.cwd()  # the checkout (git history for --before)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench observability", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6, help="measurements per mode and page (default 6)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--split", action="store_true", help="also measure log-only and metrics-only")
    ap.add_argument("--control", action="store_true", help="also measure a second identical 'off' instance")
    ap.add_argument("--start-off-first", action="store_true",
                    help="start the instances in reverse order (is the first-started instance disadvantaged?)")
    ap.add_argument("--page", choices=sorted(PAGES), action="append", help="only these pages (repeatable)")
    ap.add_argument("--before", metavar="REV", help="also measure 'on' with src as of git revision REV")
    args = ap.parse_args(argv)
    modes = {k: v for k, v in MODES.items()
             if k in ("on", "off") or (args.split and k.endswith("-only")) or (args.control and k == "off-b")
             or (args.before and k == "on-before")}
    pages = {k: v for k, v in PAGES.items() if not args.page or k in args.page}
    tools = lab.ensure_apt({"nginx": "nginx", "wrk": "wrk"})
    result: dict[str, Any] = {"benchmark": "publisher-observability", "method": __doc__, "machine": lab.machine(),
                              "versions": lab.versions(["nginx", "wrk"]),
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "wrk": f"wrk -t2 -c64 -d{args.duration:g}s"}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-obs-") as tmp, lab.Procs() as procs:
        d = Path(tmp)
        os.chmod(d, 0o755)
        bench = Bench(d, procs, tools)
        bench.prepare()
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}
        start_order = list(modes.items())
        if args.start_off_first:
            start_order.reverse()
        for mode, (server, admin) in start_order:
            port = lab.free_port()
            cfg = lab.write_sluicegate_config(d / f"sg-{mode}.toml", origin_port=bench.origin_port, proxy_port=port,
                                          workers=2, server=server, admin=admin)
            proc = lab.sluicegate_proc(f"sg-{mode}", cfg, port, 2, d / f"sg-{mode}.log")
            if mode == "on-before":
                proc.env = {**os.environ, "PYTHONPATH": str(lab.source_at(args.before, d / "before"))}
                result["before"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", args.before],
                                                  capture_output=True, text=True, check=True).stdout.strip()
            procs.add(proc)
            lab.wait_http(port, "/page2k.bin", proc)
            ports[mode], pids[mode] = port, proc.pid
        time.sleep(1.0)
        for port in ports.values():
            for file in pages.values():
                run_wrk(bench.wrk, f"http://127.0.0.1:{port}/{file}", args.warmup)
        for run in range(args.runs):
            order = list(modes) if run % 2 == 0 else list(reversed(modes))
            for page, file in pages.items():
                for mode in order:
                    with lab.CpuMeter({"proxy": pids[mode]}) as cpu:
                        res, _wrk_cpu = run_wrk(bench.wrk, f"http://127.0.0.1:{ports[mode]}/{file}", args.duration)
                    cpu_us = cpu.used["proxy"] * 1e6 / max(res["requests"], 1)
                    rows.append({"run": run, "mode": mode, "page": page, "rps": res["rps"], "cpu_us_per_req": cpu_us,
                                 "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"], "non2xx": res["non2xx"],
                                 "foreign_cpu_pct": cpu.percent()["foreign"]})
                    lab.log(f"run {run + 1} {page:10s} {mode:3s} {res['rps']:>8,.0f} req/s  {cpu_us:6.1f} µs CPU/req  "
                        f"p50 {res['p50_ms']:.2f} ms  foreign {cpu.percent()['foreign']:.0f}%")
        on_log = (d / "sg-on.log").read_text(errors="replace").count('{"ts"')
        result["access_lines_written_on"] = on_log
    summary: dict[str, Any] = {}
    for page in pages:
        cell: dict[str, Any] = {}
        for mode in modes:
            rs = [r for r in rows if r["page"] == page and r["mode"] == mode]
            cell[mode] = {"rps_median": lab.med([r["rps"] for r in rs]),
                          "cpu_us_per_req_median": lab.med([r["cpu_us_per_req"] for r in rs])}
        pairs = [(a, b) for a in rows for b in rows if a["page"] == b["page"] == page and a["run"] == b["run"]
                 and a["mode"] == "on" and b["mode"] == "off"]
        cell["rps_overhead_pct"] = 100 * (1 - cell["on"]["rps_median"] / cell["off"]["rps_median"])
        cell["cpu_overhead_pct"] = 100 * (cell["on"]["cpu_us_per_req_median"] / cell["off"]["cpu_us_per_req_median"]
                                          - 1)
        cell["rps_overhead_pct_per_run"] = [round(100 * (1 - a["rps"] / b["rps"]), 1) for a, b in pairs]
        cell["cpu_overhead_pct_per_run"] = [round(100 * (a["cpu_us_per_req"] / b["cpu_us_per_req"] - 1), 1)
                                            for a, b in pairs]
        for mode in modes:
            if mode not in ("on", "off"):
                cell[f"{mode}_cpu_overhead_pct"] = 100 * (cell[mode]["cpu_us_per_req_median"]
                                                          / cell["off"]["cpu_us_per_req_median"] - 1)
            if mode != "off":  # the same-run ratio to "off", per run, and its median
                per_run = []
                for run in range(args.runs):
                    a = [r for r in rows if r["page"] == page and r["run"] == run and r["mode"] == mode]
                    b = [r for r in rows if r["page"] == page and r["run"] == run and r["mode"] == "off"]
                    if a and b:
                        per_run.append(100 * (a[0]["cpu_us_per_req"] / b[0]["cpu_us_per_req"] - 1))
                cell[f"{mode}_cpu_vs_off_pct_per_run"] = [round(x, 1) for x in per_run]
                cell[f"{mode}_cpu_vs_off_pct_median_of_runs"] = lab.med(per_run)
        summary[page] = cell
    result["rows"] = rows
    result["summary"] = summary
    path = lab.write_json("publisher-observability", result)
    print(f"\nObservability overhead (JSON access log + metrics on vs off), 2 workers, {result['wrk']}, "
          f"{args.runs} alternating runs; medians\n")
    print(f"{'page':12s} {'on req/s':>10s} {'off req/s':>10s} {'req/s cost':>11s} {'on µs/req':>10s} "
          f"{'off µs/req':>11s} {'CPU cost':>9s}")
    for page, c in summary.items():
        print(f"{page:12s} {c['on']['rps_median']:>10,.0f} {c['off']['rps_median']:>10,.0f} "
              f"{c['rps_overhead_pct']:>10.1f}% {c['on']['cpu_us_per_req_median']:>10.1f} "
              f"{c['off']['cpu_us_per_req_median']:>11.1f} {c['cpu_overhead_pct']:>8.1f}%")
        for mode in modes:
            if mode != "off":
                print(f"{'':12s} {mode:12s}: {c[mode]['cpu_us_per_req_median']:6.1f} µs/req median, "
                      f"{c[mode]['rps_median']:>7,.0f} req/s; CPU vs off: median of same-run ratios "
                      f"{c[mode + '_cpu_vs_off_pct_median_of_runs']:+.1f}%  (per run: "
                      f"{', '.join(f'{x:+.0f}' for x in c[mode + '_cpu_vs_off_pct_per_run'])})")
    print(f"\ncommand: {' '.join([sys.executable, *sys.argv])}\nwrote {path}")
    return result


if __name__ == "__main__":
    main()
