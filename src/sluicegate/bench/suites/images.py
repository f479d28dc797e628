"""``sluicegate bench images``: the image optimizer vs thumbor, side by side in one run (issue #16 §4).

Both servers fetch the same 20 sources (2-24 MP JPEG/PNG made with libvips) from the same local static
origin and make the same target: 800 px wide WebP, quality 80. Rounds alternate between the servers (their
order flips each round) so that a shared, noisy machine loads both alike. Per server: images per CPU-second
of its whole process group (the per-core figure, robust to contention), wall-clock images/s, p50/p99
latency, and peak RSS (summed ``VmHWM`` of its processes). Every response is decoded and checked (WebP,
800 px wide, the source's ratio). Writes JSON and a plot under bench/results/.

thumbor runs from its own venv (``--thumbor-venv``, default bench/.thumbor-venv: ``python3 -m venv
bench/.thumbor-venv && bench/.thumbor-venv/bin/pip install thumbor``), with its default engine (PIL),
no storage and no result storage (every request decodes, as ours do).
Must not know about the proxy's internals: it drives ``sluicegate serve`` over HTTP.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sluicegate.bench.results import describe
from sluicegate.bench.suites import images_memory
from sluicegate.bench.suites.images_sources import Group, Source, check_output, free_port, make_sources

TARGET_WIDTH = 800
QUALITY = 80
THUMBOR_WEBP_EFFORT = 4  # Pillow's WebP ``method`` default, which thumbor's PIL engine never sets
# (server name, image threads, the profile's effort; None: the profile's default)
VARIANTS: list[tuple[str, int, int | None]] = [
    ("sluicegate", 2, None), ("sluicegate-effort4", 2, THUMBOR_WEBP_EFFORT), ("sluicegate-pool1", 1, None),
    ("sluicegate-1proc", 2, None),
]
ONE_PROCESS = "sluicegate-1proc"  # [server] supervisor = false: the app in the one process `serve` started


def sluicegate_config(origin_port: int, pool: int = 2, stream_above: int | None = None,
                      release_memory: str | None = None, effort: int | None = None,
                      mmap_threshold: int | None = None, supervisor: bool = True) -> str:
    """An asset route on /img with the optimizer; profile ``w800`` = the benchmark's target."""
    return f"""
[server]
access_log = "off"
supervisor = {"true" if supervisor else "false"}

[publisher]
origin_url = "http://127.0.0.1:{origin_port}"
public_hosts = ["*"]

[[publisher.routes]]
name = "img"
prefix = "/img/"
kind = "asset"
origin_url = "http://127.0.0.1:{origin_port}"
path_pattern = "^/img/(.*)$"
target_path = "/$1"
image_optimizer = {{ enabled = true, profile_set = "bench" }}

[image_optimizer]
workers = {pool}
queue = 64
max_source_bytes = 134217728
{"" if stream_above is None else f"stream_source_above = {stream_above}"}
{"" if release_memory is None else f'release_memory = "{release_memory}"'}
{"" if mmap_threshold is None else f"malloc_mmap_threshold = {mmap_threshold}"}

[image_optimizer.profile_sets.bench]
default_profile = "w800"
widths = [{TARGET_WIDTH}]

[image_optimizer.profile_sets.bench.profiles.w800]
width = {TARGET_WIDTH}
quality = {QUALITY}
format = "webp"
{"" if effort is None else f"effort = {effort}"}
"""


THUMBOR_CONF = """
LOADER = 'thumbor.loaders.http_loader'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
AUTO_WEBP = False
QUALITY = {quality}
HTTP_LOADER_MAX_BODY_SIZE = 134217728
MAX_AGE = 0
"""


class Server:
    def __init__(self, name: str, group: Group, url_of: Any, ready_path: str) -> None:
        self.name = name
        self.group = group
        self.url_of = url_of  # Source -> path on 127.0.0.1:port
        self.ready_path = ready_path  # answers once serving, without making an image
        self.idle: dict[str, Any] = {}  # images_memory.footprint: started, no image yet
        self.after_one: dict[str, Any] = {}  # ... after one image (the engine loaded)
        self.after_run: dict[str, Any] = {}  # ... once every round is done
        self.port = 0
        self.baseline = 0  # summed VmRSS after start-up and one image
        self.baseline_pss = 0


