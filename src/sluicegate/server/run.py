"""Running the app under uvicorn (uvloop + httptools), with N worker processes.

We bind the listening socket ourselves so TCP_NODELAY is set on it: on Linux, accepted sockets
inherit it, and asyncio/uvloop transports set it too; either way no small write waits on Nagle.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import uvicorn

from sluicegate.config import Settings


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, config_path: str | None, *, host: str, port: int, workers: int) -> None:
    if config_path:
        os.environ["SLUICEGATE_CONFIG"] = str(Path(config_path).resolve())
    if host != settings.server.host:
        os.environ["SLUICEGATE__SERVER__HOST"] = host
    if port != settings.server.port:
        os.environ["SLUICEGATE__SERVER__PORT"] = str(port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        "sluicegate.server.app:create_app",
        factory=True,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=settings.server.access_log,
        server_header=False,
        date_header=False,  # the origin's Date passes through; two Date headers would be invalid
        proxy_headers=False,  # forwarding headers are judged by us, against trusted_proxies
        workers=workers,
        timeout_keep_alive=30,
        log_level="info",
    )
    sock = bind_socket(host, port)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
