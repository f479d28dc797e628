"""The bounded image worker pool: a few threads per sluicegate worker process, admission before any fetch.

Owns: the capacity (``workers`` busy + ``queue`` waiting), taken by ``admit()`` BEFORE the source is read so
that memory is bounded by ``(workers + queue) x max_source_bytes`` however many requests arrive (no slot:
the caller answers 503 with Retry-After at once); running ``engine.process`` off the event loop; the slot
held until the thread really finishes (a timed-out or abandoned image still occupies its worker until
libvips has stopped it, so the pool never runs more than ``workers`` images); cancelling an image whose
request went away. Threads, not processes: libvips releases the GIL for the whole decode/resize/encode, and
a thread shares one copy of libvips (docs/images.md has the measurement).
Must not know about HTTP or the origin.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
import time

from sluicegate.images import memory
from sluicegate.images.job import ImageError, Job, Result

_engine_lock = threading.Lock()
_engine_concurrency: int | None = None
_engine_mmap_threshold = 128 * 1024  # what the engine sets when it loads


def _process(job: Job, vips_concurrency: int, pool: ImagePool) -> Result:
    """``engine.process`` in the pool thread; the first call loads the engine (libvips) here, not on the
    event loop and not at build time (the supervisor builds the app to check a config: it must not carry
    libvips). When the image is done, its freed heap goes back to the system at once with
    ``release_memory = "image"`` (``"idle"``: ``ImagePool._arm_trim``)."""
    global _engine_concurrency, _engine_mmap_threshold
    try:
        from sluicegate.images import engine

        if _engine_concurrency != vips_concurrency or _engine_mmap_threshold != pool.mmap_threshold:
            with _engine_lock:
                import pyvips  # type: ignore[import-untyped]

                pyvips.concurrency_set(vips_concurrency)
                _engine_concurrency = vips_concurrency
                if _engine_mmap_threshold != pool.mmap_threshold:
                    engine.bound_malloc(pool.mmap_threshold)
                    _engine_mmap_threshold = pool.mmap_threshold
        return engine.process(job)
    finally:
        pool._finished()
        if pool.release_memory == "image":
            memory.release_after_image()


def _settle(waiter: asyncio.Future[Result], future: concurrent.futures.Future[Result]) -> None:
    """On the loop: the thread's outcome to the request waiting for it (unless it stopped waiting)."""
    if waiter.done():
        return
    if future.cancelled():
        waiter.cancel()
    elif (exc := future.exception()) is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(future.result())


def _trim_if_idle(pool: ImagePool) -> None:
    """In a pool thread: the idle trim, unless an image came in since it was decided."""
    if pool._pending == 0:
        memory.release_after_image()


def _cancel(job: Job) -> None:
    """Stop ``job``'s image now if it is being computed; the engine's watchdog (loaded with the engine, by
    the first image) keeps flagging it until the engine lets go of it."""
    job.cancelled.set()
    job.kill()
    engine = sys.modules.get("sluicegate.images.engine")
    if engine is not None:
        engine.WATCHDOG.poke()


class Ticket:
    """One admitted image; ``release()`` is idempotent and thread-safe."""

    def __init__(self, pool: ImagePool) -> None:
        self._pool = pool
        self._released = False
        self._running = False  # handed to a thread: only its end releases the slot
        self._lock = threading.Lock()

    def abandon(self) -> None:
        """The request is over: release the slot unless a thread has (or will have) the image."""
        if not self._running:
            self.release()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._pool._free()


