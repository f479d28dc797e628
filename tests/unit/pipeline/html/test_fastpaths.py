"""The performance fast paths give exactly the results of the straightforward code they bypass.

* ``HostRewriter.rewrite_url_bytes`` / ``rules.rewrite_srcset_bytes`` vs their ``str`` versions;
* ``Element.needle_attrs`` vs ``Element.attrs_containing``;
* the whole URL rule (raw-byte fast path) vs the original decode / ``set_attribute`` rule;
* the rewriter's single-needle scan vs the regex needle guard (several needles).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.pipeline.bytescan import find_bytes
from sluicegate.pipeline.hosts import _PREFIXES, OriginMatcher
from sluicegate.pipeline.html import HtmlRewriter
from sluicegate.pipeline.html.attrs import needle_attr_spans, needle_attrs
from sluicegate.pipeline.html.lexer import Lexer
from sluicegate.pipeline.html.rules import SluicegateRules
from sluicegate.pipeline.html.scanner import boring_re, scan_boring, tag_span, tag_span_re
from sluicegate.pipeline.html.units import Element
from sluicegate.pipeline.html.urlvalues import (
    SRCSET_ATTRS,
    URL_ATTRS,
    SuspectScan,
    rewrite_css_urls,
    rewrite_css_urls_bytes,
    rewrite_srcset,
    rewrite_srcset_bytes,
    suspect_at,
)
from sluicegate.pipeline.html.urlvalues import plain_span as _plain_span
from sluicegate.pipeline.html.urlvalues import simple_value as _simple_value
from tests.unit.pipeline.html.helpers import host_rewriter, run
from tests.unit.pipeline.html.test_properties import cut

RW = host_rewriter()
URL_PIECES = [
    "https://origin.example.com", "HTTP://Origin.Example.COM", "//origin.example.com", "origin.example.com",
    "https:\\/\\/origin.example.com", "\\/\\/origin.example.com", ":443", ":8443", ".evil", "-cdn", "/p",
    "?q=1", " ", "\t", "\n", "\x1c", "\xa0", "é", ",", " 2x", " 640w", "(", ")", "&amp;", "&#x2F;", "&", "\r",
    "\x00", '"', "'", "=", "<", ">", "`", "h", "H", "/", "\\", "x", "https://cdn.other.net/a",
]
values = st.lists(st.sampled_from(URL_PIECES), max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(values)
def test_rewrite_url_bytes_matches_str(value: str) -> None:
    raw = value.encode("utf-8", "surrogateescape")
    got = RW.rewrite_url_bytes(raw)
    if got is not None:
        assert got == RW.rewrite_url(value).encode("utf-8", "surrogateescape")
        if got == raw:
            assert got is raw


@settings(max_examples=500, deadline=None)
@given(values)
def test_rewrite_srcset_bytes_matches_str(value: str) -> None:
    got = rewrite_srcset_bytes(RW, value.encode())
    if got is not None:
        assert got == rewrite_srcset(RW, value).encode()


ATTR_PIECES = [
    " ", "\t", "/", "href", "HREF", "src", "srcset", "style", "data", "content", "title", "=", '"', "'",
    "https://origin.example.com/a", "ORIGIN.example.com", "x", "&amp;", ">", "url(", ")",
    "property", "name", "itemprop", "http-equiv", "og:url", "OG:Image", " twitter:image ", "refresh", "\x1c",
    "og:title", "é",
]
attr_text = st.lists(st.sampled_from(ATTR_PIECES), max_size=16).map("".join)


def _element(tag: bytes) -> Element | None:
    tok = Lexer().next(tag, 0, True)
    if tok is None or tok.kind != 1 or tok.end != len(tag):
        return None
    return Element(tag, tok)


@settings(max_examples=500, deadline=None)
@given(attr_text)
def test_needle_attrs_matches_attrs_containing(attrs: str) -> None:
    el = _element(b"<a " + attrs.encode() + b">")
    if el is None:
        return
    needle = RW.matcher.needle
    fast = [(a.name.decode(), el.value(a)) for a in el.needle_attrs(needle)]
    assert fast == el.attrs_containing(needle)


def _slow_urls(rules: SluicegateRules, el: Element) -> None:
    """The URL rule as it was before the byte fast path (decode, rewrite ``str``, set_attribute)."""
    rw = rules.rw
    attrs: dict[str, str] | None = None
    for name, value in el.attrs_containing(rw.matcher.needle):
        if name in URL_ATTRS or (name == "data" and el.tag == "object"):
            new = rw.rewrite_url(value)
        elif name in SRCSET_ATTRS:
            new = rewrite_srcset(rw, value)
        elif name == "ping":
            new = " ".join(rw.rewrite_url(u) for u in value.split(" "))
        elif name == "content" and el.tag == "meta":
            attrs = attrs or el.attributes
            new = rules._meta_content(attrs, value)
        else:  # every other value (style, data-*, title...): the one mapping
            new = rw.rewrite_text(value)
        if new != value:
            el.set_attribute(name, new)


DOC_PIECES = [
    "<a ", "<img ", "<source ", "<object ", "<meta property=og:url ", "<link ", "<div ", ">", "/>", " ",
    "href=", "src=", "srcset=", "data=", "content=", "ping=", "style=", '"', "'", "=", "x",
    "https://origin.example.com/p", "//origin.example.com/q 2x, ", "HTTPS://ORIGIN.EXAMPLE.COM", "&amp;",
    "&#x2F;", "\r", "\x1c", "é", "<script>", "</script>", "<svg>", "</svg>", "text ", "<!-- c -->",
    "origin.example.com", ",", "url(https://origin.example.com/i.png)", "URL( 'https://origin.example.com/j')",
    'url(\xa0"https://origin.example.com/k")', "url(\x1c//origin.example.com/l)", ";background:", "url(",
]
docs = st.lists(st.sampled_from(DOC_PIECES), max_size=40).map(lambda xs: "".join(xs).encode())


def _rules_rewriter(slow: bool = False) -> HtmlRewriter:
    html = HtmlRewriter()
    rules = SluicegateRules(RW, HtmlSettings(), inject=False, script_filter=None)
    if not slow:
        rules.install(html)
        return html
    # ``install`` with the original URL rule (compiled classes cannot be subclassed from tests)
    html.on_element("*", lambda el: _slow_urls(rules, el), needle=RW.matcher.needle)
    rules.install_text_filter(html)
    html.on_text("script", rules.script)
    html.on_text("style", rules.style)
    html.on_text("noscript", rules.noscript)
    return html


@settings(max_examples=400, deadline=None)
@given(docs, st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_url_rule_fast_path_matches_original(data: bytes, points: list[int]) -> None:
    slow = run(lambda: _rules_rewriter(slow=True), [data])
    assert run(lambda: _rules_rewriter(), cut(data, points)) == slow


@settings(max_examples=300, deadline=None)
@given(docs, st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
def test_single_needle_scan_matches_needle_guard(data: bytes, points: list[int]) -> None:
    """One needle uses the lower-cased buffer; a second needle forces the regex guard path."""

    def make(extra: bool) -> HtmlRewriter:
        html = _rules_rewriter()
        if extra:
            html.on_element("*", lambda el: None, needle=b"zzz-not-there")
        return html

    assert run(lambda: make(False), cut(data, points)) == run(lambda: make(True), [data])


def test_srcset_with_comma_only_candidate_terminates() -> None:
    """``srcset="URL ,,"`` used to loop forever (a comma-only "URL" made no progress)."""
    value = "https://origin.example.com/a.jpg 1x ,, https://origin.example.com/b.jpg 2x,,"
    expected = "https://www.example.com/a.jpg 1x ,, https://www.example.com/b.jpg 2x,,"
    assert rewrite_srcset(RW, value) == expected
    assert rewrite_srcset_bytes(RW, value.encode()) == expected.encode()
    out = run(lambda: _rules_rewriter(), [b'<img srcset="' + value.encode() + b'">'])
    assert out == b'<img srcset="' + expected.encode() + b'">'


RAW_DOC_PIECES = [
    *DOC_PIECES, "<A ", "<IMG ", "<head>", "<body>", "</body>", "</a>", "<noscript>", "</noscript>",
    "<title>", "</title>", "<style>", "</style>", "<math>", "</math>", "<p>", "HREF=", "SrcSet=", "href=",
    "<a href=x ", "\t", "\n", "/", "<", "</a href=https://origin.example.com>", "<!DOCTYPE html>",
    "<object data=https://origin.example.com/o ", "https://origin.example.com/a\"b", " 1x, ", "\x00",
    "<meta name='twitter:image' ", "<meta itemprop=image ", "<meta http-equiv=refresh ", "<meta property=og:title ",
    "<meta content=https://origin.example.com/m property=OG:URL ", "property=og:url ", "name=x ",
]
raw_docs = st.lists(st.sampled_from(RAW_DOC_PIECES), max_size=50).map(lambda xs: "".join(xs).encode())


def _full_path_rewriter(inject: bool) -> HtmlRewriter:
    """``install`` without the byte-level tag hook: every origin tag takes ``Token``/``Element``."""
    settings_ = HtmlSettings(head_inject=["<script>H</script>"], body_end_inject=["<i>B</i>"])
    raw = HtmlRewriter()
    rules2 = SluicegateRules(RW, settings_, inject=inject, script_filter=None)
    raw.on_element("*", rules2.urls, needle=RW.matcher.needle)
    rules2.install_text_filter(raw)
    raw.on_text("script", rules2.script)
    raw.on_text("style", rules2.style)
    raw.on_text("noscript", rules2.noscript)
    if not rules2.head_done:
        raw.observe(rules2.head_observer)
    if not rules2.body_done:
        raw.on_end_tag("body", rules2.body_end)
    if not (rules2.head_done and rules2.body_done):
        raw.on_end(rules2.document_end)
    return raw


def _raw_path_rewriter(inject: bool) -> HtmlRewriter:
    html = HtmlRewriter()
    settings_ = HtmlSettings(head_inject=["<script>H</script>"], body_end_inject=["<i>B</i>"])
    SluicegateRules(RW, settings_, inject=inject, script_filter=None).install(html)
    return html


@settings(max_examples=500, deadline=None)
@given(raw_docs, st.lists(st.integers(min_value=0, max_value=10_000), max_size=6), st.booleans())
def test_raw_tag_hook_matches_full_path(data: bytes, points: list[int], inject: bool) -> None:
    """The byte-level origin-tag shortcut (``on_element(raw=...)`` / ``SluicegateRules.urls_raw``)
    gives the bytes of the ``Token``/``Element`` path, for every chunking."""
    full = run(lambda: _full_path_rewriter(inject), [data])
    assert run(lambda: _raw_path_rewriter(inject), cut(data, points)) == full
    assert run(lambda: _raw_path_rewriter(inject), [data]) == full


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([b"a", b"img", b"object", b"source", b"link", b"meta"]), attr_text)
def test_urls_raw_matches_urls(name: bytes, attrs: str) -> None:
    """``urls_raw`` on one tag: ``None`` or exactly ``urls`` + ``Element.serialize``."""
    tag = b"<" + name + b" " + attrs.encode() + b">"
    el = _element(tag)
    if el is None:
        return
    rules = SluicegateRules(RW, HtmlSettings(), inject=False, script_filter=None)
    got = rules.urls_raw(tag, tag.lower(), 0, el._astart, el._aend, len(tag), name)
    spans = rules.urls_spans(tag, tag.lower(), 0, el._astart, el._aend, len(tag), name)
    rules.urls(el)
    if got is not None:
        assert got == el.serialize()
    if spans is not None:  # the compiled builds' variant, checked in both modes
        assert spans == el.serialize()


SCAN_PIECES = [
    "<", ">", "/", "=", '"', "'", " ", "\t", "\n", "\r", "\f", "\v", "!", "?", "-", "a", "B", "x", "é", "\x00",
    "<a", "<A ", "</a", "</b>", "<script", "<SCRIPT>", "</body", "<svg", "<Style/", "<head>", "<p", "<!--",
    "href", "=x", '="v"', "='v'", "text", "<1", "< ", "<!--", "-->", "--!>", "-", "!>", "<!-", "<!DOCTYPE x>",
]
scan_inputs = st.lists(st.sampled_from(SCAN_PIECES), max_size=40).map(lambda xs: "".join(xs).encode())


@settings(max_examples=1500, deadline=None)
@given(scan_inputs, st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=400),
       st.booleans())
def test_scan_boring_matches_regex(data: bytes, a: int, b: int, watch_body: bool) -> None:
    """The hand-written boring-run scan (used when compiled) stops exactly where the regex does."""
    names = frozenset((b"script", b"style", b"svg", b"head"))
    ends = frozenset((b"body",)) if watch_body else frozenset()
    pos, end = min(a, b, len(data)), min(max(a, b), len(data))
    m = boring_re(names, ends, frozenset()).match(data, pos, end)
    assert m is not None
    assert scan_boring(data, pos, end, names, ends) == m.end()


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([*ATTR_PIECES, "\n", "\r", "==", "Href", "ORIGIN.EXAMPLE.COM=1", "hReF"]),
                max_size=20).map("".join))
def test_needle_attr_spans_matches_needle_attrs(attrs: str) -> None:
    """The byte-loop attribute walk of the origin-tag shortcut finds what ``needle_attrs`` finds."""
    tag = b"<a " + attrs.encode() + b">"
    el = _element(tag)
    if el is None:
        return
    needle = RW.matcher.needle
    low = tag.lower()
    want = [(a.nstart, a.nstart + len(a.name), a.vstart, a.vend, a.quote[0] if a.quote else 0)
            for a in needle_attrs(tag, low, el._astart, el._aend, needle)]
    assert needle_attr_spans(tag, low, el._astart, el._aend, needle) == want


@settings(max_examples=1500, deadline=None)
@given(scan_inputs, st.integers(min_value=0, max_value=400))
def test_tag_span_matches_lexer_tag(data: bytes, at: int) -> None:
    """The byte-loop start-tag span (compiled builds) equals ``lexer.TAG``'s."""
    pos = data.find(b"<", min(at, len(data)))
    if pos < 0:
        return
    assert tag_span(data, pos, len(data)) == tag_span_re(data, pos)


