"""``bench goals``: every row of issue 19's goals table, measured in ONE run, side by side with nginx.

What it measures (each part reuses the suite that owns the measurement; this module only composes them, and
``goals_report`` prints the table and draws the plot):

1-4. ``throughput``'s bench (static nginx origin with the 2 KB / 200 KB pages, and the HTML pages from a gzip
     origin under ``/gz/``), two targets started once and kept for the whole run: ``nginx-w2`` (Debian nginx,
     ``proxy_pass``, 2 worker processes) and ``sluicegate-w2`` (``sluicegate serve --workers 2``). Per round and
     page, both targets back to back (their order reversed every other round): a wrk warm-up, then
     ``wrk -t2 -c64`` with the CPU of the proxy's and the origin's process trees, of wrk and of everything else
     ("foreign") recorded (``lab.CpuMeter``). Figures are medians over ``--rounds``; ratios are sluicegate /
     nginx of the medians.
       1. PassThrough 2 KB (``page2k.bin``), goal >= 0.5x;  2. PassThrough 200 KB (``page200k.bin``), >= 0.9x;
       3. Stream HTML 2 KB from the gzip origin (``gz/page2k.html``: decoded, rewritten, re-encoded) vs nginx
          ``proxy_pass`` of the same page, >= 0.35x;
       4. Stream HTML 200 KB (``page200k.html``): route MB/s / (rewriter-alone MB/s on that same page x 2
          workers), >= 0.8. The denominator is ``stream-cost``'s rewriter alone (``rewriter_alone_us``: the
          relay's processor, 16 KiB pieces, CPU time) in this process, one figure per round. A CPU companion is
          reported too: rewriter-alone CPU per page / the route's proxy CPU per request (1.0 = the route costs
          nothing beyond the rewrite), which other tenants move far less than req/s.
5.   ``html``'s case (a), ``case_a_child`` (``html.CASE_A``): the 500 KB bench page in 8 KiB chunks through the
     default rule set (one origin host, URL attributes, script/style bodies, text rewriting on, head and
     body-end injection: the configuration of the issue's "today" figure and of ``bench html``'s ``default``
     variant, by the same ``html.case_a_settings``), MB/s of CPU after a 0.3 s warm-up in ~50 ms samples, in a
     child process on the compiled modules (the installed build when it is compiled, else a mypyc build into
     a temp dir) and on the pure-Python modules (``SLUICEGATE_PURE_PYTHON=1``, as ``bench html
     --compare-pure``), alternating, one child of each per round: goals >= 160 MB/s compiled, >= 40 MB/s pure.
     The same page with text rewriting off is measured in the same child as a companion (detail only).
6.   ``relay-ttfb``'s protocol (``paired_rounds``): gzip'd HTML trickled by the fast origin (first 1 KiB at once,
     1 MiB over 2 s), direct vs a ``sluicegate serve --workers 1`` in stream mode (the page is rewritten),
     ``--ttfb-pairs`` pairs per round on fresh connections; added TTFB = median of the paired differences of the
     first body byte (proxy - direct), goal <= 0.3 ms p50. In the same rounds, for what binds it: the same bytes
     passed through (``pass``, ``/trickle.bin``) and the proxy worker's CPU from connect() to the first body byte
     (stream and pass; docs/benchmarks-issue19.md, row 6).
7.   ``inference --vs-exe`` (``measure``): streams/s per worker on the litellm-bench protocol, this build's
     ``sluicegate serve --workers 1`` beside a baseline build's (``--inference-baseline DIR``: its checkout or
     venv, as docs/inference.md built ``24d8df3``), same mock, rounds alternating, every rate for both
     (``--all-rates``). Figure: CPU-bound streams/s per core this / baseline = 1 / the median over the rates of
     the CPU-per-stream ratio (docs/inference.md's figure; the SLO-sustainable streams/s are reported too),
     goal >= 2x. Without a baseline the row reports this build's figure and says the ratio was not measured.

The machine's 1-minute load average is recorded before and after the run and with every wrk measurement.
Wall-clock figures (req/s, TTFB) on a shared machine are contended: the CPU figures next to them are steadier.

Run: ``sluicegate bench goals [--rounds 3] [--inference-baseline /tmp/inf-base] [--out docs/issue19-goals.json]``
(about 4.5 minutes on 2 cores with the defaults, 5.5 with a baseline) -> ``bench/results/issue19-goals.json`` and a
PNG beside it (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites import goals_report, html, inference, relay_ttfb, stream_cost
from sluicegate.bench.suites.throughput import Bench, run_wrk

NAME = "issue19-goals"
PAGES = {"pass2k": "page2k.bin", "pass200k": "page200k.bin", "gz2k": "gz/page2k.html", "html200k": "page200k.html"}
PAGE_BYTES = {"pass2k": 2048, "pass200k": 204800, "gz2k": 2048, "html200k": 204800}
TARGETS = ("nginx-w2", "sluicegate-w2")
WORKERS = 2


# ------------------------------------------------------------------------------------------- rows 1-4


def _check_bodies(bench: Bench, target: str, port: int) -> dict[str, bool]:
    """``throughput``'s body checks, plus the gzip-origin page: sent gzip'd (sluicegate: re-encoded), complete, and
    decoding to the origin's page (sluicegate: with the origin's authority rewritten to its own)."""
    ok = bench.verify(target, port)
    f = lab.http_get(port, "/" + PAGES["gz2k"], keep_body=True)
    want = bench.expect[PAGES["gz2k"]]
    gz = f.headers.get("content-encoding") == "gzip"
    body = gzip.decompress(f.body) if gz and f.complete else b""
    if target.startswith("sluicegate"):
        body = body.replace(f"127.0.0.1:{port}".encode(), f"127.0.0.1:{bench.origin_port}".encode())
    ok["gz 2 KB html"] = f.status == 200 and gz and body == want
    return ok


def serve_rounds(args: argparse.Namespace, procs: lab.Procs, tmp: Path) -> dict[str, Any]:
    """Rows 1-4's wrk measurements (and the rewriter-alone denominator of row 4, once per round)."""
    tools = lab.ensure_apt({"nginx": "nginx", "wrk": "wrk"})
    bench = Bench(tmp, procs, tools)
    bench.prepare()
    assert bench.origin is not None
    started = {t: bench.start(t) for t in TARGETS}
    checks = {t: _check_bodies(bench, t, port) for t, (port, _proc) in started.items()}
    bad = {t: [k for k, v in c.items() if not v] for t, c in checks.items() if not all(c.values())}
    if bad:
        raise SystemExit(f"wrong bodies before measuring: {bad}")
    rows: list[dict[str, Any]] = []
    rewriter_us: list[float] = []
    for rnd in range(args.rounds):
        order = TARGETS if rnd % 2 == 0 else TARGETS[::-1]
        for key, path in PAGES.items():  # per page, both targets back to back: the ratio's two figures a few
            for target in order:         # seconds apart, under the same neighbours' load
                port, proc = started[target]
                assert proc is not None
                url = f"http://127.0.0.1:{port}/{path}"
                if args.warmup > 0:
                    run_wrk(bench.wrk, url, args.warmup)
                load = lab.loadavg1()
                with lab.CpuMeter({"proxy": proc.pid, "origin": bench.origin.pid}) as cpu:
                    res, wrk_cpu = run_wrk(bench.wrk, url, args.duration)
                pc = cpu.percent(extra_ours=wrk_cpu)
                pc["wrk"] = 100 * wrk_cpu / cpu.wall
                row = {"round": rnd, "target": target, "page": key, "path": path, "loadavg_1m": load, **res,
                       "proxy_cpu_us_per_req": 1e6 * cpu.used["proxy"] / max(1, res["requests"]),
                       "cpu_pct_of_one_core": {k: round(v, 1) for k, v in pc.items()}}
                rows.append(row)
                lab.log(f"round {rnd + 1}/{args.rounds} {target:13} {path:15} {res['rps']:9,.0f} req/s  "
                        f"proxy {row['proxy_cpu_us_per_req']:7.1f} µs/req  foreign {pc['foreign']:3.0f}%  "
                        f"load {load:.2f}")
        # row 4's denominator, in this process (the build `sluicegate serve` runs), once per round
        rewriter_us.append(stream_cost.rewriter_alone_us(PAGE_BYTES["html200k"], 1, args.rewriter_reps))
        lab.log(f"round {rnd + 1}/{args.rounds} rewriter alone, 200 KB page: {rewriter_us[-1]:.0f} µs CPU")
    return {"checks": checks, "rows": rows, "rewriter_alone_200k_us": rewriter_us,
            "versions": lab.versions(["nginx", "wrk"])}


