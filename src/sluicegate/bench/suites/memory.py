"""Peak RSS of the publisher proxy (one worker) while it streams large bodies; does it grow with body size?

What it measures: the summed VmRSS of the ``sluicegate serve --workers 1`` process tree, sampled from /proc every
50 ms, while one client downloads, as fast as it can read:
  * a binary body (``application/octet-stream``, Content-Length; the PassThrough route) of 64 MiB and 1 GiB;
  * a gzip'd HTML body (the Stream route: gunzip -> HTML rewrite -> gzip re-encode) of 64 MiB and 256 MiB
    *decoded* HTML (~5x smaller on the wire).
For each transfer: idle RSS (after a small warm-up request of the same kind), peak RSS during the transfer, the
peak minus idle, the kernel's own high-water mark (VmHWM summed over the tree: exact, catches what 50 ms
sampling could miss on the 0.1 s 64 MiB binary transfer), the client-side throughput, and integrity (CRC-32 of
the binary; complete gzip stream and the decoded size for HTML). Goal (issue 2): peak <= 100 MiB and no growth
with body size.

How: the bench origin (``dev.origin.fast``) generates the binary on the fly and serves a pre-generated gzip file from a
temp dir; a fresh proxy is started for every transfer (RSS only ever grows within a process, so reusing one
would hide the size effect), the cases run round-robin, ``--runs`` times (the 256 MiB HTML case
``--html-large-runs`` times, default 3: at the proxy's current HTML rewrite speed it is the long pole).
Note: ``[limits] max_decoded_body_bytes`` defaults to 256 MiB, which the 256 MiB HTML body would hit (the cap
is on decoded bytes), so the bench config raises it to 1 GiB.

Run: ``sluicegate bench memory`` -> ``bench/results/publisher-memory.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.dev.origin.content import write_gzip_html
from sluicegate.dev.origin.fast import BLOCK

MIB = 1 << 20
GOAL_MIB = 100.0
MAX_DECODED = 1 << 30
CASES: dict[str, dict[str, Any]] = {
    "binary 64 MiB": {"kind": "bin", "size": 64 * MIB, "route": "PassThrough"},
    "binary 1 GiB": {"kind": "bin", "size": 1024 * MIB, "route": "PassThrough"},
    "gzip HTML 64 MiB": {"kind": "html", "size": 64 * MIB, "route": "Stream (gunzip, rewrite, gzip)"},
    "gzip HTML 256 MiB": {"kind": "html", "size": 256 * MIB, "route": "Stream (gunzip, rewrite, gzip)"},
}


def expected_crc(size: int) -> int:
    crc, left = 0, size
    while left > 0:
        n = min(left, len(BLOCK))
        crc = zlib.crc32(BLOCK[:n], crc)
        left -= n
    return crc


def path_for(case: dict[str, Any]) -> str:
    if case["kind"] == "bin":
        return f"/bin?size={case['size']}"
    return f"/html-gz?name=html-{case['size']}.gz"


def one_transfer(name: str, case: dict[str, Any], d: Path, origin_port: int, procs: lab.Procs) -> dict[str, Any]:
    port = lab.free_port()
    cfg = lab.write_sluicegate_config(d / f"sg-{port}.toml", origin_port=origin_port, proxy_port=port,
                                  limits={"max_decoded_body_bytes": MAX_DECODED})
    proxy = procs.add(lab.sluicegate_proc("sluicegate", cfg, port, 1, d / "sluicegate.log"))
    try:
        lab.wait_http(port, "/_sluicegate/health", proxy)
        warm = "/bin?size=1048576" if case["kind"] == "bin" else "/html-gz?name=html-warm.gz"
        for _ in range(2):
            w = lab.http_get(port, warm)
            if w.status != 200 or not w.complete:
                raise RuntimeError(f"warm-up {warm}: status {w.status}, complete={w.complete}")
        time.sleep(0.3)
        idle_kib, nproc = lab.tree_rss_kib(proxy.pid)
        load = lab.loadavg1()
        with lab.RssSampler(proxy.pid, 0.05) as sampler:
            f = lab.http_get(port, path_for(case), timeout=600, crc=case["kind"] == "bin")
        after_kib, _ = lab.tree_rss_kib(proxy.pid)
        hwm = lab.tree_hwm_kib(proxy.pid)
    finally:
        procs.stop(proxy)
    ok = f.status == 200 and f.complete
    if case["kind"] == "bin":
        ok = ok and f.body_bytes == case["size"] and f.crc32 == expected_crc(case["size"])
    else:
        ok = ok and abs(f.decoded_bytes - case["size"]) <= 0.02 * case["size"]
    secs = f.ttlb_ms / 1000
    # ~1 s resolution series, enough to see whether RSS climbs during the transfer
    step = max(1, round(1.0 / 0.05))
    series = [(round(t, 2), round(k / 1024, 1)) for t, k in sampler.samples[::step]]
    return {
        "case": name, "route": case["route"], "body_size": case["size"], "status": f.status, "ok": ok,
        "wire_bytes": f.body_bytes, "decoded_bytes": f.decoded_bytes, "seconds": round(secs, 3),
        "decoded_MBps": round(f.decoded_bytes / secs / 1e6, 1), "wire_MBps": round(f.body_bytes / secs / 1e6, 1),
        "processes": nproc, "idle_mib": idle_kib / 1024, "peak_mib": sampler.peak_kib / 1024,
        "after_mib": after_kib / 1024, "growth_mib": (sampler.peak_kib - idle_kib) / 1024,
        "vmhwm_mib": hwm / 1024,
        "rss_samples": len(sampler.samples), "loadavg_1m": load, "rss_series_mib": series,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench memory", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs of each case (default 3)")
    ap.add_argument("--html-large-runs", type=int, default=3, help="runs of the 256 MiB HTML case (default 3)")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = ap.parse_args(argv)

    started = time.time()
    result: dict[str, Any] = {"benchmark": "publisher-memory", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "machine": lab.machine(), "versions": lab.versions(), "method": __doc__,
                              "config_overrides": {"limits.max_decoded_body_bytes": MAX_DECODED,
                                                   "reason": "default 256 MiB cap would stop the 256 MiB HTML body"},
                              "goal_peak_mib": GOAL_MIB}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-mem-") as tmp, lab.Procs() as procs:
        d = Path(tmp)
        op = lab.free_port()
        origin = f"http://127.0.0.1:{op}"
        sizes = sorted({c["size"] for n, c in CASES.items() if n in args.cases and c["kind"] == "html"})
        for size in [MIB, *sizes]:
            t0 = time.time()
            name = "warm" if size == MIB else str(size)
            wire = write_gzip_html(d / f"html-{name}.gz", origin, size)
            lab.log(f"generated {size // MIB} MiB HTML -> {wire / MIB:.1f} MiB gzip in {time.time() - t0:.1f} s")
        lab.start_fast_origin(procs, op, d, d / "origin.log")
        for run in range(max(args.runs, args.html_large_runs)):
            names = [n for n in args.cases
                     if run < (args.html_large_runs if n == "gzip HTML 256 MiB" else args.runs)]
            if run % 2:
                names.reverse()
            for name in names:
                r = one_transfer(name, CASES[name], d, op, procs)
                r["run"] = run
                rows.append(r)
                lab.log(f"run {run + 1} {name}: peak {r['peak_mib']:.1f} MiB (idle {r['idle_mib']:.1f}), "
                    f"{r['decoded_MBps']} MB/s decoded, {r['seconds']} s, ok={r['ok']}, load {r['loadavg_1m']}")
    result["transfers"] = rows
    result["summary"] = summarize(rows)
    result["elapsed_s"] = round(time.time() - started, 1)
    path = lab.write_json("publisher-memory", result)
    print_report(result)
    lab.log(f"wrote {path}")
    return result


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in CASES:
        rs = [r for r in rows if r["case"] == name]
        if not rs:
            continue
        out[name] = {k: lab.summary([r[k] for r in rs]) for k in
                     ("idle_mib", "peak_mib", "growth_mib", "after_mib", "vmhwm_mib", "decoded_MBps", "seconds")}
        out[name]["all_ok"] = all(r["ok"] for r in rs)
        out[name]["goal_met"] = max(max(r["peak_mib"], r["vmhwm_mib"]) for r in rs) <= GOAL_MIB
    for small, large in (("binary 64 MiB", "binary 1 GiB"), ("gzip HTML 64 MiB", "gzip HTML 256 MiB")):
        if small in out and large in out:
            out[f"{large} vs {small}: peak difference MiB"] = (out[large]["peak_mib"]["median"]
                                                               - out[small]["peak_mib"]["median"])
    return out


def print_report(res: dict[str, Any]) -> None:
    s = res["summary"]
    print("\nPeak RSS of the proxy process tree (1 worker), sampled every 50 ms; median (min-max) over runs\n")
    rows = []
    for name in CASES:
        if name not in s:
            continue
        x = s[name]
        rows.append([name, CASES[name]["route"], x["peak_mib"]["n"],
                     f"{x['idle_mib']['median']:.1f}", f"{x['peak_mib']['median']:.1f} "
                     f"({x['peak_mib']['min']:.1f}-{x['peak_mib']['max']:.1f})",
                     f"{x['growth_mib']['median']:.1f}", f"{x['vmhwm_mib']['median']:.1f}",
                     f"{x['decoded_MBps']['median']:.1f}",
                     "yes" if x["all_ok"] else "NO", "MET" if x["goal_met"] else "NOT MET"])
    print(lab.table(["body", "route", "runs", "idle MiB", "peak MiB", "peak-idle MiB", "VmHWM MiB", "MB/s (decoded)",
                 "bytes ok", f"<= {GOAL_MIB:.0f} MiB"], rows))
    for k, v in s.items():
        if k.endswith("peak difference MiB"):
            print(f"{k}: {v:+.1f}")
    print("Load avg (1 min) per transfer: " + ", ".join(f"{r['loadavg_1m']:.2f}" for r in res["transfers"]))
    print(f"Config override: [limits] max_decoded_body_bytes = {MAX_DECODED} (default 256 MiB would cut the "
          f"256 MiB HTML body). Median of loads: {lab.med([r['loadavg_1m'] for r in res['transfers']]):.2f}")


if __name__ == "__main__":
    main()