@settings(max_examples=500, deadline=None)
@given(values, st.sampled_from([b'"', b"'"]))
def test_plain_span_matches_simple_value(value: str, quote: bytes) -> None:
    raw = value.encode("utf-8", "surrogateescape")
    if quote in raw:
        return  # a quoted value cannot hold its quote
    assert _plain_span(b"<" + raw + b">", 1, len(raw) + 1) == _simple_value(raw, quote)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="xyz \t/:-.", max_size=8).map(str.encode), values.map(str.encode))
def test_url_span_matches_rewrite_url_bytes(before: bytes, value: bytes) -> None:
    """``HostRewriter.url_span`` (compiled origin-tag path) on a span = ``rewrite_url_bytes`` on its bytes."""
    buf = before + value + b"'rest"
    s, e = len(before), len(before) + len(value)
    want = RW.rewrite_url_bytes(value)
    form, a, b = RW.url_span(buf, buf.lower(), s, e)
    if form == -2:  # declined: only where ``rewrite_url_bytes`` says None or takes its slow path
        low = value.lstrip(b" \t\n\r\x0b\x0c")[: RW.hold].lower()
        n = len(RW.needle)
        assert want is None or any(low.startswith(p) and low.find(RW.needle, 0, len(p) + n - 1) >= 0
                                   for p, _ in _PREFIXES)
        return
    got = value if form == -1 else buf[s:a] + RW.replacements[form] + buf[b:e]
    assert got == want


