"""``[first_party] rewrite_domains`` on the page's own rewriter (one pass, ``install_page_rules``
via ``build_html_processor(extra_rules=...)``) gives exactly the bytes of the page processor
followed by the separate ``page_stage`` (two passes), for any chunking; with and without origin
aliases (the multi-needle fast path), text rewriting on and off, long streamed ``<style>``
bodies included. Runs on the compiled build and on ``SLUICEGATE_PURE_PYTHON=1``.

One known difference, outside the property: a document that ends inside a tag, with end-of-document
snippets injected — the snippet's bytes can complete that tag for a second pass (which then signs
its URLs); the one pass ends with the origin's incomplete tag as it is. With injection the
documents here end outside any tag."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sluicegate.config.domains import DomainList
from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.firstparty.markup import UrlMinter, chain, install_page_rules, page_stage
from sluicegate.firstparty.signing import Signer
from sluicegate.pipeline import Transformer
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.pipeline.html import HtmlRewriter, build_html_processor
from sluicegate.pipeline.html.lexer import DATA
from tests.unit.pipeline.html.helpers import run
from tests.unit.pipeline.html.test_properties import cut

NOW = 1_800_000_000
SIGNER = Signer([b"k1-0123456789abcdefghijklmnopqrstuvwxyz"], "/first-party", 60, clock=lambda: NOW)
DOMAINS = DomainList(["cdn.third.example", "*.ads.example"])
MATCHERS = {
    "single": OriginMatcher(Origin.parse("https://www.origin.example.com")),
    "aliases": OriginMatcher(Origin.parse("https://www.origin.example.com"),
                             ["origin.example.com", "static.origin-cdn.example"]),
}
HEAD = ['<script src="/static/sg.js"></script>']

PIECES = [
    "<html>", "<head>", "</head>", "<body>", "</body>", "<p>", "</p>", "text ", "&amp;",
    '<img src="', '<img srcset="', '<script src="', '"></script>', '<link rel="stylesheet" href="',
    '<link rel=canonical href="', '<a href="', '<iframe src="', '<video poster="', '<div style="background:url(',
    "<style>.a{background:url(", ")}</style>", "@import '", "';", '<object data="',
    "https://cdn.third.example/a.js", "//cdn.third.example/i.png", "https://x.ads.example/p?u=1",
    "https://www.origin.example.com/o.png", "https://origin.example.com/o", "//static.origin-cdn.example/s.css",
    "https://cdn.third.example/r?u=https://www.origin.example.com/x", "https://evil-third.example/e",
    " 1x, ", " 2x", "/rel.png", '"', "'", ">", '">', " ", "\n", "x",
]
docs = st.lists(st.sampled_from(PIECES), max_size=40).map(lambda xs: "".join(xs).encode())
points = st.lists(st.integers(min_value=0, max_value=200_000), max_size=10)


def _minter() -> UrlMinter:
    return UrlMinter(SIGNER, DOMAINS)


def _one(m: OriginMatcher, st_: HtmlSettings) -> Transformer:
    rw = m.for_request("https", "www.proxy.example")
    return build_html_processor(rw, st_, extra_rules=lambda h: install_page_rules(h, _minter()))


def _two(m: OriginMatcher, st_: HtmlSettings) -> Transformer:
    rw = m.for_request("https", "www.proxy.example")
    stage = page_stage(_minter(), max_tag_bytes=st_.max_tag_bytes, max_text_bytes=st_.max_text_bytes)
    return chain(build_html_processor(rw, st_), stage)


def _ends_outside_tags(doc: bytes) -> bool:
    h = HtmlRewriter()
    h.feed(doc)
    return not h._buf and h._lexer.state == DATA


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(MATCHERS)), st.booleans(), st.booleans(), st.booleans(), docs, points)
def test_one_pass_equals_two_passes(which: str, text: bool, inject: bool, long_style: bool, doc: bytes,
                                    ps: list[int]) -> None:
    m = MATCHERS[which]
    st_ = HtmlSettings(rewrite_text=text, head_inject=HEAD if inject else [])
    if long_style:  # a <style> body past the streaming threshold (32 KiB): streamed in one pass
        css = b".b{background:url(https://cdn.third.example/bg.png)} .o{background:url(//www.origin.example.com/o)}"
        doc = doc + b"<style>" + css + b" " * 40_000 + css + b"</style>" + doc
    if inject:
        doc += b"'\">"
        assume(_ends_outside_tags(doc))
    want = run(lambda: _two(m, st_), [doc])
    assert run(lambda: _one(m, st_), cut(doc, ps)) == want


def test_one_pass_signs_and_maps_the_same_tag() -> None:
    doc = (b'<img srcset="https://www.origin.example.com/a.png 1x, https://cdn.third.example/b.png 2x">'
           b'<script src="https://cdn.third.example/a.js"></script>')
    out = run(lambda: _one(MATCHERS["single"], HtmlSettings()), [doc])
    assert out == run(lambda: _two(MATCHERS["single"], HtmlSettings()), [doc])
    assert b"https://www.proxy.example/a.png 1x" in out
    assert out.count(b"/first-party/proxy?url=") == 2


def test_proxy_keeps_two_passes_when_the_origin_rules_could_write_a_rewrite_domain() -> None:
    from sluicegate.config.model import Settings
    from sluicegate.firstparty.page import PageRewriting

    def pages(head: list[str]) -> PageRewriting:
        s = Settings.model_validate({
            "html": {"head_inject": head},
            "first_party": {"enabled": True, "allowed_domains": ["cdn.third.example", "*.ads.example"],
                            "rewrite_domains": ["cdn.third.example", "*.ads.example"]}})
        return PageRewriting(s, SIGNER)

    assert pages(HEAD).one_pass("www.proxy.example")
    # a snippet naming a rewrite domain is signed only by a pass over the page processor's output
    assert not pages(['<script src="https://cdn.third.example/t.js"></script>']).one_pass("www.proxy.example")
    assert not pages(HEAD).one_pass("pub.ads.example")  # the public host itself is a rewrite domain


def test_second_pass_keeps_the_charset_gate() -> None:
    """``PageRewriting.wrap`` (two passes): a UTF-16 page passes the second pass unmodified too."""
    from sluicegate.config.model import Settings
    from sluicegate.firstparty.page import PageRewriting
    from tests.integration.firstparty.conftest import in_utf16le

    s = Settings.model_validate({
        "html": {"head_inject": ['<script src="https://cdn.third.example/t.js"></script>']},
        "first_party": {"enabled": True, "allowed_domains": ["cdn.third.example"],
                        "rewrite_domains": ["cdn.third.example"]}})
    pages = PageRewriting(s, SIGNER)
    rw = MATCHERS["single"].for_request("https", "www.proxy.example")
    body = ("<p>x</p>" + in_utf16le('<img src="https://cdn.third.example/j" >')).encode("utf-16le")
    for ctype in ("text/html; charset=utf-16le", "text/html; charset=UTF-16"):
        p = pages.wrap(build_html_processor(rw, s.html, charset=ctype.split("=")[1].lower()), ctype)
        assert p.feed(body) + p.finish() == body, ctype
    bom = ("\ufeff<p>x</p>" + in_utf16le('<img src="https://cdn.third.example/j" >')).encode("utf-16le")
    p = pages.wrap(build_html_processor(rw, s.html), "text/html")
    assert p.feed(bom) + p.finish() == bom
    p = pages.stage()
    assert p.feed(body) + p.finish() != body  # what the gate prevents


@settings(max_examples=100, deadline=None)
@given(cuts=points)
def test_publisher_css_is_signed_after_the_origin_rules_for_any_chunking(cuts: list[int]) -> None:
    """``PageRewriting.wrap_css``: the origin host mapped first (the text replacer), then url()/@import on a
    rewrite domain signed as in a page's <style>; the same bytes for every chunking; UTF-16 passes unmodified."""
    from sluicegate.config.model import Settings
    from sluicegate.firstparty.page import PageRewriting
    from sluicegate.pipeline.text import StreamingHostReplacer

    s = Settings.model_validate({
        "first_party": {"enabled": True, "allowed_domains": ["cdn.third.example"],
                        "rewrite_domains": ["cdn.third.example"]}})
    pages = PageRewriting(s, SIGNER)
    rw = MATCHERS["single"].for_request("https", "www.proxy.example")
    css = (b'@import "https://cdn.third.example/t.css";.a{background:url(https://www.origin.example.com/o.png)}'
           b".b{background:url(//cdn.third.example/b.png)}.c{background:url(https://evil-third.example/e.png)}")
    whole = pages.wrap_css(StreamingHostReplacer(rw), "text/css")
    expect = whole.feed(css) + whole.finish()
    assert expect.count(b"/first-party/proxy?url=") == 2 and b"//cdn.third.example" not in expect
    assert b"url(https://www.proxy.example/o.png)" in expect and b"url(https://evil-third.example/e.png)" in expect
    assert run(lambda: pages.wrap_css(StreamingHostReplacer(rw), "text/css"), cut(css, cuts)) == expect
    utf16 = css.decode().encode("utf-16")
    p = pages.wrap_css(StreamingHostReplacer(rw), "text/css; charset=utf-16")
    assert p.feed(utf16) + p.finish() == utf16
