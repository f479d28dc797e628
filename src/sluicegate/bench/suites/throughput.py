"""Throughput and latency: direct origin / nginx ``proxy_pass`` / sluicegate, 1 and 2 workers, same run.

What it measures: ``wrk -t2 -c64 -d5s --latency --timeout 10s`` (Debian wrk) requests/s, p50 and p99 latency
for four pages served by an origin nginx (static files, sendfile, 1 worker):
  * 2 KB HTML     (``text/html``: the Stream route in sluicegate, host rewriting, identity encoding)
  * 2 KB binary   (the same bytes as ``application/octet-stream``: the PassThrough route)
  * 200 KB binary (PassThrough)
  * 200 KB HTML   (Stream route, rewritten)
and, for ``throughput-ab --pages``, the two HTML pages from a gzip origin: ``gz/page2k.html``, ``gz/page200k.html``
(always sent gzip'd, level 6: the Stream route decodes, rewrites and re-encodes them; nginx passes them on)
through six targets: ``direct`` (wrk at the origin), ``nginx-w1``/``nginx-w2`` (Debian nginx as a reverse proxy,
default ``proxy_buffering on``, upstream keep-alive, 1 or 2 worker processes), ``baseline-w1`` (``suites/baseline.py``:
the usual bare Python relay, uvicorn + aiohttp, nothing of sluicegate in it; it relays HTML unchanged) and
``sluicegate-w1``/``-w2`` (``sluicegate serve --workers N``). Every target sees every page in every run; the
targets run round-robin (order reversed every other run), ``--runs`` runs (default 3); the figures are medians
over runs with min-max.
Ratios are sluicegate / nginx with the same number of workers. Goal (issue 2): >= 0.2x nginx on 2 KB pages and
>= 0.6x on 200 KB pages. Each wrk run also records the CPU used by the proxy's process tree, the origin, wrk, and
everything else on the machine ("foreign", other tenants), in % of one core, and the 1-minute load average.

Then (unless ``--no-profile``) sluicegate with 1 worker is profiled under the same wrk load with py-spy attached to
the worker process (not the supervisor ``sluicegate serve`` starts)
(``record --native`` at 100 Hz, 6 s per page) and the top functions by own samples and by inclusive samples,
and the samples per component (HTML rewriter, aiohttp, uvicorn, socket syscalls, GC, ...) are reported.

How: everything (origin nginx, proxy nginx, sluicegate, wrk) runs on this machine over 127.0.0.1 on free ports,
from a temp dir, started and stopped by this script. nginx and wrk are installed with apt-get if missing.

Run: ``sluicegate bench throughput`` (about 9 minutes)
  -> ``bench/results/publisher-throughput.json``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import resource
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.profile import parse_collapsed as collapsed_stacks
from sluicegate.dev.origin.content import page

PAGES: dict[str, dict[str, Any]] = {
    "2 KB html": {"file": "page2k.html", "size": 2048, "route": "Stream (rewrite)"},
    "2 KB bin": {"file": "page2k.bin", "size": 2048, "route": "PassThrough"},
    "200 KB bin": {"file": "page200k.bin", "size": 204800, "route": "PassThrough"},
    "200 KB html": {"file": "page200k.html", "size": 204800, "route": "Stream (rewrite)"},
}
TARGETS = ("direct", "nginx-w1", "nginx-w2", "baseline-w1", "sluicegate-w1", "sluicegate-w2")
GOALS = {"2 KB": 0.2, "200 KB": 0.6}
PROFILE_PAGES = tuple(PAGES)


# ------------------------------------------------------------------------------------------------ wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out: str) -> dict[str, Any]:
    res: dict[str, Any] = {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "requests": 0,
                           "socket_errors": "", "non2xx": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    for p in ("50", "99"):
        if m := re.search(rf"^\s+{p}%\s+(\S+)", out, re.M):
            res[f"p{p}_ms"] = _ms(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        res["requests"] = int(m.group(1))
    if m := re.search(r"Socket errors: (.*)", out):
        res["socket_errors"] = m.group(1).strip()
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        res["non2xx"] = int(m.group(1))
    return res


def run_wrk(wrk: str, url: str, duration: float, connections: int = 64) -> tuple[dict[str, Any], float]:
    """One wrk run; returns the parsed result and wrk's own CPU seconds (from RUSAGE_CHILDREN)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([wrk, "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s", url],
                         capture_output=True, text=True, timeout=duration + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res = parse_wrk(out.stdout)
    if out.returncode != 0:
        res["error"] = out.stderr.strip()[-500:]
    return res, cpu