def test_url_span_declines_where_rewrite_url_bytes_does() -> None:
    for value in (b"\x1chttps://origin.example.com/", b"\xc2\xa0https://origin.example.com/"):
        assert RW.rewrite_url_bytes(value) is None
        assert RW.url_span(value, value.lower(), 0, len(value))[0] == -2
    assert RW.url_span(b"  /a", b"  /a", 0, 4)[0] == -1


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=40), st.binary(min_size=1, max_size=4), st.integers(0, 45), st.integers(0, 45))
def test_find_bytes_matches_find(buf: bytes, sub: bytes, a: int, b: int) -> None:
    start, end = min(a, len(buf)), min(b, len(buf))
    assert find_bytes(buf, sub, start, end) == buf.find(sub, start, end)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from([b"srcset", b"imagesrcset", b"href", b"data"]), values, st.sampled_from(['"', "'", ""]),
       st.sampled_from([b"img", b"object"]))
def test_urls_spans_matches_urls_on_values(attr: bytes, value: str, quote: str, name: bytes) -> None:
    """``urls_spans`` (srcset candidates split by hand) on one URL attribute: ``None`` or exactly
    ``urls`` + ``Element.serialize``."""
    tag = b"<" + name + b" x=1 " + attr + b"=" + (quote + value + quote).encode() + b">"
    el = _element(tag)
    if el is None:
        return
    rules = SluicegateRules(RW, HtmlSettings(), inject=False, script_filter=None)
    got = rules.urls_spans(tag, tag.lower(), 0, el._astart, el._aend, len(tag), name)
    rules.urls(el)
    if got is not None:
        assert got == el.serialize()


