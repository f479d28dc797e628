"""Real servers for tests: ``sluicegate serve`` as a process, raw HTTP, a raw threaded origin (``RawOrigin``: the
test writes each answer on the socket itself); other origins run with ``sluicegate.dev.origin`` (re-exported
here: ``ThreadedApp``, ``free_port``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluicegate.bench.lab.sysstat import tree_rss_kib
from sluicegate.dev.origin.serve import ThreadedApp, free_port
from sluicegate.dev.process import Proc

__all__ = ["ProxyProcess", "RawOrigin", "RawRequest", "ThreadedApp", "free_port", "kw", "raw_http"]


class ProxyProcess(Proc):
    """``sluicegate serve`` in a subprocess (``dev.process.Proc``) with a config written to ``tmp``."""

    def __init__(
        self, tmp: Path, config: str, port: int | None = None, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
        self.port = port or free_port()
        self.config_path = tmp / f"sluicegate-{self.port}.toml"
        text = config.replace("{port}", str(self.port))
        self.admin_port = 0
        if "[admin]" not in text:  # every test instance gets its own admin port (the default 9901 is shared)
            self.admin_port = free_port()
            while self.admin_port == self.port:  # two free_port() calls can return the same port (seen in CI)
                self.admin_port = free_port()
            text += f'\n[admin]\nlisten = "127.0.0.1:{self.admin_port}"\n'
        else:
            m = re.search(r'listen\s*=\s*"[^"]*:(\d+)"', text.split("[admin]", 1)[1])
            self.admin_port = int(m.group(1)) if m else 0
        self.config_path.write_text(text)
        self.log_path = tmp / f"sluicegate-{self.port}.log"
        self.workers = workers
        argv = [sys.executable, "-m", "sluicegate", "serve", "--config", str(self.config_path),
                "--port", str(self.port), "--workers", str(workers)]
        super().__init__("sluicegate", argv, self.log_path, env={**os.environ, **(env or {})})

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 20) -> ProxyProcess:
        super().start()
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"sluicegate exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.admin_url}/livez", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sluicegate did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_bytes(self) -> int:
        """Summed VmRSS of the server process tree (all workers)."""
        assert self.popen is not None
        kib, _ = tree_rss_kib(self.popen.pid)
        return kib * 1024


def raw_http(port: int, request: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Send raw bytes, read until the server closes. Returns (data, closed_cleanly_without_reset)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        clean = True
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                clean = False
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks), clean


@dataclass
class RawRequest:
    head: bytes  # request line and header lines, without the blank line
    body: bytes  # the Content-Length body (no chunked request bodies)

    @property
    def path(self) -> bytes:
        return self.head.split(b" ", 2)[1]


class RawOrigin:
    """A threaded origin on loopback whose answers the test writes on the socket itself (one ``sendall``, part of
    a body then a close, silence...), which no framework would let it do: a thread per connection reads requests
    (head, then a ``Content-Length`` body) on a kept-alive connection and calls ``answer(conn, request)`` for
    each; ``answer`` returns False to close the connection."""

    def __init__(self, answer: Callable[[socket.socket, RawRequest], bool]) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lower = head.lower()
                length = 0
                if b"\r\ncontent-length:" in lower:
                    length = int(lower.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                if not self.answer(conn, RawRequest(head, body)):
                    return

    def close(self) -> None:
        self.sock.close()


def kw(**kwargs: Any) -> dict[str, Any]:
    return kwargs