# ---------------------------------------------------------------------------------------------- targets


class Bench:
    def __init__(self, tmp: Path, procs: lab.Procs, tools: dict[str, str]) -> None:
        self.tmp = tmp
        self.procs = procs
        self.nginx = tools["nginx"]
        self.wrk = tools["wrk"]
        self.origin_port = lab.free_port()
        self.origin: lab.Proc | None = None
        self.expect: dict[str, bytes] = {}

    def prepare(self) -> None:
        www = self.tmp / "www"
        www.mkdir()
        origin_url = f"http://127.0.0.1:{self.origin_port}"
        (www / "gz").mkdir()
        for spec in PAGES.values():
            data = page(origin_url, spec["size"])
            (www / spec["file"]).write_bytes(data)
            self.expect[spec["file"]] = data
            if spec["file"].endswith(".html"):
                # the same page from a gzip origin (issue 19's "gzip origin, rewritten, re-encoded" row):
                # /gz/<page> is always sent gzip'd (level 6, nginx's gzip_static), whatever the client accepts
                (www / "gz" / (spec["file"] + ".gz")).write_bytes(gzip.compress(data, 6, mtime=0))
                self.expect["gz/" + spec["file"]] = data
        types = "types { text/html html; application/octet-stream bin; }\n  default_type application/octet-stream;"
        self.origin = lab.nginx.start(self.procs, self.nginx, self.tmp, "origin",
                                  lab.nginx.origin_conf(self.tmp, self.origin_port, types=types,
                                                        locations="location /gz/ { gzip_static always; }"),
                                  self.origin_port, "/page2k.bin")

    def start(self, target: str) -> tuple[int, lab.Proc | None]:
        if target == "direct":
            return self.origin_port, None
        port = lab.free_port()
        workers = int(target.rsplit("-w", 1)[1])
        if target == "baseline-w1":
            argv = [lab.PY, "-m", "sluicegate.bench.suites.baseline", "--port", str(port),
                    "--origin", f"http://127.0.0.1:{self.origin_port}"]
            proc = self.procs.add(lab.Proc(target, argv, self.tmp / "baseline.log"))
            lab.wait_http(port, "/page2k.bin", proc)
        elif target.startswith("nginx"):
            proc = lab.nginx.start(self.procs, self.nginx, self.tmp, f"proxy-{port}",
                               lab.nginx.proxy_conf(self.tmp, port, self.origin_port, workers), port, "/page2k.bin")
        else:
            cfg = lab.write_sluicegate_config(self.tmp / f"sg-{port}.toml", origin_port=self.origin_port,
                                          proxy_port=port, workers=workers)
            proc = self.procs.add(lab.sluicegate_proc(target, cfg, port, workers, self.tmp / "sluicegate.log"))
            lab.wait_http(port, "/_sluicegate/health", proc)
            if workers > 1:  # let every worker finish its start-up before measuring
                time.sleep(1.5)
        return port, proc

    def verify(self, target: str, port: int) -> dict[str, bool]:
        """Bodies are right: binary byte-identical; HTML complete with origin URLs in attributes rewritten."""
        ok = {}
        origin_host = f"127.0.0.1:{self.origin_port}".encode()
        for name, spec in PAGES.items():
            f = lab.http_get(port, "/" + spec["file"], keep_body=True)
            want = self.expect[spec["file"]]
            if f.status != 200 or not f.complete:
                ok[name] = False
            elif target.startswith("sluicegate") and spec["file"].endswith(".html"):
                public = f"127.0.0.1:{port}".encode()
                ok[name] = (f.body.replace(public, origin_host) == want
                            or (f'href="http://127.0.0.1:{port}/'.encode() in f.body
                                and b'href="http://' + origin_host not in f.body))
            else:
                ok[name] = f.body == want
        return ok


