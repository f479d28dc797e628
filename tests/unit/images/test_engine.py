"""The engine on real encoded images made by libvips: sizes, formats, bounds, corrupt input, the deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from sluicegate.images.engine import WATCHDOG, ImageError, Job, process, sniff
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


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_effort_reaches_the_encoder(jpeg: bytes, fmt: str) -> None:
    """A profile's effort is the encoder's: same size and format, other bytes (WebP's effort capped at 6)."""
    low, high = (process(job(jpeg, width=320, format=fmt, effort=e)) for e in (0, 9 if fmt == "webp" else 6))
    assert (low.width, low.height, low.format) == (high.width, high.height, high.format) == (320, 240, fmt)
    assert low.body != high.body
    if fmt == "webp":
        assert process(job(jpeg, width=320, format=fmt, effort=6)).body == high.body


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
    kills = WATCHDOG.kills
    with pytest.raises(ImageError) as exc:
        process(job(big, timeout=0.01, format="avif"))
    assert exc.value.status == 503 and exc.value.kind == "timeout"
    assert WATCHDOG.kills > kills  # stopped by the watchdog mid-image, not found late after a whole encode
    assert process(job(photo(640, 480))).width == 640


def test_watchdog_is_not_woken_per_image_under_steady_load() -> None:
    """Images one after another with a deadline beyond the watchdog's next look: it looks on its own
    schedule (every LOOK s while busy and for IDLE s after), no image wakes it; a deadline before its next
    look does (the test above)."""
    src = photo(640, 480)
    process(job(src, timeout=60))
    wakes = WATCHDOG.wakes
    for _ in range(3):
        assert process(job(src, timeout=60)).width == 640
    assert WATCHDOG.wakes == wakes
    kills = WATCHDOG.kills
    with pytest.raises(ImageError):
        process(job(photo(4000, 3000, fmt="png"), timeout=0.01, format="avif"))
    assert WATCHDOG.wakes > wakes and WATCHDOG.kills > kills


def test_cancelled_job_is_killed_by_the_watchdog_without_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    # The image takes ~0.2 s on a quiet machine, less than the watchdog's default look (0.25 s): shorter looks
    # here, so that the cancel is seen mid-image however fast the machine is.
    monkeypatch.setattr(WATCHDOG, "LOOK", 0.005)
    monkeypatch.setattr(WATCHDOG, "REPEAT", 0.005)
    big = photo(4000, 3000, fmt="png")
    j = job(big, format="avif", timeout=60)
    kills = WATCHDOG.kills
    timer = threading.Timer(0.02, j.cancelled.set)  # no kill() call: only the watchdog's repeated look
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(ImageError) as exc:
        process(j)
    timer.join()
    assert exc.value.status == 503 and exc.value.kind == "cancelled"
    assert WATCHDOG.kills > kills
    # stopped within a few of the watchdog's looks
    assert time.monotonic() - t0 < 5
    assert j._target is None and not WATCHDOG._jobs


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


# ---------------------------------------------------------------- shrink-on-load and streamed sources

def _streamed(source: bytes, cut_after: int | None = None, error: ImageError | None = None,
              **kw: Any) -> Job:
    """A job whose source arrives through a real pipe (``images.stream.open_pipe``), fed by a thread."""
    import os

    from sluicegate.images.stream import open_pipe

    j = job(source[:64], **kw)
    j.stream_fd, w = open_pipe()
    os.set_blocking(w, True)
    body = source if cut_after is None else source[:cut_after]

    def feed() -> None:
        try:
            for i in range(0, len(body), 65536):
                os.write(w, body[i:i + 65536])
        except BrokenPipeError:
            pass
        finally:
            if error is not None:
                j.source_error = error  # recorded before the pipe closes, as the pump does
            os.close(w)

    threading.Thread(target=feed, daemon=True).start()
    return j


@pytest.mark.parametrize(("size", "fmt"), [((6400, 4800), "jpeg"), ((3203, 2401), "jpeg"), ((1601, 1199), "jpeg"),
                                           ((2403, 1601), "png"), ((1000, 3001), "jpeg")])
@pytest.mark.parametrize("streamed", [False, True])
def test_shrink_on_load_keeps_exact_dimensions_for_every_fit(size: tuple[int, int], fmt: str,
                                                             streamed: bool) -> None:
    """JPEG decoded at 1/8, 1/4, 1/2 (and PNG row by row) still gives exactly the profile's size."""
    src = photo(*size, fmt=fmt)
    w, h = size
    make = (lambda **kw: _streamed(src, **kw)) if streamed else (lambda **kw: job(src, **kw))
    r = process(make())  # contain, width only: the source's ratio, rounded
    assert (r.width, r.height) == (800, round(800 * h / w)), (size, r.width, r.height)
    assert size_of(r.body)[1:] == (r.width, r.height)
    r = process(make(width=320, height=320, fit="cover", crop="attention"))
    assert (r.width, r.height) == (320, 320) and size_of(r.body)[1:] == (320, 320)
    r = process(make(width=800, height=450, fit="contain"))  # inside 800 x 450, ratio kept
    assert r.width <= 800 and r.height <= 450 and (r.width == 800 or r.height == 450)
    assert abs(r.width / r.height - w / h) < 0.01 * (w / h) + 2 / min(r.width, r.height)


def test_streamed_source_made_like_a_whole_one(jpeg: bytes) -> None:
    whole = process(job(jpeg))
    streamed = process(_streamed(jpeg))
    assert (streamed.width, streamed.height, streamed.format) == (whole.width, whole.height, whole.format)
    assert streamed.body == whole.body  # the same decoder on the same bytes


def test_streamed_bomb_refused_from_the_header() -> None:
    started = time.monotonic()
    with pytest.raises(ImageError) as exc:
        process(_streamed(png_bomb()))
    assert exc.value.status == 422 and "50000 x 50000" in exc.value.message
    assert time.monotonic() - started < 5


def test_streamed_truncated_source_is_502_never_half_an_image(jpeg: bytes) -> None:
    with pytest.raises(ImageError) as exc:
        process(_streamed(jpeg, cut_after=len(jpeg) // 2))
    assert exc.value.status == 502 and "cannot be decoded" in exc.value.message
    png = photo(1200, 900, fmt="png")
    with pytest.raises(ImageError) as exc:
        process(_streamed(png, cut_after=len(png) // 2))
    assert exc.value.status == 502


def test_streamed_source_error_wins_over_what_libvips_made(jpeg: bytes) -> None:
    cut = ImageError(502, "source_cut", "the origin's image ended early after 1000 bytes")
    with pytest.raises(ImageError) as exc:
        process(_streamed(jpeg, cut_after=len(jpeg) // 3, error=cut))
    assert exc.value is cut
    too_large = ImageError(413, "too_large", "over")
    with pytest.raises(ImageError) as exc:  # the feeding side stops at the limit: its reason is the answer
        process(_streamed(jpeg, cut_after=len(jpeg) // 2, error=too_large))
    assert exc.value is too_large


def test_shrink_on_load_in_the_output_frame_of_a_rotated_jpeg() -> None:
    """EXIF orientation 6: the decode is shrunk, the size is the rotated frame's (1200 x 1600 -> 800 x 1067)."""
    import pyvips

    from sluicegate.images.engine import jpeg_plan

    tagged = pyvips.Image.new_from_buffer(photo(3200, 2400), "").copy()
    tagged.set_type(pyvips.GValue.gint_type, "orientation", 6)
    src = bytes(tagged.jpegsave_buffer(Q=85))
    assert jpeg_plan(job(src), 3200, 2400, 6) == (2, 800, 1067)
    r = process(job(src))
    assert (r.width, r.height) == (800, 1067) and size_of(r.body)[1:] == (800, 1067)
    r = process(job(src, width=800, height=450))
    assert (r.width, r.height) == (338, 450)
    r = process(job(src, width=320, height=320, fit="cover"))
    assert (r.width, r.height) == (320, 320)


def test_jpeg_plan_takes_the_largest_shrink_that_still_covers_the_target() -> None:
    from sluicegate.images.engine import jpeg_plan

    assert jpeg_plan(job(b""), 6000, 4000, 1) == (4, 800, 533)  # 1/8 would be 750 px: too few
    assert jpeg_plan(job(b""), 6400, 4800, 1) == (8, 800, 600)
    assert jpeg_plan(job(b""), 1600, 1200, 1) == (2, 800, 600)
    assert jpeg_plan(job(b""), 1599, 1200, 1) == (1, 800, 600)
    assert jpeg_plan(job(b""), 700, 500, 1) == (1, 700, 500)  # never enlarged
    cover = job(b"", width=320, height=320, fit="cover")
    assert jpeg_plan(cover, 6000, 1300, 1) == (4, 320, 320)  # the short side decides: 1300 / 4 >= 320
    assert jpeg_plan(cover, 400, 200, 1) == (1, 400, 200)


def test_small_source_cover_is_cropped_not_enlarged() -> None:
    r = process(job(photo(400, 200), width=320, height=320, fit="cover"))
    assert (r.width, r.height) == (320, 200)
