"""The image engine: source bytes + profile -> encoded image, with libvips (pyvips). Runs in a pool thread.

Owns: recognising the source by its magic bytes (JPEG, PNG, GIF, WebP, AVIF/HEIF only; a body that is none
of these is never handed to libvips, whose loaders also read CSV, Matlab, FITS...; untrusted loaders are
blocked too), the pixel and aspect-ratio bounds checked on the header before anything is decoded, the resize
(JPEG: DCT shrink-on-load then ``resize``'s passes; PNG: the header's own load, row by row; a large factor
reduced horizontally first; ``thumbnail`` for what needs it (rotation, ICC, alpha), ``thumbnail_source``
for GIF/WebP/AVIF; never an enlargement, colour-managed to sRGB, metadata stripped), libvips' buffer
height (``set_tile_height``), the encoders, and the per-image deadline (a watchdog thread
kills the computation at the deadline or when the request is cancelled; a killed or failed image raises
``ImageError`` and the thread is free for the next one).
Truncated or corrupt sources fail (``fail_on = "error"``): never a grey-filled half image.
Must not know about requests, HTTP headers beyond the status an error maps to, or the event loop.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from typing import Any

# libvips reads these once, when the library loads: no cache of operations (it would keep each source
# buffer alive), warnings not printed per image.
os.environ.setdefault("VIPS_WARNING", "0")

import pyvips  # type: ignore[import-untyped]

from sluicegate.images.job import MAGIC_KINDS, ImageError, Job, Result, sniff

__all__ = ["MAGIC_KINDS", "ImageError", "Job", "Result", "check_header", "jpeg_plan", "process", "sniff"]

# pyvips forwards every libvips message to logging, its g_info ones ("threadpool completed", "residual
# reducev", ...) at INFO: a dozen lines per image in a worker's log. Warnings and errors are kept.
logging.getLogger("pyvips").setLevel(logging.WARNING)
pyvips.cache_set_max(0)
pyvips.cache_set_max_mem(0)
pyvips.cache_set_max_files(0)
pyvips.block_untrusted_set(True)


def bound_malloc(mmap_threshold: int = 128 * 1024) -> None:
    """glibc only: buffers over ``mmap_threshold`` (``[image_optimizer] malloc_mmap_threshold``, default
    128 KiB) always come from mmap and go back to the system when freed.

    Without it glibc raises its mmap threshold after the first large free (up to 32 MiB), so a decoded
    image's buffers land in the pool threads' arenas and stay resident after the image is done: measured on
    the 20 benchmark sources with 2 threads, peak RSS 290 -> 175 MiB (docs/images.md). A larger fixed
    threshold keeps freed blocks up to it (and twice it at an arena's top) for the next image: no page
    faults and kernel zeroing for libvips' region buffers, for a higher resident set between trims.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD (fixed: no dynamic raise)
        if mmap_threshold > 128 * 1024:
            libc.mallopt(-1, mmap_threshold * 2)  # M_TRIM_THRESHOLD (glibc's 128 KiB otherwise): a top kept
        libc.mallopt(-8, 2)  # M_ARENA_MAX: two arenas, not 8 per core
    except (OSError, AttributeError):
        pass


bound_malloc()

TILE_HEIGHT = 16  # libvips' default 128; see set_tile_height


def set_tile_height(lines: int = TILE_HEIGHT) -> bool:
    """libvips' ``--vips-tile-height`` (its public ``vips_add_option_entries`` options, which only the
    ``vips`` command parses otherwise); False when the library does not export what this needs.

    The tile height sizes every buffer of a pipeline, not only tiles: a sink's strips and each sequential
    line cache (the loader's, ``shrinkv``'s, ``reducev``'s) hold ~3 x 128 rows at the image's full width by
    default. At 16: a 4032 x 3024 PNG +11.7 -> +3.5 MiB, the largest of the 20 benchmark sources 15.6 -> 8.1
    MiB, the same bytes out for all 20 and no more CPU (docs/images.md, "Memory").
    """
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:  # the loaded libvips
            path = next((line.split()[-1] for line in maps
                         if "libvips" in line and ".so" in line and "_libvips" not in line), None)
        lib = ctypes.CDLL(path) if path else None
        if lib is None or not hasattr(lib, "vips_add_option_entries"):
            return False
        lib.g_option_context_new.restype = ctypes.c_void_p
        lib.g_option_group_new.restype = ctypes.c_void_p
        lib.g_option_group_new.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_void_p] * 2
        lib.vips_add_option_entries.argtypes = [ctypes.c_void_p]
        lib.g_option_context_set_main_group.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.g_option_context_parse_strv.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.g_option_context_free.argtypes = [ctypes.c_void_p]
        lib.g_strdupv.restype = ctypes.c_void_p
        lib.g_strdupv.argtypes = [ctypes.c_void_p]
        lib.g_strfreev.argtypes = [ctypes.c_void_p]
        context = lib.g_option_context_new(None)
        group = lib.g_option_group_new(b"vips", b"vips", b"vips", None, None)
        lib.vips_add_option_entries(group)
        lib.g_option_context_set_main_group(context, group)  # the context owns the group
        args = (ctypes.c_char_p * 3)(b"sluicegate", f"--vips-tile-height={int(lines)}".encode(), None)
        argv = ctypes.c_void_p(lib.g_strdupv(args))  # the parse edits the array: give it a GLib copy
        ok = bool(lib.g_option_context_parse_strv(context, ctypes.byref(argv), None))
        lib.g_strfreev(argv)
        lib.g_option_context_free(context)
        return ok
    except (OSError, AttributeError):
        return False