def _cell(rows: list[dict[str, Any]], target: str, page: str) -> dict[str, Any]:
    rs = [r for r in rows if r["target"] == target and r["page"] == page]
    return {"rps": lab.med([r["rps"] for r in rs]), "rps_per_round": [r["rps"] for r in rs],
            "p50_ms": lab.med([r["p50_ms"] for r in rs]), "p99_ms": lab.med([r["p99_ms"] for r in rs]),
            "proxy_cpu_us_per_req": lab.med([r["proxy_cpu_us_per_req"] for r in rs]),
            "cpu_pct_of_one_core": {k: lab.med([r["cpu_pct_of_one_core"].get(k, float("nan")) for r in rs])
                                    for k in ("proxy", "origin", "wrk", "foreign")},
            "loadavg_1m": lab.med([r["loadavg_1m"] for r in rs]),
            "non2xx": sum(r["non2xx"] for r in rs),
            "socket_errors": sorted({r["socket_errors"] for r in rs if r["socket_errors"]})}


def serve_rows(serve: dict[str, Any]) -> list[dict[str, Any]]:
    rows = serve["rows"]
    cells = {(t, p): _cell(rows, t, p) for t in TARGETS for p in PAGES}
    out = []
    for rid, page, label, goal in (
            ("passthrough_2k", "pass2k", "PassThrough 2 KB, req/s vs nginx, 2 workers", 0.5),
            ("passthrough_200k", "pass200k", "PassThrough 200 KB, req/s vs nginx, 2 workers", 0.9),
            ("stream_html_2k_gzip", "gz2k", "Stream HTML 2 KB (gzip origin, rewritten, re-encoded) vs nginx", 0.35)):
        sg, ng = cells[("sluicegate-w2", page)], cells[("nginx-w2", page)]
        per_round = [s["rps"] / n["rps"] for s in rows for n in rows if s["page"] == n["page"] == page
                     and s["target"] == "sluicegate-w2" and n["target"] == "nginx-w2" and s["round"] == n["round"]
                     and n["rps"]]
        out.append(_row(rid, label, sg["rps"] / ng["rps"] if ng["rps"] else float("nan"), "x nginx", ">=", goal,
                        {"path": PAGES[page], "sluicegate_w2": sg, "nginx_w2": ng, "ratio_per_round": per_round,
                         "proxy_cpu_ratio_sluicegate_over_nginx":
                             sg["proxy_cpu_us_per_req"] / ng["proxy_cpu_us_per_req"]}))
    sg = cells[("sluicegate-w2", "html200k")]
    rw_us = lab.med(serve["rewriter_alone_200k_us"])
    size = PAGE_BYTES["html200k"]
    route_mb_s = sg["rps"] * size / 1e6
    rw_mb_s = size / rw_us
    out.append(_row("stream_html_200k_vs_rewriter", "Stream HTML 200 KB: route MB/s / (rewriter-alone MB/s x workers)",
                    route_mb_s / (rw_mb_s * WORKERS), "of rewriter x 2", ">=", 0.8,
                    {"path": PAGES["html200k"], "route_mb_per_s": route_mb_s, "rewriter_alone_mb_per_s_cpu": rw_mb_s,
                     "rewriter_alone_us_per_page_per_round": serve["rewriter_alone_200k_us"], "workers": WORKERS,
                     "sluicegate_w2": sg, "nginx_w2": cells[("nginx-w2", "html200k")],
                     "cpu_companion_rewriter_us_over_route_cpu_us_per_req": rw_us / sg["proxy_cpu_us_per_req"]}))
    return out


