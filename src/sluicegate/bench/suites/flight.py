"""Benchmark of Flight rewriting: inline ``__next_f`` through the full HTML path, and ``text/x-component``.

Builds a deterministic Next.js-like page of about 1.4 MB: a shell with links and images, ~300
``self.__next_f.push([1, "..."])`` scripts carrying one Flight stream (module rows, hints, JSON
element rows with origin URLs, and long ``T`` rows of non-ASCII text with origin URLs), cut at
arbitrary byte offsets like Next.js's own chunking (so ``T`` rows span several scripts), with
Suspense-boundary markup between the scripts. It is pushed through ``build_html_processor`` with
the Next.js script filter in 16 KiB chunks; the median MB/s (CPU time: robust on a shared machine)
of several runs is reported, with the
largest hold observed (HTML bytes held behind open ``T`` rows, and ``__next_f`` script bytes held)
against the largest ``T`` row. The bare Flight stream is also timed as a ``text/x-component`` body,
and the same page through the HTML path without the filter, as a baseline.

Run:  sluicegate bench flight [--runs N]
Writes bench/results/flight.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from sluicegate.bench.lab import results_dir
from sluicegate.config.flight import FlightSettings
from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.pipeline.flight import FlightStreamRewriter, InlineFlightRewriter, NextjsScriptFilter
from sluicegate.pipeline.flight.inline import parse_pushes
from sluicegate.pipeline.flight.jsstring import encode_literal
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher
from sluicegate.pipeline.html import build_html_processor

ORIGIN = "https://www.publisher-origin.com"
CHUNK = 16 * 1024
_WORDS = "Grüße aus Zürich naïve café ☕ 日本語 news politics sport weather markets €uro — «quoted» <b>&amp;"
WORDS = _WORDS.split(" ")


def rewriter() -> HostRewriter:
    return OriginMatcher(Origin.parse(ORIGIN)).for_request("https", "www.publisher.example")


def make_flight(target: int, rnd: random.Random) -> tuple[bytes, int, int]:
    """A Flight stream of about ``target`` bytes; returns it, its T row count, its largest T row."""
    rows: list[bytes] = []
    size = 0
    rid = 1
    t_rows = 0
    largest = 0
    while size < target:
        kind = rnd.random()
        if kind < 0.08:
            n = rnd.randint(4_000, 24_000)
            words: list[str] = []
            while sum(len(w) + 1 for w in words) < n:
                words.append(rnd.choice(WORDS) if rnd.random() > 0.05 else f"{ORIGIN}/article/{rnd.randint(1, 9999)}")
            content = " ".join(words).encode()
            row = b"%x:T%x," % (rid, len(content)) + content
            t_rows += 1
            largest = max(largest, len(content))
        elif kind < 0.15:
            row = b'%x:I[%d,["/_next/static/chunks/%x.js"],"default"]\n' % (rid, rnd.randint(1, 99999), rid)
        elif kind < 0.2:
            row = b':HL["%s/img/%d.jpg","image"]\n' % (ORIGIN.encode(), rid)
        else:
            # Like App Router pages: most links are relative, some absolute (canonical, CDN, share).
            items = ",".join(
                f'["$","a","{i}",{{"href":"{ORIGIN if rnd.random() < 0.15 else ""}/s/{rid}/{i}",'
                f'"className":"link","children":"{rnd.choice(WORDS)}"}}]'
                for i in range(rnd.randint(3, 12))
            )
            row = b'%x:["$","div",null,{"children":[%s]}]\n' % (rid, items.encode())
        rows.append(row)
        size += len(row)
        rid += 1
    return b"".join(rows), t_rows, largest


def make_page(target: int = 1_400_000, pushes: int = 300, seed: int = 11) -> tuple[bytes, bytes, dict[str, int]]:
    rnd = random.Random(seed)
    flight, t_rows, largest = make_flight(int(target * 0.87), rnd)
    cuts = sorted(rnd.sample(range(1, len(flight)), pushes - 1))
    pieces: list[bytes] = []
    prev = 0
    for c in [*cuts, len(flight)]:
        while True:  # Next.js decodes with stream:true, so pieces never split a character
            try:
                flight[prev:c].decode()
                break
            except UnicodeDecodeError:
                c += 1
        if c > prev:
            pieces.append(flight[prev:c])
        prev = c
    out = [
        b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bench</title>'
        b'<link rel="stylesheet" href="%s/_next/static/css/app.css"></head><body>' % ORIGIN.encode(),
        b"<script>(self.__next_f=self.__next_f||[]).push([0])</script>",
    ]
    for i, piece in enumerate(pieces):
        out.append(b'<script>self.__next_f.push([1,"' + encode_literal(piece.decode(), '"').encode() + b'"])</script>')
        if i % 10 == 0:
            out.append(
                b'<div hidden id="S:%d"><a href="%s/p/%d">more</a><img src="%s/i/%d.jpg" alt=""></div>'
                b'<script>$RC("B:%d","S:%d")</script>' % (i, ORIGIN.encode(), i, ORIGIN.encode(), i, i, i)
            )
    out.append(b"</body></html>")
    page = b"".join(out)
    return page, flight, {"pushes": len(pieces), "t_rows": t_rows, "largest_t_row": largest}


def run_html(page: bytes, with_filter: bool) -> tuple[float, bytes, NextjsScriptFilter | None]:
    rw = rewriter()
    f = NextjsScriptFilter(rw, FlightSettings()) if with_filter else None
    p = build_html_processor(rw, HtmlSettings(), script_filter=f)
    t0 = time.process_time()
    out = [p.feed(page[i : i + CHUNK]) for i in range(0, len(page), CHUNK)]
    out.append(p.finish())
    return time.process_time() - t0, b"".join(out), f


def run_xcomponent(flight: bytes) -> tuple[float, bytes, int]:
    p = FlightStreamRewriter(rewriter(), FlightSettings())
    t0 = time.process_time()
    out = [p.feed(flight[i : i + 4 * CHUNK]) for i in range(0, len(flight), 4 * CHUNK)]
    out.append(p.finish())
    return time.process_time() - t0, b"".join(out), p.max_held


def run_inline_only(scripts: list[bytes]) -> float:
    """The inline Flight rewriter alone on the page's push scripts (no HTML tokenizing)."""
    r = InlineFlightRewriter(rewriter(), max_row_bytes=1 << 24, max_hold_bytes=1 << 23)
    t0 = time.process_time()
    for body in scripts:
        r.script(body)
    r.finish()
    return time.process_time() - t0


