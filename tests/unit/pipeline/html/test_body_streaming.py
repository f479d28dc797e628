"""Inline ``<script>``/``<style>`` bodies a chunk cuts: decided on their first ``WHOLE_HEAD`` bytes.

A body over ``rules.WHOLE_HEAD`` bytes that no rule needs whole streams through the one mapping
(bounded hold) instead of being held from its start tag to its end tag; inline Flight and
``__NEXT_DATA__`` are still held and handed over whole. The output must be the bytes the
whole-body rules make (``reference``: the same processor deciding only past 32 KiB, as before)
for every chunking.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.flight import FlightSettings
from sluicegate.config.html import HtmlSettings
from sluicegate.pipeline.flight import build_next_script_filter
from sluicegate.pipeline.html import HtmlRewriter, build_html_rewriter
from sluicegate.pipeline.html.rules import WHOLE_HEAD
from tests.unit.pipeline.flight.helpers import push_script
from tests.unit.pipeline.html.helpers import host_rewriter, run

RW = host_rewriter()
SETTINGS = HtmlSettings()
HOLD = RW.hold + len(b"</script") + 8  # the mapping's hold + the lexer's end-tag window (and slack)
FLIGHT = {"none": None, "on": FlightSettings(), "off": FlightSettings(enabled=False)}


def make(flight: str = "none", *, early: bool = True) -> HtmlRewriter:
    fs = FLIGHT[flight]
    sf = build_next_script_filter(RW, fs) if fs is not None else None
    html = build_html_rewriter(RW, SETTINGS, script_filter=sf)
    if not early:
        html.stream_decide_at = html.stream_text_after  # the reference: held whole up to 32 KiB
    return html


def cut(data: bytes, points: list[int]) -> list[bytes]:
    ps = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *ps], [*ps, len(data)], strict=True)]


HEAD = (b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>t</title>\n'
        b'<link rel="stylesheet" href="https://origin.example.com/site.css">\n')
JS = (b'\nwindow.cfg = {api: "https://origin.example.com/api", cdn: "https:\\/\\/origin.example.com\\/s"};\n'
      + b"function f(a, b) { return a < b ? a : b; } // " + b"x" * 400
      + b'\nload("//origin.example.com/late.js");\n')
CSS = (b"\nbody{margin:0;background:url(https://origin.example.com/bg.png)} .c>a{color:#333}\n"
       + b".d{padding:0}" * 30 + b'\n@import "https://origin.example.com/more.css";\n')


def test_first_chunk_ending_inside_a_script_leaves_at_once() -> None:
    doc = HEAD + b"<script>" + JS + b"</script>\n</head><body><p>x</p></body></html>"
    first = doc[:616]
    assert b"</script>" not in first and len(first) - first.index(b"<script>") > 300
    html = make()
    out = html.feed(first)
    # everything but the mapping's bounded hold and the lexer's end-tag window (before: the <script>
    # body held whole; 20 of 616 bytes out on relay-ttfb's page)
    assert len(out) >= len(first) - HOLD
    assert b'"https://www.example.com/api"' in out
    ref = make(early=False)
    ref_first = ref.feed(first)
    assert ref_first.endswith(b"<script>")  # the whole-element hold this replaces
    assert out + html.feed(doc[616:]) + html.finish() == ref_first + ref.feed(doc[616:]) + ref.finish()


def test_first_chunk_ending_inside_a_style_leaves_at_once() -> None:
    doc = HEAD + b"<style>" + CSS + b"</style>\n</head><body></body></html>"
    first = doc[:616]
    assert b"</style>" not in first
    html = make()
    out = html.feed(first)
    assert len(out) >= len(first) - HOLD
    assert b"url(https://www.example.com/bg.png)" in out
    rest = html.feed(doc[616:]) + html.finish()
    assert out + rest == run(lambda: make(early=False), [doc])
    assert b'@import "https://www.example.com/more.css"' in rest


def test_flight_script_still_held_and_rewritten_whole() -> None:
    content = b"y" * 36 + b"https://origin.example.com/z"  # 64 bytes: T40
    body = push_script(b'0:["https://origin.example.com/r"]\n1:T40,' + content + b'2:"' + b"q" * 300 + b'"\n')
    doc = HEAD + b"</head><body><script>" + body + b"</script><p>after</p></body></html>"
    stop = doc.index(b"<script>") + 8 + 200
    html = make("on")
    out = html.feed(doc[:stop])
    assert out.endswith(b"<script>")  # held from the start tag: the Flight rule needs the body whole
    rest = html.feed(doc[stop:]) + html.finish()
    whole = run(lambda: make("on", early=False), [doc])
    assert out + rest == whole
    assert b"origin.example.com" not in whole and b"www.example.com" in whole
    assert b"1:T3d," in whole  # the T row's length recomputed for its rewritten content (64 -> 61 bytes)


def test_next_data_held_whole_and_short_bodies_unchanged() -> None:
    nd = (b'<script id="__NEXT_DATA__" type="application/json">{"props":{"u":"https://origin.example.com/x"'
          + b',"p":"' + b"z" * 200 + b'"}}</script>')
    html = make("on")
    out = html.feed(nd[:120])
    assert out.endswith(b'type="application/json">')
    assert out + html.feed(nd[120:]) + html.finish() == run(lambda: make("on", early=False), [nd])
    short = b"<script>" + b"a" * (WHOLE_HEAD - 1) + b"</script>"
    html = make()
    assert html.feed(short[:-9]).endswith(b"<script>")  # under WHOLE_HEAD: still whole
    assert run(make, [short]) == short


BODY_PIECES = [
    "https://origin.example.com/", "https:\\/\\/origin.example.com\\/", "//origin.example.com", "origin.example.com",
    "url(", ")", "@import '", "'", '"', "\\", " ", "\n", "x", "<", "</scr", "<!--", "-->", "self.__next_f.push([1,\"",
    "\"])", "__next_f", "https://origin.example.com.evil/", "&amp;", "%2F%2Forigin.example.com", "é",
    "(self.__next_f=self.__next_f||[]).push([0])",
]
bodies = st.lists(st.sampled_from(BODY_PIECES), max_size=40).map(lambda xs: "".join(xs).encode())
TAGS = [b"<script>", b"<style>", b'<script id="__NEXT_DATA__">', b"<script type=module>", b"<noscript>"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FLIGHT)), st.lists(st.tuples(st.sampled_from(TAGS), bodies), max_size=4),
       st.lists(st.integers(min_value=0, max_value=5000), max_size=10))
def test_streamed_bodies_equal_whole_bodies(flight: str, elements: list[tuple[bytes, bytes]],
                                            points: list[int]) -> None:
    """Any chunking of scripts/styles/noscripts (Flight on, off, no filter) gives the bytes of the
    whole-body rules (the reference holds every body under 32 KiB whole)."""
    doc = HEAD + b"".join(t + b + b"</" + t[1:].split(b" ")[0].split(b">")[0] + b">" for t, b in elements)
    want = run(lambda: make(flight, early=False), [doc])
    assert run(lambda: make(flight), cut(doc, points)) == want
    assert run(lambda: make(flight), [doc]) == want