# ------------------------------------------------------------------------------------------------- row 5


def rewriter_rounds(args: argparse.Namespace) -> dict[str, Any]:
    """Row 5: case (a) on the compiled and the pure-Python modules, one child of each per round, alternating."""
    from sluicegate.buildinfo import fast_paths

    res: dict[str, list[dict[str, object]]] = {"compiled": [], "pure": []}
    with tempfile.TemporaryDirectory(prefix="sg-bench-goals-mypyc-") as tmp:
        if fast_paths()["compiled"]:
            compiled_env, build = {"SLUICEGATE_PURE_PYTHON": ""}, "installed (compiled)"
        else:
            lab.log("the installed build is not compiled: building the mypyc modules into a temp dir")
            lab.build_mypyc(tmp)
            compiled_env, build = {"PYTHONPATH": tmp, "SLUICEGATE_PURE_PYTHON": ""}, "mypyc build of this checkout"
        envs = {"compiled": compiled_env, "pure": {"SLUICEGATE_PURE_PYTHON": "1"}}
        for rnd in range(args.rounds):
            for kind in (("compiled", "pure") if rnd % 2 == 0 else ("pure", "compiled")):
                r = html.run_child(args.html_runs, envs[kind], mode="--child-a")
                if bool(r["compiled"]) != (kind == "compiled"):
                    raise SystemExit(f"the {kind} rewriter child ran {'compiled' if r['compiled'] else 'pure'} "
                                     "modules")
                res[kind].append(r)
                lab.log(f"round {rnd + 1}/{args.rounds} rewriter alone 500 KB / 8 KiB, {kind}: "
                        f"{r['mb_per_s_cpu']} MB/s CPU (text off {r.get('text_off_mb_per_s_cpu')})")
    return {"build": build, "rounds": res}


