"""Benchmark of the streaming HTML rewriter (``sluicegate.pipeline.html``).

Builds deterministic news-like pages (many links, srcsets, inline scripts and JSON, inline SVG,
comments; about one tag in five names the origin host), pushes them through
``build_html_processor`` with sluicegate's full rule set in fixed-size chunks, and reports the
median MB/s of several runs. Also times the bare tokenizer (every token produced, no fast path).

Run:  .venv/bin/python bench/bench_html.py [--runs N]
Writes bench/results/html.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sluicegate.config.html import HtmlSettings
from sluicegate.pipeline.hosts import Origin, OriginMatcher
from sluicegate.pipeline.html import build_html_processor
from sluicegate.pipeline.html.lexer import Lexer

ORIGIN = "https://www.publisher-origin.com"


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


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def median_mbps(fn: Callable[[], None], nbytes: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times) / 1e6


def rewrite_case(page: bytes, chunk: int, runs: int) -> float:
    rw = OriginMatcher(Origin.parse(ORIGIN)).for_request("https", "www.proxy.example")
    settings = HtmlSettings(head_inject=['<script src="/static/sg.js"></script>'],
                            body_end_inject=["<script>sgEnd()</script>"])
    pieces = chunks(page, chunk)

    def run() -> None:
        p = build_html_processor(rw, settings)
        for c in pieces:
            p.feed(c)
        p.finish()

    return median_mbps(run, len(page), runs)


def tokenizer_case(page: bytes, runs: int) -> tuple[float, int]:
    count = [0]

    def run() -> None:
        lx = Lexer()
        pos, n = 0, 0
        nxt = lx.next
        while (tok := nxt(page, pos, True)) is not None:
            pos = tok.end
            n += 1
        count[0] = n

    return median_mbps(run, len(page), runs), count[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    pages = {"200KB": make_page(200_000), "500KB": make_page(500_000), "1.4MB": make_page(1_400_000)}
    cases = [("200KB", 16384), ("1.4MB", 16384), ("500KB", 8192), ("500KB", 512)]
    results: dict[str, object] = {
        "python": sys.version.split()[0], "machine": platform.machine(), "runs": args.runs,
        "compiled": False, "rewriter": [], "tokenizer": [],
        "load_average_at_start": list(os.getloadavg()),  # the machine is shared: read with care
    }
    for name, chunk in cases:
        page = pages[name]
        mbps = rewrite_case(page, chunk, args.runs)
        print(f"rewriter  {name:>6} ({len(page):>8} B) in {chunk:>5} B chunks: {mbps:7.1f} MB/s")
        results["rewriter"].append({"page": name, "bytes": len(page), "chunk": chunk,  # type: ignore[attr-defined]
                                     "mb_per_s": round(mbps, 2)})
    for name in ("200KB", "1.4MB"):
        page = pages[name]
        mbps, ntok = tokenizer_case(page, max(3, args.runs // 2))
        print(f"tokenizer {name:>6} ({len(page):>8} B), {ntok} tokens:      {mbps:7.1f} MB/s")
        results["tokenizer"].append({"page": name, "bytes": len(page), "tokens": ntok,  # type: ignore[attr-defined]
                                      "mb_per_s": round(mbps, 2)})
    # Reference parsers, when installed (they are not sluicegate dependencies).
    page = pages["200KB"]
    refs: dict[str, float | None] = {}
    try:
        import html5lib  # type: ignore

        def h5() -> None:
            for _ in html5lib.getTreeWalker("etree")(html5lib.parse(page)):
                pass

        refs["html5lib_parse_walk"] = round(median_mbps(h5, len(page), 3), 2)
    except ImportError:
        refs["html5lib_parse_walk"] = None
    try:
        from selectolax.parser import HTMLParser  # type: ignore

        refs["selectolax_parse_serialize"] = round(
            median_mbps(lambda: HTMLParser(page).html and None, len(page), args.runs), 2)
    except ImportError:
        refs["selectolax_parse_serialize"] = None
    results["reference_200KB"] = refs
    print(f"reference parsers on 200KB (None = not installed): {refs}")
    out = Path(__file__).resolve().parent / "results" / "html.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
