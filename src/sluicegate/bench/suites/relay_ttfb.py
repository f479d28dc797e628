"""``bench relay-ttfb``: first body byte / last byte through the publisher relay, direct vs ``stream`` vs
``buffered`` in the same run.

What it measures: the bench origin (``dev.origin.fast``) answers ``/trickle.html`` with gzip'd HTML: the
response head and the first 1 KiB of HTML (one sync-flushed gzip segment) at once, then 1 MiB more in 100
segments over 2 s.
A raw-socket client (fresh connection per request, ``Accept-Encoding: gzip``) timestamps, from just before
``connect()``: the end of the response head, the first *body* byte (entity data after chunk framing — not
curl's headers time), the moment >= 1 KiB of *decoded* HTML is available, and the last byte. Each body is
gunzipped to check it is complete.

How: one origin and two sluicegate processes in front of it (1 worker each: ``sluicegate serve`` for
stream, ``python -m sluicegate.dev.buffered`` for buffered: the same app, each response held whole), on free
ports, started and stopped by this script. After 2 warm-up
requests per target, ``--runs`` runs of ``--per-run`` rounds; each round requests direct / stream / buffered
once, one at a time, the order rotating every round. "Added" figures are medians of the per-round paired
differences (proxy minus direct in the same round). Targets (issue 2): added TTFB (first body byte) in stream
mode <= 2 ms p50; TTLB equal to the origin's (we call it equal within 20 ms = 1 % of the 2 s trickle).

``--also-core native`` (or ``uvicorn``) adds a target ``stream-<core>``: a second ``sluicegate serve`` whose workers
run that serving core (``[server] http_core``), measured in the same rounds (serving cores side by side).

``--decompose`` adds two references in the same rounds, to say what the added TTFB of the rewritten page is made
of (issue 19, row 6): ``pass``, the same bytes on the same schedule as ``application/octet-stream``
(``/trickle.bin``) through the same stream proxy, so PassThrough (serving core, intake, origin client; no
decode/rewrite/encode); and ``floor``, a minimal TCP forwarder (``bench.lab.forwarder``: no parsing, an origin
connection opened in advance), what any user-space relay in Python pays for being one more process on the path.
Then stream - pass is the Stream route's own share, pass - floor the per-request path's, floor the hop's.

``--idle``: the worker's CPU per request by idle gap before it, fresh connection vs keep-alive, against the floor
(and ``--idle-base DIR``: a second build side by side), and an idle worker's CPU and wake-ups per second
(``relay_ttfb_idle``): why a fresh connection to an idle worker costs several warm keep-alive requests.

``--stages``: no servers; the Stream route's first segment stage by stage in a child, warm and with caches
overwritten (``relay_ttfb_stages``): which stage of the Stream route's share grows on a busy machine.

Run: ``sluicegate bench relay-ttfb`` (about 2 minutes) -> ``bench/results/publisher-ttfb.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluicegate.bench import lab

TARGETS = ("direct", "stream", "buffered")
DECOMPOSE = ("pass", "floor")
PATHS = {"pass": "/trickle.bin"}  # every other target GETs /trickle.html
METRICS = ("headers_ms", "first_body_ms", "first_decoded_1k_ms", "ttlb_ms")
ADDED_TTFB_TARGET_MS = 2.0
TTLB_EQUAL_MS = 20.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench relay-ttfb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-run", type=int, default=5, help="rounds per run (each round = 3 requests of ~2 s)")
    ap.add_argument("--also-core", choices=("native", "uvicorn"), default="",
                    help="also measure a stream proxy on this serving core ([server] http_core), same rounds")
    ap.add_argument("--decompose", action="store_true",
                    help="also measure PassThrough of the same bytes (pass) and a minimal TCP forwarder (floor)")
    ap.add_argument("--no-buffered", action="store_true", help="leave the buffered target out (shorter rounds)")
    ap.add_argument("--stages", action="store_true",
                    help="no servers: the Stream route's first segment stage by stage, warm and cold, in a child "
                         "(bench.suites.relay_ttfb_stages) -> bench/results/publisher-ttfb-stages.json")
    ap.add_argument("--idle", action="store_true",
                    help="the worker's CPU per request after an idle gap, fresh vs keep-alive, and the idle worker "
                         "(bench.suites.relay_ttfb_idle) -> bench/results/publisher-ttfb-idle.json")
    ap.add_argument("--idle-base", default="", help="with --idle: also a proxy run with PYTHONPATH=DIR (another build)")
    ap.add_argument("--gaps", default="0.001,0.05,0.5", help="with --idle: idle gaps before each request, seconds")
    ap.add_argument("--rounds", type=int, default=15, help="with --idle: requests per figure")
    ap.add_argument("--idle-s", type=float, default=3.0, help="with --idle: seconds of nothing for the idle figures")
    ap.add_argument("--stage-reps", type=int, default=200, help="responses per --stages figure (median)")
    args = ap.parse_args(argv)
    if args.idle:
        from sluicegate.bench.suites import relay_ttfb_idle

        idled = relay_ttfb_idle.run([float(g) for g in args.gaps.split(",")], args.rounds, args.idle_s,
                                    args.idle_base)
        idled.update(benchmark="publisher-ttfb-idle", started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     machine=lab.machine(), loadavg_1m=lab.loadavg1(), versions=lab.versions(),
                     method=relay_ttfb_idle.__doc__)
        print(relay_ttfb_idle.report(idled))
        lab.log(f"wrote {lab.write_json('publisher-ttfb-idle', idled)}")
        return idled
    if args.stages:
        from sluicegate.bench.suites import relay_ttfb_stages

        staged = relay_ttfb_stages.run(args.stage_reps)
        staged.update(benchmark="publisher-ttfb-stages", started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      machine=lab.machine(), loadavg_1m=lab.loadavg1(), method=relay_ttfb_stages.__doc__)
        print(relay_ttfb_stages.report(staged))
        lab.log(f"wrote {lab.write_json('publisher-ttfb-stages', staged)}")
        return staged
    targets: tuple[str, ...] = (tuple(t for t in TARGETS if not (args.no_buffered and t == "buffered"))
                                + ((f"stream-{args.also_core}",) if args.also_core else ())
                                + (DECOMPOSE if args.decompose else ()))

    started = time.time()
    result: dict[str, Any] = {"benchmark": "publisher-ttfb", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "machine": lab.machine(), "versions": lab.versions(), "method": __doc__}
    with tempfile.TemporaryDirectory(prefix="sg-bench-ttfb-") as tmp, lab.Procs() as procs:
        d = Path(tmp)
        op, sp, bp = lab.free_port(), lab.free_port(), lab.free_port()
        lab.start_fast_origin(procs, op, d, d / "origin.log")
        stream = procs.add(lab.sluicegate_proc("sluicegate-stream", lab.write_sluicegate_config(
            d / "stream.toml", origin_port=op, proxy_port=sp), sp, 1, d / "stream.log"))
        lab.wait_http(sp, "/_sluicegate/health", stream)
        ports = {"direct": op, "stream": sp}
        if "buffered" in targets:
            buffered_cfg = lab.write_sluicegate_config(d / "buffered.toml", origin_port=op, proxy_port=bp)
            buffered = procs.add(lab.Proc("sluicegate-buffered", [lab.PY, "-m", "sluicegate.dev.buffered",
                                                                  "--config", str(buffered_cfg), "--port", str(bp)],
                                          d / "buffered.log"))
            lab.wait_http(bp, "/_sluicegate/health", buffered)
            ports["buffered"] = bp
        if args.also_core:
            cp = lab.free_port()
            cfg = lab.write_sluicegate_config(d / "core.toml", origin_port=op, proxy_port=cp)
            core_proc = procs.add(lab.Proc(f"sluicegate-{args.also_core}", [
                lab.PY, "-m", "sluicegate", "serve", "--config", str(cfg), "--port", str(cp), "--workers", "1"],
                d / "core.log", env={**os.environ, "SLUICEGATE__SERVER__HTTP_CORE": args.also_core}))
            lab.wait_http(cp, "/_sluicegate/health", core_proc)
            ports[f"stream-{args.also_core}"] = cp
        if args.decompose:
            ports["pass"] = sp
            fp = lab.free_port()
            fwd = procs.add(lab.Proc("forwarder", [lab.PY, "-m", "sluicegate.bench.lab.forwarder", "--port", str(fp),
                                                   "--to", str(op)], d / "forwarder.log"))
            lab.wait_http(fp, "/health", fwd)
            ports["floor"] = fp
        result["setup"] = {"origin": "sluicegate.dev.origin.fast /trickle.html (gzip level 6, 1 KiB + 1 MiB HTML, "
                                     "100 segments over 2 s, chunked)",
                           "proxy": "sluicegate serve --workers 1 (the default serving core)",
                           "client": "raw socket, fresh connection per request, Accept-Encoding: gzip"}

        lab.log("warm-up (2 requests per target)")
        for _ in range(2):
            for t in targets:
                lab.http_get(ports[t], PATHS.get(t, "/trickle.html"))

        cpu_of = {}
        if args.decompose:  # the stream proxy's worker (one worker: the supervisor's only child)
            worker = lab.children_map().get(stream.pid, [])
            if len(worker) == 1:
                cpu_of = {"stream": worker[0], "pass": worker[0]}
        samples, runs_meta = paired_rounds(ports, args.runs, args.per_run, paths=PATHS, cpu_of=cpu_of)

    result["runs"] = runs_meta
    result["samples"] = samples
    result["summary"] = summarize(samples, args.runs)
    result["elapsed_s"] = round(time.time() - started, 1)
    path = lab.write_json("publisher-ttfb", result)
    print_report(result)
    lab.log(f"wrote {path}")
    return result


def paired_rounds(ports: dict[str, int], runs: int, per_run: int, path: str = "/trickle.html",
                  paths: dict[str, str] | None = None, cpu_of: dict[str, int] | None = None
                  ) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """``runs`` runs of ``per_run`` rounds; each round GETs ``path`` (a target's own in ``paths``) once from every
    target of ``ports`` (in its order; ``direct`` first), one at a time, the order rotating every round; every
    body must arrive complete. ``cpu_of``: target -> the pid of a server process whose main thread (a worker's
    event loop) has its CPU time (``/proc/PID/schedstat``, ns) sampled just before connect() and at the first body
    byte: its CPU on the path to the first byte, ``cpu_to_first_body_us`` (a figure that holds still on a shared
    machine; the kernel's loopback work for the process's own writes is counted in it).
    Returns the samples per target (for :func:`summarize`) and each run's load average. Also used by
    ``bench goals`` (issue 19's added-TTFB row)."""
    targets = tuple(ports)
    samples: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    runs_meta: list[dict[str, Any]] = []
    rnd = 0
    for run in range(runs):
        load = lab.loadavg1()
        lab.log(f"run {run + 1}/{runs} (load avg 1 min {load:.2f})")
        for _ in range(per_run):
            k = rnd % len(targets)
            order = targets[k:] + targets[:k]
            for t in order:
                pid = (cpu_of or {}).get(t)
                at_first: list[int] = []
                before = _cpu_ns(pid) if pid else 0
                f: lab.Fetch = lab.http_get(ports[t], (paths or {}).get(t, path),
                                            on_first_body=_sampler(pid, at_first) if pid else None)
                if f.status != 200 or not f.complete:
                    raise RuntimeError(f"{t}: status {f.status}, complete={f.complete}")
                row = {"run": run, "round": rnd, **f.as_dict()}
                if at_first:
                    row["cpu_to_first_body_us"] = (at_first[0] - before) / 1000
                samples[t].append(row)
            rnd += 1
        runs_meta.append({"run": run, "loadavg_1m": load, "loadavg_1m_end": lab.loadavg1()})
    return samples, runs_meta


def _sampler(pid: int, into: list[int]) -> Callable[[], None]:
    return lambda: into.append(_cpu_ns(pid))


def _cpu_ns(pid: int) -> int:
    """CPU time of ``pid``'s main thread so far, ns (the scheduler's own account: ``/proc/PID/schedstat``)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def summarize(samples: dict[str, list[dict[str, Any]]], runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"order": list(samples)}
    for t, rows in samples.items():
        out[t] = {m: lab.summary([r[m] for r in rows]) for m in METRICS}
        out[t]["run_medians"] = {m: [lab.med([r[m] for r in rows if r["run"] == k]) for k in range(runs)]
                                 for m in METRICS}
        cpu = [r["cpu_to_first_body_us"] for r in rows if "cpu_to_first_body_us" in r]
        if cpu:
            out[t]["proxy_cpu_to_first_body_us"] = lab.summary(cpu)
        out[t]["body_bytes_median"] = lab.med([r["body_bytes"] for r in rows])
        out[t]["decoded_bytes_median"] = lab.med([r["decoded_bytes"] for r in rows])
    direct = {r["round"]: r for r in samples["direct"]}
    for t in [t for t in samples if t != "direct"]:
        added = {m: [r[m] - direct[r["round"]][m] for r in samples[t]] for m in METRICS}
        out[t]["added_vs_direct"] = {m: lab.summary(v) for m, v in added.items()}
    s = out["stream"]["added_vs_direct"]
    out["targets"] = {
        "added_ttfb_stream_p50_ms": s["first_body_ms"]["median"],
        "added_ttfb_target_ms": ADDED_TTFB_TARGET_MS,
        "added_ttfb_met": s["first_body_ms"]["median"] <= ADDED_TTFB_TARGET_MS,
        "added_ttlb_stream_p50_ms": s["ttlb_ms"]["median"],
        "ttlb_equal_within_ms": TTLB_EQUAL_MS,
        "ttlb_equal_met": abs(s["ttlb_ms"]["median"]) <= TTLB_EQUAL_MS,
    }
    return out


def print_report(res: dict[str, Any]) -> None:
    s = res["summary"]
    n = s["direct"]["ttlb_ms"]["n"]
    print(f"\nTTFB/TTLB, gzip'd HTML: 1 KiB at once + 1 MiB over 2 s; {n} requests per target "
          f"(median, p90, min-max; ms from connect())\n")
    rows = []
    for t in s["order"]:
        row: list[object] = [t]
        for m in METRICS:
            x = s[t][m]
            row.append(f"{x['median']:.2f} ({x['p90']:.2f}; {x['min']:.2f}-{x['max']:.2f})")
        rows.append(row)
    print(lab.table(["target", "response head", "first body byte", "first 1 KiB decoded", "last byte"], rows))
    print("\nAdded vs direct (median of per-round paired differences, min-max), ms\n")
    rows = []
    for t in [t for t in s["order"] if t != "direct"]:
        a = s[t]["added_vs_direct"]
        rows.append([t, *(f"{a[m]['median']:+.2f} ({a[m]['min']:+.2f}..{a[m]['max']:+.2f})" for m in METRICS)])
    print(lab.table(["mode", "response head", "first body byte", "first 1 KiB decoded", "last byte"], rows))
    if all(t in s for t in DECOMPOSE):
        fb = {t: s[t]["added_vs_direct"]["first_body_ms"]["median"] for t in ("stream", *DECOMPOSE)}
        cpu = {t: s[t].get("proxy_cpu_to_first_body_us", {}).get("median") for t in ("stream", "pass")}
        if all(v is not None for v in cpu.values()):
            print(f"Proxy worker CPU from connect() to the first body byte (median, /proc schedstat): stream "
                  f"{cpu['stream']:.0f} µs, pass {cpu['pass']:.0f} µs "
                  f"(stream - pass {cpu['stream'] - cpu['pass']:+.0f})")
        print(f"\nAdded first body byte, decomposed (medians of paired differences): floor (a minimal forwarder) "
              f"{fb['floor']:+.2f} ms; PassThrough of the same bytes {fb['pass']:+.2f} ms (over the floor "
              f"{fb['pass'] - fb['floor']:+.2f}); stream (rewritten, re-encoded) {fb['stream']:+.2f} ms (over "
              f"PassThrough {fb['stream'] - fb['pass']:+.2f})")
    tg = s["targets"]
    print(f"\nTarget added TTFB (stream, p50) <= {tg['added_ttfb_target_ms']} ms: "
          f"{tg['added_ttfb_stream_p50_ms']:+.2f} ms -> {'MET' if tg['added_ttfb_met'] else 'NOT MET'}")
    print(f"Target TTLB equal to the origin's (within {tg['ttlb_equal_within_ms']:.0f} ms): "
          f"{tg['added_ttlb_stream_p50_ms']:+.2f} ms -> {'MET' if tg['ttlb_equal_met'] else 'NOT MET'}")
    print("Load avg (1 min) per run: " + ", ".join(f"{r['loadavg_1m']:.2f}" for r in res["runs"]))


if __name__ == "__main__":
    main()
