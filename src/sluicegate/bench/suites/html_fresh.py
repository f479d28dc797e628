"""``bench html-fresh``: a fresh HTML rewriter's fixed cost and its cost per origin URL (issue 19 rows 3 and 6).

The proxy builds one HTML processor per response (``publisher.processors.build_processor``: the relay's
rule set, a navigation request). On a small page, or the first segment of a large one, what that
costs is not the rewriter's MB/s (``bench html``) but its set-up, its first feed and each origin URL.
Cases, CPU µs per call (``process_time``), best and median of ``--samples`` samples:

- ``build``: the processor built; ``tag doc``: built + fed ``<p>x</p>`` + finished (the fixed cost);
- ``page 2 KB``: the throughput bench's 2 KB page (``dev.origin.content.page``, 11 origin URLs: the
  Stream 2 KB route's rewrite), fed whole and finished;
- ``first 1 KiB``: the first 1,024 bytes of relay-ttfb's trickled page (``dev.origin.content.trickle_html``:
  8 origin URLs, one in a ``<style>`` ``url()``), fed, not finished (the first segment's rewrite);
- one-URL documents (``<a href>``, ``<style>`` ``url()``, text URL, ``<meta property=og:url content>``,
  ``style=url()``): their ``+ µs`` over ``tag doc`` is the cost of that one URL on a fresh rewriter.

A/B: ``--ab DIR`` (a PYTHONPATH holding another build, e.g. ``scripts/build_mypyc.py --target DIR`` of
main) runs both in fresh interpreters, alternating, ``--alternations`` times, and prints them side by side.

Run: ``sluicegate bench html-fresh [--ab DIR] [--pure]`` (~1 min) -> ``bench/results/html-fresh.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from sluicegate.bench.lab import write_json

ORIGIN = "http://127.0.0.1:8080"
ONE_URL = {
    "a href": b'<p><a href="http://127.0.0.1:8080/a/b">x</a></p>',
    "style url()": b'<style>body{margin:0;background:url("http://127.0.0.1:8080/img/bg.png")} .c>a{color:#333}</style>',
    "text URL": b"<p>See http://127.0.0.1:8080/docs for details.</p>",
    "meta og:url": b'<meta property="og:url" content="http://127.0.0.1:8080/">',
    "style= url()": b'<div class=c style="background-image:url(http://127.0.0.1:8080/img/t0.png)">',
}


def _cases() -> dict[str, Callable[[], object]]:
    from sluicegate.config.model import Settings
    from sluicegate.dev.origin.content import page, trickle_html
    from sluicegate.gate import Kind
    from sluicegate.pipeline.hosts import OriginMatcher
    from sluicegate.publisher.processors import build_processor

    settings = Settings.model_validate({"publisher": {"origin_url": ORIGIN, "public_hosts": ["127.0.0.1:9000"]}})
    rw = OriginMatcher(settings.publisher.origin, settings.publisher.all_origin_aliases).for_request(
        "http", "127.0.0.1:9000")
    p2k = page(ORIGIN, 2048)
    first = trickle_html(ORIGIN)[:1024]

    def make() -> Any:
        return build_processor(Kind.HTML, rw, settings, navigation_request=True, content_type="text/html")

    def whole(doc: bytes) -> Callable[[], object]:
        def run() -> object:
            p = make()
            return p.feed(doc) + p.finish()
        return run

    cases: dict[str, Callable[[], object]] = {"build": make, "tag doc": whole(b"<p>x</p>"), "page 2 KB": whole(p2k),
                                              "first 1 KiB": lambda: make().feed(first)}
    for name, doc in ONE_URL.items():
        cases[name] = whole(doc)
    return cases


def measure(samples: int, reps: int) -> dict[str, Any]:
    import sluicegate.pipeline.html as html

    out: dict[str, Any] = {"compiled": bool(getattr(html, "COMPILED", False))}
    for name, fn in _cases().items():
        n = reps if name not in ("page 2 KB", "first 1 KiB") else max(1, reps // 4)
        for _ in range(max(20, n // 5)):
            fn()
        got = []
        for _ in range(samples):
            t = time.process_time()
            for _ in range(n):
                fn()
            got.append((time.process_time() - t) / n * 1e6)
        out[name] = {"best": round(min(got), 2), "median": round(statistics.median(got), 2)}
    return out


def _child(path: str, pure: bool, samples: int, reps: int) -> dict[str, Any]:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    else:
        env.pop("PYTHONPATH", None)
    env["SLUICEGATE_PURE_PYTHON"] = "1" if pure else ""
    code = (f"import runpy, sys; sys.argv = ['html-fresh', '--child', '--samples', '{samples}', '--reps', '{reps}']; "
            f"runpy.run_path({__file__!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, env=env, check=False)
    if r.returncode != 0:
        raise SystemExit(f"html-fresh child failed ({path or 'installed tree'}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench html-fresh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--reps", type=int, default=2000, help="calls per sample (the 2 KB / 1 KiB cases: a quarter)")
    ap.add_argument("--ab", default="", help="another build's PYTHONPATH, measured alternately with this one")
    ap.add_argument("--alternations", type=int, default=3)
    ap.add_argument("--pure", action="store_true", help="interpreted modules (SLUICEGATE_PURE_PYTHON=1)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.samples, args.reps)))
        return {}
    trees = {"this": os.environ.get("PYTHONPATH", "")}
    if args.ab:
        trees = {"other": args.ab, **trees}
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in trees}
    for i in range(args.alternations if args.ab else 1):
        for name in (list(trees) if i % 2 == 0 else list(trees)[::-1]):
            r = _child(trees[name], args.pure, args.samples, args.reps)
            if r.pop("compiled") == args.pure:  # a stale build runs pure: not the figure asked for
                raise SystemExit(f"the {name} child ran {'compiled' if args.pure else 'pure'} modules")
            runs[name].append(r)
    # per tree and case: the best of the alternations' bests, the median of their medians
    res = {t: {c: {"best": min(r[c]["best"] for r in rs), "median": statistics.median(r[c]["median"] for r in rs)}
               for c in rs[0]} for t, rs in runs.items()}
    head = f"{'case (CPU us, best/median)':28}" + "".join(f"{t:>18}" for t in res)
    print(head + ("   ratio" if args.ab else ""))
    base = res["this"]["tag doc"]["best"]
    for c in res["this"]:
        row = f"{c:28}" + "".join(f"{res[t][c]['best']:9.1f}/{res[t][c]['median']:<8.1f}" for t in res)
        if args.ab:
            row += f"  {res['this'][c]['best'] / res['other'][c]['best']:.2f}x"
        if c in ONE_URL:
            row += f"   (+{res['this'][c]['best'] - base:.1f} over tag doc)"
        print(row)
    data = {"mode": "pure" if args.pure else "compiled", "ab": args.ab, "results": res, "rounds": runs}
    print(f"-> {write_json('html-fresh', data)}")
    return data


if __name__ == "__main__":
    main()
