"""Running origins: a free local port, and a server on its own loop in a daemon thread (``LoopThread``; an
aiohttp.web application: ``ThreadedApp``; the raw recording origin: ``recording.RecordingOrigin``).

Shared by the tests (``tests/support/servers.py`` re-exports both), the benchmarks (``sluicegate.bench.lab``)
and anything else that needs a real local server for a while.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from abc import ABC, abstractmethod
from typing import Any, Self

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread(ABC):
    """A server on its own event loop in a daemon thread: ``start()`` returns once ``_setup`` listened,
    ``stop()`` runs ``_teardown`` on that loop, then ends the loop and the thread. Subclasses fill both."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @abstractmethod
    async def _setup(self) -> None:
        """Start listening on ``self.port`` (runs on the server's loop)."""

    @abstractmethod
    async def _teardown(self) -> None:
        """Close the server and what it holds (runs on the server's loop)."""

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported by start(), not lost in the thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start on port {self.port}")
        if self._error is not None:
            raise RuntimeError(f"{type(self).__name__} failed to start on port {self.port}") from self._error
        return self

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._teardown(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


class ThreadedApp(LoopThread):
    """Runs an aiohttp.web application on its own event loop in a daemon thread."""

    def __init__(self, app: web.Application, port: int | None = None, ssl_context: Any = None) -> None:
        super().__init__(port)
        self.app = app
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def _setup(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()

    async def _teardown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
