"""The engine on real encoded images made by libvips: sizes, formats, bounds, corrupt input, the deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from sluicegate.images.engine import ImageError, Job, process, sniff
from sluicegate.images.pool import ImagePool
from tests.support.images import photo, png_bomb, size_of


def job(source: bytes, **kw: Any) -> Job:
    opts: dict[str, Any] = {"width": 800, "height": 0, "fit": "contain", "crop": "centre", "quality": 80,
                            "format": "webp", "auto": False, "max_pixels": 64_000_000, "max_aspect": 32.0,
                            "timeout": 30.0}
    opts.update(kw)
    return Job(source, **opts)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return photo(1600, 1200)


def test_contain_keeps_ratio_and_format(jpeg: bytes) -> None:
    r = process(job(jpeg))
    assert (r.format, r.width, r.height, r.source_width, r.source_height) == ("webp", 800, 600, 1600, 1200)
    assert size_of(r.body) == ("webpload_buffer", 800, 600)


@pytest.mark.parametrize(("fmt", "loader"), [("avif", "heifload_buffer"), ("jpeg", "jpegload_buffer"),
                                             ("png", "pngload_buffer")])
def test_each_output_format(jpeg: bytes, fmt: str, loader: str) -> None:
    r = process(job(jpeg, width=320, height=320, fit="cover", format=fmt))
    assert (r.format, r.width, r.height) == (fmt, 320, 320)
    assert size_of(r.body) == (loader, 320, 320)


def test_never_enlarges() -> None:
    r = process(job(photo(400, 300)))
    assert (r.width, r.height) == (400, 300)


def test_alpha_auto_jpeg_becomes_png_explicit_jpeg_is_flattened() -> None:
    src = photo(900, 600, fmt="png", alpha=True)
    assert process(job(src, format="jpeg", auto=True)).format == "png"
    r = process(job(src, format="jpeg", auto=False))
    assert r.format == "jpeg" and size_of(r.body)[0] == "jpegload_buffer"
    assert process(job(src, format="webp")).format == "webp"


def test_metadata_is_stripped(jpeg: bytes) -> None:
    import pyvips  # type: ignore[import-untyped]

    tagged = pyvips.Image.new_from_buffer(jpeg, "").copy()
    tagged.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "secret person")
    src = bytes(tagged.jpegsave_buffer(Q=80))
    out = process(job(src, format="jpeg")).body
    assert b"secret person" not in out and b"Exif" not in out


def test_png_bomb_refused_from_the_header() -> None:
    started = time.monotonic()
    with pytest.raises(ImageError) as exc:
        process(job(png_bomb()))
    assert exc.value.status == 422 and "50000 x 50000" in exc.value.message
    assert time.monotonic() - started < 5  # the header alone was read


def test_absurd_source_aspect_ratio() -> None:
    with pytest.raises(ImageError) as exc:
        process(job(photo(6400, 40, fmt="png")))
    assert exc.value.status == 422 and "160.0:1" in exc.value.message


def test_truncated_and_corrupt_sources(jpeg: bytes) -> None:
    for broken in (jpeg[: len(jpeg) // 2], photo(800, 600, fmt="png")[:5000], jpeg[:200]):
        with pytest.raises(ImageError) as exc:
            process(job(broken))
        assert exc.value.status == 502, exc.value.message
    with pytest.raises(ImageError) as exc:
        process(job(b"<!doctype html><p>not found</p>"))
    assert exc.value.status == 502 and "not a JPEG" in exc.value.message


def test_loader_choice_is_by_magic_only() -> None:
    assert sniff(b"\xff\xd8\xff\xe0") == "jpeg" and sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert sniff(b"\0\0\0\x1cftypavif") == "heif"
    assert sniff(b"MATLAB 5.0 MAT-file") is None and sniff(b"P6\n1 1\n255\n") is None and sniff(b"") is None


def test_deadline_kills_the_image_and_the_thread_survives() -> None:
    big = photo(4000, 3000, fmt="png")
    with pytest.raises(ImageError) as exc:
        process(job(big, timeout=0.01, format="avif"))
    assert exc.value.status == 503 and exc.value.kind == "timeout"
    assert process(job(photo(640, 480))).width == 640


async def test_pool_bounds_admission_and_frees_slots() -> None:
    pool = ImagePool(workers=1, queue=1)
    a, b = pool.admit(), pool.admit()
    assert a is not None and b is not None and pool.admit() is None and pool.rejected == 1
    src = photo(1200, 900)
    results = await asyncio.gather(pool.run(a, job(src)), pool.run(b, job(src)))
    assert [r.width for r in results] == [800, 800]
    assert pool.admitted == 0
    pool.close()


async def test_cancelled_request_kills_its_image_and_frees_the_slot() -> None:
    pool = ImagePool(workers=1, queue=0)
    ticket = pool.admit()
    assert ticket is not None
    j = job(photo(4000, 3000, fmt="png"), format="avif", timeout=60)
    task = asyncio.ensure_future(pool.run(ticket, j))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert j.cancelled.is_set()
    for _ in range(200):
        if pool.admitted == 0:
            break
        await asyncio.sleep(0.05)
    assert pool.admitted == 0 and pool.admit() is not None
    pool.close()


def test_ticket_release_is_idempotent() -> None:
    pool = ImagePool(workers=1, queue=0)
    t = pool.admit()
    assert t is not None
    threads = [threading.Thread(target=t.release) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert pool.admitted == 0
    pool.close()
