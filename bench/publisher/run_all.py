"""Run the three publisher benchmarks in a row: TTFB/TTLB, memory, throughput (about 15 minutes in all).

Each one starts and stops its own servers, prints its tables and writes ``bench/results/publisher-<name>.json``
(see the docstrings of ``ttfb.py``, ``memory.py`` and ``throughput.py`` for what and how). ``--quick`` runs
each with fewer repetitions (a smoke test of the harness, not figures to quote).

Run: ``.venv/bin/python bench/publisher/run_all.py [--quick] [--only ttfb memory throughput]``.
"""

from __future__ import annotations

import argparse
import time

import memory
import throughput
import ttfb
from benchlib import log

QUICK = {
    "ttfb": ["--runs", "1", "--per-run", "2"],
    "memory": ["--runs", "1", "--html-large-runs", "1"],
    "throughput": ["--runs", "1", "--duration", "2", "--warmup", "0.5", "--profile-s", "3"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    ap.add_argument("--only", nargs="*", choices=list(QUICK), default=list(QUICK))
    args = ap.parse_args()
    mains = {"ttfb": ttfb.main, "memory": memory.main, "throughput": throughput.main}
    t0 = time.time()
    for name in args.only:
        log(f"=== {name} ===")
        mains[name](QUICK[name] if args.quick else [])
    log(f"all done in {time.time() - t0:.0f} s; results in bench/results/publisher-*.json")


if __name__ == "__main__":
    main()
