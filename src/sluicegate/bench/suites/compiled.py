"""Which modules gain from mypyc: each hot path timed pure, on a base build and on the base + candidates.

Three builds side by side in one run, each workload in its own child process:

* ``pure`` — ``SLUICEGATE_PURE_PYTHON=1``;
* ``base`` — the compiled set of ``src/sluicegate/_compiled.py`` minus the candidates;
* ``with`` — the base plus the candidates (default: the Flight lexer and JS string codec, the CSS/JS
  text replacer and the host matcher, the SSE tap).

``base`` and ``with`` are built by ``scripts/build_mypyc.py --target`` (the project's own build) into
temporary directories (``--base DIR --with DIR`` reuse earlier ones). The workloads:

* Flight: ``text/x-component`` body, the inline ``__next_f`` rewriter alone, and the whole HTML page
  with the Next.js filter (sluicegate bench flight's page, 1.4 MB);
* the HTML rewriter on sluicegate bench html's 500 KB page in 8 KB chunks (uses the host matcher);
* CSS/JS text: ``StreamingHostReplacer`` over 1 MB of CSS and JS naming the origin, in 8 KB chunks;
* SSE: ``SseTap`` over 1 MB of OpenAI-style chat chunks in 1 KB reads, usage in the last event.

Figures are MB/s of input from the median CPU time (``time.process_time``) of ``--runs`` runs: the
machine is shared, so compare the ratios of one run, not absolute figures across runs.

Run:  sluicegate bench compiled [--runs N]
Writes bench/results/compiled.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sluicegate.bench import lab

ROOT = lab.repo_root() or Path.cwd()  # the checkout: scripts/, tests/data/, git history
ME = "sluicegate.bench.suites.compiled"  # children run as python -m ME

CANDIDATES = (
    "sluicegate.pipeline.flight.lexer",
    "sluicegate.pipeline.flight.jsstring",
    "sluicegate.pipeline.text",
    "sluicegate.pipeline.hosts",
    "sluicegate.inference.sse",
)
ORIGIN = "https://www.publisher-origin.com"


def _median_cpu(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def css_js_body(target: int = 1_000_000) -> bytes:
    rnd = random.Random(5)
    parts: list[str] = []
    size = 0
    while size < target:
        r = rnd.random()
        if r < 0.4:
            s = f".c{rnd.randint(1, 9999)}{{background:url({ORIGIN}/img/{rnd.randint(1, 999)}.png) no-repeat;" \
                f"margin:0 {rnd.randint(1, 40)}px;color:#{rnd.randint(0, 0xFFFFFF):06x}}}\n"
        elif r < 0.7:
            s = f'var u{rnd.randint(1, 999)}="{ORIGIN}/api/v{rnd.randint(1, 3)}/items?id={rnd.randint(1, 99999)}";' \
                f"function f{rnd.randint(1, 999)}(a,b){{return a+b*{rnd.randint(1, 99)}}}\n"
        else:
            s = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz{}();=+ \n") for _ in range(rnd.randint(40, 200)))
        parts.append(s)
        size += len(s)
    return "".join(parts).encode()


def sse_body(target: int = 1_000_000) -> bytes:
    rnd = random.Random(3)
    words = ["the", "of", "and", "to", "in", "is", "it", "for", "on", "that", "with", "as", "was", "at", "by"]
    events: list[bytes] = []
    size = 0
    i = 0
    while size < target:
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": " " + rnd.choice(words)}, "finish_reason": None}]}
        e = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        events.append(e)
        size += len(e)
        i += 1
    last = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": i, "total_tokens": 12 + i}}
    events.append(b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n")
    return b"".join(events)


def child(runs: int) -> dict[str, object]:
    from sluicegate.bench.suites import flight as bench_flight
    from sluicegate.bench.suites import html as bench_html
    from sluicegate.buildinfo import fast_paths
    from sluicegate.config.html import HtmlSettings
    from sluicegate.config.origin import Origin
    from sluicegate.inference.sse import SseTap
    from sluicegate.pipeline.hosts import OriginMatcher
    from sluicegate.pipeline.html import build_html_processor
    from sluicegate.pipeline.text import StreamingHostReplacer

    out: dict[str, float] = {}
    page, flight, _ = bench_flight.make_page()
    scripts = [part.rsplit(b"<script>", 1)[1] for part in page.split(b"</script>") if b"__next_f" in part]
    out["flight_x_component"] = len(flight) / _median_cpu(lambda: bench_flight.run_xcomponent(flight), runs)
    out["flight_inline_only"] = sum(map(len, scripts)) / _median_cpu(lambda: bench_flight.run_inline_only(scripts),
                                                                       runs)
    out["html_with_flight_filter"] = len(page) / _median_cpu(lambda: bench_flight.run_html(page, True), runs)

    html = bench_html.make_page(500_000)
    settings = HtmlSettings()

    def rewrite_html() -> None:
        rw = OriginMatcher(Origin.parse(ORIGIN)).for_request("https", "www.proxy.example")
        p = build_html_processor(rw, settings)
        for i in range(0, len(html), 8192):
            p.feed(html[i : i + 8192])
        p.finish()

    out["html_rewriter_500KB"] = len(html) / _median_cpu(rewrite_html, runs)

    text = css_js_body()

    def replace_text() -> None:
        r = StreamingHostReplacer(OriginMatcher(Origin.parse(ORIGIN)).for_request("https", "www.proxy.example"))
        for i in range(0, len(text), 8192):
            r.feed(text[i : i + 8192])
        r.finish()

    out["css_js_text_replacer"] = len(text) / _median_cpu(replace_text, runs)

    sse = sse_body()

    def tap() -> None:
        t = SseTap()
        for i in range(0, len(sse), 1024):
            t.feed(sse[i : i + 1024])
        assert t.usage.output_tokens, "the SSE tap found no usage"

    out["sse_tap"] = len(sse) / _median_cpu(tap, runs)
    return {"fast_paths": fast_paths(), "mb_per_s_cpu": {k: round(v / 1e6, 2) for k, v in out.items()}}


def run_child(runs: int, env: dict[str, str]) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-m", ME, "--child", "--runs", str(runs)], env={**os.environ, **env},
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def build(target: Path, add: tuple[str, ...], drop: tuple[str, ...]) -> None:
    lab.build_mypyc(target, add, drop)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench compiled", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    ap.add_argument("--base", type=Path, help="reuse this base build (scripts/build_mypyc.py --target)")
    ap.add_argument("--with", dest="with_", type=Path, help="reuse this base+candidates build")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.runs)))
        return 0
    cands = tuple(args.candidates)
    results: dict[str, object] = {
        "python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(), "runs": args.runs,
        "candidates": cands, "load_average_at_start": list(os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="sg-bench-compiled-") as tmp:
        base = args.base or Path(tmp) / "base"
        with_ = args.with_ or Path(tmp) / "with"
        if args.base is None:
            build(base, (), cands)
        if args.with_ is None:
            build(with_, cands, ())
        runs = {
            "pure": run_child(args.runs, {"SLUICEGATE_PURE_PYTHON": "1", "PYTHONPATH": str(base)}),
            "base": run_child(args.runs, {"SLUICEGATE_PURE_PYTHON": "", "PYTHONPATH": str(base)}),
            "with": run_child(args.runs, {"SLUICEGATE_PURE_PYTHON": "", "PYTHONPATH": str(with_)}),
        }
    for label, r in runs.items():
        fp = r["fast_paths"]
        compiled = sorted(m for m, v in fp["modules"].items() if v == "compiled")  # type: ignore[index]
        print(f"{label}: {fp['summary']}; compiled: {', '.join(c.removeprefix('sluicegate.') for c in compiled)}")  # type: ignore[index]
    print(f"{'workload':26} {'pure':>8} {'base':>8} {'with':>8}  with/base  with/pure   (MB/s of input, CPU time)")
    table: dict[str, dict[str, float]] = {}
    for w in runs["pure"]["mb_per_s_cpu"]:  # type: ignore[attr-defined]
        p, b, c = (runs[k]["mb_per_s_cpu"][w] for k in ("pure", "base", "with"))  # type: ignore[index]
        table[w] = {"pure": p, "base": b, "with": c,
                    "with_over_base": round(c / b, 2), "with_over_pure": round(c / p, 2)}
        print(f"{w:26} {p:8.2f} {b:8.2f} {c:8.2f}  {c / b:8.2f}x  {c / p:8.2f}x")
    results["mb_per_s_cpu"] = table
    results["builds"] = {k: v["fast_paths"] for k, v in runs.items()}
    results["load_average_at_end"] = list(os.getloadavg())
    print(f"wrote {lab.write_json('compiled', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
