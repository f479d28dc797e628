"""Whole elements taken by the fast path without tokens give exactly the bytes of the
token-by-token path, for any chunking:

* ``<svg>``/``<math>`` skipped as one run (``scanner.foreign_end`` compiled, ``scanner.foreign_re``
  interpreted), leaving the tree simulator where the tokens would have (what follows the element
  is tokenized the same); reference: ``foreign_fast`` off;
* ``<script>``/``<style>``/``<noscript>`` read whole from the buffer and handed to the text
  handlers (``HtmlRewriter._raw_body``); reference: ``raw_fast`` off.

Runs on the compiled build and on ``SLUICEGATE_PURE_PYTHON=1``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.pipeline.html import HtmlRewriter
from sluicegate.pipeline.html.rules import SluicegateRules
from sluicegate.pipeline.html.scanner import (
    FOREIGN_END_STOPS,
    FOREIGN_STOPS,
    foreign_end,
    foreign_re,
    name_filter,
)
from tests.unit.pipeline.html.helpers import run
from tests.unit.pipeline.html.test_properties import cut

ORIGIN = "https://www.origin.example.com"
MATCHERS = {
    "single": OriginMatcher(Origin.parse(ORIGIN)),
    "aliases": OriginMatcher(Origin.parse(ORIGIN), ["origin.example.com", "cdn.origin.example.net"]),
}

PIECES = [
    "<svg>", '<SVG viewBox="0 0 24 24" class=icon>', "</svg>", "</Svg >", "<math>", "</math>", "<g>", "</g>",
    '<path d="M1 2z"/>', "<circle r=1 />", '<use xlink:href="#i1"/>', "<foreignObject>", "</foreignObject>",
    "<desc>", "</desc>", "<title>", "</title>", "<mi>", "</mi>", '<annotation-xml encoding="text/html">',
    "<p>", "</p>", "</br>", "<br>", "<font color=red>", "<font>", "<div>", "</div>", "<b>", "<svg/>",
    "<svg a=b/>", "<![CDATA[", "]]>", "<style>", "</style>", "<script>", "</script>", "<textarea>",
    "</textarea>", "<!-- c -->", "<!-->", "<!x>", "<?pi?>", "</ x>", "&#47;", "&amp;", "<", ">", '"', "'",
    " ", "\n", "text ", '<a href="https://www.origin.example.com/x">', "https://www.origin.example.com/t ",
    '<use xlink:href="https://www.origin.example.com/i.svg#a"/>', '<image href="//cdn.origin.example.net/i.png">',
    "<span>", "</span>", "<svg><g><path d=x /></g></svg>", "<SCRIPT type=module>", "</SCRIPT >", "</scripts>",
    "</script", "<!--", "-->", "<script>var u='https://www.origin.example.com/a';</script>",
    '<script src="https://www.origin.example.com/s.js">', "<style>.a{background:url(//www.origin.example.com/b)}",
    "<noscript>", "</noscript>", '<img src="https://www.origin.example.com/i.png">',
    "https:\\/\\/www.origin.example.com",
]
docs = st.lists(st.sampled_from(PIECES), max_size=40).map(lambda xs: "".join(xs).encode())
points = st.lists(st.integers(min_value=0, max_value=4000), max_size=10)


def _make(which: str, text: bool, fast: bool, raw: bool | None = None) -> HtmlRewriter:
    rw = MATCHERS[which].for_request("https", "www.proxy.example")
    html = HtmlRewriter(max_tag_bytes=200, max_text_bytes=300)
    SluicegateRules(rw, HtmlSettings(rewrite_text=text), inject=True, script_filter=None).install(html)
    html.stream_text_after = 120  # long bodies stream (the token path's decision)
    html.foreign_fast = fast
    html.raw_fast = fast if raw is None else raw
    return html


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(MATCHERS)), st.booleans(), docs, points)
def test_element_runs_equal_token_path(which: str, text: bool, doc: bytes, ps: list[int]) -> None:
    want = run(lambda: _make(which, text, False), [doc])
    assert run(lambda: _make(which, text, True), cut(doc, ps)) == want
    assert run(lambda: _make(which, text, True, False), cut(doc, ps)) == want
    assert run(lambda: _make(which, text, False, True), [doc]) == want
    assert run(lambda: _make(which, text, False), cut(doc, ps)) == want


def test_foreign_fast_path_keeps_tree_state() -> None:
    """After a skipped ``<svg>``, ``<style>`` is raw text again (the origin inside is a style body's,
    rewritten as CSS) and ``<title>`` inside the skipped element was not taken for RCDATA."""
    doc = (b'<svg class=i><g><path d="M0 0"/></g></svg><style>.a{background:url(https://www.origin.example.com/b.png)}'
           b"</style><p>x</p><svg><title>t</title></svg><textarea><b></textarea>")
    for fast in (True, False):
        out = run(lambda fast=fast: _make("single", True, fast), [doc])
        assert b"url(https://www.proxy.example/b.png)" in out
        assert out.replace(b"https://www.proxy.example/b.png", b"https://www.origin.example.com/b.png") == doc


def _plan() -> tuple[frozenset[bytes], frozenset[bytes], bytes, bytes]:
    names = frozenset((b"script", b"style", b"svg", b"math")) | FOREIGN_STOPS
    ends = frozenset((b"body",)) | FOREIGN_END_STOPS
    return names, ends, name_filter(names), name_filter(ends)


def test_foreign_end_finds_whole_elements_only() -> None:
    names, ends, nf, ef = _plan()
    cases = {
        b'<svg viewBox="0 0 1 1"><g><path d="M1 2"/></g></svg>tail': 52,
        b"<MATH><mrow><mn2>1</mn2></mrow></Math >tail": 39,
        b"<svg><title>t</title></svg>": -1,  # an integration point
        b"<svg><svg></svg></svg>": -1,  # a nested root
        b"<svg><p>x</svg>": -1,  # breaks out
        b"<svg><g></p></svg>": -1,  # pops every foreign element
        b"<svg/>": -1,  # self-closing: no frame, the token path decides
        b"<svg><g></g>": -1,  # incomplete
        b"<svgx></svgx>": -1,
        b"<svg><![CDATA[x]]></svg>": -1,
        b"<svg><!-- c --></svg>": 21,
    }
    for doc, want in cases.items():
        assert foreign_end(doc, 0, len(doc), names, ends, nf, ef) == want, doc
        m = foreign_re(names, ends).match(doc, 0, len(doc))
        assert (m.end() if m is not None else -1) == want, doc


@settings(max_examples=400, deadline=None)
@given(docs)
def test_foreign_end_equals_foreign_re(doc: bytes) -> None:
    names, ends, nf, ef = _plan()
    pat = foreign_re(names, ends)
    for pos in range(len(doc)):
        if doc[pos] == 0x3C:
            m = pat.match(doc, pos, len(doc))
            assert foreign_end(doc, pos, len(doc), names, ends, nf, ef) == (m.end() if m is not None else -1)
