"""Real servers for tests: ``sluicegate serve`` as a process, raw HTTP; origins run with ``sluicegate.dev.origin``
(re-exported here: ``ThreadedApp``, ``free_port``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from sluicegate.bench.lab.sysstat import tree_rss_kib
from sluicegate.dev.origin.serve import ThreadedApp, free_port
from sluicegate.dev.process import Proc

__all__ = ["ProxyProcess", "ThreadedApp", "free_port", "kw", "raw_http"]


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


def kw(**kwargs: Any) -> dict[str, Any]:
    return kwargs
