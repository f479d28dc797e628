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
import sys
import threading

from sluicegate.images import memory
from sluicegate.images.job import ImageError, Job, Result

_engine_lock = threading.Lock()
_engine_concurrency: int | None = None
_engine_mmap_threshold = 128 * 1024  # what the engine sets when it loads


def _process(job: Job, vips_concurrency: int, pool: ImagePool) -> Result:
    """``engine.process`` in the pool thread; the first call loads the engine (libvips) here, not on the
    event loop and not at build time (the supervisor builds the app to check a config: it must not carry
    libvips). When the image is done, its freed heap goes back to the system as ``release_memory`` says."""
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
        left = pool._finished()  # images still running or waiting for a thread
        if pool.release_memory == "image" or (pool.release_memory == "idle" and left == 0):
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
    def __init__(self, workers: int, queue: int, vips_concurrency: int = 1, release_memory: str = "idle",
                 mmap_threshold: int = 128 * 1024) -> None:
        self.workers = workers
        self.mmap_threshold = mmap_threshold  # glibc's, set once per process (engine.bound_malloc)
        self.vips_concurrency = vips_concurrency
        self.release_memory = release_memory  # "image" | "idle" | "off": images/memory.py
        self._pending = 0  # images handed to the threads (running or waiting for one), not finished
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
            return self._pending

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
        future = self._executor.submit(_process, job, self.vips_concurrency, self)

        def done(_f: concurrent.futures.Future[Result]) -> None:
            if _f.cancelled():  # dropped from the queue: _process never ran
                self._finished()
            job.close_stream()  # a job dropped from the queue never opened its pipe
            self.completed += 1
            ticket.release()

        future.add_done_callback(done)
        # Waiting in the queue counts too: the engine's deadline starts when a thread takes the job, so the
        # longest wait is bounded here by the images ahead of it, plus a margin.
        limit = job.timeout * (1 + self.capacity / self.workers) + 5.0
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), limit)
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

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
