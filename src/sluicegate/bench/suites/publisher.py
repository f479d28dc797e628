"""``bench publisher``: the three publisher benchmarks in a row: relay TTFB/TTLB, memory, throughput (~15 min).

Each one starts and stops its own servers, prints its tables and writes ``bench/results/publisher-<name>.json``
(see ``sluicegate bench relay-ttfb|memory|throughput --help`` for what and how). ``--quick`` runs each with
fewer repetitions (a smoke test of the harness, not figures to quote).

Run: ``sluicegate bench publisher [--quick] [--only relay-ttfb memory throughput]``.
"""

from __future__ import annotations

import argparse
import time

from sluicegate.bench.lab import log
from sluicegate.bench.suites import memory, relay_ttfb, throughput

QUICK = {
    "relay-ttfb": ["--runs", "1", "--per-run", "2"],
    "memory": ["--runs", "1", "--html-large-runs", "1"],
    "throughput": ["--runs", "1", "--duration", "2", "--warmup", "0.5", "--profile-s", "3"],
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench publisher", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    ap.add_argument("--only", nargs="*", choices=list(QUICK), default=list(QUICK))
    args = ap.parse_args(argv)
    mains = {"relay-ttfb": relay_ttfb.main, "memory": memory.main, "throughput": throughput.main}
    t0 = time.time()
    for name in args.only:
        log(f"=== {name} ===")
        mains[name](QUICK[name] if args.quick else [])
    log(f"all done in {time.time() - t0:.0f} s; results in bench/results/publisher-*.json")
