"""One worker process: the app under its serving core on a listening socket inherited from the supervisor.

Started by ``server.supervisor`` as ``python -m sluicegate.server.worker``. Owns: loading the config
snapshot it was given, telling the supervisor it is ready (one byte on a pipe, after the app's startup),
and the drain on SIGTERM/SIGINT: stop accepting, let in-flight requests finish for ``[server]
shutdown_timeout``, then cancel the rest; the exit code says which (0 drained, 3 some were aborted).
SIGHUP is the supervisor's business (reload), ignored here. The serving core is ``[server] http_core``:
"native" (``server.h1``, its own drain in ``h1.serve``) or "uvicorn" (``WorkerServer`` below, with the
``h1guard`` protocol); both get the same app, TLS context, WebSocket tunnel and ready pipe.
Must not know about other workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Generator
from typing import Any

import uvicorn

EXIT_ABORTED = 3  # in-flight requests were cut at shutdown_timeout
EXIT_CONFIG = 2

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate-worker")
    ap.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    ap.add_argument("--ready-fd", type=int, default=-1,
                    help="pipe: 'R' is written once serving, 'D' once no longer accepting (draining)")
    ap.add_argument("--config", required=True, help="validated config snapshot")
    ap.add_argument("--label", default="", help="the config file the snapshot came from (for messages)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    from sluicegate.observability import mpvalue

    mpvalue.install()  # before any metric exists (the imports below create them)

    from sluicegate.config import ConfigError, load_settings_text
    from sluicegate.server.app import SluicegateApp

    try:
        with open(args.config, encoding="utf-8") as f:
            settings = load_settings_text(f.read(), args.label or args.config)
        app = SluicegateApp(settings)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"sluicegate worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    srv = settings.server
    if srv.http_core == "native":
        return _serve_native(app, settings, args.fd, args.ready_fd)
    from sluicegate.server.h1guard import guarded_protocol
    from sluicegate.server.h2 import Http2Switch
    from sluicegate.server.tls import ALPN_H2, TlsProblem, server_context

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
    try:
        config.load()
        # ours (TLS 1.2+, modern ciphers, ALPN h2 when served), read fresh by every worker
        config.ssl = server_context(srv, ALPN_H2 if http2 is not None else None)
    except TlsProblem as exc:
        print(f"sluicegate worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sock = socket.socket(fileno=args.fd)
    server = WorkerServer(config, args.ready_fd)
    server.run(sockets=[sock])
    if not server.started:
        return 1
    return EXIT_ABORTED if server.aborted else 0


def _serve_native(app: Any, settings: Any, fd: int, ready_fd: int) -> int:
    import uvloop

    from sluicegate.server.h1.protocol import ServerState
    from sluicegate.server.h1.serve import NativeServer
    from sluicegate.server.h2 import Http2Switch
    from sluicegate.server.tls import ALPN_H2, TlsProblem, server_context

    srv = settings.server
    http2 = Http2Switch.from_settings(app, settings)  # [server] http2: ALPN h2 / h2c prior knowledge
    try:
        ssl_context = server_context(srv, ALPN_H2 if http2 is not None else None)
    except TlsProblem as exc:
        print(f"sluicegate worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    ws: Any = None
    if app.websocket is not None:
        from sluicegate.publisher.websocket import tunnel_protocol

        ws = tunnel_protocol(app.websocket)
    state = ServerState(
        app,
        header_timeout=settings.timeouts.client_header,
        keepalive_timeout=settings.timeouts.client_keepalive,
        head_limit=2 * settings.limits.max_request_header_bytes,  # the faces answer 431 below this
        ws_protocol=ws,
        http2=http2,  # a connection's first bytes decide: HTTP/2 (ALPN h2, h2c preface) or HTTP/1.1
    )
    server = NativeServer(state, ready_fd=ready_fd, shutdown_timeout=srv.shutdown_timeout, ssl_context=ssl_context)
    sock = socket.socket(fileno=fd)
    log.info("worker %d: serving core native (server.h1)", os.getpid())
    for sig in (signal.SIGINT, signal.SIGTERM):  # until the loop's own handlers are installed
        signal.signal(sig, server.early_signal)
    return uvloop.run(server.serve(sock))


if __name__ == "__main__":
    sys.exit(main())