CSS_PIECES = ["url(", "URL(", "Url(", " ", "\t", "\xa0", "\x1c", '"', "'", ")", ";", "background:",
              "https://origin.example.com/a.png", "//ORIGIN.example.com/b", "https://other.example/c", "é", "x"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(CSS_PIECES), max_size=16).map("".join))
def test_css_urls_on_bytes_match_the_str_rule(value: str) -> None:
    new = rewrite_css_urls_bytes(RW, value.encode())
    if new is not None:  # None: only the str rule can decide (the caller falls back to it)
        assert new == rewrite_css_urls(RW, value).encode()


def test_style_attribute_takes_the_byte_path() -> None:
    rules = SluicegateRules(RW, HtmlSettings(), inject=False, script_filter=None)
    tag = b'<div class=c style="background:url(https://origin.example.com/t.png)">'
    low = tag.lower()
    out = rules.urls_raw(tag, low, 0, 4, len(tag) - 1, len(tag), b"div")
    assert out == b'<div class=c style="background:url(https://www.example.com/t.png)">'


@settings(max_examples=1000, deadline=None)
@given(scan_inputs, st.lists(st.sampled_from([b"a", b"b", b"p", b"x", b"head", b"body", b"svg", b"script", b"xmp",
                                              b"annotation-xml", b"foreignobject", b"ab"]), max_size=5))
