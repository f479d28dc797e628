"""Starting ``sluicegate serve``: bind the listeners here (so a busy port is one clear line, exit code 2),
then hand them to the supervisor (``server.supervisor``), which runs the workers and the admin listener.

We bind the public socket ourselves so TCP_NODELAY is set on it: on Linux, accepted sockets inherit it,
and asyncio/uvloop transports set it too; either way no small write waits on Nagle.
"""

from __future__ import annotations

import logging
import socket

from sluicegate.config import Settings
from sluicegate.config.types import parse_listen


class StartupError(Exception):
    """A problem that stops ``serve`` before anything runs: reported as one line, exit code 2."""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _bind(what: str, host: str, port: int) -> socket.socket:
    try:
        return bind_socket(host, port)
    except OSError as exc:
        shown = f"[{host}]" if ":" in host else host
        raise StartupError(f"cannot listen on {shown}:{port} ({what}): {exc.strerror or exc}") from None


def check_tls(settings: Settings) -> None:
    """The certificate and key load and match (one line, exit code 2, when they do not)."""
    from sluicegate.server.tls import TlsProblem, server_context
    from sluicegate.upstream.tls import OriginTlsProblem, client_context

    try:
        server_context(settings.server)
        if settings.publisher.ca_file:
            client_context(ca_file=settings.publisher.ca_file)
    except (TlsProblem, OriginTlsProblem) as exc:
        raise StartupError(str(exc)) from None


def serve(settings: Settings, config_path: str, text: str, *, workers: int) -> int:
    """Run until SIGTERM/SIGINT; the exit code (1 if requests were cut at shutdown). Raises ``StartupError``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_tls(settings)
    sock = _bind("server.port", settings.server.host, settings.server.port)
    admin_sock = None
    try:
        if settings.admin.listen:
            host, port = parse_listen(settings.admin.listen)
            admin_sock = _bind("admin.listen", host, port)
            admin_sock.set_inheritable(False)
    except BaseException:
        sock.close()
        raise
    from sluicegate.server.supervisor import Supervisor

    return Supervisor(config_path, text, settings, sock, admin_sock, workers).run()
