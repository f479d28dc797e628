"""Streaming a large source into libvips as it arrives: a pipe from the event loop to the decoder's thread.

Owns: the pipe (read end handed to the engine's ``Job.stream_fd``; libvips reads it with plain ``read()``
calls, no Python per read), the pump that writes the bytes already read and then the rest of the origin's
body into it without blocking the loop (the write end is non-blocking; a full pipe waits for the decoder:
backpressure reaches the origin connection), and the source's own bounds while it streams: more than
``max_source_bytes`` -> 413, an origin that stalls -> 504, a body cut short -> 502. A failure is recorded on
the job (``Job.source_error``) BEFORE the pipe is closed, so the engine, which sees the early end of the pipe
as a truncated image, answers with the source's error, never with an image made of part of a source.
Time the pump spends waiting for the decoder (a full pipe, the job queued behind other images) is not
counted against ``source_timeout``: only waiting for the origin is.
Must not know about pyvips or HTTP beyond the origin response's ``read()``.
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


def open_pipe() -> tuple[int, int]:
    """(read end, blocking, for libvips; write end, non-blocking, for the loop), both close-on-exec."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: the default size works too
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_BYTES)
    return r, w


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _write_all(loop: asyncio.AbstractEventLoop, fd: int, data: bytes | bytearray) -> None:
    """Raises ``BrokenPipeError`` when the decoder has stopped reading (done, or failed)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await _writable(loop, fd)
            continue
        view = view[n:]


async def pump(job: Job, write_fd: int, first: bytearray, read: Callable[[], Awaitable[bytes]],
               max_bytes: int, source_timeout: float, remaining: float) -> None:
    """Write ``first`` and then every chunk ``read()`` returns into the pipe; close it at the end.

    ``remaining`` is what is left of ``source_timeout`` for the origin. Never raises for the source's
    failures (they go to ``job.source_error``); cancelled, it closes the pipe (the decoder then fails).
    """
    loop = asyncio.get_running_loop()
    got = len(first)
    try:
        await _write_all(loop, write_fd, first)
        del first
        while True:
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    chunk = await read()
            except TimeoutError:
                job.source_error = ImageError(504, "source_timeout", f"the origin stalled: {got} bytes of the image "
                                              f"in {source_timeout:g} s (image_optimizer.source_timeout)")
                return
            except OriginError as exc:
                job.source_error = ImageError(502, "source_cut", f"the origin's image ended early after {got} "
                                              f"bytes ({exc.kind})")
                return
            remaining -= time.monotonic() - t0
            if not chunk:
                return
            got += len(chunk)
            if got > max_bytes:
                job.source_error = ImageError(413, "too_large", f"the origin's image is over {max_bytes} bytes "
                                              "(image_optimizer.max_source_bytes)")
                return
            await _write_all(loop, write_fd, chunk)
    except BrokenPipeError:
        return  # the decoder is done with the source (an image made, or refused from its header)
    finally:
        os.close(write_fd)