def inline_stream(html: bytes) -> bytes:
    return b"".join(
        lit.data
        for part in html.split(b"</script>")
        if b"__next_f.push([1" in part
        for lit in parse_pushes(part.rsplit(b"<script>", 1)[1].decode())
    )


def html_compiled() -> bool:
    import sluicegate.pipeline.html as html

    return bool(getattr(html, "COMPILED", False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench flight", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/flight.json)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = results_dir() / "flight.json"

    page, flight, shape = make_page()
    mb = len(page) / 1e6

    # Correctness first: the inline stream after rewriting equals the text/x-component rewrite.
    _, html_out, f = run_html(page, True)
    _, x_out, x_held = run_xcomponent(flight)
    assert f is not None
    if inline_stream(html_out) != x_out:
        print("inline and text/x-component rewrites disagree", file=sys.stderr)
        return 1
    assert f.inline.lexer.abandoned_rows == 0

    scripts = [part.rsplit(b"<script>", 1)[1] for part in page.split(b"</script>") if b"__next_f" in part]
    script_mb = sum(len(x) for x in scripts) / 1e6
    full, base, xcomp, inline = [], [], [], []
    for _ in range(args.runs):
        inline.append(run_inline_only(scripts))
        full.append(run_html(page, True)[0])
        base.append(run_html(page, False)[0])
        xcomp.append(run_xcomponent(flight)[0])

    result = {
        "page_bytes": len(page),
        "flight_bytes": len(flight),
        **shape,
        "chunk_bytes": CHUNK,
        "runs": args.runs,
        "html_flight_mb_per_s_median": round(mb / statistics.median(full), 1),
        "html_only_mb_per_s_median": round(mb / statistics.median(base), 1),
        "x_component_mb_per_s_median": round(len(flight) / 1e6 / statistics.median(xcomp), 1),
        "inline_flight_only_mb_per_s_median": round(script_mb / statistics.median(inline), 1),
        "largest_hold_html_bytes": f.max_html_held,
        "largest_hold_next_f_script_bytes": f.inline.max_held_bytes,
        "largest_hold_x_component_bytes": x_held,
        "hold_within_largest_t_row": max(f.max_html_held, x_held) <= shape["largest_t_row"],
        "goal_mb_per_s": 30,
        "timing": "process CPU time",
        "html_compiled": html_compiled(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
