"""Streaming a large source into libvips as it arrives: a pipe from the event loop to the decoder's thread.

Owns: the pipe (read end handed to the engine's ``Job.stream_fd``; libvips reads it with plain ``read()``
calls, no Python per read), the pump that writes the bytes already read and then the rest of the origin's
body into it without blocking the loop (the write end is non-blocking; a full pipe is retried after a short
wait, see ``_write_all``: backpressure reaches the origin connection), or that has the rest moved into it
by the kernel (``move``: ``images.source.SourceReader.splice_into``, a plain TCP origin; a full pipe is then
left for as long as the decoder, at its measured rate, takes to read most of it: ``next_full_wait``), and
the source's own bounds while it streams: more than ``max_source_bytes`` -> 413, an origin that stalls -> 504,
a body cut short -> 502. A failure is recorded on the job (``Job.source_error``) BEFORE the pipe is closed,
so the engine, which sees the early end of the pipe as a truncated image, answers with the source's error,
never with an image made of part of a source.
Time the pump spends waiting for the decoder (a full pipe, the job queued behind other images) is not
counted against ``source_timeout``: only waiting for the origin is.
Must not know about pyvips or HTTP beyond the origin response's ``read()`` (or a ``move``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Awaitable, Callable

from sluicegate.images.job import ImageError, Job
from sluicegate.upstream.errors import OriginError

PIPE_BYTES = 1024 * 1024  # asked of the kernel (F_SETPIPE_SZ); fewer wake-ups than its default 64 KiB
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032
DECODE_BYTES_PER_SECOND = 100e6  # the slowest source reading measured (a 32 MB PNG in ~0.2 s of CPU)
# A spliced source's full pipe is left until about this share of it should have been read, at the rate the
# decoder read the pipe in the last round (bounded below by ``full_wait`` and above by ``MAX_FULL_WAIT``):
# each round then moves ~3/4 of a pipe, not the ~1/2 a fixed wait moved (docs/images.md, 2026-12-07 21:40).
DRAIN_SHARE = 0.75
MAX_FULL_WAIT = 0.02  # also the longest a pipe the decoder has not started reading (a queued job) is left
_DRY_MARGIN = 64 * 1024  # a round that moved within this of a whole pipe found it (perhaps) empty


def open_pipe() -> tuple[int, int]:
    """(read end, blocking, for libvips; write end, non-blocking, for the loop), both close-on-exec."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: the default size works too
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_BYTES)
    return r, w


def full_wait(fd: int) -> float:
    """How long to leave a full pipe before writing again: a quarter of the time the slowest decoder we
    measured (~100 MB/s of PNG) takes to empty it (2.5 ms for 1 MiB; 0.16 ms for the default 64 KiB)."""
    try:
        size = fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        size = 64 * 1024
    return max(size / DECODE_BYTES_PER_SECOND / 4, 0.0001)


async def _write_all(fd: int, data: bytes | bytearray | memoryview, full_wait: float) -> None:
    """Raises ``BrokenPipeError`` when the decoder has stopped reading (done, or failed).

    A full pipe is retried after ``full_wait``, not when it turns writable: the kernel reports a pipe
    writable as soon as one page is free, and libvips reads 4 KiB at a time, so waiting for writability
    woke the loop for every page (8 000 times for a 32 MB PNG: ~13 ms of the loop's CPU per image on
    average over the benchmark's sources). ``full_wait`` is well under the time the decoder takes to empty
    a full pipe, so it never starves.
    """
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await asyncio.sleep(full_wait)
            continue
        view = view[n:]


def _pipe_size(fd: int) -> int:
    try:
        return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))
    except OSError:
        return 64 * 1024


def next_full_wait(moved: int, since_full: float | None, last: float, base: float, pipe_size: int) -> float:
    """How long to leave a pipe found full again: ``moved`` bytes went in after ``since_full`` seconds since
    it was last found full (None: the first time), i.e. the decoder read them meanwhile. Waits until about
    ``DRAIN_SHARE`` of the pipe should have been read at that rate (at least ``base``, at most
    ``MAX_FULL_WAIT``); a decoder that read nothing (a job still queued) doubles the last wait. A pipe read
    (nearly) empty may have run dry: its rate is only a lower bound, so the next wait is ``base`` again (a
    decoder that starts after a long wait, or speeds up, is starved for one round at most)."""
    if since_full is None or moved >= pipe_size - _DRY_MARGIN:
        return base
    if moved <= 0:
        return min(max(last * 2, base), MAX_FULL_WAIT)
    rate = moved / max(since_full, 1e-4)
    return min(max(DRAIN_SHARE * pipe_size / rate, base), MAX_FULL_WAIT)


async def pump(job: Job, write_fd: int, first: bytearray, read: Callable[[], Awaitable[bytes | memoryview]],
               max_bytes: int, source_timeout: float, remaining: float,
               move: Callable[[int, float], Awaitable[tuple[int, bool]]] | None = None,
               arrived: Callable[[], int] | None = None) -> None:
    """Write ``first`` and then every chunk ``read()`` returns into the pipe; close it at the end.

    With ``move`` (``SourceReader.splice_into``), the rest is moved into the pipe by the kernel instead:
    ``move(fd, timeout)`` returns how many bytes it moved and whether it stopped at a full pipe (then the
    pump waits for the decoder: ``next_full_wait``); (0, False) at the end of the body (the body's length
    was checked against ``max_source_bytes`` before, and a move never passes it); it waits for the origin
    at most ``timeout`` (what is left of ``source_timeout``; ``TimeoutError``), and a round that does not
    wait for it arms no timer.
    ``remaining`` is what is left of ``source_timeout`` for the origin; ``arrived()`` (with ``move``) the
    bytes of the body the origin has sent so far, for the stall's message. Never raises for the source's
    failures (they go to ``job.source_error``); cancelled, it closes the pipe (the decoder then fails).
    """
    wait = full_wait(write_fd)
    got = len(first)
    size = _pipe_size(write_fd) if move is not None else 0
    nap = wait
    full_at: float | None = None  # when a move last found the pipe full
    try:
        await _write_all(write_fd, first, wait)
        del first
        while True:
            t0 = time.monotonic()
            try:
                if move is not None:
                    moved, full = await move(write_fd, max(remaining, 0.001))
                else:
                    async with asyncio.timeout(max(remaining, 0.001)):
                        chunk = await read()
            except TimeoutError:
                if arrived is not None:
                    got = arrived()
                job.source_error = ImageError(504, "source_timeout", f"the origin stalled: {got} bytes of the image "
                                              f"in {source_timeout:g} s (image_optimizer.source_timeout)")
                return
            except OriginError as exc:
                job.source_error = ImageError(502, "source_cut", f"the origin's image ended early after {got} "
                                              f"bytes ({exc.kind})")
                return
            now = time.monotonic()
            remaining -= now - t0
            if move is not None:
                got += moved
                if full:  # waiting for the decoder is not the origin's time
                    nap = next_full_wait(moved, None if full_at is None else t0 - full_at, nap, wait, size)
                    full_at = now
                    await asyncio.sleep(nap)
                elif moved == 0:
                    return
                else:
                    full_at = None  # the socket ran dry: the next full pipe starts a new estimate
                continue
            if not chunk:
                return
            got += len(chunk)
            if got > max_bytes:
                job.source_error = ImageError(413, "too_large", f"the origin's image is over {max_bytes} bytes "
                                              "(image_optimizer.max_source_bytes)")
                return
            await _write_all(write_fd, chunk, wait)
    except OSError:  # EPIPE: the decoder is done with the source (an image made, or refused from its header)
        return
    finally:
        os.close(write_fd)
