"""One worker process: the app under its serving core on a listening socket inherited from the supervisor.

Started by ``server.supervisor`` as ``python -m sluicegate.server.worker``. Owns: loading the config
snapshot it was given, telling the supervisor it is ready (one byte on a pipe, after the app's startup),
and the drain on SIGTERM/SIGINT: stop accepting, let in-flight requests finish for ``[server]
shutdown_timeout``, then cancel the rest; the exit code says which (0 drained, 3 some were aborted).
SIGHUP is the supervisor's business (reload), ignored here. The serving core is ``[server] http_core``:
"native" (``server.h1``, its own drain in ``h1.serve``) or "uvicorn" (``server.uvicorn_core``, with the
``h1guard`` protocol); both get the same app, TLS context, WebSocket tunnel and ready pipe. Building the app
(``build_app``) and the core (``serving_core``) is shared with one process (``server.single``), which serves
without a supervisor. Must not know about other workers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from typing import Any

EXIT_ABORTED = 3  # in-flight requests were cut at shutdown_timeout
EXIT_CONFIG = 2

log = logging.getLogger("sluicegate.worker")


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
    from sluicegate.server import lean

    log.debug("worker %d: lean imports %s", os.getpid(), lean.install())  # before prometheus_client and pydantic
    from sluicegate.config import ConfigError

    try:
        with open(args.config, encoding="utf-8") as f:
            settings, app = build_app(f.read(), args.label or args.config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"sluicegate worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    import uvloop

    from sluicegate.server.tls import TlsProblem

    try:
        core = serving_core(app, settings, args.ready_fd)
    except TlsProblem as exc:
        print(f"sluicegate worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sock = socket.socket(fileno=args.fd)
    log.info("worker %d: serving core %s", os.getpid(), settings.server.http_core)
    for sig in (signal.SIGINT, signal.SIGTERM):  # until the loop's own handlers are installed
        signal.signal(sig, core.early_signal)
    return int(uvloop.run(core.serve(sock)))


def build_app(text: str, label: str) -> tuple[Any, Any]:
    """The settings and the app of a serving process (a worker, or one process: ``server.single``), its
    metrics written as ``PROMETHEUS_MULTIPROC_DIR`` files. Raises ``ConfigError``, ``ValueError``."""
    from sluicegate.server import malloc

    log.debug("pid %d: malloc thresholds %s", os.getpid(), malloc.tune())  # large bodies: no re-fault per request
    from sluicegate.observability import mpvalue

    mpvalue.install()  # before any metric exists (the imports below create them)

    from sluicegate.config import load_settings_text
    from sluicegate.server.app import SluicegateApp

    settings = load_settings_text(text, label)
    return settings, SluicegateApp(settings)


def serving_core(app: Any, settings: Any, ready_fd: int = -1) -> Any:
    """``[server] http_core``'s server for ``app``, with the interface of ``server.h1.serve.NativeServer``
    (``started``, ``stop()``, ``early_signal``, ``await serve(sock)`` -> the exit code; the uvicorn one wrapped:
    ``uvicorn_core.UvicornCore``): what a worker and one process (``server.single``, no ready pipe) serve with.
    Raises ``server.tls.TlsProblem``."""
    if settings.server.http_core == "native":
        return native_server(app, settings, ready_fd)
    from sluicegate.server.uvicorn_core import UvicornCore, uvicorn_server  # uvicorn (and click) only when chosen

    return UvicornCore(uvicorn_server(app, settings, ready_fd))


def native_server(app: Any, settings: Any, ready_fd: int) -> Any:
    """The native core (``server.h1.serve.NativeServer``) for ``app``. Raises ``server.tls.TlsProblem``."""
    from sluicegate.server.h1.protocol import ServerState
    from sluicegate.server.h1.serve import NativeServer
    from sluicegate.server.h2 import Http2Switch
    from sluicegate.server.tls import ALPN_H2, server_context

    srv = settings.server
    http2 = Http2Switch.from_settings(app, settings)  # [server] http2: ALPN h2 / h2c prior knowledge
    ssl_context = server_context(srv, ALPN_H2 if http2 is not None else None)
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
    return NativeServer(state, ready_fd=ready_fd, shutdown_timeout=srv.shutdown_timeout, ssl_context=ssl_context)


if __name__ == "__main__":
    sys.exit(main())
