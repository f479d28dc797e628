"""The engine's resize: its output against ``thumbnail``'s, and its per-image peak memory on a large PNG
streamed through a pipe (how the server feeds a source over ``stream_source_above``), measured in a fresh
process: its VmHWM increase over its baseline.

Measured on the generated 12 MP PNG below: libvips' defaults (``thumbnail``'s order, vertical first, and
128-row buffers) +26.3 MiB; reduced horizontally first +13.3; with the 16-row tile height alone +8.6; both
(the engine today) +5.2 (docs/images.md, "Memory").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.images import photo

# Over the measured +5.2 MiB by half again (allocator noise); losing either change goes over it.
PEAK_BOUND_MIB = 8.0

_CHILD = r"""
import ctypes, json, os, sys, threading
from sluicegate.images import engine
from sluicegate.images.job import Job
import pyvips
pyvips.concurrency_set(1)  # the pool's default (image_optimizer.vips_concurrency)
path = sys.argv[1]

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])  # kB

def make(path):
    r, w = os.pipe()
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    def feed():
        with open(w, "wb") as out, open(path, "rb") as src:
            while block := src.read(256 * 1024):
                out.write(block)
    feeder = threading.Thread(target=feed)
    feeder.start()
    job = Job(head, width=800, height=0, fit="contain", crop="centre", quality=80, format="webp", auto=False,
              max_pixels=100_000_000, max_aspect=32.0, timeout=60.0, stream_fd=r)
    try:
        return engine.process(job)
    finally:
        job.close_stream()
        feeder.join()

make(sys.argv[2])  # warm: libvips' types, the codecs' tables, the threads
ctypes.CDLL("libc.so.6").malloc_trim(0)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS
base = status("VmRSS")
result = make(path)
print(json.dumps({"peak_kib": status("VmHWM") - base, "width": result.width, "height": result.height,
                  "tile_height_set": engine.TILE_HEIGHT_SET}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc (VmHWM reset)")
def test_large_png_streamed_peak_memory_stays_low(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(photo(4032, 3024, fmt="png"))  # 12 MP, RGB, 8-bit: the benchmark's largest PNG's shape
    small = tmp_path / "small.png"
    small.write_bytes(photo(1200, 900, fmt="png"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[3] / "src"), *sys.path]))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(big), str(small)], capture_output=True, text=True,
                         timeout=120, env=env, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["width"], got["height"]) == (800, 600)
    assert got["tile_height_set"], "libvips' tile height could not be set (vips_add_option_entries missing?)"
    peak_mib = got["peak_kib"] / 1024
    assert peak_mib < PEAK_BOUND_MIB, f"a 12 MP PNG took +{peak_mib:.1f} MiB while it was made"


@pytest.mark.parametrize(("size", "fmt"), [((2400, 1600), "png"), ((3000, 2000), "jpeg"), ((1000, 1500), "png")])
def test_resize_passes_called_directly_give_thumbnails_bytes(size: tuple[int, int], fmt: str) -> None:
    """Below a factor of 4 the engine calls ``resize``'s passes itself, not ``thumbnail``: the same bytes."""
    import pyvips  # type: ignore[import-untyped]

    from sluicegate.images.engine import Job, jpeg_plan, process

    src = photo(*size, fmt=fmt)
    job = Job(src, width=800, height=600, fit="contain", crop="centre", quality=80, format="webp", auto=False,
              max_pixels=100_000_000, max_aspect=32.0, timeout=30.0)
    shrink, out_w, out_h = jpeg_plan(job, *size, 1)
    if fmt == "png":  # what the engine did before: thumbnail_source, one scale for both axes
        ref = pyvips.Image.thumbnail_buffer(src, 800, height=600, size="down")
    else:  # the DCT-shrunk decode, then thumbnail to the full-size decode's size
        ref = pyvips.Image.jpegload_buffer(src, shrink=shrink).thumbnail_image(out_w, height=out_h, size="force")
    got = process(job)
    assert (got.width, got.height) == (ref.width, ref.height) == (out_w, out_h)
    assert got.body == bytes(ref.webpsave_buffer(Q=80, effort=2, keep="none"))


def test_horizontal_first_is_thumbnails_image_to_rounding() -> None:
    """A factor >= 4 is reduced horizontally first: not the same bytes as ``thumbnail``, the same picture."""
    import pyvips

    from sluicegate.images.engine import Job, process

    src = photo(4032, 3024, fmt="png")
    got = process(Job(src, width=800, height=0, fit="contain", crop="centre", quality=80, format="png",
                      auto=False, max_pixels=100_000_000, max_aspect=32.0, timeout=30.0))
    ref = pyvips.Image.thumbnail_buffer(src, 800, height=10_000_000, size="down").copy_memory()
    out = pyvips.Image.new_from_buffer(got.body, "")
    assert (out.width, out.height) == (ref.width, ref.height) == (800, 600)
    diff = (out.cast("double") - ref.cast("double")).abs().copy_memory()
    # lossless PNG out: only the intermediate rounding differs (measured max 2, mean 0.08; a linear kernel
    # instead of Lanczos3: max 11, mean 0.62)
    assert diff.max() <= 4 and diff.avg() < 0.2
