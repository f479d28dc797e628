"""``sluicegate bench images-engines``: the engine and pool choices behind the optimizer, measured.

Each variant runs in a fresh child process over the same 20 sources (``images_sources``) and the same
target (800 px wide WebP q80), reporting CPU seconds (``RUSAGE_SELF + RUSAGE_CHILDREN``), wall seconds and
peak RSS (its own ``ru_maxrss`` plus its children's):

* ``pyvips-threads``: the optimizer's engine (``images.engine.process``) in a 2-thread pool (what ships);
* ``pyvips-processes``: the same engine in a 2-process pool (``ProcessPoolExecutor``);
* ``pillow-threads``: Pillow (``draft`` for JPEG, ``thumbnail`` with the default filter, WebP ``quality``),
  the measured alternative, in the same 2-thread pool.

Variants run one after another, twice, alternating; figures are per image. Must not know about HTTP.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sluicegate.bench.suites.images_sources import Source, check_output, make_sources

VARIANTS = ("pyvips-threads", "pyvips-processes", "pillow-threads")
WIDTH, QUALITY = 800, 80
EFFORT = 4  # the same WebP work as Pillow's default ``method`` (4): the engines, not the encoder settings, compared


def _vips_one(path: str) -> bytes:
    from sluicegate.images.engine import Job, process

    job = Job(Path(path).read_bytes(), WIDTH, 0, "contain", "centre", QUALITY, "webp", False, 100_000_000, 32.0,
              120.0, EFFORT)
    return process(job).body


def _pillow_one(path: str) -> bytes:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = 100_000_000
    with Image.open(io.BytesIO(Path(path).read_bytes())) as src:
        src.draft("RGB", (WIDTH, WIDTH * src.height // src.width))  # JPEG shrink-on-load, as thumbor's PIL engine
        img = src.convert("RGB")
        img.thumbnail((WIDTH, 10_000_000))
        out = io.BytesIO()
        img.save(out, "WEBP", quality=QUALITY)
    return out.getvalue()


def child(variant: str, folder: str) -> dict[str, Any]:
    sources = make_sources(Path(folder))
    paths = [str(Path(folder) / s.name) for s in sources]
    fn = _pillow_one if variant.startswith("pillow") else _vips_one
    pool: concurrent.futures.Executor
    if variant.endswith("processes"):
        pool = concurrent.futures.ProcessPoolExecutor(2)
    else:
        pool = concurrent.futures.ThreadPoolExecutor(2)
    t0 = time.perf_counter()
    with pool:
        bodies = list(pool.map(fn, paths))
    wall = time.perf_counter() - t0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    problems = [f"{s.name}: {p}" for s, b in zip(sources, bodies, strict=True)
                if (p := check_output(b, s, WIDTH, "webp"))]
    # ru_maxrss of RUSAGE_CHILDREN is the largest child's, not the sum: with 2 equal workers, twice it.
    peak_kib = me.ru_maxrss + (2 * kids.ru_maxrss if variant.endswith("processes") else 0)
    return {"variant": variant, "images": len(bodies), "cpu_seconds": cpu, "wall_seconds": wall,
            "peak_rss_mib": peak_kib / 1024, "problems": problems}


def run(folder: str, rounds: int) -> dict[str, Any]:
    sources: list[Source] = make_sources(Path(folder))
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for rnd in range(rounds):
        for variant in VARIANTS if rnd % 2 == 0 else tuple(reversed(VARIANTS)):
            out = subprocess.run([sys.executable, "-m", "sluicegate.bench.suites.images_engines", "--child", variant,
                                  "--sources", folder], capture_output=True, text=True, check=True)
            runs[variant].append(json.loads(out.stdout))
            print(f"  {variant}: {runs[variant][-1]['cpu_seconds']:.1f} s CPU", file=sys.stderr)
    summary = {}
    for variant, rs in runs.items():
        n = sum(r["images"] for r in rs)
        summary[variant] = {
            "cpu_ms_per_image": round(1000 * sum(r["cpu_seconds"] for r in rs) / n, 1),
            "wall_ms_per_image": round(1000 * sum(r["wall_seconds"] for r in rs) / n, 1),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in rs), 1),
            "problems": sorted({p for r in rs for p in r["problems"]}),
        }
    return {"sources": len(sources), "rounds": rounds, "target": "800 px wide WebP q80", "variants": summary,
            "note": "one variant at a time on a shared 2-core machine; CPU per image is the comparable figure"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sources", default="bench/results/image-sources")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="bench/results/images-engines.json")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)


def run_main(args: argparse.Namespace) -> int:
    if args.child:
        print(json.dumps(child(args.child, args.sources)))
        return 0
    result = run(args.sources, args.rounds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{'variant':18s} {'CPU ms/img':>10s} {'wall ms/img':>11s} {'peak RSS MiB':>12s}")
    for variant, r in result["variants"].items():
        print(f"{variant:18s} {r['cpu_ms_per_image']:10.1f} {r['wall_ms_per_image']:11.1f} {r['peak_rss_mib']:12.1f}"
              + (f"  PROBLEMS: {r['problems'][:3]}" if r["problems"] else ""))
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if any(r["problems"] for r in result["variants"].values()) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sluicegate bench images-engines", description=(__doc__ or "").split("\n\n")[0])
    add_arguments(p)
    return run_main(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