class ImagePool:
    # ``release_memory = "idle"``: the heap goes back once no image has been running or waiting for this long.
    # Trimming whenever the pool happened to be empty for a moment (between two requests of a steady load)
    # cost ~0.5 ms of an image thread per image (1-3 ms per trim): docs/images.md.
    TRIM_AFTER = 0.2

    def __init__(self, workers: int, queue: int, vips_concurrency: int = 1, release_memory: str = "idle",
                 mmap_threshold: int = 128 * 1024) -> None:
        self.workers = workers
        self.mmap_threshold = mmap_threshold  # glibc's, set once per process (engine.bound_malloc)
        self.vips_concurrency = vips_concurrency
        self.release_memory = release_memory  # "image" | "idle" | "off": images/memory.py
        self._pending = 0  # images handed to the threads (running or waiting for one), not finished
        self._idle_since = 0.0  # when _pending last fell to 0
        self._trim_timer: asyncio.TimerHandle | None = None
        self.capacity = workers + queue
        self._lock = threading.Lock()
        self._admitted = 0
        self.rejected = 0
        self.completed = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sluicegate-image")

    @property
    def admitted(self) -> int:
        return self._admitted

    def admit(self) -> Ticket | None:
        """A slot, or None when ``workers + queue`` images are already admitted (answer 503)."""
        with self._lock:
            if self._admitted >= self.capacity:
                self.rejected += 1
                return None
            self._admitted += 1
        return Ticket(self)

    def _finished(self) -> int:
        """One image handed to the threads is done (or dropped unrun); how many are still pending."""
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle_since = time.monotonic()
            return self._pending

    def _arm_trim(self) -> None:
        """On the loop, after an image: ``"idle"`` trims once the pool has stayed idle ``TRIM_AFTER``
        seconds (in a pool thread: 1-3 ms of CPU). One timer at most; an image arriving meanwhile defers
        the trim to the end of the next idle stretch."""
        if self.release_memory != "idle" or self._trim_timer is not None or self._pending:
            return
        self._trim_timer = asyncio.get_running_loop().call_later(self.TRIM_AFTER, self._idle_trim)

    def _idle_trim(self) -> None:
        self._trim_timer = None
        if self._pending:
            return  # busy again: the image that ends this stretch arms the next timer
        left = self.TRIM_AFTER - (time.monotonic() - self._idle_since)
        if left > 0.001:  # idle again, but not for long enough yet
            self._trim_timer = asyncio.get_running_loop().call_later(left, self._idle_trim)
            return
        self._executor.submit(_trim_if_idle, self)

    def _free(self) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, ticket: Ticket, job: Job) -> Result:
        """Process ``job`` in a pool thread; the ticket is released when the thread is done with it.

        Raises ``ImageError`` (including 503 ``timeout`` from the engine's own deadline). If the awaiting
        task is cancelled (the client went away), the image is killed and the slot freed when libvips stops.
        """
        ticket._running = True
        with self._lock:
            self._pending += 1
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Result] = loop.create_future()
        waiting = [True]  # False once run() has stopped waiting (answered, timed out or cancelled)
        future = self._executor.submit(_process, job, self.vips_concurrency, self)

        def done(_f: concurrent.futures.Future[Result]) -> None:
            # in the pool thread (or here, for a job dropped from the queue): ONE hand-off to the loop
            if _f.cancelled():  # dropped from the queue: _process never ran
                self._finished()
            job.close_stream()  # a job dropped from the queue never opened its pipe
            self.completed += 1
            ticket.release()
            with contextlib.suppress(RuntimeError):  # the loop is closed (shutdown): nobody waits
                if waiting[0]:
                    loop.call_soon_threadsafe(_settle, waiter, _f)
                elif self.release_memory == "idle" and self._pending == 0:
                    loop.call_soon_threadsafe(self._arm_trim)  # an image whose request is gone was the last

        future.add_done_callback(done)
        # Waiting in the queue counts too: the engine's deadline starts when a thread takes the job, so the
        # longest wait is bounded here by the images ahead of it, plus a margin.
        limit = job.timeout * (1 + self.capacity / self.workers) + 5.0
        try:
            async with asyncio.timeout(limit):
                return await waiter
        except TimeoutError:
            _cancel(job)
            future.cancel()
            raise ImageError(
                503, "timeout", f"the image was not made within {limit:.0f} s (queue wait + image_optimizer.timeout)"
            ) from None
        except asyncio.CancelledError:
            _cancel(job)
            future.cancel()
            raise
        finally:
            waiting[0] = False
            self._arm_trim()

    def close(self) -> None:
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        self._executor.shutdown(wait=False, cancel_futures=True)