def _fetch_all(port: int, items: list[tuple[str, Source]], concurrency: int, accept: str) -> list[dict[str, Any]]:
    import http.client

    work: queue.Queue[tuple[str, Source]] = queue.Queue()
    for item in items:
        work.put(item)
    out: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            try:
                path, src = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Accept": accept})
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                body, status = repr(exc).encode(), 0
            took = time.perf_counter() - t0
            with lock:
                out.append({"src": src, "status": status, "body": body, "seconds": took})
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    results_dir = Path(args.out).parent
    results_dir.mkdir(parents=True, exist_ok=True)
    sources = make_sources(Path(args.sources))
    origin_port = free_port()
    origin = Group([sys.executable, "-c",
                    "import sys; from sluicegate.bench.suites.images_sources import serve_static; "
                    "serve_static(sys.argv[1], int(sys.argv[2]))", args.sources, str(origin_port)],
                   results_dir / "images-origin.log")
    servers: list[Server] = []
    try:
        origin.wait_http(f"http://127.0.0.1:{origin_port}/manifest.json")
        # the shipped profile (its default encoder effort), the same at thumbor's WebP effort (Pillow's
        # method 4: the same work, byte for byte comparable), and one image thread at a time (as thumbor)
        for name, pool, effort in VARIANTS:
            port = free_port()
            conf = results_dir / f"images-{name}.toml"
            admin = f'\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
            conf.write_text(sluicegate_config(origin_port, pool, args.stream_above, args.release_memory, effort,
                                              args.malloc_mmap_threshold, supervisor=name != ONE_PROCESS)
                            + admin)
            sg = Server(name, Group([sys.executable, "-m", "sluicegate", "serve", "--config", str(conf), "--port",
                                     str(port), "--workers", "1"], results_dir / f"images-{name}.log"),
                        lambda s: f"/img/{s.name}?profile=w800", "/img/manifest.json")
            sg.port = port
            servers.append(sg)
        if not args.no_thumbor:
            venv = Path(args.thumbor_venv)
            if not (venv / "bin" / "thumbor").exists():
                raise SystemExit(f"no thumbor in {venv}: python3 -m venv {venv} && {venv}/bin/pip install thumbor")
            tconf = results_dir / "images-thumbor.conf"
            tconf.write_text(THUMBOR_CONF.format(quality=QUALITY))
            tport = free_port()
            th = Server("thumbor", Group([str(venv / "bin" / "thumbor"), "-p", str(tport), "-i", "127.0.0.1",
                                         "-c", str(tconf), "-l", "error"], results_dir / "images-thumbor.log"),
                        lambda s: f"/unsafe/{TARGET_WIDTH}x0/filters:format(webp):quality({QUALITY})/"
                                  f"http://127.0.0.1:{origin_port}/{s.name}", "/healthcheck")
            th.port = tport
            servers.append(th)
        for s in servers:
            s.group.wait_http(f"http://127.0.0.1:{s.port}{s.ready_path}", timeout=120)
        time.sleep(1.0)  # settled: the start-up's transient processes (configcheck) are gone
        for s in servers:
            s.idle = images_memory.footprint(s.group.pids())
            # one image made: the engine is loaded; the resident set now is the server's baseline
            s.group.wait_http(f"http://127.0.0.1:{s.port}{s.url_of(sources[0])}", timeout=120)
            s.baseline = s.group.peak_rss(field="VmRSS")
            s.baseline_pss = s.group.pss()
            s.after_one = images_memory.footprint(s.group.pids())
        return _measure(args, servers, sources)
    finally:
        for s in servers:
            s.group.stop()
        origin.stop()


