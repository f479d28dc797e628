"""Running origins: a free local port, and an aiohttp.web application on its own loop in a daemon thread.

Shared by the tests (``tests/support/servers.py`` re-exports both), the benchmarks (``sluicegate.bench.lab``)
and anything else that needs a real local server for a while.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedApp:
    """Runs an aiohttp.web application on its own event loop in a daemon thread."""

    def __init__(self, app: web.Application, port: int | None = None, ssl_context: Any = None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()

        self.loop.run_until_complete(start())
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> ThreadedApp:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        fut = asyncio.run_coroutine_threadsafe(cleanup(), self.loop)
        try:
            fut.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
