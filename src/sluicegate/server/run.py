"""Starting ``sluicegate serve``: bind the listeners here (so a busy port is one clear line, exit code 2),
then hand them to the supervisor (``server.supervisor``), which runs the workers and the admin listener, or
with ``[server] supervisor = false`` to one process (``server.single``), which serves the app itself.
The config was validated, built and its TLS files loaded by ``server.configcheck`` (a child) before this
runs: the supervisor never imports the config model (one process does: it builds and serves the app).

We bind the public socket ourselves so TCP_NODELAY is set on it: on Linux, accepted sockets inherit it,
and asyncio/uvloop transports set it too; either way no small write waits on Nagle.
"""

from __future__ import annotations

import logging
import socket

from sluicegate.server.supervisor_view import SupervisorView

HANDOVER = "SLUICEGATE_HANDOVER"  # set by server.single's re-exec: take over its sockets, do not bind


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


def serve(settings: SupervisorView, config_path: str, text: str, *, workers: int) -> int:
    """Run until SIGTERM/SIGINT; the exit code (1 if requests were cut at shutdown). Raises ``StartupError``.

    ``settings`` is the supervisor's view of a config already validated, built and TLS-checked by the child
    (``server.configcheck.check_in_child``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = _bind("server.port", settings.host, settings.port)
    admin_sock = None
    try:
        if settings.admin_listen:
            admin_sock = _bind("admin.listen", settings.admin_host, settings.admin_port)
            admin_sock.set_inheritable(False)
    except BaseException:
        sock.close()
        raise
    if not settings.supervisor:
        sock.set_inheritable(False)
        from sluicegate.server.single import OneProcess

        return OneProcess(config_path, text, settings, sock, admin_sock).run()
    from sluicegate.server.supervisor import Supervisor

    return Supervisor(config_path, text, settings, sock, admin_sock, workers).run()