def _measure(args: argparse.Namespace, servers: list[Server], sources: list[Source]) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {s.name: {"latency": [], "cpu": 0.0, "wall": 0.0, "images": 0,
                                              "errors": [], "bytes_out": 0, "rounds": []} for s in servers}
    accept = "image/webp,*/*;q=0.8"
    for rnd in range(args.rounds):
        order = servers if rnd % 2 == 0 else list(reversed(servers))
        for s in order:
            items = [(s.url_of(src), src) for src in sources for _ in range(args.repeat)]
            stop = threading.Event()
            sampler = threading.Thread(target=s.group.sample_pss, args=(stop,), daemon=True)
            sampler.start()
            cpu0, t0 = s.group.cpu_seconds(), time.perf_counter()
            got = _fetch_all(s.port, items, args.concurrency, accept)
            wall, cpu = time.perf_counter() - t0, s.group.cpu_seconds() - cpu0
            stop.set()
            sampler.join()
            acc = per[s.name]
            acc["cpu"] += cpu
            acc["wall"] += wall
            ok_before = acc["images"]
            for r in got:
                problem = None if r["status"] == 200 else f"status {r['status']}: {r['body'][:120]!r}"
                problem = problem or check_output(r["body"], r["src"], TARGET_WIDTH, "webp")
                if problem:
                    acc["errors"].append(f"{r['src'].name}: {problem}")
                    continue
                acc["images"] += 1
                acc["bytes_out"] += len(r["body"])
                acc["latency"].append(r["seconds"])
            acc["rounds"].append(round((acc["images"] - ok_before) / cpu, 3) if cpu > 0 else None)
            print(f"  round {rnd + 1}/{args.rounds} {s.name:10s} {len(got)} images in {wall:.1f} s wall, "
                  f"{cpu:.1f} s CPU", file=sys.stderr)
    time.sleep(1.0)
    for s in servers:
        s.after_run = images_memory.footprint(s.group.pids())
    out: dict[str, Any] = {
        "target": {"width": TARGET_WIDTH, "format": "webp", "quality": QUALITY},
        "sources": [src.__dict__ for src in sources],
        "rounds": args.rounds, "repeat": args.repeat, "concurrency": args.concurrency,
        "note": "servers measured side by side, alternating rounds, on a shared machine: CPU-time figures are "
                "the comparable ones; wall-clock figures were taken under contention. peak_rss_mib sums each "
                "process's VmHWM (pages shared by the supervisor and its worker counted twice); peak_pss_mib "
                "is the largest summed PSS sampled every 100 ms (shared pages counted once)",
        "stream_source_above": args.stream_above,
        "malloc_mmap_threshold": args.malloc_mmap_threshold,
        "servers": {},
    }
    for s in servers:
        acc = per[s.name]
        lat = describe(acc["latency"])
        out["servers"][s.name] = {
            "images_ok": acc["images"],
            "errors": acc["errors"][:20],
            "error_count": len(acc["errors"]),
            "cpu_seconds": round(acc["cpu"], 3),
            "images_per_cpu_second": round(acc["images"] / acc["cpu"], 3) if acc["cpu"] else None,
            # each round's own figure (verified images / CPU-seconds of that round) and their median
            "images_per_cpu_second_rounds": acc["rounds"],
            "images_per_cpu_second_median": _median([x for x in acc["rounds"] if x]),
            "images_per_second_wall": round(acc["images"] / acc["wall"], 3) if acc["wall"] else None,
            "latency_p50_ms": round(lat.get("median", 0) * 1000, 1),
            "latency_p99_ms": round(lat.get("p99", 0) * 1000, 1),
            "peak_rss_mib": round(s.group.peak_rss() / 2**20, 1),
            "peak_rss_largest_process_mib": round(s.group.peak_rss(largest=True) / 2**20, 1),
            "processes": len(s.group.pids()),
            "baseline_rss_mib": round(s.baseline / 2**20, 1),
            "peak_pss_mib": round(s.group.peak_pss / 2**20, 1),
            "baseline_pss_mib": round(s.baseline_pss / 2**20, 1),
            "peak_above_baseline_mib": round((s.group.peak_rss() - s.baseline) / 2**20, 1),
            "mean_output_bytes": round(acc["bytes_out"] / max(acc["images"], 1)),
            "idle": s.idle,
            "after_one_image": s.after_one,
            "after_run": s.after_run,
        }
    if "thumbor" in out["servers"]:
        a, b = out["servers"]["sluicegate"], out["servers"]["thumbor"]
        if a["images_per_cpu_second"] and b["images_per_cpu_second"]:
            out["ratio_images_per_cpu_second"] = round(a["images_per_cpu_second"] / b["images_per_cpu_second"], 2)
            e4 = out["servers"]["sluicegate-effort4"]["images_per_cpu_second"]
            out["ratio_images_per_cpu_second_effort4"] = round(e4 / b["images_per_cpu_second"], 2) if e4 else None
            # round by round (the servers of one round ran minutes apart at most, under the same load)
            pairs = [x / y for x, y in zip(a["images_per_cpu_second_rounds"], b["images_per_cpu_second_rounds"],
                                           strict=True) if x and y]
            out["ratio_images_per_cpu_second_rounds"] = [round(x, 2) for x in pairs]
            out["ratio_images_per_cpu_second_median"] = _median(pairs)
        if b["mean_output_bytes"]:
            out["ratio_mean_output_bytes"] = round(a["mean_output_bytes"] / b["mean_output_bytes"], 3)
        if b["peak_rss_mib"]:
            out["ratio_peak_rss"] = round(a["peak_rss_mib"] / b["peak_rss_mib"], 3)
            out["ratio_peak_rss_image_process"] = round(
                a["peak_rss_largest_process_mib"] / b["peak_rss_largest_process_mib"], 3)
        if b["peak_pss_mib"]:
            out["ratio_peak_pss"] = round(a["peak_pss_mib"] / b["peak_pss_mib"], 3)
        out["memory_ratios"] = images_memory.ratios(a, b)
        if ONE_PROCESS in out["servers"]:
            out["memory_ratios_one_process"] = images_memory.ratios(out["servers"][ONE_PROCESS], b)
    return out


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return round(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2, 3)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["servers"])
    rows = [("images / CPU-second", "images_per_cpu_second"), ("p50 latency (ms)", "latency_p50_ms"),
            ("p99 latency (ms)", "latency_p99_ms"), ("peak RSS, all processes (MiB)", "peak_rss_mib"),
            ("peak RSS, image process (MiB)", "peak_rss_largest_process_mib"),
            ("peak PSS, all processes (MiB)", "peak_pss_mib")]
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.4))
    for ax, (title, key) in zip(axes, rows, strict=True):
        values = [result["servers"][n][key] or 0 for n in names]
        bars = ax.bar(names, values, color=["#2b7bba", "#4f93c8", "#8cbde3", "#d98c2b"][: len(names)])
        ax.tick_params(axis="x", labelsize=7)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"800 px WebP q80 from 20 JPEG/PNG sources (2-24 MP), concurrency {result['concurrency']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def text(result: dict[str, Any]) -> str:
    lines = [f"{'server':17s} {'img/CPU-s':>10s} {'img/s wall':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
             f"{'RSS all MiB':>11s} {'RSS proc MiB':>12s} {'PSS all MiB':>11s} {'idle MiB':>8s} {'out B':>6s} "
             f"{'ok':>5s} {'errors':>6s}"]
    for name, r in result["servers"].items():
        lines.append(f"{name:17s} {r['images_per_cpu_second'] or 0:10.2f} {r['images_per_second_wall'] or 0:10.2f} "
                     f"{r['latency_p50_ms']:8.0f} {r['latency_p99_ms']:8.0f} {r['peak_rss_mib']:11.1f} "
                     f"{r['peak_rss_largest_process_mib']:12.1f} {r['peak_pss_mib']:11.1f} "
                     f"{r['baseline_rss_mib']:8.1f} {r['mean_output_bytes']:6d} {r['images_ok']:5d} "
                     f"{r['error_count']:6d}")
    if "ratio_images_per_cpu_second" in result:
        lines.append(f"sluicegate/thumbor: {result['ratio_images_per_cpu_second']}x images per CPU-second "
                     f"(goal >= 2; {result.get('ratio_images_per_cpu_second_effort4')}x at thumbor's WebP "
                     f"effort 4; median of the rounds' ratios {result.get('ratio_images_per_cpu_second_median')}x, "
                     f"rounds {result.get('ratio_images_per_cpu_second_rounds')}), "
                     f"mean output bytes {result.get('ratio_mean_output_bytes')}x, "
                     f"peak RSS ratio {result['ratio_peak_rss']} all processes, "
                     f"{result['ratio_peak_rss_image_process']} image process, peak PSS ratio "
                     f"{result.get('ratio_peak_pss')} all processes (goal <= 0.5)")
    return "\n".join(lines) + "\n" + images_memory.text(result)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per server (default 3)")
    p.add_argument("--repeat", type=int, default=1, help="requests per source per round (default 1)")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight (default 2)")
    p.add_argument("--sources", default="bench/results/image-sources", help="where the 20 sources are made")
    p.add_argument("--thumbor-venv", default="bench/.thumbor-venv")
    p.add_argument("--stream-above", type=int, default=None,
                   help="sluicegate's [image_optimizer] stream_source_above (default: the server's own)")
    p.add_argument("--release-memory", choices=("image", "idle", "off"), default=None,
                   help="sluicegate's [image_optimizer] release_memory (default: the server's own)")
    p.add_argument("--malloc-mmap-threshold", type=int, default=None,
                   help="sluicegate's [image_optimizer] malloc_mmap_threshold, bytes (default: the server's own)")
    p.add_argument("--no-thumbor", action="store_true", help="measure sluicegate alone")
    p.add_argument("--out", default="bench/results/images.json", help="JSON result (a .png plot beside it)")


def run_main(args: argparse.Namespace) -> int:
    if min(args.rounds, args.repeat, args.concurrency) < 1:
        print("--rounds, --repeat and --concurrency must be at least 1", file=sys.stderr)
        return 2
    result = run(args)
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=1))
    try:
        plot(result, out.with_suffix(".png"))
        print(f"wrote {out} and {out.with_suffix('.png')}", file=sys.stderr)
    except ImportError:
        print(f"wrote {out} (no matplotlib: no plot)", file=sys.stderr)
    print(text(result))
    failed = any(r["error_count"] for r in result["servers"].values())
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sluicegate bench images", description=(__doc__ or "").split("\n\n")[0])
    add_arguments(p)
    return run_main(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
