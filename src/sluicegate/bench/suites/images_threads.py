"""``sluicegate bench images-threads``: where the image optimizer's CPU goes, per image and per thread.

Runs ``sluicegate serve`` (one worker) with the ``images`` benchmark's route in front of the same static
origin and the same 20 sources, once per ``--variant`` (``[image_optimizer]`` settings; the variants'
servers run one at a time, alternating round by round so a shared machine loads them alike), and reads
each thread's user + system CPU from /proc/<pid>/task: the event loop (the worker's main thread), the
image threads (the pool's Python threads, where libvips' per-image set-up and the eval callbacks run) and
libvips' worker threads (decode, resize, encode). Every output is checked (WebP, 800 px wide, the ratio).
Prints milliseconds of CPU per image for each, the worker's peak RSS and how many times per image the event
loop's thread was woken (its voluntary context switches); writes JSON.

    sluicegate bench images-threads --variant default: --variant mmap4m:malloc_mmap_threshold=4194304

A variant's ``src=DIR`` runs the server from another copy of the code (``PYTHONPATH=DIR``; e.g. ``git
worktree``/``git archive`` of main's ``src``), for an A/B of two commits in the same run.

Must not know about the proxy's internals: it drives ``sluicegate serve`` over HTTP.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from sluicegate.bench.suites.images import TARGET_WIDTH, sluicegate_config
from sluicegate.bench.suites.images_sources import CLK_TCK, Group, Source, check_output, free_port, make_sources


def thread_ticks(pid: int) -> collections.Counter[str]:
    """CPU ticks of a process's threads by kind: loop (the main thread), image (other Python threads),
    libvips (its workers)."""
    out: collections.Counter[str] = collections.Counter()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        kind = "loop" if tid == str(pid) else ("libvips" if "vips" in name else "image")
        out[kind] += int(fields[11]) + int(fields[12])
    return out


def loop_wakeups(pid: int) -> int:
    """Times the worker's main thread (the event loop) went to sleep and was woken: its voluntary context
    switches (each a cold-cache run of the loop afterwards)."""
    try:
        for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split(":")[1])
    except OSError:
        pass
    return 0


def _variant(spec: str) -> tuple[str, dict[str, str]]:
    name, _, rest = spec.partition(":")
    settings = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    return name or "default", settings


def _config(origin_port: int, pool: int, settings: dict[str, str]) -> str:
    settings = dict(settings)
    settings.pop("src", None)  # the code to run (PYTHONPATH), not a setting
    effort = settings.pop("effort", None)  # the profile's WebP effort, not an [image_optimizer] key
    text = sluicegate_config(origin_port, pool, effort=int(effort) if effort is not None else None)
    extra = "".join(f"{k} = {v}\n" for k, v in settings.items())
    return text.replace("[image_optimizer]\n", "[image_optimizer]\n" + extra, 1)


def _fetch(port: int, sources: list[Source], concurrency: int) -> list[str]:
    work: queue.Queue[Source] = queue.Queue()
    for src in sources:
        work.put(src)
    problems: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            try:
                src = work.get_nowait()
            except queue.Empty:
                break
            conn.request("GET", f"/img/{src.name}?profile=w800", headers={"Accept": "image/webp"})
            resp = conn.getresponse()
            body = resp.read()
            problem = f"status {resp.status}" if resp.status != 200 else check_output(body, src, TARGET_WIDTH,
                                                                                        "webp")
            if problem:
                problems.append(f"{src.name}: {problem}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return problems


def run(args: argparse.Namespace) -> dict[str, Any]:
    results_dir = Path(args.out).parent
    results_dir.mkdir(parents=True, exist_ok=True)
    sources = make_sources(Path(args.sources))
    variants = [_variant(v) for v in (args.variant or ["default:"])]
    origin_port = free_port()
    origin = Group([sys.executable, "-c",
                    "import sys; from sluicegate.bench.suites.images_sources import serve_static; "
                    "serve_static(sys.argv[1], int(sys.argv[2]))", args.sources, str(origin_port)],
                   results_dir / "images-threads-origin.log")
    acc: dict[str, dict[str, Any]] = {name: {"ticks": collections.Counter(), "images": 0, "problems": [],
                                             "peak_rss": 0, "wakeups": 0} for name, _ in variants}
    try:
        origin.wait_http(f"http://127.0.0.1:{origin_port}/manifest.json")
        for rnd in range(args.rounds):
            order = variants if rnd % 2 == 0 else list(reversed(variants))
            for name, settings in order:
                port = free_port()
                conf = results_dir / f"images-threads-{name}.toml"
                conf.write_text(_config(origin_port, args.pool, settings)
                                + f'\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n')
                server = Group([sys.executable, "-m", "sluicegate", "serve", "--config", str(conf), "--port",
                                str(port), "--workers", "1"], results_dir / f"images-threads-{name}.log",
                               env={"PYTHONPATH": settings["src"]} if "src" in settings else None)
                try:
                    server.wait_http(f"http://127.0.0.1:{port}/img/manifest.json", timeout=120)
                    server.wait_http(f"http://127.0.0.1:{port}/img/{sources[0].name}?profile=w800", timeout=120)
                    worker = max(server.pids(), key=lambda p: len(os.listdir(f"/proc/{p}/task")))
                    before, woken = thread_ticks(worker), loop_wakeups(worker)
                    problems = _fetch(port, sources * args.repeat, args.concurrency)
                    after = thread_ticks(worker)
                    a = acc[name]
                    a["wakeups"] += loop_wakeups(worker) - woken
                    a["ticks"].update({k: after[k] - before.get(k, 0) for k in after})
                    a["images"] += len(sources) * args.repeat - len(problems)
                    a["problems"] += problems
                    a["peak_rss"] = max(a["peak_rss"], server.peak_rss(largest=True))
                finally:
                    server.stop()
                print(f"  round {rnd + 1}/{args.rounds} {name}", file=sys.stderr)
    finally:
        origin.stop()
    out: dict[str, Any] = {"rounds": args.rounds, "repeat": args.repeat, "pool": args.pool,
                           "concurrency": args.concurrency, "load_average": os.getloadavg()[0],
                           "note": "CPU per image by thread from /proc; shared machine: compare variants of "
                                   "the same run", "variants": {}}
    for name, settings in variants:
        a = acc[name]
        n = max(a["images"], 1)
        ms = {k: round(v * 1000 / CLK_TCK / n, 2) for k, v in a["ticks"].items()}
        out["variants"][name] = {"settings": settings, "images": a["images"], "problems": a["problems"][:10],
                                 "cpu_ms_per_image": ms, "cpu_ms_per_image_total": round(sum(ms.values()), 2),
                                 "loop_wakeups_per_image": round(a["wakeups"] / n, 1),
                                 "worker_peak_rss_mib": round(a["peak_rss"] / 2**20, 1)}
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", action="append",
                   help="NAME:key=value,... ([image_optimizer] settings, effort=N for the profile's WebP "
                        "effort, src=DIR to run another copy of the code; repeatable; default: one, as shipped)")
    p.add_argument("--rounds", type=int, default=2, help="rounds per variant, alternating (default 2)")
    p.add_argument("--repeat", type=int, default=2, help="passes over the 20 sources per round (default 2)")
    p.add_argument("--pool", type=int, default=2, help="image threads (default 2)")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight (default 2)")
    p.add_argument("--sources", default="bench/results/image-sources")
    p.add_argument("--out", default="bench/results/images-threads.json")


def run_main(args: argparse.Namespace) -> int:
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{'variant':14s} {'images':>6s} {'total':>7s} {'loop':>6s} {'image':>6s} {'libvips':>8s} "
          f"{'peak RSS':>9s} {'wakes':>6s}  (ms CPU per image; worker MiB; loop wake-ups per image)")
    for name, r in result["variants"].items():
        ms = r["cpu_ms_per_image"]
        print(f"{name:14s} {r['images']:6d} {r['cpu_ms_per_image_total']:7.1f} {ms.get('loop', 0):6.1f} "
              f"{ms.get('image', 0):6.1f} {ms.get('libvips', 0):8.1f} {r['worker_peak_rss_mib']:9.1f}"
              f" {r['loop_wakeups_per_image']:6.1f}"
              + (f"  PROBLEMS: {r['problems'][:3]}" if r["problems"] else ""))
    print(f"load average {result['load_average']:.1f}; wrote {args.out}", file=sys.stderr)
    return 1 if any(r["problems"] for r in result["variants"].values()) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sluicegate bench images-threads", description=(__doc__ or "").split("\n\n")[0])
    add_arguments(p)
    return run_main(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
