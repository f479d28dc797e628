"""``sluicegate bench images-decode``: the JPEG decode alone, libvips vs Pillow (thumbor's), at the DCT scale.

The benchmark's 13 JPEG sources decoded at the largest DCT shrink that still covers 800 px (what the engine's
``jpeg_plan`` picks and what Pillow's ``draft``, which thumbor's PIL engine calls, picks), nothing else: no
resize, no encode. Process CPU (every thread), best of ``--passes``, milliseconds per JPEG:

* ``vips``: ``jpegload_source(shrink=...)`` on a memory source, sequential, ``fail_on="error"``, written to
  memory (as the engine reads it; one libvips thread);
* ``pillow-draft``: Pillow's ``draft`` + ``load()`` in the interpreter given by ``--pillow-python`` (thumbor's
  venv): Pillow 12/13 pass ``draft=0`` to the decoder, so libjpeg's default (slow integer) DCT and fancy
  upsampling, as libvips;
* ``pillow-fastdct``: the same with the decoder's draft flag set (``JDCT_FASTEST``, what ``draft`` did in
  older Pillow): the "fast path" that libvips does not expose, measured.

Must not know about HTTP or the optimizer's serving path.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sluicegate.bench.suites.images_sources import make_sources

TARGET = 800

# Run by --pillow-python (which need not have sluicegate installed): argv = folder, passes.
_PILLOW = r"""
import json, sys, time
from pathlib import Path
from PIL import Image, features
files = sorted(Path(sys.argv[1]).glob("*.jpg")); passes = int(sys.argv[2])
datas = [p.read_bytes() for p in files]
import io
out = {"pillow": Image.__version__, "libjpeg_turbo": features.version("libjpeg_turbo")}
for name, fast in (("pillow-draft", 0), ("pillow-fastdct", 1)):
    best = 1e9
    for _ in range(passes):
        c = time.process_time()
        for d in datas:
            im = Image.open(io.BytesIO(d))
            w, h = im.size
            im.draft(None, (800, h * 800 // w))
            if fast:
                im.decoderconfig = (im.decoderconfig[0], 1)
            im.load()
        best = min(best, time.process_time() - c)
    out[name] = best / len(datas) * 1000
print(json.dumps(out))
"""


def _vips(folder: Path, passes: int) -> dict[str, Any]:
    import pyvips  # type: ignore[import-untyped]

    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    datas = [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]
    widths = [int(pyvips.Image.jpegload_source(pyvips.Source.new_from_memory(d)).width) for d in datas]
    best = 1e9
    for _ in range(passes):
        c = time.process_time()
        for d, w in zip(datas, widths, strict=True):
            shrink = next(k for k in (8, 4, 2, 1) if k * TARGET / w <= 1)
            img = pyvips.Image.jpegload_source(pyvips.Source.new_from_memory(d), shrink=shrink, access="sequential",
                                               fail_on="error")
            img.write_to_memory()
        best = min(best, time.process_time() - c)
    return {"libvips": pyvips.version(0) * 10000 + pyvips.version(1) * 100 + pyvips.version(2), "jpegs": len(datas),
            "vips": best / len(datas) * 1000}


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.sources)
    make_sources(folder)
    out = _vips(folder, args.passes)
    if args.pillow_python:
        proc = subprocess.run([args.pillow_python, "-c", _PILLOW, str(folder), str(args.passes)], check=True,
                              capture_output=True, text=True)
        out.update(json.loads(proc.stdout))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passes", type=int, default=3, help="passes over the JPEGs; the best is kept (default 3)")
    p.add_argument("--pillow-python", default="bench/.thumbor-venv/bin/python",
                   help="the interpreter with thumbor's Pillow ('' to skip Pillow)")
    p.add_argument("--sources", default="bench/results/image-sources")
    p.add_argument("--out", default="bench/results/images-decode.json")


def run_main(args: argparse.Namespace) -> int:
    if args.pillow_python and not Path(args.pillow_python).exists():
        print(f"--pillow-python {args.pillow_python} not found ('' to skip Pillow)", file=sys.stderr)
        return 2
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for key in ("vips", "pillow-draft", "pillow-fastdct"):
        if key in result:
            print(f"{key:16s} {result[key]:6.1f} ms CPU per JPEG (decode only, at the DCT scale for 800 px)")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sluicegate bench images-decode", description=(__doc__ or "").split("\n\n")[0])
    add_arguments(p)
    return run_main(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
