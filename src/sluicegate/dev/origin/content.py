"""Deterministic synthetic HTML for the publisher benchmarks (seeded; same bytes on every run).

Pages look like a content site: nav lists, cards with ``<a href>``/``<img src srcset>`` pointing at the origin,
paragraphs, inline ``<script>``/``<style>`` containing URLs and ``<``, comments, forms, tables. About one tag per
40-50 bytes; absolute origin URLs (``http://127.0.0.1:PORT/...``) appear in attributes, CSS, JS and text, so the
Stream path has real rewriting to do.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

_WORDS_TEXT = (
    "edge stream proxy origin lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua enim minim veniam quis nostrud exercitation ullamco laboris "
    "nisi aliquip commodo consequat duis aute irure reprehenderit voluptate velit esse cillum fugiat"
)
WORDS = tuple(_WORDS_TEXT.split(" "))


def _text(rnd: random.Random, n: int) -> str:
    return " ".join(rnd.choice(WORDS) for _ in range(n))


def head(origin: str, title: str = "Sluicegate bench page") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>\n'
            f'<link rel="stylesheet" href="{origin}/static/site.css">\n'
            f'<link rel="preload" as="font" href="{origin}/fonts/a.woff2" crossorigin>\n'
            f'<meta property="og:url" content="{origin}/">\n'
            f'<style>body{{margin:0;background:url("{origin}/img/bg.png")}} .c>a{{color:#333}}</style>\n'
            f'</head><body>\n<header><nav><ul>'
            + "".join(f'<li><a href="{origin}/section/{i}">Section {i}</a></li>' for i in range(4))
            + "</ul></nav></header>\n<main>\n")


def block(rnd: random.Random, origin: str, i: int) -> str:
    """One ~1 KiB card-like block; ``rnd`` makes the words and shape vary block to block."""
    kind = rnd.randrange(6)
    if kind == 0:
        return (f'<article class="card c" id="card-{i}"><h2><a href="{origin}/post/{i}">{_text(rnd, 5)}</a></h2>'
                f'<img src="{origin}/img/{i}.jpg" srcset="{origin}/img/{i}@2x.jpg 2x, {origin}/img/{i}@3x.jpg 3x" '
                f'alt="{_text(rnd, 3)}" width=320 height=200 loading=lazy>'
                f"<p>{_text(rnd, 40)}</p><p>{_text(rnd, 25)} <em>{_text(rnd, 3)}</em></p></article>\n")
    if kind == 1:
        return ("<ul class=links>" + "".join(
            f'<li><a href="{origin}/tag/{rnd.randrange(999)}" title="{_text(rnd, 2)}">{_text(rnd, 2)}</a></li>'
            for _ in range(8)) + "</ul>\n")
    if kind == 2:
        return (f'<script>window.__cfg={{"api":"{origin}/api/v1","n":{i}}};if (a < b && c > 0) '
                f'{{ fetch("{origin}/api/item/{i}").then(r => r.json()); }}</script>\n'
                f"<!-- card {i}: {_text(rnd, 8)} -->\n<p>{_text(rnd, 60)}</p>\n")
    if kind == 3:
        return (f'<form action="{origin}/search" method=get><input name=q value="{_text(rnd, 1)}">'
                f'<button type=submit>Go</button></form>\n<table><tr><th>k</th><th>v</th></tr>'
                + "".join(f"<tr><td>{_text(rnd, 1)}</td><td>{rnd.randrange(10**6)}</td></tr>" for _ in range(6))
                + "</table>\n")
    if kind == 4:
        return (f'<section><h3>{_text(rnd, 4)}</h3><p>{_text(rnd, 50)} <a href="{origin}/ref/{i}">more</a> '
                f"{_text(rnd, 30)}. See {origin}/docs for details.</p></section>\n")
    return (f'<div class=c style="background-image:url({origin}/img/t{i}.png)"><a href="/rel/{i}">'
            f'<img src="{origin}/thumb/{i}.webp" alt=""></a><span>{_text(rnd, 20)}</span></div>\n')


TAIL = "</main>\n<footer><p>footer</p></footer></body></html>\n"


def blocks(origin: str, size: int, seed: int) -> list[str]:
    """Blocks totalling at most ``size`` bytes."""
    rnd = random.Random(seed)
    out: list[str] = []
    n = i = 0
    while True:
        b = block(rnd, origin, i)
        if n + len(b) > size:
            return out
        out.append(b)
        n += len(b)
        i += 1


def _pad(n: int) -> str:
    return "<!--" + "x" * (n - 7) + "-->" if n >= 7 else " " * n


def page(origin: str, size: int, seed: int = 42) -> bytes:
    """A complete HTML page of exactly ``size`` bytes (padded with a trailing comment)."""
    h = head(origin)
    body = "".join(blocks(origin, size - len(h) - len(TAIL) - 16, seed))
    out = (h + body + _pad(size - len(h) - len(body) - len(TAIL)) + TAIL).encode()
    assert len(out) == size, (len(out), size)
    return out


def trickle_html(origin: str) -> bytes:
    """1 KiB + 1 MiB of HTML: the first 1 KiB is the document head (padded with a comment to exactly 1 KiB)."""
    h = head(origin, "Trickle")
    assert len(h) <= 1024 - 7
    rest_size = 1 << 20
    body = "".join(blocks(origin, rest_size - len(TAIL) - 16, seed=5))
    first = h + _pad(1024 - len(h))
    rest = body + _pad(rest_size - len(body) - len(TAIL)) + TAIL
    out = (first + rest).encode()
    assert len(out) == 1024 + rest_size
    return out


def write_gzip_html(path: Path, origin: str, size: int, seed: int = 1, level: int = 1) -> int:
    """Write a gzip'd HTML document of ``size`` decoded bytes; returns the compressed size.

    A pool of 512 different blocks is generated once and drawn from at random, so repeats rarely fall in
    deflate's 32 KiB window and the compression ratio stays realistic (~4-5x), while generation is fast.
    """
    rnd = random.Random(seed)
    pool = [block(rnd, origin, i).encode() for i in range(512)]
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    start, end = head(origin, "Large").encode(), TAIL.encode()
    left = size - len(start) - len(end)
    with open(path, "wb") as f:
        f.write(comp.compress(start))
        batch: list[bytes] = []
        bn = 0
        while left > 0:
            b = pool[rnd.randrange(len(pool))]
            if len(b) > left:
                b = _pad(left).encode()
            batch.append(b)
            bn += len(b)
            left -= len(b)
            if bn >= 1 << 20:
                f.write(comp.compress(b"".join(batch)))
                batch, bn = [], 0
        f.write(comp.compress(b"".join(batch) + end))
        f.write(comp.flush())
    return path.stat().st_size