def measure(args: argparse.Namespace, bench: Bench) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    for run in range(args.runs):
        order = list(TARGETS) if run % 2 == 0 else list(reversed(TARGETS))
        lab.log(f"run {run + 1}/{args.runs}: {' -> '.join(order)}")
        for target in order:
            port, proc = bench.start(target)
            try:
                checks.setdefault(target, bench.verify(target, port))
                for name, spec in PAGES.items():
                    url = f"http://127.0.0.1:{port}/{spec['file']}"
                    run_wrk(bench.wrk, url, args.warmup)
                    roots = {"origin": bench.origin.pid} if bench.origin else {}
                    if proc is not None:
                        roots["proxy"] = proc.pid
                    load = lab.loadavg1()
                    with lab.CpuMeter(roots) as cpu:
                        res, wrk_cpu = run_wrk(bench.wrk, url, args.duration)
                    pc = cpu.percent(extra_ours=wrk_cpu)
                    pc["wrk"] = 100 * wrk_cpu / cpu.wall
                    row = {"run": run, "target": target, "page": name, "loadavg_1m": load,
                           "cpu_pct_of_one_core": {k: round(v, 1) for k, v in pc.items()}, **res}
                    rows.append(row)
                    lab.log(f"  {target:14s} {name:12s} {res['rps']:>10,.0f} req/s  p50 {res['p50_ms']:.2f} ms  "
                        f"p99 {res['p99_ms']:.1f} ms  cpu proxy {pc.get('proxy', 0):.0f}% origin "
                        f"{pc.get('origin', 0):.0f}% wrk {pc['wrk']:.0f}% foreign {pc['foreign']:.0f}%  "
                        f"load {load:.2f}" + (f"  errors: {res['socket_errors']}" if "timeout 0" not in
                                              res["socket_errors"] and res["socket_errors"] else ""))
            finally:
                if proc is not None:
                    bench.procs.stop(proc)
    return rows, checks


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target in TARGETS:
        for name in PAGES:
            rs = [r for r in rows if r["target"] == target and r["page"] == name]
            if not rs:
                continue
            out[f"{target} | {name}"] = {
                "target": target, "page": name, "runs": len(rs),
                "rps": lab.summary([r["rps"] for r in rs]), "p50_ms": lab.summary([r["p50_ms"] for r in rs]),
                "p99_ms": lab.summary([r["p99_ms"] for r in rs]),
                "proxy_cpu_pct": lab.med([r["cpu_pct_of_one_core"].get("proxy", float("nan")) for r in rs]),
                # CPU time the proxy spends per request: less sensitive to other tenants than req/s
                "proxy_cpu_us_per_req": lab.med([r["cpu_pct_of_one_core"].get("proxy", float("nan")) * 1e4 / r["rps"]
                                             for r in rs if r["rps"]]),
                "origin_cpu_pct": lab.med([r["cpu_pct_of_one_core"].get("origin", float("nan")) for r in rs]),
                "wrk_cpu_pct": lab.med([r["cpu_pct_of_one_core"]["wrk"] for r in rs]),
                "foreign_cpu_pct": lab.med([r["cpu_pct_of_one_core"]["foreign"] for r in rs]),
                "loadavg_1m": lab.med([r["loadavg_1m"] for r in rs]),
                "socket_errors": sorted({r["socket_errors"] for r in rs if r["socket_errors"]}),
                "non2xx": sum(r["non2xx"] for r in rs),
            }
    ratios: dict[str, Any] = {}
    for w in ("1", "2"):
        for name in PAGES:
            sg, ng = out.get(f"sluicegate-w{w} | {name}"), out.get(f"nginx-w{w} | {name}")
            if not sg or not ng:
                continue
            goal = GOALS["2 KB" if name.startswith("2 KB") else "200 KB"]
            r = sg["rps"]["median"] / ng["rps"]["median"] if ng["rps"]["median"] else float("nan")
            # per-run ratios (same run, so the same background load) show the spread
            per_run = [s["rps"] / n["rps"] for s in rows for n in rows
                       if s["target"] == f"sluicegate-w{w}" and n["target"] == f"nginx-w{w}"
                       and s["page"] == n["page"] == name and s["run"] == n["run"] and n["rps"]]
            ratios[f"w{w} | {name}"] = {"workers": int(w), "page": name, "ratio": r, "goal": goal,
                                       "met": r >= goal, "per_run": per_run}
    base: dict[str, Any] = {}
    for name in PAGES:
        bl, ng, sg = (out.get(f"{t} | {name}") for t in ("baseline-w1", "nginx-w1", "sluicegate-w1"))
        if bl and ng and sg:
            base[name] = {"baseline_over_nginx": bl["rps"]["median"] / ng["rps"]["median"],
                          "sluicegate_over_baseline": sg["rps"]["median"] / bl["rps"]["median"],
                          "baseline_cpu_us_per_req": bl["proxy_cpu_us_per_req"],
                          "sluicegate_cpu_us_per_req": sg["proxy_cpu_us_per_req"]}
    return {"cells": out, "ratios": ratios, "baseline_w1": base}


