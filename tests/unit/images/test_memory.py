"""Freed heap given back after an image (images/memory.py) and when the pool does it (release_memory)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from sluicegate.images import memory
from sluicegate.images.engine import Job
from sluicegate.images.pool import ImagePool
from tests.support.images import photo

FRAGMENTED = r"""
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.mallopt(-3, 128 * 1024)  # as the engine sets it: blocks below 128 KiB come from the arenas

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

base = rss()
blocks = [bytes(64 * 1024) for _ in range(1600)]  # 100 MiB of heap, like an image's strips and buffers
pins = blocks[::16]  # a few stay alive between the freed ones: the heap's top cannot simply shrink
del blocks
import gc; gc.collect()
before = rss()
from sluicegate.images import memory
assert memory.release_after_image() is True
print(base, before, rss())
"""


def test_release_after_image_returns_freed_pages_from_the_middle_of_the_heap() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    out = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    base, before, after = map(int, out.stdout.split())
    # tens of MiB freed but kept resident by glibc (between live blocks): the trim gives most of it back
    assert before - base > 40 and before - after > (before - base) / 2, (base, before, after)


def job(source: bytes, **kw: Any) -> Job:
    opts: dict[str, Any] = {"width": 400, "height": 0, "fit": "contain", "crop": "centre", "quality": 80,
                            "format": "webp", "auto": False, "max_pixels": 64_000_000, "max_aspect": 32.0,
                            "timeout": 30.0}
    opts.update(kw)
    return Job(source, **opts)


async def _trims_after_idle(before: int, pool: ImagePool) -> int:
    """The trims since ``before`` once the pool has been idle well past ``TRIM_AFTER``."""
    await asyncio.sleep(pool.TRIM_AFTER * 3)
    for _ in range(50):  # the trim itself runs in a pool thread
        if memory.trims > before:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    return memory.trims - before


@pytest.mark.parametrize(("mode", "expected"), [("image", 3), ("idle", 1), ("off", 0)])
async def test_one_image_after_another_each_mode(mode: str, expected: int) -> None:
    """Three images back to back: "image" trims after each; "idle" not between them (the pool is idle for
    a moment only, well under TRIM_AFTER) but once, after the last (nothing left behind); "off" never."""
    pool = ImagePool(workers=1, queue=0, release_memory=mode)
    src = photo(1200, 900)
    before = memory.trims
    for _ in range(3):
        ticket = pool.admit()
        assert ticket is not None
        assert (await pool.run(ticket, job(src))).width == 400
        if mode == "idle":
            assert memory.trims == before  # not between images
    assert await _trims_after_idle(before, pool) == expected
    assert pool._pending == 0
    pool.close()


async def test_idle_waits_for_the_last_pending_image() -> None:
    """Three images handed over at once to one thread: only the last one's end finds the pool idle."""
    pool = ImagePool(workers=1, queue=2, release_memory="idle")
    src = photo(1600, 1200)
    tickets = [pool.admit() for _ in range(3)]
    before = memory.trims
    results = await asyncio.gather(*(pool.run(t, job(src)) for t in tickets if t is not None))
    assert [r.width for r in results] == [400, 400, 400]
    assert await _trims_after_idle(before, pool) == 1 and pool._pending == 0
    pool.close()


async def test_a_job_dropped_from_the_queue_does_not_keep_the_pool_busy() -> None:
    pool = ImagePool(workers=1, queue=1, release_memory="idle")
    a, b = pool.admit(), pool.admit()
    assert a is not None and b is not None
    first = asyncio.ensure_future(pool.run(a, job(photo(3000, 2000, fmt="png"), format="avif")))
    second = asyncio.ensure_future(pool.run(b, job(photo(800, 600))))
    await asyncio.sleep(0.02)
    second.cancel()  # still waiting for the thread: dropped, never run
    with pytest.raises(asyncio.CancelledError):
        await second
    before = memory.trims
    assert (await first).width == 400
    for _ in range(100):
        if pool.admitted == 0:
            break
        await asyncio.sleep(0.02)
    assert pool._pending == 0 and pool.admitted == 0
    assert await _trims_after_idle(before, pool) == 1  # the pool was idle after the first image: its heap went back
    pool.close()


async def test_idle_trim_after_a_cancelled_last_image() -> None:
    """The last image's request went away while libvips still worked on it: when the thread is done, the
    idle trim still comes (nobody is left waiting on the loop to arm it)."""
    pool = ImagePool(workers=1, queue=0, release_memory="idle")
    ticket = pool.admit()
    assert ticket is not None
    before = memory.trims
    task = asyncio.ensure_future(pool.run(ticket, job(photo(3000, 2000, fmt="png"), format="avif")))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if pool.admitted == 0:
            break
        await asyncio.sleep(0.02)
    assert pool.admitted == 0
    assert await _trims_after_idle(before, pool) == 1
    pool.close()


THRESHOLD = r"""
import asyncio, ctypes, sys
from sluicegate.images.job import Job
from sluicegate.images.pool import ImagePool
from tests.support.images import photo

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def mapped(size):  # is a block of this size mapped on its own (over the mmap threshold)?
    before = libc.mallinfo2().hblks
    p = libc.malloc(size)
    after = libc.mallinfo2().hblks
    libc.free(p)
    return after - before

async def main(threshold):
    pool = ImagePool(1, 0, mmap_threshold=threshold)
    job = Job(photo(400, 300), 200, 0, "contain", "centre", 80, "webp", False, 64_000_000, 32.0, 30.0)
    assert (await pool.run(pool.admit(), job)).width == 200
    print(mapped(512 * 1024), mapped(8 * 1024 * 1024))

asyncio.run(main(int(sys.argv[1])))
"""


@pytest.mark.parametrize(("threshold", "expected"), [(128 * 1024, "1 1"), (1024 * 1024, "0 1")])
def test_the_pool_sets_the_configured_mmap_threshold(threshold: int, expected: str) -> None:
    """``malloc_mmap_threshold`` reaches glibc once the engine is loaded: a 512 KiB block is mapped on its own
    at the default 128 KiB, and comes from the heap (kept for reuse) at 1 MiB."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    out = subprocess.run([sys.executable, "-c", THRESHOLD, str(threshold)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == expected.split(), out.stdout
