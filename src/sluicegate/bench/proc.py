"""Starting and stopping the proxy under test (for ``stream-ab`` and ``profile``): the ``serve`` command line
and readiness polling; start/stop of exactly the process group we started is ``dev.process.Proc``'s."""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import sys
import time
from pathlib import Path

from sluicegate.bench.lab.procs import free_port
from sluicegate.bench.probe import probe
from sluicegate.dev.process import Proc

__all__ = ["ServeError", "Server", "free_port", "serve_argv"]


class ServeError(Exception):
    pass


def serve_argv(config: Path, port: int, template: str | None = None) -> list[str]:
    """``sluicegate serve --config C --port P`` with this interpreter, or ``template`` with
    ``{config}``, ``{port}`` and ``{python}`` filled in."""
    if template:
        return [
            part.format(config=str(config), port=port, python=sys.executable)
            for part in shlex.split(template)
        ]
    return [sys.executable, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(port)]


class Server(Proc):
    """One proxy process in its own session (``dev.process.Proc``); its output goes to ``log``."""

    def __init__(self, argv: list[str], port: int, log: Path, name: str) -> None:
        # No admin listener: its default port (9901) would be shared by the two servers of an A/B run.
        super().__init__(name, argv, log, env={**os.environ, "SLUICEGATE__ADMIN__LISTEN": '""'})
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def log_tail(self, lines: int = 15) -> str:
        return super().log_tail(lines)

    def wait_ready(self, path: str = "/", timeout: float = 30.0) -> None:
        """Ready = accepts TCP connections, then answers one request on ``path`` with any status (that
        request may take as long as the origin does, e.g. a buffered trickling page)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    break
            except OSError:
                if time.monotonic() >= deadline:
                    raise ServeError(
                        f"{self.name} did not listen on {self.url} within {timeout:g} s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.1)
        while True:
            self._check_alive()
            left = max(1.0, deadline - time.monotonic())
            timing = asyncio.run(probe(self.url + path, timeout=left))
            if timing.status is not None:
                return
            if time.monotonic() >= deadline:
                raise ServeError(
                    f"{self.name} on {self.url} did not answer {path} ({timing.error}: "
                    f"{timing.error_detail}):\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ServeError(
                f"{self.name} exited with code {self.popen.returncode} at start-up "
                f"({shlex.join(self.argv)}):\n{self.log_tail()}"
            )
