"""The "uvicorn" serving core of a worker (``[server] http_core = "uvicorn"``): uvicorn with our protocol.

Owns ``WorkerServer`` (uvicorn's server with the ready pipe and our drain: stop accepting, tell the
supervisor, let in-flight requests finish for ``shutdown_timeout``, then cancel the rest) and the uvicorn
configuration (``h1guard`` protocol, our TLS context, the WebSocket tunnel), and ``UvicornCore``, the same
server with the native core's interface, run on the caller's loop (a worker's, or one process's:
``server.single``). Imported by ``server.worker`` only when this core is chosen: the default native core never
loads uvicorn (or click).
Must not know about other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from sluicegate.server.worker import EXIT_ABORTED

log = logging.getLogger("sluicegate.worker")


class WorkerServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready_fd: int) -> None:
        super().__init__(config)
        self.ready_fd = ready_fd
        self.aborted = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.ready_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"R")

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the captured signal after serving (dying by it); a worker exits with its own code.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handle_exit)
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        if self.ready_fd >= 0:  # tell the supervisor we no longer accept (a reload waits for it)
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"D")
                os.close(self.ready_fd)
            self.ready_fd = -1
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after their response
        busy = len(self.server_state.tasks)
        if busy:
            log.info("worker %d: draining %d in-flight request(s), up to %gs", os.getpid(), busy,
                     self.config.timeout_graceful_shutdown or 0)
        try:
            await asyncio.wait_for(self._wait_tasks_to_complete(), timeout=self.config.timeout_graceful_shutdown)
        except TimeoutError:
            self.aborted = len(self.server_state.tasks)
            log.error("worker %d: shutdown_timeout reached: aborting %d in-flight request(s)", os.getpid(),
                      self.aborted)
            for task in self.server_state.tasks:
                task.cancel(msg="shutdown_timeout reached")
            for connection in list(self.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            await asyncio.sleep(0)
        if not self.force_exit:
            await self.lifespan.shutdown()


class UvicornCore:
    """``WorkerServer`` with the interface of the native core (``server.h1.serve.NativeServer``): ``started``,
    ``stop()``, ``early_signal``, ``await serve(sock)`` -> the exit code; run on the caller's event loop."""

    def __init__(self, server: WorkerServer) -> None:
        self.server = server

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    def stop(self) -> None:
        """Stop accepting now, then drain (uvicorn checks its flags every 0.1 s); called again, stop waiting.
        From the event loop's thread."""
        for server in self.server.servers:
            server.close()
        if self.server.should_exit:
            self.server.force_exit = True
        self.server.should_exit = True

    def early_signal(self, signum: int, frame: Any) -> None:
        self.server.handle_exit(signum, frame)

    async def serve(self, sock: socket.socket) -> int:
        await self.server.serve(sockets=[sock])
        if not self.server.started:
            return 1
        return EXIT_ABORTED if self.server.aborted else 0


def uvicorn_server(app: Any, settings: Any, ready_fd: int) -> WorkerServer:
    """The uvicorn core for ``app``, configured from ``settings``. Raises ``server.tls.TlsProblem``."""
    srv = settings.server
    from sluicegate.server.h1guard import guarded_protocol
    from sluicegate.server.h2 import Http2Switch
    from sluicegate.server.tls import ALPN_H2, server_context

    http2 = Http2Switch.from_settings(app, settings)  # [server] http2: ALPN h2 / h2c prior knowledge

    ws: Any = "none"  # upgrades on publisher routes: our frame-aware tunnel (publisher.websocket)
    if app.websocket is not None:
        from sluicegate.publisher.websocket import tunnel_protocol

        ws = tunnel_protocol(app.websocket)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=guarded_protocol(settings.timeouts.client_header, http2),  # httptools, head deadline, h2 hand-over
        lifespan="on",
        access_log=False,  # ours: server.observe (one line per request, both faces)
        server_header=False,
        date_header=False,  # the origin's Date passes through; two Date headers would be invalid
        proxy_headers=False,  # forwarding headers are judged by us, against trusted_proxies
        timeout_keep_alive=max(1, round(settings.timeouts.client_keepalive)),
        timeout_graceful_shutdown=srv.shutdown_timeout,  # type: ignore[arg-type]  # a float works (wait_for)
        log_config=None,
        ws=ws,
    )
    config.load()
    # ours (TLS 1.2+, modern ciphers, ALPN h2 when served), read fresh by every worker
    config.ssl = server_context(srv, ALPN_H2 if http2 is not None else None)
    return WorkerServer(config, ready_fd)