# ------------------------------------------------------------------------------------------- profiling


def _frame(f: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (pkg/file.py)'; native frames are kept as named."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", f)
    if not m:
        return f
    func, path = m.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


_SYSCALLS = frozenset({"write", "writev", "send", "sendmsg", "sendto", "read", "readv", "recv", "recvfrom",
                       "recvmsg", "epoll_wait", "epoll_ctl", "accept4", "close", "connect", "setsockopt",
                       "getsockopt", "shutdown"})
_COMPONENTS = (  # (path fragment of the innermost Python frame, component); first match wins
    ("sluicegate/pipeline/html", "HTML rewriter (pipeline/html)"),
    ("sluicegate/pipeline/flight", "HTML rewriter (pipeline/html)"),
    ("sluicegate/pipeline/hosts", "host matching (pipeline/hosts)"),
    ("sluicegate/pipeline/text", "host matching (pipeline/hosts)"),
    ("sluicegate/pipeline/codecs", "codecs (pipeline/codecs)"),
    ("sluicegate/publisher", "proxy relay + headers (publisher/)"),
    ("sluicegate/gate", "proxy relay + headers (publisher/)"),
    ("sluicegate/server", "ASGI app glue (server/)"),
    ("sluicegate/observability", "metrics (prometheus_client)"),
    ("prometheus_client", "metrics (prometheus_client)"),
    ("aiohttp", "aiohttp client"), ("yarl", "aiohttp client"), ("multidict", "aiohttp client"),
    ("uvicorn", "uvicorn + httptools"), ("httptools", "uvicorn + httptools"),
    ("asyncio", "asyncio / uvloop scheduling"), ("uvloop", "asyncio / uvloop scheduling"),
)


def _component(frames: list[str]) -> str:
    leaf = frames[-1].split(" (", 1)[0]
    if leaf in _SYSCALLS:
        return f"socket syscalls ({leaf})" if leaf in ("write", "read") else "other syscalls"
    if any(f.startswith(("gc_collect", "collect (")) for f in frames):
        return "garbage collector"
    for f in reversed(frames):
        path = f.rsplit(" (", 1)[-1]
        if path.endswith((".py)", ".pyx)")):
            for frag, comp in _COMPONENTS:
                if frag in path:
                    return comp
            return f"other Python ({path.rstrip(')')})"
    return "native, no Python frame"


def breakdown(text: str, top: int = 15) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks -> top functions by own samples, by inclusive samples (minus the
    event-loop spine present in >= 90 % of samples), and samples per component (innermost Python frame)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    comp: Counter[str] = Counter()
    total = 0
    for stack, n in collapsed_stacks(text).items():
        frames = [_frame(f) for f in stack]
        total += n
        own[frames[-1]] += n
        comp[_component(frames)] += n
        for f in set(frames):
            incl[f] += n

    def pct(c: int) -> float:
        return round(100 * c / total, 1) if total else 0.0

    return {"samples": total,
            "top_own": [{"function": f, "pct": pct(c)} for f, c in own.most_common(top)],
            "top_inclusive": [{"function": f, "pct": pct(c)} for f, c in incl.most_common()
                              if c < 0.9 * total][:top],
            "components": [{"component": k, "pct": pct(c)} for k, c in comp.most_common()]}


def profile(args: argparse.Namespace, bench: Bench, py_spy: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    port, proc = bench.start("sluicegate-w1")
    assert proc is not None
    # the worker, not `sluicegate serve` itself: the supervisor only supervises (profiling its pid showed
    # selectors/subprocess, never the relay)
    worker = lab.worker_pids(proc.pid)[0]
    try:
        for name in PROFILE_PAGES:
            url = f"http://127.0.0.1:{port}/{PAGES[name]['file']}"
            run_wrk(bench.wrk, url, 1)
            dest = bench.tmp / f"profile-{name.replace(' ', '_')}.txt"
            # --native shows time inside uvloop/httptools/zlib; it pauses the process per sample (100 Hz)
            argv = [py_spy, "record", "--pid", str(worker), "--rate", "100", "--duration", str(args.profile_s),
                    "--format", "raw", "--output", str(dest), "--native"]
            holder: dict[str, Any] = {}

            def load(u: str = url, h: dict[str, Any] = holder) -> None:
                h["wrk"] = run_wrk(bench.wrk, u, args.profile_s + 2)[0]

            t = threading.Thread(target=load)
            t.start()
            time.sleep(0.5)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=args.profile_s + 60)
            if r.returncode != 0 or not dest.exists():  # --native is not supported everywhere: retry without
                argv[argv.index("--native")] = "--nonblocking"
                r = subprocess.run(argv, capture_output=True, text=True, timeout=args.profile_s + 60)
            t.join()
            res: dict[str, Any] = (breakdown(dest.read_text()) if dest.exists()
                                   else {"error": r.stderr[-500:]})
            if dest.exists():  # keep the raw stacks (flamegraph.pl / speedscope can read them)
                keep = lab.results_dir() / f"publisher-throughput-profile-{name.replace(' ', '_')}.txt"
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_text(dest.read_text())
                res["raw_stacks"] = str(keep)
            res["native"] = "--native" in argv
            res["rate_hz"] = 100
            res["seconds"] = args.profile_s
            res["pid"] = "worker" if worker != proc.pid else "server"
            res["wrk_under_profiler"] = holder.get("wrk", {})
            out[name] = res
            lab.log(f"profiled {name}: {res.get('samples', 0)} samples")
    finally:
        bench.procs.stop(proc)
    return out


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench throughput", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk measurement (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of wrk warm-up per page (default 1)")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of sluicegate")
    ap.add_argument("--profile-s", type=int, default=6, help="seconds of py-spy sampling per page (default 6)")
    args = ap.parse_args(argv)

    tools = lab.ensure_apt({"nginx": "nginx", "wrk": "wrk"})
    py_spy = "" if args.no_profile else lab.ensure_py_spy()
    started = time.time()
    result: dict[str, Any] = {"benchmark": "publisher-throughput", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "machine": lab.machine(), "versions": lab.versions(["nginx", "wrk", "py-spy"]),
                              "method": __doc__,
                              "wrk": f"wrk -t2 -c64 -d{args.duration:g}s --latency --timeout 10s "
                                     f"(warm-up {args.warmup:g}s per page)"}
    with tempfile.TemporaryDirectory(prefix="sg-bench-tput-") as tmp, lab.Procs() as procs:
        d = Path(tmp)
        os.chmod(d, 0o755)
        bench = Bench(d, procs, tools)
        bench.prepare()
        rows, checks = measure(args, bench)
        result["body_checks"] = checks
        result["rows"] = rows
        result["summary"] = summarize(rows)
        if not args.no_profile:
            result["profile"] = profile(args, bench, py_spy)
    result["elapsed_s"] = round(time.time() - started, 1)
    path = lab.write_json("publisher-throughput", result)
    print_report(result)
    lab.log(f"wrote {path}")
    return result


