"""Processes of the repository benchmarks: free ports, readiness, servers in their own session, tools.

Every server runs in its own session and is stopped by its process group, so nothing is left running (also on
Ctrl-C or errors: :class:`Procs` stops in reverse order). ``ensure_apt``/``ensure_py_spy`` install the
reference peers (nginx, wrk) and the profiler when missing. The proxy is only ever run as ``sluicegate serve``:
nothing here imports its internals.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sluicegate.bench.lab.rawhttp import http_get
from sluicegate.dev.origin.serve import free_port

PY = sys.executable

__all__ = ["PY", "Proc", "Procs", "ensure_apt", "ensure_py_spy", "free_port", "sluicegate_proc", "start_fast_origin",
           "wait_http", "wait_port", "write_sluicegate_config"]


def wait_port(port: int, timeout: float = 30.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} at start-up:\n{proc.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


# ------------------------------------------------------------------------------------------- processes


class Proc:
    """One server process in its own session; stop() signals exactly that process group."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True, env=self.env)
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        p = self.popen
        if p is None:
            return
        pgid = p.pid  # start_new_session: pgid == pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            p.wait(timeout=5)
        # workers that outlived their parent stay in the group: make sure none is left
        for _ in range(50):
            if not _group_alive(pgid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Procs:
    """A set of started processes, stopped in reverse order on exit (also on Ctrl-C / errors)."""

    def __init__(self) -> None:
        self.items: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        self.items.append(proc.start())
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.items:
            self.items.remove(proc)

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        while self.items:
            self.items.pop().stop()


def ensure_apt(binaries: dict[str, str]) -> dict[str, str]:
    """``{binary: debian_package}`` -> paths; installs missing ones with apt-get (needs root)."""
    missing = {b: pkg for b, pkg in binaries.items() if not _which(b)}
    if missing:
        pkgs = sorted(set(missing.values()))
        print(f"[setup] {', '.join(missing)} not found: installing Debian package(s) {' '.join(pkgs)} "
              f"with apt-get (needs root) ...", flush=True)
        if os.geteuid() != 0:
            sys.exit(f"[setup] not root: run `sudo apt-get install -y {' '.join(pkgs)}` first")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *pkgs], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
            r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *pkgs], env=env,
                               capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"[setup] apt-get install {' '.join(pkgs)} failed:\n{r.stderr[-2000:]}")
    paths = {}
    for b in binaries:
        p = _which(b)
        if p is None:
            sys.exit(f"[setup] {b} still not found after installing")
        paths[b] = p
    return paths


def _which(binary: str) -> str | None:
    return shutil.which(binary) or next((str(Path(d) / binary) for d in ("/usr/sbin", "/sbin")
                                         if (Path(d) / binary).exists()), None)


def ensure_py_spy() -> str:
    cand = Path(PY).parent / "py-spy"
    if cand.exists():
        return str(cand)
    print("[setup] py-spy not found next to the interpreter: pip install py-spy ...", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(cand)


def write_sluicegate_config(path: Path, *, origin_port: int, proxy_port: int, mode: str = "stream",
                            workers: int = 1, limits: dict[str, int] | None = None, server: str = "",
                            admin: str = "") -> Path:
    lines = [
        "[server]", 'host = "127.0.0.1"', f"port = {proxy_port}", f"workers = {workers}", server, "",
        # its own admin port: the default 127.0.0.1:9901 may be held by another instance on this machine
        "[admin]", f'listen = "127.0.0.1:{free_port()}"', admin, "",
        "[publisher]", f'origin_url = "http://127.0.0.1:{origin_port}"',
        f'public_hosts = ["127.0.0.1:{proxy_port}"]', f'mode = "{mode}"', "",
    ]
    if limits:
        lines += ["[limits]", *(f"{k} = {v}" for k, v in limits.items()), ""]
    path.write_text("\n".join(lines))
    return path


def sluicegate_proc(name: str, config: Path, port: int, workers: int, log: Path) -> Proc:
    argv = [PY, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(port), "--workers", str(workers)]
    return Proc(name, argv, log)


def wait_http(port: int, path: str, proc: Proc | None = None, timeout: float = 30.0) -> None:
    """Ready = a GET answers with any status line."""
    wait_port(port, timeout, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = http_get(port, path, timeout=5.0)
            if r.status:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer within {timeout:g} s")


def start_fast_origin(procs: Procs, port: int, data: Path, log: Path) -> Proc:
    """``sluicegate.dev.origin.fast`` on ``port`` serving pre-generated files from ``data``; ready on /health."""
    proc = procs.add(Proc("origin", [PY, "-m", "sluicegate.dev.origin.fast", "--port", str(port), "--data",
                                     str(data)], log))
    wait_http(port, "/health", proc)
    return proc
