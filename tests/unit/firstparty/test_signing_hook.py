"""The signing rule's raw-byte hook (``_ElementRules.element_raw``) gives exactly the bytes of its
``Element`` path, for any document and chunking, alone and next to the origin rules (whose own raw
hook then shares the fast path with it: a tag goes to the hook whose needles it names, and to
the full path when it names both). The reference disables every raw hook by registering a
second, inert handler on each needle (a hook is used only by the one handler of its needle).
Runs on the compiled build and on ``SLUICEGATE_PURE_PYTHON=1``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.domains import DomainList
from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.firstparty.markup import RawKey, UrlMinter, install_page_rules
from sluicegate.firstparty.signing import Signer
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.pipeline.html import Element, HtmlRewriter, build_html_rewriter
from tests.unit.pipeline.html.helpers import run
from tests.unit.pipeline.html.test_properties import cut

NOW = 1_800_000_000
SIGNER = Signer([b"k1-0123456789abcdefghijklmnopqrstuvwxyz"], "/first-party", 60, clock=lambda: NOW)
ORIGIN = OriginMatcher(Origin.parse("https://www.origin.example.com"))
DOMAIN_SETS = {"one": DomainList(["cdn.third.example"]), "two": DomainList(["cdn.third.example", "*.ads.example"])}

PIECES = [
    "<p>", "</p>", "text ", "&amp;", "<img src=", '<img src="', "<img srcset='", '<source srcset="',
    '<script src="', '"></script>', '<link rel="preload" href="', "<link rel=canonical href=", '<link href="',
    '" rel="stylesheet', '<a href="', '<iframe src="', "</iframe>", '<video poster="', '<input type=image src="',
    '<input src="', '<div style="background:url(', ')"', '<object data="', '<svg><image href="', "</svg>",
    '<noscript><img src="', "</noscript>", '<textarea>', '</textarea>', '<img src="a" src="',
    "https://cdn.third.example/a.js", "//cdn.third.example/i.png", "https://x.ads.example/p?u=1&amp;v=2",
    "HTTPS://CDN.THIRD.EXAMPLE/Up", "https://cdn.third.example/q?a=1&b=2", "https://cdn.third.example/&#x61;",
    "https://www.origin.example.com/o.png", "https://cdn.third.example/r?u=https://www.origin.example.com/x",
    "https://evil-third.example/e", " 1x, ", " 2x", "/rel.png", '"', "'", ">", '">', " ", "\n", "x", "/>",
]
docs = st.lists(st.sampled_from(PIECES), max_size=40).map(lambda xs: "".join(xs).encode())
points = st.lists(st.integers(min_value=0, max_value=200_000), max_size=10)


def _inert(_el: Element) -> None:
    return None


def _page(domains: DomainList, origin: bool, hooks: bool) -> HtmlRewriter:
    minter = UrlMinter(SIGNER, domains)
    if origin:
        html = build_html_rewriter(ORIGIN.for_request("https", "www.proxy.example"), HtmlSettings(),
                                   extra_rules=lambda h: install_page_rules(h, minter))
        needles = [*ORIGIN.needles, *domains.needles()]
    else:
        html = HtmlRewriter()
        install_page_rules(html, minter)
        needles = domains.needles()
    if not hooks:
        for n in needles:
            html.on_element("*", _inert, needle=n)
    return html


@settings(max_examples=400, deadline=None)
@given(docs, points, st.sampled_from(sorted(DOMAIN_SETS)), st.booleans())
def test_signing_hook_equals_element_path(doc: bytes, at: list[int], domains: str, origin: bool) -> None:
    ds = DOMAIN_SETS[domains]
    chunks = cut(doc, at)
    got = run(lambda: _page(ds, origin, True), chunks)
    want = run(lambda: _page(ds, origin, False), [doc])
    assert got == want


def test_signing_hook_signs_raw_text_and_plain_tags() -> None:
    """Script and iframe start tags (raw text for the tokenizer) and plain tags are all signed."""
    doc = (b'<script src="https://cdn.third.example/t.js?a=1&b=2"></script>'
           b'<iframe src="https://cdn.third.example/f.html"></iframe>'
           b'<img src="https://cdn.third.example/c.png" alt="">'
           b'<link rel="preload" as="image" href="https://cdn.third.example/p.webp">'
           b'<a href="https://cdn.third.example/keep">x</a>')
    for origin in (False, True):
        out = run(lambda o=origin: _page(DOMAIN_SETS["one"], o, True), [doc])
        assert out.count(b'"/first-party/proxy?') == 4
        assert b"&amp;" in out and b'<a href="https://cdn.third.example/keep">' in out
        assert out == run(lambda o=origin: _page(DOMAIN_SETS["one"], o, False), [doc])


@settings(max_examples=200, deadline=None)
@given(docs, points, st.sampled_from(sorted(DOMAIN_SETS)))
def test_cached_answers_give_the_same_bytes_on_every_view(doc: bytes, at: list[int], domains: str) -> None:
    """``UrlMinter.raw_cache`` (shared by a worker's pages, like the mint cache): a second view
    of a page, answered from the cache, is byte for byte the first view and the Element path."""
    ds = DOMAIN_SETS[domains]
    cache: dict[str, tuple[int, str | None]] = {}
    raw_cache: dict[RawKey, tuple[int, bytes | None]] = {}

    def page() -> HtmlRewriter:
        html = HtmlRewriter()
        install_page_rules(html, UrlMinter(SIGNER, ds, cache=cache, raw_cache=raw_cache))
        return html

    want = run(lambda: _page(ds, False, False), [doc])
    assert run(page, [doc]) == want
    assert run(page, cut(doc, at)) == want