def test_scan_boring_name_filter_any_stop_set(data: bytes, names: list[bytes]) -> None:
    """The length/first-letter table in front of the stop-name lookup never lets a stop name pass."""
    stop = frozenset(names)
    m = boring_re(stop, stop, frozenset()).match(data, 0, len(data))
    assert m is not None
    assert scan_boring(data, 0, len(data), stop, stop) == m.end()


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([*ATTR_PIECES, "/", " /", "=", "x/", "'", '"', "=/", "\t", "a=b/"]), max_size=12)
       .map(lambda xs: "".join(xs).encode()))
def test_last_attr_end_matches_iter_attrs(text: bytes) -> None:
    """The byte loop behind compiled ``lexer.self_closing`` ends the last attribute where ``ATTR`` does."""
    from sluicegate.pipeline.html.lexer import _last_attr_end, iter_attrs

    buf = b"<x " + text + b">"
    attrs = iter_attrs(buf, 2, len(buf) - 1)
    assert _last_attr_end(buf, 2, len(buf) - 1) == (attrs[-1].end if attrs else -1)


def _suspect_ref_regex(low: bytes, start: int, end: int) -> int:
    m = re.compile(rb"&(?:#|period;|sol;|colon;|bsol;|percnt;|commat;)").search(low, start, end)
    return -1 if m is None else m.start()


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(["&", "#", "period;", "sol;", "colon;", "bsol;", "percnt;", "commat;", "amp;",
                                 "period", "&&", "x", "%", "%2e", "//", "\\", "/", "a.b", ";"]),
                max_size=16).map(lambda xs: "".join(xs).encode()),
       st.integers(min_value=0, max_value=80), st.integers(min_value=0, max_value=80))
def test_suspect_at_reference_part_matches_regex(low: bytes, a: int, b: int) -> None:
    """``suspect_at``'s character-reference search (``&`` by ``find``, then the name) stops where the
    regex ``&(?:#|period;|...)`` does, within any bounds; ``%`` and ``\\`` suspects only come earlier."""
    start, end = min(a, b, len(low)), min(max(a, b), len(low))
    ref = _suspect_ref_regex(low, start, end)
    got = suspect_at(low, start, end)
    if ref >= 0:
        assert 0 <= got <= ref
        if got < ref:  # something else is suspect before it: a ``%`` / ``\`` form
            assert low.find(b"%", got, ref) >= 0 or low.find(b"\\", got, ref) >= 0
    elif got >= 0:
        assert low.find(b"%", got, end) >= 0 or low.find(b"\\", got, end) >= 0


_FAST_RWS = [
    host_rewriter(), host_rewriter("https://origin.example.com:8443"), host_rewriter("http://origin.example.com"),
    OriginMatcher(Origin.parse("https://origin.example.com"),
                  ["origin.example.com.cdn.net", "example.com", "origin.example.com:8443"]).for_request(
        "https", "www.proxy.example"),
]


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["https://origin.example.com/", "http://origin.example.com/", "//origin.example.com/",
                        "https://origin.example.com:8443/", "//example.com/"]),
       values, st.integers(min_value=0, max_value=len(_FAST_RWS) - 1))
