"""Shared helpers for the publisher benchmarks (``bench/publisher/*.py``).

Process control (every server in its own session, stopped by its process group; nothing left running),
free ports, temp dirs, /proc sampling (RSS of a process tree every 50 ms, CPU seconds per tree and of the
whole machine), a raw-socket HTTP/1.1 client that timestamps the first *body* byte, tool discovery
(nginx/wrk via apt-get, py-spy via pip), version/machine facts, statistics, tables and JSON output.
Nothing here imports the proxy's internals: the proxy is only ever run as ``sluicegate serve``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# ----------------------------------------------------------------------------------------------- ports


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


# ------------------------------------------------------------------------------------------------ /proc


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


# ------------------------------------------------------------------------------------------------ tools


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


# ------------------------------------------------------------------------------------- sluicegate serve


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


# --------------------------------------------------------------------------------------- raw HTTP client


@dataclass
class Fetch:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    connect_ms: float = 0.0
    headers_ms: float = 0.0  # end of the response head
    first_body_ms: float = float("nan")  # first byte of entity data (after chunk framing)
    first_decoded_1k_ms: float = float("nan")  # when >= 1 KiB of the *decoded* body was available
    ttlb_ms: float = 0.0  # last byte of the response (terminating chunk / Content-Length reached)
    body_bytes: int = 0
    decoded_bytes: int = 0
    complete: bool = False  # framing complete (and gzip stream ended, if gzip'd)
    crc32: int = 0
    body: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("body")
        return d


class _Chunked:
    """Incremental HTTP/1.1 chunked-body parser: feed(raw) -> entity data pieces; ``done`` at the last chunk."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0  # bytes of data left in the current chunk (+2 for CRLF handled by state)
        self.state = "size"
        self.done = False

    def feed(self, raw: bytes) -> Iterator[bytes]:
        self.buf += raw
        while not self.done:
            if self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    return
                size = int(self.buf[:i].split(b";")[0], 16)
                self.buf = self.buf[i + 2:]
                if size == 0:
                    self.state = "trailer"
                else:
                    self.left, self.state = size, "data"
            elif self.state == "data":
                if not self.buf:
                    return
                piece, self.buf = self.buf[:self.left], self.buf[self.left:]
                self.left -= len(piece)
                yield piece
                if self.left == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buf) < 2:
                    return
                self.buf, self.state = self.buf[2:], "size"
            else:  # trailer: ends with an empty line
                if self.buf.startswith(b"\r\n"):
                    self.done = True
                    return
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                self.done = True


def http_get(port: int, path: str, *, timeout: float = 30.0, keep_body: bool = False, decode_gzip: bool = True,
             crc: bool = False, bufsize: int = 256 * 1024) -> Fetch:
    """One GET on a fresh connection, blocking socket; all times from just before connect()."""
    r = Fetch()
    t0 = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r.connect_ms = (time.perf_counter() - t0) * 1000
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: gzip\r\n"
                     f"User-Agent: sluicegate-bench\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"connection closed before the response head ({head[:200]!r})")
            head += data
        r.headers_ms = (time.perf_counter() - t0) * 1000
        raw_head, rest = head.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        r.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            r.headers[k.strip().lower()] = v.strip()
        chunked = "chunked" in r.headers.get("transfer-encoding", "").lower()
        length = int(r.headers["content-length"]) if "content-length" in r.headers else None
        gz = decode_gzip and r.headers.get("content-encoding", "").lower() == "gzip"
        dec = zlib.decompressobj(31) if gz else None
        parser = _Chunked() if chunked else None
        parts: list[bytes] = []
        buf = bytearray(bufsize)
        view = memoryview(buf)

        def take(piece: bytes | memoryview) -> None:
            if not piece:
                return
            if r.body_bytes == 0:
                r.first_body_ms = (time.perf_counter() - t0) * 1000
            r.body_bytes += len(piece)
            if crc:
                r.crc32 = zlib.crc32(piece, r.crc32)
            if keep_body:
                parts.append(bytes(piece))
            if dec is not None:
                out = dec.decompress(piece)
                r.decoded_bytes += len(out)
            else:
                r.decoded_bytes += len(piece)
            if r.decoded_bytes >= 1024 and r.first_decoded_1k_ms != r.first_decoded_1k_ms:
                r.first_decoded_1k_ms = (time.perf_counter() - t0) * 1000

        def feed(data: bytes | memoryview) -> bool:
            """True when the body is complete."""
            if parser is not None:
                for piece in parser.feed(bytes(data)):
                    take(piece)
                return parser.done
            take(data)
            return length is not None and r.body_bytes >= length

        done = ((length == 0) or feed(rest)) if rest else (length == 0)
        while not done:
            n = sock.recv_into(buf)
            if n == 0:
                break
            done = feed(view[:n].tobytes() if (parser is not None or dec is not None or keep_body) else view[:n])
        r.ttlb_ms = (time.perf_counter() - t0) * 1000
        framed = done if (parser is not None or length is not None) else True
        r.complete = bool(framed and (dec is None or dec.eof))
        if keep_body:
            r.body = b"".join(parts)
        return r
    finally:
        sock.close()


# ------------------------------------------------------------------------------------------ facts & stats


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
    git = _run_text(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    dirty = _run_text(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
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


def med(xs: Sequence[float]) -> float:
    ys = [x for x in xs if x == x]
    return statistics.median(ys) if ys else float("nan")


def pct(xs: Sequence[float], p: float) -> float:
    ys = sorted(x for x in xs if x == x)
    if not ys:
        return float("nan")
    k = (len(ys) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ys) - 1)
    return ys[lo] + (ys[hi] - ys[lo]) * (k - lo)


def summary(xs: Sequence[float]) -> dict[str, float | int]:
    ys = [x for x in xs if x == x]
    if not ys:
        return {"n": 0, "median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"n": len(ys), "median": statistics.median(ys), "p90": pct(ys, 90), "min": min(ys), "max": max(ys)}


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    body = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line, sep]
    out += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return "\n".join(out)


def _cell(c: object) -> str:
    if isinstance(c, float):
        if c != c:
            return "n/a"
        return f"{c:,.0f}" if abs(c) >= 1000 else f"{c:.2f}" if abs(c) < 10 else f"{c:.1f}"
    return str(c)


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"publisher-{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
