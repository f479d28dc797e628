"""Re-encoding cost per codec level on realistic HTML, as the Stream path does it (16 KiB segments, each flushed).

Usage: ``sluicegate bench codec-levels`` (prints a table, writes bench/results/codec-levels.json)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from sluicegate.bench.lab import write_json
from sluicegate.dev.origin.content import page as html_page
from sluicegate.pipeline.codecs import encoder_for

CASES = [("gzip", 1), ("gzip", 3), ("gzip", 6), ("br", 1), ("br", 3), ("br", 4), ("br", 5), ("zstd", 1), ("zstd", 3)]


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="sluicegate bench codec-levels", description=__doc__).parse_args(argv)
    page = html_page("https://origin.example.com", 1024 * 1024)
    rows = []
    for coding, level in CASES:
        key = {"gzip": "gzip_level", "br": "brotli_quality", "zstd": "zstd_level"}[coding]
        speeds = []
        size = 0
        for _ in range(5):
            enc = encoder_for(coding, **{key: level})
            t = time.process_time()
            out = [enc.feed(page[i : i + 16384]) for i in range(0, len(page), 16384)]
            out.append(enc.finish())
            speeds.append(len(page) / (time.process_time() - t) / 1e6)
            size = sum(map(len, out))
        rows.append({"codec": coding, "level": level, "mb_s": statistics.median(speeds), "ratio": size / len(page)})
        print(f"{coding:5} {level:2}  {statistics.median(speeds):7.1f} MB/s   output/input {size / len(page):.3f}")
    out_path = write_json("codec-levels", {"rows": rows, "page_bytes": len(page), "loadavg": os.getloadavg()})
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