def test_rewrite_url_bytes_shortcut_matches_general_path(head: str, tail: str, which: int) -> None:
    """The lower-case ``https://<origin>/...`` shortcut of ``rewrite_url_bytes`` answers what its general
    path answers (reached with a leading space, which the shortcut does not take and the path keeps)."""
    rw = _FAST_RWS[which]
    value = (head + tail).encode()
    spaced = rw.rewrite_url_bytes(b" " + value)
    assert rw.rewrite_url_bytes(value) == (None if spaced is None else spaced[1:])


class _Seen:
    """A text filter that passes text unchanged and records what it is fed."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []

    def feed(self, data: bytes) -> bytes:
        self.fed.append(data)
        return data

    def finish(self) -> bytes:
        return b""


def _text_page(tail: bytes = b"") -> bytes:
    runs = b"".join(b"<p>%d lorem ipsum dolor sit amet, consectetur adipiscing elit</p>\n" % i for i in range(120))
    return b"<div>" + runs + tail + b"</div>"


def test_text_cut_by_a_chunk_boundary_waits_for_the_next_feed() -> None:
    """Mid-stream, a text run cut by the chunk boundary is not tokenized and fed to the text filter: its
    last bytes (under the filter's ``hold``, no '>') wait for the next feed, where the fast scan reads them
    with what follows. So text far from any needle never reaches the filter, whatever the chunking, the
    output is the input, and what is held back after a feed stays within ``hold`` (plus a cut tag)."""
    hold = 40
    page = _text_page()
    for size in (7, 64, 97, 1000, 8192):
        html = HtmlRewriter(max_tag_bytes=64 * 1024, max_text_bytes=1 << 20)
        seen = _Seen()
        html.set_text_filter(seen, needles=(b"origin.example.com",), behind=8, hold=hold)
        out: list[bytes] = []
        fed = 0
        for i in range(0, len(page), size):
            fed += len(page[i : i + size])
            out.append(html.feed(page[i : i + size]))
            assert fed - len(b"".join(out)) <= hold + len(b"</div>"), size
        out.append(html.finish())
        assert b"".join(out) == page
        assert seen.fed == [], (size, seen.fed[:3])


def test_text_filter_still_sees_a_reference_cut_by_a_chunk_boundary() -> None:
    """A text run that names the needle reaches the filter, whole around the needle, for every chunking
    (the carried bytes join the next feed's)."""
    page = _text_page(b"<p>see https://origin.example.com/x and more text after it</p>")
    for size in (1, 5, 13, 64, 97, 8192):
        html = HtmlRewriter(max_tag_bytes=64 * 1024, max_text_bytes=1 << 20)
        seen = _Seen()
        html.set_text_filter(seen, needles=(b"origin.example.com",), behind=8, hold=40)
        out = [html.feed(page[i : i + size]) for i in range(0, len(page), size)]
        out.append(html.finish())
        assert b"".join(out) == page
        assert b"origin.example.com" in b"".join(seen.fed), size


_SUSPECT_PARTS = st.lists(st.sampled_from(["&", "#", "period;", "sol;", "amp;", "&amp; ", "x", "%2e", "//", "\\",
                                           "/", "a.b", ";"]), max_size=24).map(lambda xs: "".join(xs).encode())


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 120), st.integers(0, 120)), min_size=1, max_size=12),
       st.lists(_SUSPECT_PARTS, min_size=3, max_size=3))
def test_suspect_scan_remembers_nothing_wrong(calls: list[tuple[int, int, int]], bufs: list[bytes]) -> None:
    """``SuspectScan.at`` (which keeps its last reference search per buffer and end) answers every
    call of any sequence, over buffers that come back and bounds that move either way, as
    ``suspect_at`` does."""
    scan = SuspectScan()
    for i, a, b in calls:
        low = bufs[i]
        start, end = min(a, len(low)), min(max(a, b), len(low))
        assert scan.at(low, start, end) == suspect_at(low, start, end)


def test_suspect_scan_reuses_its_reference_search_past_a_backslash() -> None:
    """Past a backslash suspect, the next answer still finds the reference after it (kept from the
    first search) and a later one once the position passes that reference."""
    low = b"a\\/b &amp; c &#46; d \\/ e &sol; f"
    scan = SuspectScan()
    first = scan.at(low, 0, len(low))
    assert first == 1 == suspect_at(low, 0, len(low))
    ref = low.index(b"&#46;")
    assert scan.at(low, first + 3, len(low)) == ref
    assert scan.at(low, ref + 1, len(low)) == suspect_at(low, ref + 1, len(low)) == low.index(b"\\/ e")
    assert scan.at(low, low.index(b"&sol;"), len(low)) == low.index(b"&sol;")
