"""Child process of the ``inference`` and ``translate`` suites: the inference face alone under uvicorn, one worker.

Run by file path with ``-P`` (``python -P <PATH> --port P --settings JSON``: this directory must not shadow
the standard library, ``suites/html.py``), never as ``-m``, and importing nothing from ``sluicegate.bench``:
with ``PYTHONPATH=<another tree>/src`` it serves that tree's gateway, which is how the suites compare
before/after side by side. ``BENCH_PIN_CPU=N`` pins it to core N. ``BENCH_HTTP_CORE=native`` serves it with the
native HTTP/1.1 core (``server.h1``) instead of uvicorn (the serving cores side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
from pathlib import Path

PATH = str(Path(__file__).resolve())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--settings", required=True, help="the settings document as JSON")
    args = ap.parse_args(argv)

    import uvicorn

    from sluicegate.config.model import Settings

    try:
        from sluicegate.inference.app import InferenceApp as Gateway
    except ImportError:  # a tree from before the inference face was split
        from sluicegate.inference.gateway import InferenceGateway as Gateway  # type: ignore[no-redef,import-not-found]

    if os.environ.get("BENCH_PIN_CPU"):
        os.sched_setaffinity(0, {int(os.environ["BENCH_PIN_CPU"])})
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    settings = Settings.model_validate(json.loads(args.settings))
    if os.environ.get("BENCH_HTTP_CORE") == "native":
        _serve_native(Gateway(settings), args.port)
        return
    uvicorn.run(Gateway(settings), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                lifespan="on", log_level="warning", access_log=False, backlog=4096, timeout_keep_alive=30,
                proxy_headers=False)


def _serve_native(app: object, port: int) -> None:
    import socket

    import uvloop

    from sluicegate.server.h1.protocol import ServerState
    from sluicegate.server.h1.serve import NativeServer

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    state = ServerState(app, header_timeout=20.0, keepalive_timeout=30.0, head_limit=128 * 1024)
    uvloop.run(NativeServer(state, ready_fd=-1, shutdown_timeout=1.0, ssl_context=None).serve(sock))


if __name__ == "__main__":
    main()