def print_report(res: dict[str, Any]) -> None:
    cells = res["summary"]["cells"]
    print(f"\nThroughput, {res['wrk']}; median over runs (min-max)\n")
    rows = []
    for name in PAGES:
        for target in TARGETS:
            c = cells.get(f"{target} | {name}")
            if not c:
                continue
            rows.append([name, PAGES[name]["route"] if target.startswith("sluicegate") else "", target,
                         f"{c['rps']['median']:,.0f} ({c['rps']['min']:,.0f}-{c['rps']['max']:,.0f})",
                         c["p50_ms"]["median"], c["p99_ms"]["median"], f"{c['proxy_cpu_pct']:.0f}",
                         f"{c['proxy_cpu_us_per_req']:.0f}",
                         f"{c['origin_cpu_pct']:.0f}", f"{c['wrk_cpu_pct']:.0f}", f"{c['foreign_cpu_pct']:.0f}",
                         f"{c['loadavg_1m']:.2f}", "; ".join(e for e in c["socket_errors"] if "timeout 0" not in e)])
    print(lab.table(["page", "sluicegate route", "target", "req/s", "p50 ms", "p99 ms", "proxy CPU%",
                     "proxy CPU µs/req", "origin CPU%", "wrk CPU%", "foreign CPU%", "load 1m", "socket errors"], rows))
    print("\nsluicegate / nginx (same number of workers): ratio of medians [per-run ratios]\n")
    rows = []
    for r in res["summary"]["ratios"].values():
        rows.append([r["page"], r["workers"], f"{r['ratio']:.2f}", "[" + ", ".join(f"{x:.2f}" for x in r["per_run"])
                     + "]", f">= {r['goal']}", "MET" if r["met"] else "NOT MET"])
    print(lab.table(["page", "workers", "ratio", "per run", "goal", "result"], rows))
    if res["summary"].get("baseline_w1"):
        print("\n1 worker: bare uvicorn+aiohttp relay (baseline) vs nginx and vs sluicegate; CPU µs per request\n")
        print(lab.table(["page", "baseline / nginx", "sluicegate / baseline", "baseline CPU µs/req",
                     "sluicegate CPU µs/req"],
                    [[n, f"{b['baseline_over_nginx']:.2f}", f"{b['sluicegate_over_baseline']:.2f}",
                      f"{b['baseline_cpu_us_per_req']:.0f}", f"{b['sluicegate_cpu_us_per_req']:.0f}"]
                     for n, b in res["summary"]["baseline_w1"].items()]))
    bad = {t: [p for p, ok in c.items() if not ok] for t, c in res["body_checks"].items()}
    bad = {t: p for t, p in bad.items() if p}
    print("\nBody checks: " + ("all bodies correct" if not bad else f"FAILED {bad}"))
    for name, prof in res.get("profile", {}).items():
        if "top_own" not in prof:
            print(f"\nprofile {name}: {prof.get('error')}")
            continue
        print(f"\npy-spy, sluicegate-w1 under wrk, {name}: {prof['samples']} samples "
              f"({'with' if prof['native'] else 'without'} native frames); top functions by own samples\n")
        print(lab.table(["own %", "function"], [[f"{x['pct']:.1f}", x["function"]] for x in prof["top_own"][:12]]))
        print("\nby component (innermost Python frame; syscalls and GC by native leaf):\n")
        print(lab.table(["%", "component"], [[f"{x['pct']:.1f}", x["component"]] for x in prof["components"][:12]]))


if __name__ == "__main__":
    main()
