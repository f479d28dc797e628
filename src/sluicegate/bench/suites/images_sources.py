"""The image benchmark's inputs and plumbing: 20 sources made with libvips, a static origin, process accounting.

Owns: the source set (2-24 MP JPEG and PNG, photo-like: gradients, shapes and grain, so they compress like
photos rather than like flat fills), cached under ``bench/results/image-sources`` by a manifest; a stdlib
static file server run as a subprocess (its CPU is not the measured server's); CPU seconds and peak RSS
(``VmHWM``) summed over a process group read from /proc; the output check (format and dimensions of every
image), and the peak of the group's summed PSS, sampled. Must not know about the proxy's internals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (width, height, format): 2 MP to 24 MP; PNGs are the smaller half (big photos are JPEG in the real world).
SOURCES: list[tuple[int, int, str]] = [
    (1600, 1200, "jpeg"), (1920, 1080, "png"), (2048, 1536, "jpeg"), (2400, 1600, "png"),
    (2560, 1440, "jpeg"), (2000, 2000, "png"), (3000, 2000, "jpeg"), (2880, 1800, "png"),
    (3264, 2448, "jpeg"), (3000, 3000, "png"), (4000, 2250, "jpeg"), (3456, 2304, "png"),
    (4000, 3000, "jpeg"), (2448, 3264, "jpeg"), (4608, 3072, "jpeg"), (4032, 3024, "png"),
    (5184, 3456, "jpeg"), (3000, 4500, "jpeg"), (5472, 3648, "jpeg"), (6000, 4000, "jpeg"),
]
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Source:
    name: str
    width: int
    height: int
    format: str
    bytes: int


def _photo(width: int, height: int, seed: int) -> Any:
    import pyvips

    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    r = x * (200 / width) + 30
    g = y * (180 / height) + 40
    cx, cy = width * (0.3 + 0.05 * (seed % 7)), height * (0.4 + 0.03 * (seed % 5))
    d = ((x - cx) ** 2 + (y - cy) ** 2) ** 0.5
    b = (d * (255 / max(width, height)) * 2 + seed * 9) % 255
    base = r.bandjoin([g, b])
    grain = pyvips.Image.gaussnoise(width, height, sigma=10 + seed % 8, mean=0)
    img = (base + grain.bandjoin([grain, grain])).gaussblur(0.8)
    return img.cast("uchar").copy(interpretation="srgb")


def make_sources(folder: Path) -> list[Source]:
    """The 20 sources in ``folder`` (made once; a manifest says what is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if len(data) == len(SOURCES) and all((folder / d["name"]).exists() for d in data):
            return [Source(**d) for d in data]
    out: list[Source] = []
    for i, (w, h, fmt) in enumerate(SOURCES):
        img = _photo(w, h, i)
        name = f"src{i:02d}-{w}x{h}.{'jpg' if fmt == 'jpeg' else 'png'}"
        path = folder / name
        if fmt == "jpeg":
            img.jpegsave(str(path), Q=88)
        else:
            img.pngsave(str(path), compression=6)
        out.append(Source(name, w, h, fmt, path.stat().st_size))
        print(f"  made {name} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    manifest.write_text(json.dumps([s.__dict__ for s in out], indent=1))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_static(folder: str, port: int) -> None:
    """The origin (run in its own process): files of ``folder`` with Content-Length and an ETag."""
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=folder, **kw)

        def end_headers(self) -> None:
            path = Path(folder) / self.path.split("?", 1)[0].lstrip("/")
            with contextlib.suppress(OSError):
                st = path.stat()
                self.send_header("ETag", f'"{st.st_size:x}-{int(st.st_mtime):x}"')
            super().end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class Group:
    """A command in its own process group; CPU seconds and summed peak RSS of the whole group."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        self.peak_pss = 0

    def pids(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid:  # pgrp
                pids.append(int(entry))
        return pids

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime + stime (threads included)
        return total / CLK_TCK

    def peak_rss(self, largest: bool = False, field: str = "VmHWM") -> int:
        """Summed VmHWM (each process's peak resident set) of the group, bytes; or the largest one's.
        ``field = "VmRSS"``: the resident set now."""
        peaks = []
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        peaks.append(int(line.split()[1]) * 1024)
            except OSError:
                continue
        return (max(peaks) if largest else sum(peaks)) if peaks else 0

    def pss(self, pids: list[int] | None = None) -> int:
        """Summed proportional set size of the group now, bytes: a page shared by N processes counts 1/N
        (the supervisor and its worker share the interpreter's and the libraries' pages; summed VmHWM
        counts those twice)."""
        total = 0
        for pid in self.pids() if pids is None else pids:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            except OSError:
                continue
        return total

    def sample_pss(self, stop: threading.Event, every: float = 0.1) -> None:
        """Keep ``self.peak_pss`` (the largest summed PSS seen) until ``stop`` is set; run in a thread.

        The group's processes are listed once (scanning /proc every sample cost more CPU than the servers);
        each sample reads one smaps_rollup per process (a page-table walk under the process's mmap lock:
        every 100 ms, not more often, so the measured server is not slowed by being measured)."""
        pids = self.pids()
        while not stop.is_set():
            self.peak_pss = max(self.peak_pss, self.pss(pids))
            stop.wait(every)

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args!r} exited early:\n{self.log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer within {timeout:g} s:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._out.close()


def check_output(body: bytes, src: Source, width: int, fmt: str) -> str | None:
    """None when ``body`` is a ``fmt`` image ``width`` wide with the source's ratio (±1 px); else why not."""
    import pyvips

    try:
        img = pyvips.Image.new_from_buffer(body, "")
    except pyvips.Error as exc:
        return f"undecodable: {exc.message[:80]}"
    loader = str(img.get("vips-loader"))
    want_loader = {"webp": "webpload_buffer", "jpeg": "jpegload_buffer", "avif": "heifload_buffer"}[fmt]
    want_w = min(width, src.width)
    want_h = round(src.height * want_w / src.width)
    if loader != want_loader:
        return f"format {loader}, wanted {want_loader}"
    if img.width != want_w or abs(img.height - want_h) > 1:
        return f"{img.width}x{img.height}, wanted {want_w}x{want_h}"
    return None
