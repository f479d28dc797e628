"""Benchmark of the streaming HTML rewriter (``sluicegate.pipeline.html``), issue 3's cases.

Builds deterministic news-like pages (many links, srcsets, inline scripts and JSON, inline SVG,
comments; the origin host in roughly one tag in eighteen), pushes them through
``build_html_processor`` with sluicegate's full rule set (URL attributes, script/style bodies,
text rewriting on, head and body-end injection: ``case_a_settings``) and reports MB/s of input:

* (a) 500 KB page in 8 KB chunks — issue 3's goal >= 60 MB/s; issue 19's row 5 (``CASE_A``, the same
  configuration everywhere: ``child``, the comparison's ``default`` variant, ``case_a_child`` for
  ``bench goals``) >= 160 MB/s compiled, >= 40 pure;  (b) 5 MB page in 8 KB chunks;
* (c) 500 KB page in 512-byte chunks (and 5 MB in 512 B);
* the cost of a tag that carries an origin URL: a 2.7 KB page full of origin links, per request
  and per origin tag (also as the marginal cost against the same page naming another host);
* the bare tokenizer (every token produced, no fast path);
* references on the same 500 KB page in the same run: html5lib's tokenizer and selectolax
  (lexbor) parse+serialize — bench-only dependencies: ``.venv/bin/pip install html5lib selectolax``.

Each variant runs in a child process, once on the pure-Python modules (``SLUICEGATE_PURE_PYTHON=1``)
and once on mypyc-compiled ones: the installed ones when the installed build is compiled (``pip install``,
``./run.sh``), else built into a temporary directory with ``scripts/build_mypyc.py --target``
(``--no-mypyc`` skips that). Figures are medians of ``--runs``
runs of both CPU time (``time.process_time``: the code's own cost, robust on a shared machine) and
wall time; the load average is recorded because the machine is shared. The page-sized cases (a call of
a few ms) are warmed up for 0.3 s of CPU and timed in samples of ~50 ms (``timed_batched``): a fresh
child's first call runs at ~40 % of the speed of the next, and a few ms per sample measured a cold CPU.

Run:  sluicegate bench html [--runs N] [--no-mypyc] [--baseline REV] [--rounds K]
      [--candidate REV ...] [--no-this] [--compare-pure]
Writes bench/results/html.json.

``--baseline REV`` (default ``main``; ``none`` skips it) also
builds that revision (``git archive`` into a temporary directory, compiled with its own
``scripts/build_mypyc.py``) and measures, interleaved in ``--rounds`` alternating rounds in one run,
case (a) for: the baseline; this tree with text rewriting on (the default) and off; with 3
origin aliases (on and off). And the output lag — the largest ``bytes fed - bytes emitted`` — on a
5 MB page with large inline scripts and styles, for both trees (the public host has the origin
host's length, so the lag is exact).
"""

from __future__ import annotations

import argparse
import importlib
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
from typing import Any

# Children import the measured tree's ``sluicegate`` (``PYTHONPATH``), which for a ``--baseline`` may predate
# ``sluicegate.bench.suites`` or ``bench.lab``: they run this file by path (``_CHILD_BOOT``), and the child side
# needs nothing of the imported tree but its pipeline/config/firstparty modules. Only the parent imports ``lab``.
_CHILD_BOOT = ("import runpy, sys; p = sys.argv[1]; sys.argv = [p] + sys.argv[2:]; "
               "runpy.run_path(p, run_name='__main__')")


def _root() -> Path:
    """The checkout: scripts/, tests/data/, git history."""
    from sluicegate.bench import lab

    return lab.repo_root() or Path.cwd()

ORIGIN = "https://www.publisher-origin.com"

def origin_class() -> Any:
    """``Origin`` of the imported tree (``config.origin``; ``pipeline.hosts`` before the edge layer),
    so that ``--baseline`` / ``--candidate`` can name older revisions."""
    for mod in ("sluicegate.config.origin", "sluicegate.pipeline.hosts"):
        try:
            return importlib.import_module(mod).Origin
        except (ImportError, AttributeError):
            continue
    raise SystemExit("no Origin in the imported tree")


