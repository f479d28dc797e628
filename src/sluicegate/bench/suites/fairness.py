"""Fairness under heavy rewriting (issue 24): small requests at a steady rate while heavy responses run.

One worker. Small requests (a 2 KiB HTML page, rewritten by sluicegate) are sent open-loop at ``--rate``
per second (latency counted from the *scheduled* send time, so a stall is not hidden by the client waiting)
while one of three heavy loads is served:
  (a) one 50 MiB rewritten page (gzip from the origin, link-heavy synthetic HTML),
  (b) four concurrent 5 MiB pages,
  (c) one gzip bomb: ``<a href="`` + 10 GiB of ``a`` (10 MiB compressed); sluicegate stops at its
      ``max_decoded_body_bytes`` and aborts the response. The bench sets that cap to ``--bomb-cap-mib``
      (default 64 MiB) on both sluicegate targets: at the 256 MiB default the bomb alone would take minutes
      of a shared machine's CPU per target (the cap is a bound on work, the slicing is what this measures).
      The cap applies to the pages too, so it must exceed 50 MiB (runs before 2026-12-07 03:40 UTC used 32:
      the 50 MiB page was aborted at 32 MiB decoded on both sluicegate targets). Every sluicegate page
      response is checked to be complete (the chunked terminator arrived); an aborted page fails the run.
Targets, in the same run, order alternated per run: ``sliced-<N>ms`` (sluicegate with ``[event_loop] slice_ms =
N``, one target per ``--slice-ms`` value; default 1 and 2; with ``--stretch-ms M[,M]`` one per pair,
``sliced-<N>ms-st<M>``, ``[event_loop] stretch_ms = M``), ``unsliced`` (``slice_ms = 0``: the transform of
one read runs in one go, as before issue 24) and ``nginx`` (Debian nginx ``proxy_pass``, 1 worker: relays the
gzip bytes without rewriting: the floor for latency on this machine).

Reported per target and load: small-request p50/p99/max (ms), the event-loop lag p99/max from
``sluicegate_event_loop_lag_seconds`` (histogram bucket bounds, so "<= x ms") and the same for
``sluicegate_event_loop_busy_lag_seconds`` (only time the worker was on a CPU: what remains of the lag once
the OS scheduler's share on a crowded machine is taken out), and the heavy responses' throughput: decoded
origin MiB per wall second and per CPU second of the proxy process (the CPU figure is
the one to compare on a shared machine), measured with the heavy load alone just before the mixed phase; the
mixed phase repeats the heavy set until at least 3 s have passed (nginx relays it in milliseconds). The origin
is Debian nginx serving the pre-compressed files.

Run: ``sluicegate bench fairness`` (about 4 minutes; ``--runs 1`` about 2)
  -> ``bench/results/publisher-fairness.json`` and ``bench/results/publisher-fairness.png``.

``--ab N``: only the heavy-response throughput, sliced vs unsliced, measured more finely for a noisy machine:
the sluicegate targets run side by side, and N sets of each heavy load alone alternate between them (order
reversed every set); CPU is the worker tree's on-CPU nanoseconds (``/proc/<pid>/task/*/schedstat``, not
10 ms ticks), and the worker's socket writes per set (``/proc/<pid>/io`` ``syscw``) are reported with it.
-> ``bench/results/publisher-fairness-ab.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
import zlib
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.dev.origin.content import page, write_gzip_html

MIB = 1 << 20
LOADS: dict[str, dict[str, Any]] = {
    "a: 1 x 50 MiB page": {"paths": ["/gz/big50.html"], "decoded_mib": 50},
    "b: 4 x 5 MiB pages": {"paths": ["/gz/big5.html"] * 4, "decoded_mib": 5},
    "c: 1 gzip bomb": {"paths": ["/gz/bomb.html"], "decoded_mib": 64},  # = --bomb-cap-mib
}
TARGETS: list[str] = []  # set from --slice-ms: sliced-<N>ms..., unsliced, nginx
MAX_OUTSTANDING = 300  # open-loop small requests in flight at most (more are counted as not sent)


def write_bomb(path: Path, gib: int = 10) -> int:
    """gzip of ``<a href="`` + ``gib`` GiB of ``a``, no trailer (a full flush makes each 1 MiB unit repeatable)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    start = z.compress(b'<!doctype html><html><body><a href="') + z.flush(zlib.Z_FULL_FLUSH)
    unit = z.compress(b"a" * MIB) + z.flush(zlib.Z_FULL_FLUSH)
    with open(path, "wb") as f:
        f.write(start)
        batch = unit * 1024
        for _ in range(gib):
            f.write(batch)
    return path.stat().st_size


