"""What the machine and the processes under test did: /proc sampling and the facts saved with each run.

RSS of a process tree every 50 ms (:class:`RssSampler`), the kernel's peak-RSS marks, CPU seconds per process
tree and of the whole machine (:class:`CpuMeter`: ours vs foreign load on a shared machine), the 1-minute load
average, versions of the stack and the tools, machine facts. Linux only (reads /proc).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import threading
import time
import zlib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from sluicegate.bench.lab.output import repo_root

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """``pid`` and all its descendants."""
    kids = children_map() if kids is None else kids
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _fast_tree(pid: int) -> list[int]:
    """Descendants via /proc/PID/task/TID/children (cheap enough to call every 50 ms)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.scandir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task.name}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def worker_pids(pid: int, timeout: float = 10.0) -> list[int]:
    """The serving worker processes under ``sluicegate serve``'s supervisor ``pid`` (``-m sluicegate.server.worker``
    in their command line), waiting up to ``timeout`` for at least one; ``[pid]`` when it has none (a process that
    serves by itself). What a profiler must attach to: the supervisor only supervises."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for p in _fast_tree(pid)[1:]:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if b"sluicegate.server.worker" in f.read():
                        found.append(p)
            except OSError:
                continue
        if found or time.monotonic() >= deadline:
            return found or [pid]
        time.sleep(0.05)


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def hwm_kib(pid: int) -> int:
    """VmHWM: the kernel's own peak-RSS mark for the process (since it started)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_hwm_kib(pid: int) -> int:
    return sum(hwm_kib(p) for p in _fast_tree(pid))


def tree_rss_kib(pid: int) -> tuple[int, int]:
    pids = _fast_tree(pid)
    return sum(rss_kib(p) for p in pids), len(pids)


def cpu_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    f = stat[stat.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])  # utime + stime


def tree_cpu_s(pid: int) -> float:
    return sum(cpu_ticks(p) for p in _fast_tree(pid)) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


def loadavg1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class RssSampler:
    """Sums VmRSS over a process tree every ``interval`` s in a thread; keeps the peak and the series."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.peak_procs = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            kib, n = tree_rss_kib(self.pid)
            self.samples.append((time.perf_counter() - t0, kib))
            if kib > self.peak_kib:
                self.peak_kib, self.peak_procs = kib, n
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class CpuMeter:
    """CPU seconds used by named process trees and by the whole machine over a block (foreign = the rest)."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self.machine = 0.0

    def __enter__(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._m0 = machine_busy_s()
        self._c0 = {n: tree_cpu_s(p) for n, p in self.roots.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = {n: tree_cpu_s(p) - self._c0[n] for n, p in self.roots.items()}
        self.machine = machine_busy_s() - self._m0
        self.wall = time.perf_counter() - self._t0

    def percent(self, extra_ours: float = 0.0) -> dict[str, float]:
        """% of one core per tree, plus ``foreign`` (machine busy minus our trees minus ``extra_ours``)."""
        w = max(self.wall, 1e-9)
        out = {n: 100 * s / w for n, s in self.used.items()}
        ours = sum(self.used.values()) + extra_ours
        out["foreign"] = max(0.0, 100 * (self.machine - ours) / w)
        return out


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _run_text(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    return (r.stdout + r.stderr).strip()


def versions(extra_tools: Iterable[str] = ()) -> dict[str, Any]:
    root = repo_root() or Path.cwd()
    git = _run_text(["git", "-C", str(root), "rev-parse", "HEAD"])
    dirty = _run_text(["git", "-C", str(root), "status", "--porcelain", "--", "src"])
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "sluicegate": _version("sluicegate"),
        "git_head": git,
        "src_uncommitted_changes": [line.strip() for line in dirty.splitlines() if line.strip()],
        **{p: _version(p) for p in ("uvicorn", "uvloop", "httptools", "aiohttp", "brotli", "zstandard")},
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }
    for tool in extra_tools:
        if tool == "nginx":
            out["nginx"] = _run_text(["nginx", "-v"]).replace("nginx version: ", "")
        elif tool == "wrk":
            out["wrk"] = _run_text(["dpkg-query", "-W", "-f", "${Version}", "wrk"])
        elif tool == "py-spy":
            out["py-spy"] = _version("py-spy")
    return out


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_total": mem, "kernel": platform.release(),
            "platform": platform.platform(), "hostname": platform.node(), "loadavg_1m_at_start": loadavg1()}