KEY = "bench-first-party-key-0123456789-abcdefghijk"
THIRD = "https://cdn.adtech.example"


def page_with_third_party(n: int = 50) -> bytes:
    """The 500 KB page with ``n`` third-party tags (script/img/link/iframe on ``THIRD``): the first-party
    signing case (``signed50`` here, ``sluicegate bench firstparty``)."""
    page = make_page(500_000)
    tags = [
        f'<script src="{THIRD}/tag/{i}.js?pub=42&slot={i}"></script>' if i % 4 == 0 else
        f'<img src="{THIRD}/creative/{i}.png?w=300&h=250" alt="">' if i % 4 == 1 else
        f'<link rel="preload" as="image" href="{THIRD}/pre/{i}.webp">' if i % 4 == 2 else
        f'<iframe src="{THIRD}/frame/{i}.html?c={i}" width="300" height="250"></iframe>'
        for i in range(n)
    ]
    parts = page.split(b"</article>\n")
    step = max(1, len(parts) // (n + 1))
    for k, tag in enumerate(tags):
        parts[(k + 1) * step] = tag.encode() + parts[(k + 1) * step]
    return b"</article>\n".join(parts)


def make_page(target: int, seed: int = 7) -> bytes:
    rnd = random.Random(seed)
    o = "https://www.publisher-origin.com"
    head = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Daily News &amp; Views</title>
<meta property="og:url" content="{o}/today"><meta property="og:image" content="{o}/img/og.jpg">
<link rel="canonical" href="{o}/today"><link rel="stylesheet" href="{o}/css/site.css?v=3">
<link rel="preload" as="image" imagesrcset="{o}/img/hero-640.jpg 640w, {o}/img/hero-1280.jpg 1280w">
<style>.hero{{background:url({o}/img/bg.png)}} @import url("{o}/css/print.css"); .a>.b{{color:red}}</style>
<script async src="https://www.googletagmanager.com/gtm.js?id=GTM-XYZ"></script>
<script>window.dataLayer=window.dataLayer||[];dataLayer.push({{"page":"{o}/today","t":1}});</script>
</head>
<body class="home"><header><nav>"""
    parts = [head]
    size = len(head)
    i = 0
    while size < target:
        i += 1
        k = rnd.random()
        if k < 0.45:
            href = rnd.choice([f"{o}/news/{i}", f"/news/{i}", f"https://cdn.other.net/{i}",
                               f"//www.publisher-origin.com/n/{i}"])
            s = (f'<article class="card card--{i % 7}" data-id="{i}"><h2 class="card__title">'
                 f'<a href="{href}" class="link">Headline number {i} about things &amp; stuff</a></h2>'
                 f'<p class="card__dek">Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do '
                 f'eiusmod tempor incididunt ut labore et dolore magna aliqua {i}. Ut enim ad minim veniam, quis '
                 f'nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p>'
                 f'<span class="byline">By <a href="/authors/{i % 40}">Author {i % 40}</a></span></article>\n')
        elif k < 0.62:
            s = (f'<figure><picture><source type="image/webp" srcset="{o}/img/{i}-320.webp 320w, '
                 f'{o}/img/{i}-640.webp 640w"><img src="{o}/img/{i}.jpg" alt="Photo {i}" '
                 f'loading="lazy" width="640" height="360"></picture><figcaption>Caption {i}</figcaption></figure>\n')
        elif k < 0.64:
            s = (f'<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle",'
                 f'"url":"{o}/news/{i}","image":["{o}/img/{i}.jpg"],"headline":"Headline {i}"}}</script>\n')
        elif k < 0.66:
            s = (f'<script>(function(){{var u="https:\\/\\/www.publisher-origin.com\\/api\\/{i}";'
                 f'if(a<b&&b>c){{fetch(u)}} document.write("<div>"+"</scr"+"ipt>");}})();</script>\n')
        elif k < 0.72:
            s = (f'<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><use xlink:href="#i{i % 9}"/>'
                 f'<path d="M12 2L2 7l10 5 10-5-10-5z"/></svg><span class="label">Share</span>\n')
        elif k < 0.9:
            s = (f'<div class="teaser"><p>Duis aute irure dolor in reprehenderit in voluptate velit esse '
                 f'cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, '
                 f'<em>sunt in culpa</em> qui officia deserunt mollit anim id est laborum {i}.</p>'
                 f'<ul class="tags"><li><a href="/tag/{i % 13}">tag {i % 13}</a></li>'
                 f'<li><a href="/tag/{i % 17}">tag {i % 17}</a></li></ul></div>\n')
        else:
            s = (f'<!-- ad slot {i} --><div id="ad-{i}" class="ad" data-slot="/123/{i}" '
                 f'style="min-height:250px"></div>\n')
        parts.append(s)
        size += len(s)
    parts.append(f'<footer><a href="{o}/about">About</a></footer>\n<script>init()</script></body></html>\n')
    return "".join(parts).encode()


def link_page() -> bytes:
    """A 2.7 KB page whose body is 26 links to the origin (the per-origin-tag cost case)."""
    o = ORIGIN
    links = "".join(f'<li><a href="{o}/section/{i}/story.html" class="nav">Story {i}</a></li>\n' for i in range(26))
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Links</title></head><body><ul>\n{links}'
            '</ul></body></html>\n')
    return page.encode()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median CPU seconds and median wall seconds of ``runs`` calls (after one warm-up call)."""
    fn()
    cpu, wall = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return statistics.median(cpu), statistics.median(wall)


def timed_batched(fn: Callable[[], object], samples: int, warm_s: float = 0.3,
                  sample_s: float = 0.05) -> tuple[float, float]:
    """Median CPU and wall seconds per call, for a call of a few ms (the 500 KB page: ~3 ms compiled): calls
    for at least ``warm_s`` of CPU first (at least two: a cold first call of a fresh process runs at ~40 % of
    the speed of the next ones, and a short burst on an idle machine may not be at full clock either), then
    ``samples`` samples of ``k`` calls each, ``k`` chosen so that a sample takes about ``sample_s`` of CPU."""
    c0 = time.process_time()
    n = 0
    while n < 2 or time.process_time() - c0 < warm_s:
        fn()
        n += 1
    k = max(1, round(sample_s / max(1e-6, (time.process_time() - c0) / n)))
    cpu, wall = [], []
    for _ in range(samples):
        t0, c1 = time.perf_counter(), time.process_time()
        for _ in range(k):
            fn()
        cpu.append((time.process_time() - c1) / k)
        wall.append((time.perf_counter() - t0) / k)
    return statistics.median(cpu), statistics.median(wall)


INJECT: dict[str, list[str]] = {"head_inject": ['<script src="/static/sg.js"></script>'],
                                "body_end_inject": ["<script>sgEnd()</script>"]}
"""The head and body-end snippets of every case (a) run (the proxy's ``[html]`` injection)."""

CASE_A = ("the 500 KB bench page (make_page) in 8 KiB chunks through build_html_processor with sluicegate's "
          "default rule set: one origin host, URL attributes, script/style bodies, text rewriting on "
          "(rewrite_text, the default), head and body-end injection; MB/s of input per CPU second")
"""What case (a) / the ``default`` variant / issue 19's row 5 measure: one configuration, one definition."""


def case_a_settings(**over: object) -> Any:
    """``HtmlSettings`` of case (a) (``CASE_A``); ``over`` changes fields (``rewrite_text=False``: text off)."""
    from sluicegate.config.html import HtmlSettings

    return HtmlSettings(**INJECT, **over)  # type: ignore[arg-type]


def child(runs: int) -> dict[str, object]:
    """Every sluicegate case, in this process (pure or compiled, as imported)."""
    import sluicegate.pipeline.html as html
    from sluicegate.pipeline.hosts import OriginMatcher

    Origin = origin_class()
    from sluicegate.pipeline.html.lexer import Lexer

    settings = case_a_settings()
    pages = {"500KB": make_page(500_000), "5MB": make_page(5_000_000)}

    def rewrite(page: bytes, size: int, origin: str = ORIGIN, n: int = runs) -> tuple[float, float]:
        rw = OriginMatcher(Origin.parse(origin)).for_request("https", "www.proxy.example")
        pieces = chunks(page, size)

        def run() -> None:
            p = html.build_html_processor(rw, settings)
            for c in pieces:
                p.feed(c)
            p.finish()

        # the page-sized cases take a few ms a call: warmed up and batched (``timed_batched``)
        return timed_batched(run, n) if len(page) >= 100_000 else timed(run, n)

    out: dict[str, object] = {"compiled": getattr(html, "COMPILED", False), "rewriter": []}
    for name, size in (("500KB", 8192), ("5MB", 8192), ("500KB", 512), ("5MB", 512)):
        page = pages[name]
        cpu, wall = rewrite(page, size, n=runs if name == "500KB" else max(3, runs // 3))
        row = {"page": name, "bytes": len(page), "chunk": size, "mb_per_s_cpu": round(len(page) / cpu / 1e6, 2),
               "mb_per_s_wall": round(len(page) / wall / 1e6, 2)}
        out["rewriter"].append(row)  # type: ignore[attr-defined]
    small = link_page()
    tags = small.count(ORIGIN.encode())
    cpu, wall = rewrite(small, 8192, n=runs * 200)
    cpu0, _ = rewrite(small, 8192, "https://other-host.example", n=runs * 200)
    out["origin_tags"] = {
        "page_bytes": len(small), "origin_tags": tags, "ms_per_request_cpu": round(cpu * 1e3, 4),
        "ms_per_request_wall": round(wall * 1e3, 4), "us_per_origin_tag_cpu": round(cpu / tags * 1e6, 2),
        "us_per_origin_tag_marginal_cpu": round((cpu - cpu0) / tags * 1e6, 2),
        "requests_per_s_one_core_cpu": round(1 / cpu),
    }
    big = pages["500KB"]
    cpu, wall = rewrite(big, 8192, n=runs)
    cpu0, _ = rewrite(big, 8192, "https://other-host.example", n=runs)
    ntags = big.count(b"<")
    otags = sum(1 for t in big.split(b"<")[1:] if ORIGIN.encode()[8:] in t.split(b">", 1)[0])
    out["origin_tags_500KB"] = {"tags": ntags, "tags_naming_origin": otags,
                                "us_per_origin_tag_marginal_cpu": round((cpu - cpu0) / otags * 1e6, 2),
                                "mb_per_s_cpu_other_host": round(len(big) / cpu0 / 1e6, 2)}

    def tokenize() -> None:
        lx = Lexer()
        pos = 0
        while (tok := lx.next(big, pos, True)) is not None:
            pos = tok.end

    cpu, wall = timed(tokenize, max(3, runs // 2))
    out["tokenizer_500KB_mb_per_s_cpu"] = round(len(big) / cpu / 1e6, 2)
    return out


def case_a_child(runs: int) -> dict[str, object]:
    """Case (a) alone, issue 19's rewriter-alone row (``CASE_A``: the same configuration as ``variants_child``'s
    ``default``, by the same ``case_a_settings``), then the same page with text rewriting off as a companion,
    in this process (pure or compiled, as imported): ``runs`` samples each after a warm-up (``timed_batched``),
    medians of CPU and wall time. ``bench goals`` runs it as a child."""
    import sluicegate.pipeline.html as html
    from sluicegate.config.html import HtmlSettings
    from sluicegate.pipeline.hosts import OriginMatcher

    page = make_page(500_000)
    pieces = chunks(page, 8192)
    rw = OriginMatcher(origin_class().parse(ORIGIN)).for_request("https", "www.proxy.example")

    def runner(settings: HtmlSettings) -> Callable[[], None]:
        def run() -> None:
            p = html.build_html_processor(rw, settings)
            for c in pieces:
                p.feed(c)
            p.finish()
        return run

    case, text_off = runner(case_a_settings()), runner(case_a_settings(rewrite_text=False))
    cpu, wall = timed_batched(case, runs)
    cpu_off, _ = timed_batched(text_off, runs, warm_s=0.05)
    return {"compiled": getattr(html, "COMPILED", False), "page_bytes": len(page), "chunk": 8192, "runs": runs,
            "configuration": CASE_A,
            "mb_per_s_cpu": round(len(page) / cpu / 1e6, 2), "mb_per_s_wall": round(len(page) / wall / 1e6, 2),
            "text_off_mb_per_s_cpu": round(len(page) / cpu_off / 1e6, 2)}


def references(page: bytes, runs: int) -> dict[str, float | None]:
    refs: dict[str, float | None] = {}
    try:
        from html5lib._tokenizer import HTMLTokenizer  # type: ignore[import-untyped]

        def h5() -> None:
            for _ in HTMLTokenizer(page.decode()):
                pass

        refs["html5lib_tokenizer_mb_per_s_cpu"] = round(len(page) / timed(h5, max(3, runs // 3))[0] / 1e6, 2)
    except ImportError:
        refs["html5lib_tokenizer_mb_per_s_cpu"] = None
    try:
        from selectolax.lexbor import LexborHTMLParser  # type: ignore[import-not-found]

        refs["selectolax_parse_serialize_mb_per_s_cpu"] = round(
            len(page) / timed(lambda: LexborHTMLParser(page).html, runs)[0] / 1e6, 2)
    except ImportError:
        refs["selectolax_parse_serialize_mb_per_s_cpu"] = None
    return refs


ALIASES = ["publisher-origin.com", "origin-internal.publisher.net:8443", "cdn.publisher-origin.com"]


def lag_page() -> bytes:
    """A 5 MB page whose inline scripts and styles are large (1 MB, 600 KB, 300 KB...)."""
    body = make_page(3_000_000)
    host = ORIGIN.encode()
    js = (b"var u='" + host + b"/api/x?y=1';function f(a){return a*2}/*" + b"j" * 60 + b"*/\n") * 8_500
    css = (b".c{background:url(" + host + b"/i.png)}" + b" " * 60 + b"\n") * 6_000
    big = (b"<script>" + js + b"</script><style>" + css + b"</style><script type=application/json>"
           + b'{"u":"' + host + b'/a"}' + b" " * 300_000 + b"</script>")
    return body.replace(b"</body>", big + b"</body>", 1)


def variants_child(runs: int) -> dict[str, object]:
    """Case (a) for each variant the imported tree supports, and the output lag on ``lag_page``."""
    import inspect

    import sluicegate.pipeline.html as html
    from sluicegate.config.html import HtmlSettings
    from sluicegate.pipeline.hosts import OriginMatcher

    Origin = origin_class()

    page = make_page(500_000)
    pieces = chunks(page, 8192)
    has_text = "rewrite_text" in HtmlSettings.model_fields
    has_aliases = len(inspect.signature(OriginMatcher).parameters) > 1
    base = INJECT  # case (a)'s configuration (``CASE_A``, ``case_a_settings``), spelled for older trees' models
    variants: dict[str, tuple[object, HtmlSettings]] = {}

    def matcher(aliases: bool) -> object:
        o = Origin.parse(ORIGIN)
        return OriginMatcher(o, ALIASES) if aliases else OriginMatcher(o)  # type: ignore[call-arg]

    variants["default"] = (matcher(False), HtmlSettings(**base))  # type: ignore[arg-type]
    if has_text:
        variants["text_off"] = (matcher(False), HtmlSettings(**base, rewrite_text=False))  # type: ignore[arg-type]
    if has_aliases:
        variants["aliases3"] = (matcher(True), HtmlSettings(**base))  # type: ignore[arg-type]
        if has_text:
            variants["aliases3_text_off"] = (matcher(True), HtmlSettings(**base, rewrite_text=False))  # type: ignore[arg-type]
    out: dict[str, object] = {"compiled": getattr(html, "COMPILED", False)}
    signed = _signed50_variant(runs)
    if signed is not None:
        out["signed50"] = signed
    for name, (m, st) in variants.items():
        rw = m.for_request("https", "www.proxy.example")  # type: ignore[attr-defined]

        def run(rw: object = rw, st: HtmlSettings = st) -> None:
            p = html.build_html_processor(rw, st)  # type: ignore[arg-type]
            for c in pieces:
                p.feed(c)
            p.finish()

        cpu, _ = timed_batched(run, runs)
        out[name] = round(len(page) / cpu / 1e6, 2)
    lp = lag_page()
    rw = matcher(False).for_request("https", "www.publisher-proxy1.com")  # type: ignore[attr-defined]
    p = html.build_html_processor(rw, HtmlSettings())
    fed = emitted = lag = 0
    for c in chunks(lp, 8192):
        fed += len(c)
        emitted += len(p.feed(c))
        lag = max(lag, fed - emitted)
    emitted += len(p.finish())
    out["lag"] = {"page_bytes": len(lp), "max_lag_bytes": lag, "output_bytes": emitted}
    return out


def _signed50_variant(runs: int) -> float | None:
    """The page with 50 third-party tags (``bench_firstparty``) through the page processor with
    ``[first_party] rewrite_domains``: as the proxy runs it in the imported tree (one pass when the
    tree has ``extra_rules``, else the page processor then the separate stage); None without it."""
    import inspect

    import sluicegate.pipeline.html as html
    from sluicegate.config.html import HtmlSettings
    from sluicegate.pipeline.hosts import OriginMatcher

    Origin = origin_class()

    try:
        from sluicegate.config.model import Settings
        from sluicegate.firstparty.page import PageRewriting
        from sluicegate.firstparty.signing import Signer
    except ImportError:
        return None
    page = page_with_third_party()
    pieces = chunks(page, 8192)
    st = HtmlSettings(head_inject=['<script src="/static/sg.js"></script>'])
    rw = OriginMatcher(Origin.parse(ORIGIN)).for_request("https", "www.proxy.example")
    full = Settings.model_validate({"first_party": {"enabled": True, "allowed_domains": ["cdn.adtech.example"],
                                                    "rewrite_domains": ["cdn.adtech.example"]}})
    pages = PageRewriting(full, Signer([KEY.encode()], "/first-party", 3600))
    one = "extra_rules" in inspect.signature(html.build_html_processor).parameters

    def run() -> bytes:
        if one:
            p = html.build_html_processor(rw, st, extra_rules=pages.install)  # type: ignore[call-arg]
        else:
            p = pages.wrap(html.build_html_processor(rw, st))
        return b"".join(p.feed(c) for c in pieces) + p.finish()

    assert run().count(b"/first-party/proxy?url=") == 50
    cpu, _ = timed_batched(run, runs)
    return round(len(page) / cpu / 1e6, 2)


def build_baseline(rev: str, tmp: str) -> str:
    """``rev``'s ``src`` and ``scripts``, compiled with its own build script; the PYTHONPATH dir."""
    src = Path(tmp) / "tree"
    src.mkdir()
    # the build reads setup.py and pyproject.toml too (since the packaging merge)
    root = _root()
    have = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", rev], check=True, capture_output=True,
                          text=True).stdout.split()
    paths = [p for p in ("src", "scripts", "setup.py", "pyproject.toml", "README.md") if p in have]
    arch = subprocess.run(["git", "-C", str(root), "archive", rev, *paths], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=arch.stdout, check=True)
    target = Path(tmp) / "build"
    subprocess.run([sys.executable, str(src / "scripts" / "build_mypyc.py"), "--target", str(target)],
                   check=True, capture_output=True)
    return str(target)


def compare(rev: str, runs: int, rounds: int, candidates: tuple[str, ...] = (),
            this: bool = True, pure: bool = False) -> dict[str, object]:
    """Interleaved rounds: baseline (compiled) vs this tree (compiled), every variant; medians.
    ``candidates``: revisions measured in the same rounds too (labelled by revision); ``this``
    False leaves the working tree out (only committed revisions). ``pure``: every tree's
    interpreted modules too (``SLUICEGATE_PURE_PYTHON=1``, its source on ``PYTHONPATH``), in the
    same rounds, labelled ``<tree>:pure``."""
    from sluicegate.bench import lab

    res: dict[str, list[float]] = {}
    lags: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="sg-bench-base-") as tb, \
            tempfile.TemporaryDirectory(prefix="sg-bench-mine-") as tm:
        base_path = build_baseline(rev, tb)
        trees = [("baseline", base_path, str(Path(tb) / "tree" / "src"))]
        for i, cand in enumerate(candidates):
            cdir = Path(tb) / f"cand{i}"
            cdir.mkdir()
            trees.append((cand, build_baseline(cand, str(cdir)), str(cdir / "tree" / "src")))
        if this:
            lab.build_mypyc(tm)
            trees.append(("this", tm, str(_root() / "src")))
        for _ in range(rounds):
            for label, path, src in trees:
                r = run_child(runs, {"PYTHONPATH": path, "SLUICEGATE_PURE_PYTHON": ""}, variants=True)
                if not r["compiled"]:
                    raise SystemExit(f"the {label} child did not run compiled modules")
                lags[label] = r.pop("lag")
                r.pop("compiled")
                for k, v in r.items():
                    res.setdefault(f"{label}:{k}", []).append(float(v))  # type: ignore[arg-type]
                if pure:
                    r = run_child(runs, {"PYTHONPATH": src, "SLUICEGATE_PURE_PYTHON": "1"}, variants=True)
                    if r.pop("compiled"):
                        raise SystemExit(f"the {label} pure child ran compiled modules")
                    r.pop("lag")
                    for k, v in r.items():
                        res.setdefault(f"{label}:pure:{k}", []).append(float(v))  # type: ignore[arg-type]
    return {"rev": rev, "rounds": rounds, "mb_per_s_cpu_500KB_8KB": {k: statistics.median(v) for k, v in res.items()},
            "all_rounds": res, "lag_5MB_page": lags}


def run_child(runs: int, env: dict[str, str], variants: bool = False, mode: str = "") -> dict[str, object]:
    """This file's child mode in a fresh interpreter importing the ``sluicegate`` that ``env`` names (``-P``:
    no working directory on ``sys.path``); a failing child is reported with its stderr. ``mode``: another
    child flag (``--child-a``: :func:`case_a_child`)."""
    cmd = [sys.executable, "-P", "-c", _CHILD_BOOT, str(Path(__file__).resolve()),
           mode or ("--child-variants" if variants else "--child"), "--runs", str(runs)]
    res = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"bench child failed ({env.get('PYTHONPATH') or 'installed tree'}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def report(label: str, r: dict[str, object]) -> None:
    for row in r["rewriter"]:  # type: ignore[attr-defined]
        print(f"{label:6} rewriter {row['page']:>5} in {row['chunk']:>5} B chunks: {row['mb_per_s_cpu']:7.1f} MB/s CPU"
              f" ({row['mb_per_s_wall']:.1f} wall)")
    o = r["origin_tags"]
    print(f"{label:6} 2.7KB origin-link page: {o['ms_per_request_cpu']} ms/request, "  # type: ignore[index]
          f"{o['us_per_origin_tag_cpu']} us/origin tag ({o['us_per_origin_tag_marginal_cpu']} marginal), "  # type: ignore[index]
          f"{o['requests_per_s_one_core_cpu']} req/s/core")  # type: ignore[index]
    print(f"{label:6} 500KB: {r['origin_tags_500KB']}; tokenizer {r['tokenizer_500KB_mb_per_s_cpu']} MB/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench html")
    ap.add_argument("--runs", type=int, default=9, help="timed runs per case, median; the page-sized cases: "
                    "samples of ~50 ms after a 0.3 s warm-up (default 9)")
    ap.add_argument("--no-mypyc", action="store_true", help="skip the compiled variant")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-variants", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-a", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--baseline", default="main", help="revision to compare with (default main; none: skip)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the comparison")
    ap.add_argument("--candidate", action="append", default=[],
                    help="another revision measured in the same interleaved rounds (repeatable)")
    ap.add_argument("--no-this", action="store_true", help="leave the working tree out of the comparison")
    ap.add_argument("--only-compare", action="store_true", help="run only the baseline comparison")
    ap.add_argument("--compare-pure", action="store_true",
                    help="the comparison measures every tree's pure-Python modules too, in the same rounds")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.runs)))
        return 0
    if args.child_variants:
        print(json.dumps(variants_child(args.runs)))
        return 0
    if args.child_a:
        print(json.dumps(case_a_child(args.runs)))
        return 0
    from sluicegate.bench import lab  # the parent only: a child may import an older tree without it

    results: dict[str, object] = {
        "python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(), "runs": args.runs,
        "load_average_at_start": list(os.getloadavg()),  # the machine is shared: read with care
    }
    if args.baseline != "none" and not args.no_mypyc:
        results["compare"] = cmp = compare(args.baseline, args.runs, args.rounds, tuple(args.candidate),
                                           not args.no_this, args.compare_pure)
        print(f"case (a) 500KB/8KB, compiled (':pure': interpreted), MB/s CPU, medians of {args.rounds} "
              "interleaved rounds:")
        for k, v in cmp["mb_per_s_cpu_500KB_8KB"].items():  # type: ignore[attr-defined]
            print(f"  {k:28} {v:7.1f}")
        for k, v in cmp["lag_5MB_page"].items():  # type: ignore[attr-defined]
            print(f"  output lag, {k:9}: {v}")
    if args.only_compare:
        print(f"wrote {lab.write_json('html_compare', results)}")
        return 0
    results["pure"] = r = run_child(args.runs, {"SLUICEGATE_PURE_PYTHON": "1"})
    report("pure", r)
    if not args.no_mypyc:
        from sluicegate.buildinfo import fast_paths

        results["installed_fast_paths"] = fast_paths()["summary"]
        if fast_paths()["compiled"]:  # the installed build is compiled (pip install / ./run.sh): measure it
            results["mypyc"] = r = run_child(args.runs, {"SLUICEGATE_PURE_PYTHON": ""})
        else:  # build one with the project's build into a temporary directory
            with tempfile.TemporaryDirectory(prefix="sg-bench-mypyc-") as tmp:
                lab.build_mypyc(tmp)
                results["mypyc"] = r = run_child(args.runs, {"PYTHONPATH": tmp, "SLUICEGATE_PURE_PYTHON": ""})
        if not r["compiled"]:
            raise SystemExit("the mypyc child did not run compiled modules")
        report("mypyc", r)
    results["reference_500KB"] = refs = references(make_page(500_000), args.runs)
    print(f"reference parsers on the 500KB page (None = not installed): {refs}")
    results["load_average_at_end"] = list(os.getloadavg())
    print(f"wrote {lab.write_json('html', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