# -------------------------------------------------------------------------------------------- clients


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """One HTTP/1.1 response: (status, body bytes, complete). Handles Content-Length and chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    low = head.lower()
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", low)
    if m:
        n = int(m.group(1))
        await reader.readexactly(n)
        return status, n, True
    if b"transfer-encoding: chunked" in low:
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            await reader.readexactly(size + 2)
            total += size
            if size == 0:
                return status, total, True
    data = await reader.read()
    return status, len(data), False


class SmallLoad:
    """Open-loop small GETs at ``rate``/s over keep-alive connections; latency from the scheduled time."""

    def __init__(self, port: int, path: str, rate: float) -> None:
        self.port = port
        self.req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: gzip\r\n\r\n".encode()
        self.interval = 1.0 / rate
        self.samples: list[tuple[float, float]] = []  # (scheduled at, latency s)
        self.errors = 0
        self.not_sent = 0
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._inflight = 0
        self._stop = asyncio.Event()

    async def _one(self, due: float) -> None:
        self._inflight += 1
        try:
            if self._idle:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(self.req)
            status, _, ok = await _read_response(reader)
            self.samples.append((due, time.perf_counter() - due))
            if status != 200 or not ok:
                self.errors += 1
                writer.close()
            else:
                self._idle.append((reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.errors += 1
        finally:
            self._inflight -= 1

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        due = time.perf_counter()
        while not self._stop.is_set():
            due += self.interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._inflight >= MAX_OUTSTANDING:
                self.not_sent += 1
                continue
            t = asyncio.create_task(self._one(due))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        for _, w in self._idle:
            w.close()

    def stop(self) -> None:
        self._stop.set()

    def window(self, t0: float, t1: float) -> list[float]:
        return [lat for due, lat in self.samples if t0 <= due <= t1]


async def heavy_get(port: int, path: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 * MIB)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: gzip\r\n"
                 "Connection: close\r\n\r\n".encode())
    received = 0
    complete = False
    while True:
        try:
            data = await reader.read(4 * MIB)
        except (ConnectionResetError, OSError):
            break
        if not data:
            break
        received += len(data)
        if data.endswith(b"\r\n0\r\n\r\n"):
            complete = True
    writer.close()
    return {"path": path, "seconds": time.perf_counter() - t0, "bytes_received": received,
            "complete_chunked": complete}


def check_complete(proc: lab.Proc, load: str, heavy: list[dict[str, Any]]) -> None:
    """A sluicegate page response that was aborted (a work bound, an error) would make its throughput a
    figure for less work than counted: fail the run instead (nginx answers with Content-Length: not checked)."""
    if not (proc.name.startswith("sliced-") or proc.name == "unsliced") or "bomb" in load:
        return
    cut = [h for h in heavy if not h["complete_chunked"]]
    if cut:
        raise SystemExit(f"{proc.name} {load}: {len(cut)} of {len(heavy)} page responses incomplete: {cut[0]}\n"
                         f"{proc.log_tail()}")


# ------------------------------------------------------------------------------------------- metrics


def lag_buckets(admin_port: int) -> dict[str, dict[float, float]]:
    """Both lag histograms' cumulative buckets: ``lag`` (wall) and ``busy`` (the worker's own CPU only)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, dict[float, float]] = {"lag": {}, "busy": {}}
    for m in re.finditer(r'^sluicegate_event_loop_(busy_)?lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M):
        out["busy" if m.group(1) else "lag"][float(m.group(2))] = float(m.group(3))
    return out


def lag_stats(b0: dict[str, dict[float, float]], b1: dict[str, dict[float, float]]) -> dict[str, float]:
    out = _lag_stats(b0["lag"], b1["lag"])
    busy = _lag_stats(b0["busy"], b1["busy"])
    out["busy_p99_le_ms"] = busy["p99_le_ms"]
    out["busy_max_le_ms"] = busy["max_le_ms"]
    return out


def _lag_stats(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """p99 and max of the lag samples between two scrapes, as histogram bucket upper bounds (ms)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]  # cumulative
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return {"samples": 0, "p99_le_ms": float("nan"), "max_le_ms": float("nan")}
    p99 = next(b for b, c in zip(bounds, counts, strict=True) if c >= 0.99 * total)
    mx = next(b for b, c in zip(bounds, counts, strict=True) if c >= total)
    return {"samples": total, "p99_le_ms": p99 * 1000, "max_le_ms": mx * 1000}


# ------------------------------------------------------------------------------------------------ run


def _event_loop_keys(target: str) -> list[str]:
    """``[event_loop]`` keys of a sluicegate target: ``unsliced``, ``sliced-<N>ms``, ``sliced-<N>ms-st<M>``
    (``stretch_ms = M``; without it the default)."""
    if target == "unsliced":
        return ["slice_ms = 0"]
    m = re.fullmatch(r"sliced-([\d.]+)ms(?:-st([\d.]+))?", target)
    if m is None:
        raise ValueError(f"not a sluicegate target: {target!r}")
    return [f"slice_ms = {m[1]}", *([f"stretch_ms = {m[2]}"] if m[2] is not None else [])]


class Bench:
    def __init__(self, tmp: Path, procs: lab.Procs, nginx: str, rate: float, bomb_cap_mib: int,
                 piece_bytes: int) -> None:
        self.piece_bytes = piece_bytes
        self.bomb_cap_mib = bomb_cap_mib
        self.min_seconds = 3.0
        self.tmp = tmp
        self.procs = procs
        self.nginx = nginx
        self.rate = rate
        self.origin_port = lab.free_port()
        self.admin_of: dict[int, int] = {}  # sluicegate's public port -> its admin port (metrics live there)

    def prepare(self) -> dict[str, int]:
        www = self.tmp / "www"
        (www / "gz").mkdir(parents=True)
        origin = f"http://127.0.0.1:{self.origin_port}"
        sizes = {"small.html": len(page(origin, 2048))}
        (www / "small.html").write_bytes(page(origin, 2048))
        sizes["big50.html"] = write_gzip_html(www / "gz" / "big50.html", origin, 50 * MIB)
        sizes["big5.html"] = write_gzip_html(www / "gz" / "big5.html", origin, 5 * MIB, seed=2)
        sizes["bomb.html"] = write_bomb(www / "gz" / "bomb.html")
        gz = 'location /gz/ { types { } default_type "text/html; charset=utf-8"; add_header Content-Encoding gzip; }'
        lab.nginx.start(self.procs, self.nginx, self.tmp, "origin",
                    lab.nginx.origin_conf(self.tmp, self.origin_port, types="types { text/html html; }", locations=gz),
                    self.origin_port, "/small.html")
        return sizes

    def start(self, target: str) -> tuple[int, lab.Proc]:
        port = lab.free_port()
        if target == "nginx":
            return port, lab.nginx.start(self.procs, self.nginx, self.tmp, f"proxy-{port}",
                                     lab.nginx.proxy_conf(self.tmp, port, self.origin_port), port, "/small.html")
        cfg = self.tmp / f"sg-{port}.toml"
        self.admin_of[port] = admin = lab.free_port()
        cfg.write_text("\n".join([
            "[server]", 'host = "127.0.0.1"', f"port = {port}", "",
            "[admin]", f'listen = "127.0.0.1:{admin}"', "",
            "[publisher]", f'origin_url = "http://127.0.0.1:{self.origin_port}"',
            f'public_hosts = ["127.0.0.1:{port}"]', "",
            "[limits]", f"max_decoded_body_bytes = {self.bomb_cap_mib * MIB}", "",
            "[event_loop]", *_event_loop_keys(target),
            f"piece_bytes = {self.piece_bytes}", "",
        ]))
        argv = [lab.PY, "-m", "sluicegate", "serve", "--config", str(cfg), "--port", str(port), "--workers", "1"]
        proc = self.procs.add(lab.Proc(target, argv, self.tmp / f"sluicegate-{target}.log"))
        lab.wait_http(admin, "/livez", proc)
        return port, proc

    async def heavy_alone(self, port: int, proc: lab.Proc, load: str) -> dict[str, float]:
        """The heavy load with nothing else running: throughput per wall and per CPU second (the A/B figure)."""
        cpu0 = lab.tree_cpu_s(proc.pid)
        t0 = time.perf_counter()
        heavy = list(await asyncio.gather(*(heavy_get(port, p) for p in LOADS[load]["paths"])))
        wall = time.perf_counter() - t0
        cpu = lab.tree_cpu_s(proc.pid) - cpu0
        check_complete(proc, load, heavy)
        mib = LOADS[load]["decoded_mib"] * len(heavy)
        return {"wall_s": wall, "cpu_s": cpu, "mib_per_s": mib / wall,
                "mib_per_cpu_s": mib / cpu if cpu > 0 else float("nan")}

    async def scenario(self, target: str, port: int, proc: lab.Proc, load: str | None) -> dict[str, Any]:
        alone = await self.heavy_alone(port, proc, load) if load is not None else None
        small = SmallLoad(port, "/small.html", self.rate)
        runner = asyncio.create_task(small.run())
        is_sg = target != "nginx"
        await asyncio.sleep(0.5)
        lag0 = lag_buckets(self.admin_of[port]) if is_sg else None
        cpu0 = lab.tree_cpu_s(proc.pid)
        t0 = time.perf_counter()
        heavy: list[dict[str, Any]] = []
        if load is None:
            await asyncio.sleep(self.min_seconds)
        else:
            # the heavy set again and again until min_seconds have passed (nginx is done in milliseconds)
            while not heavy or time.perf_counter() - t0 < self.min_seconds:
                heavy += await asyncio.gather(*(heavy_get(port, p) for p in LOADS[load]["paths"]))
            check_complete(proc, load, heavy)
        t1 = time.perf_counter()
        cpu = lab.tree_cpu_s(proc.pid) - cpu0
        lag1 = lag_buckets(self.admin_of[port]) if is_sg else None
        await asyncio.sleep(0.3)
        small.stop()
        await runner
        lat = [x * 1000 for x in small.window(t0, t1)]
        res: dict[str, Any] = {
            "target": target, "load": load or "idle", "wall_s": t1 - t0, "proxy_cpu_s": cpu,
            "small": {"n": len(lat), "p50_ms": lab.pct(lat, 50), "p99_ms": lab.pct(lat, 99),
                      "max_ms": max(lat) if lat else float("nan"), "errors": small.errors,
                      "not_sent": small.not_sent},
            "heavy": heavy, "loadavg_1m": lab.loadavg1(),
        }
        if lag0 is not None and lag1 is not None:
            res["lag"] = lag_stats(lag0, lag1)
        if alone is not None:
            res["heavy_alone"] = alone
            res["heavy_mib_per_s"] = LOADS[load]["decoded_mib"] * len(heavy) / (t1 - t0)  # type: ignore[index]
        return res


async def disconnect_to_idle(port: int, proc: lab.Proc) -> dict[str, float]:
    """Client closes 1 s into the bomb: when does the worker's CPU go idle? (idle from t = at most 20 ms of CPU
    in the 300 ms after t; /proc ticks are 10 ms)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /gz/bomb.html HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: gzip\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(1.0)
    c0 = lab.tree_cpu_s(proc.pid)
    await asyncio.sleep(0.2)
    busy = (lab.tree_cpu_s(proc.pid) - c0) / 0.2
    writer.close()
    closed = time.perf_counter()
    samples = []
    while time.perf_counter() - closed < 1.5:
        samples.append((time.perf_counter() - closed, lab.tree_cpu_s(proc.pid)))
        await asyncio.sleep(0.01)
    idle_at = next((t for t, c in samples if t <= 1.1
                    and next(c2 for t2, c2 in samples if t2 >= t + 0.3) - c <= 0.02), float("nan"))
    # an abandoned bomb that is still being decoded would load the phases measured next: wait it out
    t_wait = time.perf_counter()
    while time.perf_counter() - t_wait < 120:
        c0 = lab.tree_cpu_s(proc.pid)
        await asyncio.sleep(0.3)
        if lab.tree_cpu_s(proc.pid) - c0 <= 0.02:
            break
    return {"cpu_share_before_close": busy, "idle_ms_after_close": idle_at * 1000,
            "cpu_s_in_1_5s_after_close": samples[-1][1] - samples[0][1]}


async def measure(bench: Bench, runs: int) -> list[dict[str, Any]]:
    rows = []
    for run in range(runs):
        order = list(TARGETS) if run % 2 == 0 else list(reversed(TARGETS))
        lab.log(f"run {run + 1}/{runs}: {' -> '.join(order)}")
        for target in order:
            port, proc = bench.start(target)
            try:
                if target != "nginx":
                    d = await disconnect_to_idle(port, proc)
                    rows.append({"target": target, "load": "disconnect", "run": run, "disconnect": d})
                    lab.log(f"  {target:9s} client closed inside the bomb: {d}")
                for load in (None, *LOADS):
                    r = await bench.scenario(target, port, proc, load)
                    r["run"] = run
                    rows.append(r)
                    s = r["small"]
                    lab.log(f"  {target:9s} {r['load']:20s} small p50 {s['p50_ms']:.1f} p99 {s['p99_ms']:.1f} "
                        f"max {s['max_ms']:.1f} ms (n={s['n']}) lag {r.get('lag', {})} "
                        f"heavy {r.get('heavy_mib_per_s', 0):.1f} MiB/s mixed; alone {r.get('heavy_alone', {})}")
            finally:
                bench.procs.stop(proc)
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in TARGETS:
        ds = [r["disconnect"] for r in rows if r["target"] == target and r["load"] == "disconnect"]
        if ds:
            out[f"{target} | disconnect"] = {
                "idle_ms_after_close": lab.med([d["idle_ms_after_close"] for d in ds]),
                "idle_ms_after_close_worst": max(d["idle_ms_after_close"] for d in ds),
                "cpu_s_in_1_5s_after_close": lab.med([d["cpu_s_in_1_5s_after_close"] for d in ds]),
            }
        for load in ("idle", *LOADS):
            rs = [r for r in rows if r["target"] == target and r["load"] == load]
            if not rs:
                continue
            out[f"{target} | {load}"] = {
                "small_p50_ms": lab.med([r["small"]["p50_ms"] for r in rs]),
                "small_p99_ms": lab.med([r["small"]["p99_ms"] for r in rs]),
                "small_max_ms": lab.med([r["small"]["max_ms"] for r in rs]),
                "small_max_ms_worst_run": max(r["small"]["max_ms"] for r in rs),
                "lag_p99_le_ms": lab.med([r["lag"]["p99_le_ms"] for r in rs]) if "lag" in rs[0] else float("nan"),
                "lag_max_le_ms": max(r["lag"]["max_le_ms"] for r in rs) if "lag" in rs[0] else float("nan"),
                "busy_lag_p99_le_ms": lab.med([r["lag"]["busy_p99_le_ms"] for r in rs]) if "lag" in rs[0]
                else float("nan"),
                "busy_lag_max_le_ms": max(r["lag"]["busy_max_le_ms"] for r in rs) if "lag" in rs[0] else float("nan"),
                "heavy_mixed_mib_per_s": lab.med([r.get("heavy_mib_per_s", float("nan")) for r in rs]),
                "heavy_mib_per_s": lab.med([r["heavy_alone"]["mib_per_s"] if "heavy_alone" in r else float("nan")
                                        for r in rs]),
                "heavy_mib_per_cpu_s": lab.med([r["heavy_alone"]["mib_per_cpu_s"] if "heavy_alone" in r
                                            else float("nan") for r in rs]),
                "runs": len(rs),
            }
    for load in LOADS:
        for target in TARGETS:
            s, u = out.get(f"{target} | {load}"), out.get(f"unsliced | {load}")
            if not target.startswith("sliced") or not s or not u:
                continue
            out[f"{target}/unsliced | {load}"] = {
                "throughput_wall": s["heavy_mib_per_s"] / u["heavy_mib_per_s"],
                "throughput_per_cpu": s["heavy_mib_per_cpu_s"] / u["heavy_mib_per_cpu_s"],
            }
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = ["idle", *LOADS]
    panels = (("small_p99_ms", "small-request p99 (ms, log)", 10), ("small_max_ms", "small-request max (ms, log)", 50),
              ("busy_lag_max_le_ms", "loop busy-lag max, bucket bound (ms, log)", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4.8))
    width = 0.8 / len(TARGETS)
    for ax, (key, title, goal) in zip(axes, panels, strict=True):
        for i, target in enumerate(TARGETS):
            ys = [summary.get(f"{target} | {ld}", {}).get(key, float("nan")) for ld in loads]
            ax.bar([x - 0.4 + (i + 0.5) * width for x in range(len(loads))], ys, width, label=target)
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_xticks(range(len(loads)), [ld.split(":")[0] for ld in loads])
        if goal is not None:
            ax.axhline(goal, color="k", linestyle="--", linewidth=0.8, label=f"goal {goal} ms")
        ax.legend(fontsize=8)
    fig.suptitle("One worker: small GETs at a steady rate while heavy rewriting runs (a: 50 MiB page, "
                 "b: 4 x 5 MiB, c: gzip bomb)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench fairness", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--rate", type=float, default=100.0, help="small requests per second")
    ap.add_argument("--bomb-cap-mib", type=int, default=64,
                    help="sluicegate max_decoded_body_bytes for the run (> 50: the 50 MiB page is under the same cap)")
    ap.add_argument("--slice-ms", default="1,2", help="comma-separated [event_loop] slice_ms values, one target each")
    ap.add_argument("--stretch-ms", default="", metavar="MS[,MS]",
                    help="[event_loop] stretch_ms values, one sliced target each (sliced-<N>ms-st<M>); "
                         "default: the configured default, one target per --slice-ms")
    ap.add_argument("--hash-seed", type=int, default=None, metavar="N",
                    help="PYTHONHASHSEED of every sluicegate target in the run (default: a random one, the same for "
                         "all targets; recorded): str hashes decide dict layouts, which moved one process's "
                         "throughput by up to 4 %% against another running the same code")
    ap.add_argument("--piece-bytes", type=int, default=16384, help="[event_loop] piece_bytes (both sluicegates)")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--ab", type=int, default=0, metavar="N",
                    help="only heavy-alone throughput: N alternated sets per load, sluicegate targets side by side")
    ap.add_argument("--loads", default="abc", metavar="LETTERS",
                    help="with --ab: the heavy loads to measure, by letter (e.g. b: only 4 x 5 MiB pages)")
    args = ap.parse_args(argv)
    if args.bomb_cap_mib <= 50:
        ap.error("--bomb-cap-mib must exceed 50: the cap applies to the 50 MiB page too")
    if args.plot is None:
        args.plot = lab.results_dir() / "publisher-fairness.png"
    tools = lab.ensure_apt({"nginx": "nginx"})
    import os
    import random
    import tempfile

    if args.hash_seed is None:
        args.hash_seed = random.randrange(1, 1 << 31)
    os.environ["PYTHONHASHSEED"] = str(args.hash_seed)  # inherited by every target started below
    lab.log(f"PYTHONHASHSEED={args.hash_seed} for every sluicegate target")

    from sluicegate.bench.suites import fairness_ab

    with tempfile.TemporaryDirectory(prefix="sg-fair-") as tmp, lab.Procs() as procs:
        LOADS["c: 1 gzip bomb"]["decoded_mib"] = args.bomb_cap_mib
        stretches = [f"-st{float(st):g}" for st in args.stretch_ms.split(",")] if args.stretch_ms else [""]
        TARGETS[:] = [*(f"sliced-{float(ms):g}ms{st}" for ms in args.slice_ms.split(",") for st in stretches),
                      "unsliced", "nginx"]
        bench = Bench(Path(tmp), procs, tools["nginx"], args.rate, args.bomb_cap_mib, args.piece_bytes)
        lab.log("preparing pages (50 MiB + 5 MiB gzip HTML, 10 GiB gzip bomb) ...")
        sizes = bench.prepare()
        started = time.time()
        if args.ab:
            loads = [load for load in LOADS if load[0] in args.loads]
            if not loads:
                ap.error(f"--loads {args.loads!r} names none of {', '.join(k[0] for k in LOADS)}")
            ab_rows = asyncio.run(fairness_ab.measure_ab(bench, args.ab, loads))
        else:
            rows = asyncio.run(measure(bench, args.runs))
    if args.ab:
        fairness_ab.report(ab_rows, args, started, sizes)
        return
    summary = summarize(rows)
    head = ["target | load", "small p50", "small p99", "small max", "lag p99 <=", "lag max <=", "busy p99 <=",
            "busy max <=", "heavy MiB/s", "MiB/cpu-s", "mixed MiB/s"]
    print()
    print(lab.table(head, [[k, v["small_p50_ms"], v["small_p99_ms"], v["small_max_ms"], v["lag_p99_le_ms"],
                        v["lag_max_le_ms"], v["busy_lag_p99_le_ms"], v["busy_lag_max_le_ms"], v["heavy_mib_per_s"],
                        v["heavy_mib_per_cpu_s"], v["heavy_mixed_mib_per_s"]]
                       for k, v in summary.items() if "small_p50_ms" in v]))
    print()
    for k, v in summary.items():
        if "idle_ms_after_close" in v:
            print(f"{k}: CPU idle {v['idle_ms_after_close']:.0f} ms after the client closed (worst "
                  f"{v['idle_ms_after_close_worst']:.0f}); CPU in the 1.5 s after: "
                  f"{v['cpu_s_in_1_5s_after_close']:.2f} s")
        if "throughput_wall" in v:
            print(f"{k}: throughput sliced/unsliced wall {v['throughput_wall']:.3f}, per CPU-s "
                  f"{v['throughput_per_cpu']:.3f}")
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot(summary, args.plot)
    path = lab.write_json("publisher-fairness", {
        "command": f"sluicegate bench fairness --runs {args.runs} --rate {args.rate:g} "
                   f"--bomb-cap-mib {args.bomb_cap_mib} --slice-ms {args.slice_ms} --piece-bytes {args.piece_bytes} "
                   f"--hash-seed {args.hash_seed}",
        "started": started, "rate_per_s": args.rate, "file_sizes": sizes, "summary": summary, "rows": rows,
        "machine": lab.machine(), "versions": lab.versions(["nginx"]),
        "note": "wall-clock figures taken on a shared machine (other tenants' CPU load); compare side by side",
    })
    print(f"\nwrote {path} and {args.plot}")


if __name__ == "__main__":
    main()