TILE_HEIGHT_SET = set_tile_height()


class _Watchdog:
    """One thread that stops images at their deadline or when their request is cancelled (``Job.kill``).

    It replaces a Python ``eval`` callback in libvips' own threads (~100 calls per image, each taking the
    GIL from the event loop; the progress bookkeeping it needs, too). A kill set before libvips' sink has
    started would be cleared by it (``vips_sink_base_init``), so an image past its deadline or cancelled is
    flagged again every ``REPEAT`` seconds until the engine takes it back. The pool pokes it when it cancels
    a job; otherwise it looks every ``LOOK`` seconds while images are computed, and for ``IDLE`` seconds
    after the last one, then sleeps until the next. ``watch`` wakes it only when the new deadline comes
    before its next look: under steady load no image wakes it (one thread hand-off per image less).
    """

    REPEAT = 0.05
    LOOK = 0.25
    IDLE = 2.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jobs: dict[int, tuple[Job, float]] = {}
        self._thread: threading.Thread | None = None
        self._next_look = float("inf")  # when the thread looks next on its own (inf: not until woken)
        self.kills = 0  # images flagged (tests, diagnostics)
        self.wakes = 0  # times watch() had to wake the thread (tests, diagnostics)

    def watch(self, job: Job, deadline: float) -> None:
        with self._cond:
            self._jobs[id(job)] = (job, deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sluicegate-image-watchdog", daemon=True)
                self._thread.start()
            elif (deadline < self._next_look or job.cancelled.is_set()
                  or self._next_look > time.monotonic() + self.LOOK):
                self.wakes += 1
                self._cond.notify()

    def unwatch(self, job: Job) -> None:
        with self._cond:
            self._jobs.pop(id(job), None)

    def poke(self) -> None:
        """A job was cancelled: look now, not at the next deadline."""
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            idle_since: float | None = None
            while True:
                now = time.monotonic()
                wait: float | None = None
                for job, deadline in list(self._jobs.values()):
                    if job.cancelled.is_set() or now >= deadline:
                        if job.kill():
                            self.kills += 1
                        left = self.REPEAT
                    else:  # a cancellation is seen within LOOK even when nobody pokes
                        left = min(deadline - now, self.LOOK)
                    wait = left if wait is None else min(wait, left)
                if self._jobs:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                if wait is None and now - (idle_since or now) < self.IDLE:
                    wait = self.LOOK  # the next image's watch() need not wake us
                self._next_look = now + wait if wait is not None else float("inf")
                self._cond.wait(wait)


WATCHDOG = _Watchdog()

_LOADERS = {"jpeg": "jpegload", "png": "pngload", "gif": "gifload", "webp": "webpload", "heif": "heifload"}
UNBOUNDED_HEIGHT = 10_000_000  # thumbnail's "no height bound": the width decides


def _vips_error(exc: pyvips.Error) -> str:
    text = f"{exc.message} {exc.detail or ''}".strip()
    return " ".join(text.split())[:300]


def memory_source(data: bytes | bytearray) -> Any:
    """A libvips source reading ``data`` in place.

    The ``*_buffer`` entry points of pyvips copy their argument into a new blob on every call (a 33 MB PNG
    was held twice, and copied twice per image: once for the header, once for ``thumbnail``); a memory
    source is a view on the caller's buffer, kept alive by the source itself.
    """
    return pyvips.Source.new_from_memory(data)


def check_header(kind: str, data: bytes | bytearray, max_pixels: int, max_aspect: float,
                 source: Any = None) -> tuple[int, int, int]:
    """Width, height and EXIF orientation (1-8) from the header only (nothing decoded); bounds -> 422,
    unreadable header -> 502.

    The loader is the one ``kind`` names (never libvips' own sniffing); only the header is parsed, so a
    50 000 x 50 000 bomb is refused in milliseconds, before any pixel is decoded.
    """
    return open_header(kind, data, max_pixels, max_aspect, source)[1:]


def open_header(kind: str, data: bytes | bytearray, max_pixels: int, max_aspect: float,
                source: Any = None) -> tuple[Any, int, int, int]:
    """``check_header``, with the loaded (not yet decoded) image first: sequential, ``fail_on="error"``, at
    full scale; the engine decodes it when no shrink-on-load is wanted (one load less per image)."""
    loader = getattr(pyvips.Image, _LOADERS[kind] + "_source")
    try:
        head = loader(source if source is not None else memory_source(data), access="sequential",
                      fail_on="error")
        width = head.get("width")
        height = head.get("page-height") if head.get_typeof("page-height") else head.get("height")
        orientation = head.get("orientation") if head.get_typeof("orientation") else 1
    except pyvips.Error as exc:
        raise ImageError(502, "corrupt_source", f"the origin's image cannot be read: {_vips_error(exc)}") from exc
    if width < 1 or height < 1:
        raise ImageError(502, "corrupt_source", "the origin's image has no pixels")
    if width * height > max_pixels:
        raise ImageError(
            422,
            "too_many_pixels",
            f"the origin's image is {width} x {height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (image_optimizer.max_source_pixels); not decoded",
        )
    ratio = max(width, height) / min(width, height)
    if ratio > max_aspect:
        raise ImageError(
            422,
            "aspect_ratio",
            f"the origin's image is {width} x {height} (aspect {ratio:.1f}:1), more extreme than "
            f"{max_aspect:g}:1 (image_optimizer.max_source_aspect_ratio)",
        )
    return head, width, height, orientation if 1 <= orientation <= 8 else 1


def jpeg_plan(job: Job, width: int, height: int, orientation: int) -> tuple[int, int, int]:
    """(shrink, output width, output height) for a JPEG: the output size ``thumbnail`` would give, and the
    largest DCT shrink (1/2, 1/4, 1/8) that still decodes at least that many pixels. (A PNG gets its output
    size from it too; its shrink is not used.)

    libvips' ``thumbnail`` keeps a factor of two above the target before its final resize (a 6000 px JPEG
    for 800 px is decoded at 3000 px); libjpeg's scaled IDCT is a proper downscale, not a box filter, so
    the smallest decode that is still >= the target is enough (Pillow's ``draft``, which thumbor uses, does
    the same). The size is computed from the full-size dimensions, so a shrunk decode never changes it.
    Sizes are in the output's frame (EXIF orientation 5-8 swaps width and height).
    """
    w, h = (height, width) if orientation >= 5 else (width, height)
    if job.fit == "cover":
        scale = max(job.width / w, job.height / h)
    else:
        scale = min(job.width / w, job.height / h if job.height else job.width / w)
    if scale >= 1:  # never enlarged
        return 1, w, h
    shrink = next(k for k in (8, 4, 2, 1) if k * scale <= 1)
    if job.fit == "cover":  # decoded >= the box on both sides: thumbnail's crop gives exactly the box
        return shrink, job.width, job.height
    if scale == job.width / w:
        return shrink, job.width, max(1, int(h * scale + 0.5))
    return shrink, max(1, int(w * scale + 0.5)), job.height


def _box(job: Job) -> dict[str, Any]:
    if job.fit == "cover":
        return {"height": job.height, "crop": job.crop}
    return {"height": job.height or UNBOUNDED_HEIGHT}


def _resize(img: Any, job: Job, kind: str, out_w: int, out_h: int, orientation: int) -> Any:
    """A JPEG or PNG at its decoded size -> the output size ``jpeg_plan`` computed, like ``thumbnail``.

    ``thumbnail`` (``resize``) shrinks vertically first, so each of its line caches (the vertical box
    shrink's, the Lanczos ``reducev``'s) holds hundreds of rows at the source's full width: +23 MiB of
    libvips buffers for a 4032 x 3024 PNG. When the horizontal factor is >= 4 (``resize``'s box pre-shrink
    is >= 2: the large sources), an upright 8-bit image without alpha is first reduced horizontally (the
    same kernel and gap ``resize`` uses), row by row with no cache, so the vertical caches hold rows of the
    output's width (+11 MiB, most of it the loader's own line cache). Below 4 the order stays ``resize``'s
    (``reduceh`` on every source row cost up to +20 % of the resize's CPU there). With no rotation and no
    ICC profile ``resize``'s two passes are called directly, not through ``thumbnail`` (~0.5 ms of CPU
    less per image; byte-identical output). Alpha (premultiplied by ``thumbnail``), EXIF orientation 5-8
    (axes swapped), 16-bit and CMYK keep ``thumbnail``. Same quality: on the 20 benchmark sources the
    two reduced horizontally first give a WebP whose PSNR against a full-size float Lanczos3 reference is
    within 0.01 dB of ``thumbnail``'s; the other 18 are byte-identical (docs/images.md, "Memory").
    """
    if job.fit == "cover":  # decoded >= the box on both sides: thumbnail's crop gives exactly the box
        return img.thumbnail_image(job.width, height=job.height, crop=job.crop, size="down")
    width, height = img.width, img.height
    if kind == "png":  # thumbnail's own scale (one for both axes), as thumbnail_source had it
        hshrink = vshrink = 1.0 / min(job.width / width, (job.height or UNBOUNDED_HEIGHT) / height)
    else:  # the JPEG's decode may differ from the full size's ratio by a pixel's rounding
        hshrink, vshrink = 1.0 / (out_w / width), 1.0 / (out_h / height)
    reduced = False
    if orientation < 5 and img.format == "uchar" and img.bands in (1, 3):
        if hshrink >= 4.0:  # resize's box pre-shrink (gap 2) is >= 2: this is where its caches are large
            img, reduced = img.reduceh(hshrink, gap=2.0, kernel="lanczos3"), True
        if orientation == 1 and not img.get_typeof("icc-profile-data"):
            # nothing else for thumbnail to do (no rotation, no colour management): resize's own passes,
            # without the ~0.5 ms of CPU building thumbnail's pipeline costs
            if out_h < height:
                img = img.reducev(vshrink, gap=2.0, kernel="lanczos3")
            if out_w < img.width:
                img = img.reduceh(hshrink, gap=2.0, kernel="lanczos3")
            if img.width == out_w and img.height == out_h:
                return img
    if kind == "png" and not reduced:
        return img.thumbnail_image(job.width, size="down", **_box(job))
    # exactly the full-size decode's size (a JPEG's shrunk one may differ by a pixel's rounding)
    return img.thumbnail_image(out_w, height=out_h, size="force")


def _encode(img: Any, fmt: str, quality: int, effort: int) -> bytes:
    if fmt == "webp":
        return bytes(img.webpsave_buffer(Q=quality, effort=min(effort, 6), keep="none"))
    if fmt == "avif":
        return bytes(img.heifsave_buffer(Q=quality, compression="av1", effort=effort, keep="none"))
    if fmt == "jpeg":
        return bytes(img.jpegsave_buffer(Q=quality, optimize_coding=True, keep="none", interlace=True))
    return bytes(img.pngsave_buffer(compression=6, keep="none"))


def process(job: Job) -> Result:
    """Decode, resize and encode one image; raises ``ImageError``. Called in a pool thread."""
    job.started = time.monotonic()
    if job.cancelled.is_set():
        raise ImageError(503, "cancelled", "image request cancelled before it started")
    kind = sniff(job.source)
    if kind is None:
        raise ImageError(
            502, "not_an_image", "the origin's body is not a JPEG, PNG, GIF, WebP or AVIF image (first bytes: "
            f"{bytes(job.source[:8]).hex()})"
        )
    if job.stream_fd >= 0:
        with job._fd_lock:
            # libvips reads its own duplicate of the descriptor (closed when the source is freed)
            source = pyvips.Source.new_from_descriptor(job.stream_fd) if job.stream_fd >= 0 else None
        job.close_stream()
        if source is None:
            raise ImageError(503, "cancelled", "image request cancelled before it started")
    else:
        source = memory_source(job.source)
    try:
        head, src_w, src_h, orientation = open_header(kind, job.source, job.max_pixels, job.max_aspect, source)
    except ImageError:
        if job.source_error is not None:
            raise job.source_error from None
        raise
    deadline = job.started + job.timeout
    try:
        # shrink-on-load from the same source: JPEG decoded at 1/2, 1/4 or 1/8 (the largest shrink that
        # still leaves >= the target), WebP/AVIF at their scale, PNG/GIF row by row (sequential); never a
        # full-size intermediate in memory
        if kind in ("jpeg", "png"):
            shrink, out_w, out_h = jpeg_plan(job, src_w, src_h, orientation)
            if kind == "jpeg" and shrink > 1:
                img = pyvips.Image.jpegload_source(source, shrink=shrink, access="sequential", fail_on="error")
            else:  # the header's load is the decode (one load less)
                img = head
            del head
            img = _resize(img, job, kind, out_w, out_h, orientation)
        else:
            del head
            # fail_on as a thumbnail option is not passed on to a shrink-on-load loader; as the loader's
            # own option string it is (a truncated source then fails instead of coming out grey-filled).
            img = pyvips.Image.thumbnail_source(source, job.width, size="down", option_string="fail_on=error",
                                                **_box(job))
        fmt = job.format
        if img.hasalpha() and fmt == "jpeg":
            if job.auto:
                fmt = "png"
            else:
                img = img.flatten(background=[255, 255, 255])
        if img.interpretation in ("rgb16", "grey16"):
            img = img.colourspace("srgb" if img.bands >= 3 else "b-w")

        # the deadline and the cancellation stop the image through the watchdog thread (``_Watchdog``):
        # no Python callback in libvips' threads while it computes
        job.computing(img)
        WATCHDOG.watch(job, deadline)  # a job cancelled before this is flagged by its first look
        try:
            body = _encode(img, fmt, job.quality, job.effort)
        finally:
            WATCHDOG.unwatch(job)
            job.computing(None)
        out_w, out_h = int(img.width), int(img.height)
    except pyvips.Error as exc:
        if job.source_error is not None:
            raise job.source_error from None
        if job.cancelled.is_set():
            raise ImageError(503, "cancelled", "image request cancelled") from exc
        if time.monotonic() > deadline:
            raise ImageError(
                503, "timeout", f"making the image took longer than {job.timeout:g} s (image_optimizer.timeout)"
            ) from exc
        raise ImageError(502, "corrupt_source", f"the origin's image cannot be decoded: {_vips_error(exc)}") from exc
    if job.source_error is not None:
        raise job.source_error
    if time.monotonic() > deadline:
        raise ImageError(
            503, "timeout", f"making the image took longer than {job.timeout:g} s (image_optimizer.timeout)"
        )
    return Result(body, fmt, out_w, out_h, src_w, src_h)
