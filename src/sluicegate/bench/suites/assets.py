"""Asset routes (issue 16 §4): an asset route vs the PassThrough page path vs nginx ``proxy_pass``, side by side.

What it measures, in ONE run (the machine is shared: every target sees every file in every run, targets
round-robin with the order reversed every other run, medians over ``--runs``):

* throughput: ``wrk -t2 -c32 -d<duration>s`` (Debian wrk) requests/s and MB/s, p50/p99, and the CPU the
  proxy's process tree used per request (the figure least moved by other tenants) for a 2 KB and a 2 MB file
  (random bytes, ``application/octet-stream``) served by a static nginx origin (sendfile), through three
  targets with 2 workers each:
    - ``asset-w2``: ``sluicegate serve --workers 2``, an ``[[publisher.routes]] kind = "asset"`` route
      (``/a/`` -> the origin, path rewritten by ``path_pattern``/``target_path``);
    - ``page-w2``: the same sluicegate instance, the fallback page route (``origin_url``): the gate picks
      PassThrough for these bodies;
    - ``nginx-w2``: Debian nginx as a reverse proxy (``proxy_pass``, upstream keep-alive, 2 worker processes).
  Ratios: asset / nginx and asset / page.
* memory: peak RSS of each sluicegate worker while one client streams a 1 GiB asset through the asset route
  (and, for comparison, the page route), once reading as fast as it can and once throttled (the proxy must
  hold the rest back: backpressure, not buffering). Goal: flat (peak - idle small) and <= 64 MiB per worker.

Every body is verified byte for byte (2 KB/2 MB: whole body; 1 GiB: length + CRC32 of the stream) before
figures are kept. Wall-clock figures on a shared 2-core machine are contended: the JSON records the load
average and the CPU other tenants used during each measurement.

Run: ``sluicegate bench assets`` (about 4 minutes with the defaults) -> ``bench/results/assets.json``.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites.throughput import run_wrk

FILES = {"2 KB": ("f2k.bin", 2048), "2 MB": ("f2m.bin", 2 * 1024 * 1024)}
BIG_FILE = "f1g.bin"
TARGETS = ("asset-w2", "page-w2", "nginx-w2")
RSS_GOAL_MIB = 64.0
FLAT_MIB = 8.0  # "flat": a worker's peak stays within this of its idle RSS


class Bench:
    def __init__(self, tmp: Path, procs: lab.Procs, tools: dict[str, str], workers: int, big_mib: int) -> None:
        self.big_size = big_mib * 1024 * 1024
        self.tmp = tmp
        self.procs = procs
        self.nginx = tools["nginx"]
        self.wrk = tools["wrk"]
        self.workers = workers
        self.origin_port = lab.free_port()
        self.ports: dict[str, int] = {}
        self.sluicegate: lab.Proc | None = None
        self.expect: dict[str, bytes] = {}

    def prepare(self) -> None:
        www = self.tmp / "www"
        www.mkdir()
        for name, size in FILES.values():
            data = os.urandom(size)
            (www / name).write_bytes(data)
            self.expect[name] = data
        # 1 GiB of a repeated random MiB: real bytes (not a sparse file the kernel serves as zero pages)
        mib = os.urandom(1024 * 1024)
        with open(www / BIG_FILE, "wb") as f:
            for _ in range(self.big_size // len(mib)):
                f.write(mib)
        self.mib = mib
        types = "types { application/octet-stream bin; }\n  default_type application/octet-stream;"
        lab.nginx.start(self.procs, self.nginx, self.tmp, "origin",
                        lab.nginx.origin_conf(self.tmp, self.origin_port, types=types), self.origin_port, "/f2k.bin")
        # nginx proxy_pass peer
        port = lab.free_port()
        lab.nginx.start(self.procs, self.nginx, self.tmp, f"proxy-{port}",
                        lab.nginx.proxy_conf(self.tmp, port, self.origin_port, self.workers), port, "/f2k.bin")
        self.ports["nginx-w2"] = port
        # one sluicegate instance serves both the asset route and the page path
        self.sluicegate, port = self.start_sluicegate("sluicegate")
        self.ports["asset-w2"] = self.ports["page-w2"] = port

    def start_sluicegate(self, name: str) -> tuple[lab.Proc, int]:
        port = lab.free_port()
        cfg = lab.write_sluicegate_config(self.tmp / f"{name}.toml", origin_port=self.origin_port, proxy_port=port,
                                          workers=self.workers, server='access_log = "off"')
        cfg.write_text(cfg.read_text() + f"""
