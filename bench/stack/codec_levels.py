"""Re-encoding cost per codec level on realistic HTML, as the Stream path does it (16 KiB segments, each flushed).

Usage: .venv/bin/python bench/stack/codec_levels.py   (prints a table, writes bench/results/codec-levels.json)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "publisher"))

from content import page as html_page  # noqa: E402

from sluicegate.pipeline.codecs import encoder_for  # noqa: E402

CASES = [("gzip", 1), ("gzip", 3), ("gzip", 6), ("br", 1), ("br", 3), ("br", 4), ("br", 5), ("zstd", 1), ("zstd", 3)]


def main() -> None:
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
    out_path = ROOT / "bench/results/codec-levels.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"rows": rows, "page_bytes": len(page), "loadavg": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
