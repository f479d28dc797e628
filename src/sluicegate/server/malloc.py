"""The worker's C allocator settings (glibc ``mallopt``): large response buffers reused, not re-faulted per request.

Why: a relayed 200 KB body is one ~200 KB ``bytes`` (the origin's read, joined) that lives for one request. glibc
serves it from the heap's top and, when it is freed and the free top exceeds ``M_TRIM_THRESHOLD`` (128 KiB by
default), gives the memory back (``brk``); the next request grows the heap again and faults every page in anew.
Measured under wrk (2026-12-07, pt2: docs/benchmarks-publisher.md, "Per-request CPU, round 2"): ~1 ``brk`` and ~42
page faults per 200 KB request, ~445 µs of worker CPU per request, against 0 and 0 and ~160 µs with the settings
below. (Until the exchange's reference cycle was removed, short-lived garbage held the heap's top and hid this.)

What it sets, once per worker at start: ``M_MMAP_THRESHOLD`` = ``MMAP_THRESHOLD`` (blocks below it come from the
heap, not from a fresh ``mmap`` each), ``M_TRIM_THRESHOLD`` = ``TRIM_THRESHOLD`` (free memory at the heap's top
kept up to this much per worker: the bound on what this keeps beyond glibc's default). An operator's own glibc
variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``) win: with any of them set,
nothing is changed. Not glibc (musl, macOS): nothing is changed.

Must not know: requests, the config model.
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
_OPERATOR_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def tune(environ: dict[str, str] | None = None) -> str:
    """Apply the settings; returns what was done (for the worker's log): ``"set"``, or why not."""
    env = os.environ if environ is None else environ
    if any(name in env for name in _OPERATOR_VARS):
        return "left to the environment's MALLOC_* settings"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "not glibc: left as it is"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "mallopt refused the settings"
    return "set"


def trim() -> bool:
    """Give every whole free page of the heap back to the system, once (glibc ``malloc_trim(0)``); False where
    there is none. For the end of a worker's start-up: imports and the config's validation leave freed memory
    scattered through the heap (their transient objects), which ``TRIM_THRESHOLD`` would otherwise keep resident
    for the worker's life (measured: 1.1 MiB of an idle worker's 47; docs/operations.md, "Footprint")."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True