[[publisher.routes]]
name = "bench-assets"
prefix = "/a/"
kind = "asset"
origin_url = "http://127.0.0.1:{self.origin_port}"
path_pattern = "^/a/(.+)$"
target_path = "/$1"
""")
        proc = self.procs.add(lab.sluicegate_proc(name, cfg, port, self.workers, self.tmp / f"{name}.log"))
        lab.wait_http(port, "/a/f2k.bin", proc)
        time.sleep(1.5)  # every worker done with its start-up
        return proc, port

    def crc_prefix(self, n: int) -> int:
        """CRC32 of the first ``n`` bytes of the 1 GiB file (a repeated random MiB)."""
        crc = 0
        for _ in range(n // len(self.mib)):
            crc = zlib.crc32(self.mib, crc)
        return zlib.crc32(self.mib[: n % len(self.mib)], crc)

    def path(self, target: str, name: str) -> str:
        return f"/a/{name}" if target == "asset-w2" else f"/{name}"

    def pid(self, target: str) -> int:
        if target == "nginx-w2":
            return int((self.tmp / f"proxy-{self.ports[target]}.pid").read_text())
        assert self.sluicegate is not None
        return int(self.sluicegate.pid)

    def verify(self) -> dict[str, bool]:
        ok = {}
        for target in TARGETS:
            for label, (name, _size) in FILES.items():
                f = lab.http_get(self.ports[target], self.path(target, name), keep_body=True)
                ok[f"{target} {label}"] = f.status == 200 and f.complete and f.body == self.expect[name]
        return ok


def measure(args: argparse.Namespace, bench: Bench) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run in range(args.runs):
        order = TARGETS if run % 2 == 0 else tuple(reversed(TARGETS))
        for label, (name, size) in FILES.items():
            for target in order:
                url = f"http://127.0.0.1:{bench.ports[target]}{bench.path(target, name)}"
                run_wrk(bench.wrk, url, args.warmup, args.connections)
                with lab.CpuMeter({"proxy": bench.pid(target)}) as cpu:
                    res, wrk_cpu = run_wrk(bench.wrk, url, args.duration, args.connections)
                pc = cpu.percent(extra_ours=wrk_cpu)
                requests = max(1, res["requests"])
                row = {"run": run, "file": label, "target": target, **res,
                       "mb_per_s": res["rps"] * size / 1e6,
                       "proxy_cpu_ms_per_request": 1000 * cpu.used["proxy"] / requests,
                       "cpu_pct_of_one_core": pc, "loadavg1": lab.loadavg1()}
                rows.append(row)
                lab.log(f"run {run + 1}/{args.runs} {label:5} {target:9} {res['rps']:9.0f} req/s "
                        f"{row['mb_per_s']:8.1f} MB/s  p99 {res['p99_ms']:7.1f} ms  "
                        f"cpu {row['proxy_cpu_ms_per_request']:.3f} ms/req  foreign {pc['foreign']:.0f}%")
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in FILES:
        per: dict[str, Any] = {}
        for target in TARGETS:
            rs = [r for r in rows if r["file"] == label and r["target"] == target]
            per[target] = {
                "rps": lab.med([r["rps"] for r in rs]),
                "rps_min": min(r["rps"] for r in rs), "rps_max": max(r["rps"] for r in rs),
                "mb_per_s": lab.med([r["mb_per_s"] for r in rs]),
                "p50_ms": lab.med([r["p50_ms"] for r in rs]), "p99_ms": lab.med([r["p99_ms"] for r in rs]),
                "proxy_cpu_ms_per_request": lab.med([r["proxy_cpu_ms_per_request"] for r in rs]),
                "foreign_cpu_pct": lab.med([r["cpu_pct_of_one_core"]["foreign"] for r in rs]),
                "non2xx": sum(r["non2xx"] for r in rs), "socket_errors": [r["socket_errors"] for r in rs if
                                                                          r["socket_errors"]],
            }
        a, p, n = per["asset-w2"], per["page-w2"], per["nginx-w2"]
        per["ratios"] = {
            "asset_vs_nginx_rps": a["rps"] / n["rps"] if n["rps"] else float("nan"),
            "asset_vs_page_rps": a["rps"] / p["rps"] if p["rps"] else float("nan"),
            "asset_vs_page_cpu_per_request": (a["proxy_cpu_ms_per_request"] / p["proxy_cpu_ms_per_request"]
                                              if p["proxy_cpu_ms_per_request"] else float("nan")),
            "asset_vs_nginx_cpu_per_request": (a["proxy_cpu_ms_per_request"] / n["proxy_cpu_ms_per_request"]
                                               if n["proxy_cpu_ms_per_request"] else float("nan")),
        }
        out[label] = per
    return out


# ------------------------------------------------------------------------------------------------ memory


class WorkerRss:
    """Peak VmRSS of each worker (the supervisor's children) every ``interval`` s, in a thread."""

    def __init__(self, supervisor: int, interval: float = 0.02) -> None:
        self.supervisor = supervisor
        self.interval = interval
        self.idle: dict[int, int] = {pid: lab.rss_kib(pid) for pid in self.workers()}
        self.peak: dict[int, int] = dict(self.idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def workers(self) -> list[int]:
        return [int(p) for p in lab.children_map().get(self.supervisor, [])]

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.peak:
                kib = lab.rss_kib(pid)
                if kib > self.peak[pid]:
                    self.peak[pid] = kib
            self._stop.wait(self.interval)

    def __enter__(self) -> WorkerRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def stream(port: int, path: str, limit_bps: float | None, max_seconds: float = 600.0) -> dict[str, Any]:
    """GET ``path``, reading the body as fast as possible or at ``limit_bps`` for at most ``max_seconds`` (then
    the client leaves); status, Content-Length, bytes read and their CRC32."""
    timeout = max_seconds + 30
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed before the response head")
            head += data
        raw, rest = head.split(b"\r\n\r\n", 1)
        status = int(raw.split()[1])
        length = next((int(line.split(b":", 1)[1]) for line in raw.split(b"\r\n")[1:]
                       if line.lower().startswith(b"content-length:")), -1)
        got, crc = len(rest), zlib.crc32(rest)
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        while True:
            n = sock.recv_into(buf)
            if not n:
                break
            got += n
            crc = zlib.crc32(view[:n], crc)
            elapsed = time.perf_counter() - t0
            if elapsed > max_seconds:
                break
            if limit_bps:
                ahead = got / limit_bps - elapsed
                if ahead > 0:
                    time.sleep(ahead)
    wall = time.perf_counter() - t0
    return {"status": status, "content_length": length, "bytes": got, "crc32": crc, "wall_s": wall,
            "mb_per_s": got / wall / 1e6}


def memory(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    """On a fresh instance (the throughput runs leave their high-water marks behind): idle RSS per worker after
    a few small requests on both paths, then the peak while one client streams 1 GiB."""
    assert bench.sluicegate is not None
    bench.procs.stop(bench.sluicegate)
    proc, port = bench.start_sluicegate("sluicegate-memory")
    for _ in range(20):  # both workers past their first requests (lazy imports, pools)
        for path in ("/a/f2k.bin", "/f2k.bin"):
            lab.http_get(port, path)
    out: dict[str, Any] = {}
    modes = {"fast": None, "throttled": args.throttle_mb * 1e6}
    for target in ("asset-w2", "page-w2"):
        for mode, limit in modes.items():
            with WorkerRss(proc.pid) as rss:
                res = stream(port, bench.path(target, BIG_FILE), limit, 600.0 if limit is None else args.throttle_s)
            workers = [{"pid": pid, "idle_mib": rss.idle[pid] / 1024, "peak_mib": rss.peak[pid] / 1024,
                        "growth_mib": (rss.peak[pid] - rss.idle[pid]) / 1024} for pid in rss.idle]
            peak = max(w["peak_mib"] for w in workers)
            growth = max(w["growth_mib"] for w in workers)
            # fast: the whole GiB; throttled: the prefix it read before leaving
            complete = (res["status"] == 200 and res["content_length"] == bench.big_size
                        and res["crc32"] == bench.crc_prefix(res["bytes"])
                        and (limit is not None or res["bytes"] == bench.big_size))
            out[f"{target} {mode}"] = {**res, "workers": workers, "peak_worker_mib": peak, "max_growth_mib": growth,
                                       "body_ok": complete,
                                       "goal_ok": peak <= RSS_GOAL_MIB and growth <= FLAT_MIB}
            lab.log(f"{args.big_mib} MiB {target:9} {mode:9} {res['mb_per_s']:7.1f} MB/s  peak worker {peak:5.1f} MiB "
                    f"(growth {growth:+.1f} MiB)  body {'ok' if complete else 'WRONG'}")
    return out


def render(summary: dict[str, Any], mem: dict[str, Any], big_mib: int) -> str:
    lines = []
    for label, per in summary.items():
        lines.append(f"\n{label} file, 2 workers each (median of runs; wall-clock figures under contention)")
        lines.append(lab.table(
            ["target", "req/s", "MB/s", "p50 ms", "p99 ms", "proxy CPU ms/req", "foreign CPU %"],
            [[t, f"{per[t]['rps']:.0f} ({per[t]['rps_min']:.0f}-{per[t]['rps_max']:.0f})",
              f"{per[t]['mb_per_s']:.1f}", f"{per[t]['p50_ms']:.1f}", f"{per[t]['p99_ms']:.1f}",
              f"{per[t]['proxy_cpu_ms_per_request']:.3f}", f"{per[t]['foreign_cpu_pct']:.0f}"] for t in TARGETS]))
        r = per["ratios"]
        lines.append(f"asset/nginx req/s {r['asset_vs_nginx_rps']:.2f}x, asset/page req/s "
                     f"{r['asset_vs_page_rps']:.2f}x, CPU/request asset/page {r['asset_vs_page_cpu_per_request']:.2f}x,"
                     f" asset/nginx {r['asset_vs_nginx_cpu_per_request']:.2f}x")
    lines.append(f"\n{big_mib} MiB streamed, peak RSS per worker "
                 f"(goal <= {RSS_GOAL_MIB:g} MiB, growth <= {FLAT_MIB:g} MiB)")
    lines.append(lab.table(
        ["stream", "MB/s", "peak worker MiB", "growth MiB", "body", "goal"],
        [[k, f"{v['mb_per_s']:.1f}", f"{v['peak_worker_mib']:.1f}", f"{v['max_growth_mib']:+.1f}",
          "ok" if v["body_ok"] else "WRONG", "met" if v["goal_ok"] else "MISSED"] for k, v in mem.items()]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench assets", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="round-robin runs (default 3)")
    ap.add_argument("--duration", type=int, default=5, help="whole seconds per wrk measurement (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="whole seconds of wrk warm-up per measurement (default 1)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--workers", type=int, default=2, help="workers of sluicegate and nginx (default 2)")
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the streamed asset in MiB (default 1024)")
    ap.add_argument("--throttle-mb", type=float, default=50.0, help="throttled 1 GiB client, MB/s (default 50)")
    ap.add_argument("--throttle-s", type=float, default=8.0,
                    help="seconds the throttled client reads before it leaves (default 8)")
    args = ap.parse_args(argv)
    tools = lab.ensure_apt({"nginx": "nginx", "wrk": "wrk"})
    with tempfile.TemporaryDirectory(prefix="sg-bench-assets-") as d, lab.Procs() as procs:
        bench = Bench(Path(d), procs, tools, args.workers, args.big_mib)
        bench.prepare()
        checks = bench.verify()
        lab.log(f"bodies verified: {sum(checks.values())}/{len(checks)}")
        if not all(checks.values()):
            raise SystemExit(f"wrong bodies: {[k for k, v in checks.items() if not v]}")
        rows = measure(args, bench)
        summary = summarize(rows)
        mem = memory(args, bench)
    result = {"suite": "assets", "args": vars(args), "machine": lab.machine(),
              "versions": lab.versions(["nginx", "wrk"]), "note": "shared 2-core machine: wall-clock figures "
              "taken under contention, side by side in one run; CPU per request is the steadier figure",
              "checks": checks, "summary": summary, "memory": memory_goal(mem), "rows": rows}
    print(render(summary, mem, args.big_mib))
    path = lab.write_json("assets", result)
    print(f"\nwrote {path}")
    return result


def memory_goal(mem: dict[str, Any]) -> dict[str, Any]:
    return {"goal_peak_worker_mib": RSS_GOAL_MIB, "goal_flat_growth_mib": FLAT_MIB, "streams": mem,
            "asset_goal_met": all(v["goal_ok"] for k, v in mem.items() if k.startswith("asset"))}


if __name__ == "__main__":
    main()
