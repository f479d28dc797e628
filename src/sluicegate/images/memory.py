"""Giving an image's memory back to the system when it is done (glibc), so a worker's resident set after an
image is its baseline again, not its largest image's.

libvips allocates a decode's strips, line caches and encoder buffers in many pieces below the mmap
threshold (``engine`` fixes it at 128 KiB); when the image is done they are free but scattered through the
malloc arenas, which glibc only gives back from an arena's top. Measured on the 20 benchmark sources, one
image after another in one thread: a worker's RSS after each image crept from 49 to 82 MiB without a trim,
and was back at 49-52 MiB after every image with one (``malloc_trim(0)``: returns every whole free page of
every arena, 1-3 ms on the loaded 2-core machine). The next image's peak then starts from the baseline.
``release_after_image`` is called by ``pool`` in the image's thread once the image is done (made, failed
or killed). A no-op where glibc's ``malloc_trim`` is missing (musl, macOS).
Must not know about images, libvips or HTTP.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

_lock = threading.Lock()
_trim: Any = None  # glibc's malloc_trim, False when there is none
trims = 0  # how many times the heap was trimmed (tests, diagnostics)


def _malloc_trim() -> Any:
    global _trim
    if _trim is None:
        with _lock:
            if _trim is None:
                try:
                    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                    fn = libc.malloc_trim
                    fn.argtypes = [ctypes.c_size_t]
                    fn.restype = ctypes.c_int
                    _trim = fn
                except (OSError, AttributeError):
                    _trim = False
    return _trim


def release_after_image() -> bool:
    """Return the freed heap's whole pages to the system; False where that is not possible."""
    global trims
    fn = _malloc_trim()
    if not fn:
        return False
    fn(0)  # glibc: 0 = keep no padding at the top; also walks every arena's free chunks (madvise)
    trims += 1
    return True
