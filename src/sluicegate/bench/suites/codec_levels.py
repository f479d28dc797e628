"""Re-encoding cost per codec level on realistic HTML, as the Stream path does it (16 KiB segments, each flushed).

Two tables: throughput on a 1 MiB page (MB/s, output/input), and the cost per *response* on the throughput
bench's pages (``dev.origin.content.page``, 2 KB and 200 KB: what ``[compression]`` levels cost a rewritten
page, encoder creation included: a response gets a fresh encoder). CPU time (``process_time``), the best of
``--rounds`` rounds (the least disturbed by other processes on a shared machine).

Usage: ``sluicegate bench codec-levels [--rounds 5]`` (prints both tables, writes bench/results/codec-levels.json)
"""

from __future__ import annotations

import argparse
import os
import time

from sluicegate.bench.lab import write_json
from sluicegate.dev.origin.content import page as html_page
from sluicegate.pipeline.codecs import encoder_for

CASES = [("gzip", 1), ("gzip", 3), ("gzip", 4), ("gzip", 6), ("br", 1), ("br", 3), ("br", 4), ("br", 5),
         ("zstd", 1), ("zstd", 3)]
KEYS = {"gzip": "gzip_level", "br": "brotli_quality", "zstd": "zstd_level"}
SEGMENT = 16384
PAGES = (2048, 200 * 1024)


def _encode(coding: str, level: int, data: bytes) -> int:
    enc = encoder_for(coding, **{KEYS[coding]: level})  # type: ignore[arg-type]
    out = [enc.feed(data[i : i + SEGMENT]) for i in range(0, len(data), SEGMENT)]
    out.append(enc.finish())
    return sum(map(len, out))


def _best_s(coding: str, level: int, data: bytes, reps: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(reps):
            _encode(coding, level, data)
        best = min(best, (time.process_time() - t) / reps)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench codec-levels", description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    page = html_page("https://origin.example.com", 1024 * 1024)
    rows = []
    for coding, level in CASES:
        s = _best_s(coding, level, page, 1, args.rounds)
        size = _encode(coding, level, page)
        rows.append({"codec": coding, "level": level, "mb_s": len(page) / s / 1e6, "ratio": size / len(page)})
        print(f"{coding:5} {level:2}  {len(page) / s / 1e6:7.1f} MB/s   output/input {size / len(page):.3f}")
    per_page = []
    print(f"\n{'codec':5} {'lvl':>3} " + " ".join(f"{'us/resp ' + str(n):>14} {'bytes':>7}" for n in PAGES))
    for coding, level in CASES:
        row: dict[str, object] = {"codec": coding, "level": level}
        cells = []
        for n in PAGES:
            data = html_page("http://127.0.0.1:8080", n)
            us = _best_s(coding, level, data, max(3, 200_000 // n), args.rounds) * 1e6
            size = _encode(coding, level, data)
            row[f"us_{n}"] = round(us, 1)
            row[f"bytes_{n}"] = size
            cells.append(f"{us:14.1f} {size:7d}")
        per_page.append(row)
        print(f"{coding:5} {level:3} " + " ".join(cells))
    out_path = write_json("codec-levels", {"rows": rows, "per_page": per_page, "page_bytes": len(page),
                                           "loadavg": os.getloadavg()})
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