def rewriter_rows(rw: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for kind, goal in (("compiled", 160.0), ("pure", 40.0)):
        per = [float(r["mb_per_s_cpu"]) for r in rw["rounds"][kind]]
        off = [float(r["text_off_mb_per_s_cpu"]) for r in rw["rounds"][kind] if "text_off_mb_per_s_cpu" in r]
        out.append(_row(f"rewriter_alone_{kind}",
                        f"Rewriter alone, 500 KB page, 8 KiB chunks, default rules (text on, injection), {kind}",
                        lab.med(per), "MB/s CPU", ">=", goal,
                        {"configuration": html.CASE_A, "mb_per_s_cpu_per_round": per, "mb_per_s_wall_per_round":
                            [r["mb_per_s_wall"] for r in rw["rounds"][kind]],
                         "text_off_mb_per_s_cpu": lab.med(off) if off else None,
                         "text_off_mb_per_s_cpu_per_round": off,
                         "build": rw["build"] if kind == "compiled" else "SLUICEGATE_PURE_PYTHON=1"}))
    return out


# ------------------------------------------------------------------------------------------------- row 6


def ttfb_rounds(args: argparse.Namespace, procs: lab.Procs, tmp: Path) -> dict[str, Any]:
    d = tmp / "ttfb"
    d.mkdir()
    op, sp = lab.free_port(), lab.free_port()
    origin = lab.start_fast_origin(procs, op, d, d / "origin.log")
    cfg = lab.write_sluicegate_config(d / "stream.toml", origin_port=op, proxy_port=sp)
    stream = procs.add(lab.sluicegate_proc("sluicegate-stream", cfg, sp, 1, d / "stream.log"))
    lab.wait_http(sp, "/_sluicegate/health", stream)
    # "pass": the same bytes as application/octet-stream through the same proxy (PassThrough): the per-request
    # path's share of the added time, in the same rounds (relay-ttfb --decompose)
    ports = {"direct": op, "stream": sp, "pass": sp}
    for _ in range(args.ttfb_warmup):  # warm-up: connection pools, first-use costs
        for t, port in ports.items():
            lab.http_get(port, relay_ttfb.PATHS.get(t, "/trickle.html"))
    workers = lab.children_map().get(stream.pid, [])
    cpu_of = {"stream": workers[0], "pass": workers[0]} if len(workers) == 1 else None
    with lab.CpuMeter({"proxy": stream.pid, "origin": origin.pid}) as cpu:
        samples, runs_meta = relay_ttfb.paired_rounds(ports, args.rounds, args.ttfb_pairs, paths=relay_ttfb.PATHS,
                                                      cpu_of=cpu_of)
    summary = relay_ttfb.summarize(samples, args.rounds)
    procs.stop(stream)
    direct = {r["round"]: r["first_body_ms"] for r in samples["direct"]}
    per_run = [lab.med([r["first_body_ms"] - direct[r["round"]] for r in samples["stream"] if r["run"] == k])
               for k in range(args.rounds)]
    return {"summary": summary, "runs": runs_meta, "added_first_body_ms_per_run": per_run,
            "cpu_pct_of_one_core": {k: round(v, 1) for k, v in cpu.percent().items()},
            "pairs": args.rounds * args.ttfb_pairs}


def ttfb_row(t: dict[str, Any]) -> dict[str, Any]:
    added = t["summary"]["stream"]["added_vs_direct"]["first_body_ms"]
    return _row("added_ttfb_rewritten", "Added TTFB, rewritten page, p50 (proxy - direct, paired)", added["median"],
                "ms", "<=", 0.3,
                {"added_first_body_ms": added,
                 "direct_first_body_ms": t["summary"]["direct"]["first_body_ms"],
                 "proxy_first_body_ms": t["summary"]["stream"]["first_body_ms"],
                 "added_median_per_round": t["added_first_body_ms_per_run"],
                 "pairs": t["pairs"], "loadavg_per_run": t["runs"], "cpu_pct_of_one_core": t["cpu_pct_of_one_core"],
                 "pass_added_first_body_ms": t["summary"].get("pass", {}).get("added_vs_direct", {})
                 .get("first_body_ms"),
                 "proxy_cpu_to_first_body_us": {k: t["summary"][k]["proxy_cpu_to_first_body_us"]["median"]
                                                for k in ("stream", "pass")
                                                if "proxy_cpu_to_first_body_us" in t["summary"].get(k, {})},
                 "page": "relay-ttfb's /trickle.html: gzip'd HTML, 1 KiB at once + 1 MiB over 2 s; sluicegate serve "
                         "--workers 1, stream mode (rewritten, re-encoded)"})


# ------------------------------------------------------------------------------------------------- row 7


def baseline_exe(spec: str) -> Path:
    """``--inference-baseline``: a checkout (``DIR/.venv/bin/sluicegate``), a venv (``DIR/bin/sluicegate``) or
    the executable itself."""
    p = Path(spec)
    for cand in (p / ".venv" / "bin" / "sluicegate", p / "bin" / "sluicegate", p):
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    raise SystemExit(f"--inference-baseline {spec}: no sluicegate executable in DIR/.venv/bin, DIR/bin or DIR")


def inference_run(args: argparse.Namespace) -> dict[str, Any]:
    argv = ["--rounds", str(args.rounds), "--seconds", str(args.inference_seconds), "--ttfb-n",
            str(args.inference_ttfb_n), "--memory-streams", str(args.inference_memory_streams), "--all-rates",
            "--rates", *(f"{r:g}" for r in args.inference_rates)]
    if args.inference_baseline:
        exe = baseline_exe(args.inference_baseline)
        label = args.inference_baseline_label or _rev_of(exe) or str(args.inference_baseline)
        argv += ["--vs-exe", str(exe), "--vs-label", label]
    lab.log(f"inference: bench inference {' '.join(argv)}")
    return inference.measure(argv)


def _rev_of(exe: Path) -> str:
    root = exe.parent.parent.parent if exe.parent.parent.name == ".venv" else exe.parent.parent
    r = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def inference_row(inf: dict[str, Any]) -> dict[str, Any]:
    s = inf["streams"]
    this = {"sustainable_streams_per_s": s["sustainable_streams_per_s"],
            "cpu_bound_streams_per_s_per_core": s["cpu_bound_streams_per_s_per_core"],
            "gateway_cpu_ms_per_stream_by_rate": s["gateway_cpu_ms_per_stream_by_rate"],
            "added_ttfb_p50_ms": inf["ttfb"]["added_p50_ms"], "core": inf.get("after_core")}
    label = "Inference relay, streams/s per worker vs a baseline build (CPU-bound, litellm-bench protocol)"
    if "before" not in inf:
        row = _row("inference_streams_vs_baseline", label, s["cpu_bound_streams_per_s_per_core"],
                   "streams/s per core (this build)", ">=", 2.0, {"this_build": this})
        row.update(met=None, ratio_to_goal=None,
                   note="ratio not measured: no --inference-baseline; the figure is this build's alone")
        return row
    b = inf["before"]["streams"]
    eq = inf["cpu_per_stream_after_over_before_at_equal_rates"]
    kept = inf["cpu_per_stream_after_over_before_where_both_kept_up"]
    sus_b = b["sustainable_streams_per_s"]
    return _row("inference_streams_vs_baseline", label, 1 / eq if eq else float("nan"), "x baseline", ">=", 2.0,
                {"this_build": this, "baseline": {"rev": inf["before"]["rev"], "exe": inf["before"].get("exe"),
                                                  "sustainable_streams_per_s": sus_b,
                                                  "cpu_bound_streams_per_s_per_core":
                                                      b["cpu_bound_streams_per_s_per_core"],
                                                  "gateway_cpu_ms_per_stream_by_rate":
                                                      b["gateway_cpu_ms_per_stream_by_rate"]},
                 "cpu_per_stream_this_over_baseline_at_equal_rates": eq,
                 "ratio_where_both_kept_up": 1 / kept if kept else None,
                 "sustainable_ratio": s["sustainable_streams_per_s"] / sus_b if sus_b else None})


# ------------------------------------------------------------------------------------------------ common


ISSUE_ROW = {"passthrough_2k": "1", "passthrough_200k": "2", "stream_html_2k_gzip": "3",
             "stream_html_200k_vs_rewriter": "4", "rewriter_alone_compiled": "5a", "rewriter_alone_pure": "5b",
             "added_ttfb_rewritten": "6", "inference_streams_vs_baseline": "7"}


def _row(rid: str, label: str, figure: float, unit: str, op: str, goal: float, detail: dict[str, Any]
         ) -> dict[str, Any]:
    ok = figure == figure and (figure >= goal if op == ">=" else figure <= goal)
    # smaller is better for "<=": goal / figure (a figure at or below 0 meets any positive goal)
    to_goal = figure / goal if op == ">=" else goal / figure if figure > 0 else float("inf")
    return {"id": rid, "issue_row": ISSUE_ROW[rid], "label": label, "figure": figure, "unit": unit, "goal_op": op,
            "goal": goal, "met": ok,
            "ratio_to_goal": to_goal, "detail": detail}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="sluicegate bench goals", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every part; figures are medians (default 3)")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per wrk measurement (default 4)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of wrk warm-up per page and round (default 1)")
    ap.add_argument("--rewriter-reps", type=int, default=8, help="200 KB pages per rewriter-alone round (default 8)")
    ap.add_argument("--html-runs", type=int, default=5,
                    help="timed samples (~50 ms each, after a 0.3 s warm-up) per rewriter child, median (default 5)")
    ap.add_argument("--ttfb-pairs", type=int, default=5, help="direct/proxy pairs per round, ~4 s each (default 5)")
    ap.add_argument("--ttfb-warmup", type=int, default=2, help="unmeasured requests per TTFB target (default 2)")
    ap.add_argument("--inference-baseline", metavar="DIR", default="",
                    help="the baseline build of row 7: its checkout (DIR/.venv/bin/sluicegate), venv or executable")
    ap.add_argument("--inference-baseline-label", default="", help="its name in the report (default: git rev of DIR)")
    ap.add_argument("--inference-rates", type=float, nargs="+", default=[100, 200, 400],
                    help="offered streams/s of the inference ladder (default 100 200 400)")
    ap.add_argument("--inference-seconds", type=float, default=4.0, help="seconds per inference step (default 4)")
    ap.add_argument("--inference-ttfb-n", type=int, default=20, help="inference TTFB pairs per round (default 20)")
    ap.add_argument("--inference-memory-streams", type=int, default=100,
                    help="slow streams of the inference memory round (default 100)")
    ap.add_argument("--render", metavar="JSON", help="measure nothing: print the tables of a saved run and redraw "
                    "its PNG (beside the JSON)")
    ap.add_argument("--out", default=str(lab.results_dir() / f"{NAME}.json"),
                    help="JSON path; the PNG goes beside it (default bench/results/issue19-goals.json)")
    args = ap.parse_args(argv)
    for flag in ("rounds", "html_runs", "ttfb_pairs", "rewriter_reps"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.duration < 1 or args.warmup < 0:
        ap.error("--duration must be at least 1 s and --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.render:
        saved: dict[str, Any] = json.loads(Path(args.render).read_text())
        print(goals_report.render(saved))
        goals_report.plot(saved, Path(args.render).with_suffix(".png"))
        return saved
    t0 = time.time()
    load_before = list(os.getloadavg())
    result: dict[str, Any] = {
        "benchmark": NAME, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "sluicegate bench goals " + " ".join(argv or []), "machine": lab.machine(),
        "load_average_before": load_before, "options": vars(args), "method": __doc__,
        "note": "one run, every row side by side; wall-clock figures (req/s, TTFB) on a shared 2-core machine are "
                "taken under whatever load the neighbours put on it (see the load averages and foreign CPU)",
    }
    with tempfile.TemporaryDirectory(prefix="sg-bench-goals-") as tmp, lab.Procs() as procs:
        d = Path(tmp)
        os.chmod(d, 0o755)
        lab.log("rows 1-4: nginx-w2 vs sluicegate-w2 under wrk")
        serve = serve_rounds(args, procs, d)
        lab.log("row 6: added TTFB of a rewritten page")
        ttfb = ttfb_rounds(args, procs, d)
    lab.log("row 5: rewriter alone, compiled and pure")
    rw = rewriter_rounds(args)
    lab.log("row 7: inference relay streams/s")
    inf = inference_run(args)
    rows = [*serve_rows(serve), *rewriter_rows(rw), ttfb_row(ttfb), inference_row(inf)]
    result.update(rows=rows, load_average_after=list(os.getloadavg()), elapsed_s=round(time.time() - t0, 1),
                  versions=serve["versions"],
                  parts={"serve": serve, "rewriter": rw, "ttfb": ttfb, "inference": inf})
    print(goals_report.render(result))
    out = Path(args.out)
    goals_report.write(result, out)
    lab.log(f"wrote {out} and {out.with_suffix('.png')} ({result['elapsed_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
