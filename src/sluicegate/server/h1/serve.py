"""Running the native core in a worker: lifespan, the listener, readiness and the drain.

Owns: the ASGI lifespan conversation with the app (``lifespan.startup`` before the first connection is
accepted, ``lifespan.shutdown`` after the drain; an app that returns without answering has no lifespan, one
that raises or answers ``startup.failed`` does not start), accepting on the inherited listening socket with the
worker's TLS context (``server.tls``), the ready pipe ('R' once serving, 'D' once no longer accepting),
and the drain on SIGTERM/SIGINT with ``[server] shutdown_timeout``: stop accepting, idle keep-alive
connections close at once, busy ones after their response; what is still running at the timeout is
cancelled and its connection aborted. ``NativeServer.serve`` returns the worker's exit code (0 drained,
3 some were aborted, 1 the app failed to start). A second signal during the drain ends it at once.

Must not know: the app's faces (it is any ASGI 3 app), the config model (``server.worker`` passes values).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
from typing import Any

from sluicegate.server.h1.protocol import H1Protocol, ServerState

log = logging.getLogger("sluicegate.worker")

EXIT_ABORTED = 3


class Lifespan:
    """The app's lifespan task and the two answers it gives."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            await self.app({"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}},
                           self.inbox.get, self._send)
        except Exception:
            log.exception("the ASGI app failed in its lifespan")
            self.answers.put_nowait({"type": "lifespan.failed"})
        else:  # returned without (more) answers: an app without lifespan support
            self.answers.put_nowait({"type": "lifespan.unsupported"})

    async def _send(self, message: dict[str, Any]) -> None:
        self.answers.put_nowait(message)

    async def startup(self) -> bool:
        self.task = asyncio.get_running_loop().create_task(self._run())
        self.inbox.put_nowait({"type": "lifespan.startup"})
        answer = await self.answers.get()
        if answer["type"] == "lifespan.startup.failed":
            log.error("the app failed to start: %s", answer.get("message", ""))
        return answer["type"] in ("lifespan.startup.complete", "lifespan.unsupported")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        self.inbox.put_nowait({"type": "lifespan.shutdown"})
        answer = await self.answers.get()
        if answer["type"] == "lifespan.shutdown.failed":
            log.error("the app failed to shut down: %s", answer.get("message", ""))


class NativeServer:
    def __init__(self, state: ServerState, *, ready_fd: int, shutdown_timeout: float,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.state = state
        self.ready_fd = ready_fd
        self.shutdown_timeout = shutdown_timeout
        self.ssl_context = ssl_context
        self.aborted = 0
        self.started = False
        self._exit: asyncio.Event | None = None
        self._force = False
        self._early = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def early_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT before the loop's handlers exist: drain as soon as serving starts."""
        self._early = True

    def stop(self) -> None:
        """Drain and stop, from any thread (what SIGTERM does)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._signalled)
        else:
            self._early = True

    def _signalled(self) -> None:
        assert self._exit is not None
        if self._exit.is_set():
            self._force = True
        self._exit.set()

    async def serve(self, sock: socket.socket) -> int:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._exit = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._signalled)
            except (RuntimeError, ValueError):  # not the main thread (embedded, tests): stop() ends it
                break
        if self._early:
            self._exit.set()
        lifespan = Lifespan(self.state.app)
        if not await lifespan.startup():
            return 1
        state = self.state
        server = await loop.create_server(lambda: H1Protocol(state, loop), sock=sock, ssl=self.ssl_context,
                                          backlog=2048)
        self.started = True
        self._ready(b"R")
        await self._exit.wait()
        server.close()
        with contextlib.suppress(OSError):
            sock.close()
        self._ready(b"D")  # the supervisor's reload waits for this
        await self.drain()
        if not self._force:
            await lifespan.shutdown()
        return EXIT_ABORTED if self.aborted else 0

    def _ready(self, byte: bytes) -> None:
        if self.ready_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, byte)
            if byte == b"D":
                os.close(self.ready_fd)
        if byte == b"D":
            self.ready_fd = -1

    async def drain(self) -> None:
        state = self.state
        for connection in list(state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after their response
        if state.tasks:
            log.info("worker %d: draining %d in-flight request(s), up to %gs", os.getpid(), len(state.tasks),
                     self.shutdown_timeout)
        try:
            await asyncio.wait_for(self._settled(), timeout=self.shutdown_timeout)
        except TimeoutError:
            self.aborted = len(state.tasks)
            if self.aborted:
                log.error("worker %d: shutdown_timeout reached: aborting %d in-flight request(s)", os.getpid(),
                          self.aborted)
            for task in list(state.tasks):
                task.cancel(msg="shutdown_timeout reached")
            for connection in list(state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            await asyncio.sleep(0)

    async def _settled(self) -> None:
        state = self.state
        while (state.connections or state.tasks) and not self._force:
            await asyncio.sleep(0.05)
