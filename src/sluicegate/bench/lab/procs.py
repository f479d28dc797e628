"""Processes of the repository benchmarks: free ports, readiness, servers in their own session, tools.

Every server runs in its own session and is stopped by its process group, so nothing is left running (also on
Ctrl-C or errors: :class:`Procs` stops in reverse order). ``ensure_apt``/``ensure_py_spy`` install the
reference peers (nginx, wrk) and the profiler when missing. The proxy is only ever run as ``sluicegate serve``:
nothing here imports its internals.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sluicegate.bench.lab.rawhttp import http_get
from sluicegate.dev.origin.serve import free_port
from sluicegate.dev.process import Proc, Procs, wait_port

PY = sys.executable

__all__ = ["PY", "Proc", "Procs", "ensure_apt", "ensure_py_spy", "free_port", "sluicegate_proc", "start_fast_origin",
           "wait_http", "wait_port", "write_sluicegate_config"]


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


def write_sluicegate_config(path: Path, *, origin_port: int, proxy_port: int,
                            workers: int = 1, limits: dict[str, int] | None = None, server: str = "",
                            admin: str = "") -> Path:
    lines = [
        "[server]", 'host = "127.0.0.1"', f"port = {proxy_port}", f"workers = {workers}", server, "",
        # its own admin port: the default 127.0.0.1:9901 may be held by another instance on this machine
        "[admin]", f'listen = "127.0.0.1:{free_port()}"', admin, "",
        "[publisher]", f'origin_url = "http://127.0.0.1:{origin_port}"',
        f'public_hosts = ["127.0.0.1:{proxy_port}"]', "",
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
