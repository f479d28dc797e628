"""Third-party URLs in inline scripts and ``<noscript>`` (``firstparty.inline`` and the page rule):
which literals are signed, that a stream gives the whole body's bytes for any chunking, and that
the one-pass page rule equals the two-pass stage for long (streamed) scripts too."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sluicegate.config.domains import DomainList
from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.firstparty.inline import _LITERAL, ScriptUrlStream, sign_script
from sluicegate.firstparty.markup import UrlMinter, chain, install_page_rules, page_stage
from sluicegate.firstparty.signing import Signer
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.pipeline.html import build_html_processor
from tests.unit.pipeline.html.helpers import run
from tests.unit.pipeline.html.test_properties import cut

NOW = 1_800_000_000
SIGNER = Signer([b"k1-0123456789abcdefghijklmnopqrstuvwxyz"], "/first-party", 60, clock=lambda: NOW)
DOMAINS = DomainList(["cdn.third.example", "*.ads.example"])
NEEDLES = DOMAINS.needles()
MINTER = UrlMinter(SIGNER, DOMAINS)


def target(signed: str) -> str:
    return parse_qs(urlsplit(signed).query)["url"][0]


def test_whole_literals_are_signed() -> None:
    js = (b'a="https://cdn.third.example/t.js?x=1&y=2";b=\'//x.ads.example/p.png\';c=`https://cdn.third.example/m`;'
          b'd={"u":"https:\\/\\/cdn.third.example\\/j.json"}')
    out = sign_script(MINTER, NEEDLES, js).decode()
    a = out.split('a="')[1].split('"')[0]
    assert a.startswith("/first-party/proxy?url=") and target(a) == "https://cdn.third.example/t.js?x=1&y=2"
    assert target(out.split("b='")[1].split("'")[0]) == "https://x.ads.example/p.png"
    assert target(out.split("c=`")[1].split("`")[0]) == "https://cdn.third.example/m"
    d = out.split('{"u":"')[1].split('"')[0]
    assert d.startswith("\\/first-party\\/proxy?url=") and target(d.replace("\\/", "/")) == (
        "https://cdn.third.example/j.json")


def test_what_is_left_alone() -> None:
    for js in (
        b'u="https://cdn.third.example/" + path',  # an operand of +: would become a broken URL
        b'u=base + "https://cdn.third.example/x"',
        b'u="https://cdn.third.example/" \n + path',
        b'u=`https://cdn.third.example/${p}`',  # a template with a substitution
        b'u="https://evil-third.example/x";v="https://cdn.third.example.evil.test/x"',  # not a rewrite domain
        b'u="https://cdn.third.example/a b"',  # not one URL
        b'self.__next_f.push([1,"https://cdn.third.example/x"])',  # Flight rows count bytes
        b"no urls here",
    ):
        assert sign_script(MINTER, NEEDLES, js) == js, js


PIECES = [
    '"', "'", "`", "https://cdn.third.example/a.js", "//x.ads.example/p", "https:\\/\\/cdn.third.example\\/j",
    "?q=1&r=2", " ", "\n", " + ", "x", ";", "=", "${p}", "https://other.example/o", "(", ")", "{", "}",
]
scripts = st.lists(st.sampled_from(PIECES), max_size=30).map(lambda xs: "".join(xs).encode())
points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=10)


@settings(max_examples=500, deadline=None)
@given(scripts, points, st.sampled_from([64, 8192]))
def test_stream_equals_whole_body(js: bytes, at: list[int], window: int) -> None:
    # the documented exception: a literal longer than the window is given up (next test)
    assume(all(m.end() - m.start() < window for m in _LITERAL.finditer(js)))
    stream = ScriptUrlStream(MINTER, NEEDLES, window)
    out = b"".join(stream.feed(c) for c in cut(js, at)) + stream.finish()
    assert out == sign_script(MINTER, NEEDLES, js)


def test_a_literal_longer_than_the_window_passes_unchanged() -> None:
    lit = b'"https://cdn.third.example/a.jshttps://cdn.third.example/a.jshttps://cdn.third.example/a.js"'
    js = b"x=" + lit + b";y='https://cdn.third.example/b.js';"
    assert sign_script(MINTER, NEEDLES, js) != js  # whole, both literals are signed
    stream = ScriptUrlStream(MINTER, NEEDLES, 64)
    out = b"".join(stream.feed(js[i:i + 7]) for i in range(0, len(js), 7)) + stream.finish()
    assert out.startswith(b"x=" + lit + b";y='/first-party/proxy?url=")  # the long one as it came, the short signed


def test_stream_holds_at_most_the_window() -> None:
    stream = ScriptUrlStream(MINTER, NEEDLES, 100)
    stream.feed(b'var a = "' + b"x" * 5000)
    assert len(stream.buf) <= 100


ORIGIN = OriginMatcher(Origin.parse("https://www.origin.example.com"))


def _one(doc_chunks: list[bytes]) -> bytes:
    rw = ORIGIN.for_request("https", "www.proxy.example")
    return run(lambda: build_html_processor(rw, HtmlSettings(),
                                            extra_rules=lambda h: install_page_rules(h, UrlMinter(SIGNER, DOMAINS))),
               doc_chunks)


def _two(doc: bytes) -> bytes:
    rw = ORIGIN.for_request("https", "www.proxy.example")
    st_ = HtmlSettings()
    return run(lambda: chain(build_html_processor(rw, st_), page_stage(
        UrlMinter(SIGNER, DOMAINS), max_tag_bytes=st_.max_tag_bytes, max_text_bytes=st_.max_text_bytes)), [doc])


@settings(max_examples=40, deadline=None)
@given(scripts, points)
def test_long_streamed_script_one_pass_equals_two(js: bytes, at: list[int]) -> None:
    body = js + b";" + b" " * 40_000 + b'var o="https://www.origin.example.com/o";' + js
    doc = b"<p>x</p><script>" + body + b"</script><noscript><img src='//x.ads.example/n.png'></noscript>"
    assert _one(cut(doc, at)) == _two(doc)


def test_noscript_and_script_in_a_page() -> None:
    doc = (b'<script>s.src="https://cdn.third.example/t.js";u="https://www.origin.example.com/o"</script>'
           b"<noscript><img src=\"https://cdn.third.example/i.png?a=1&amp;b=2\">"
           b'<a href="https://cdn.third.example/click">x</a></noscript>')
    out = _one([doc])
    assert out == _two(doc)
    text = out.decode()
    assert 's.src="/first-party/proxy?url=' in text and 'u="https://www.proxy.example/o"' in text
    img = text.split('<img src="')[1].split('"')[0].replace("&amp;", "&")
    assert target(img) == "https://cdn.third.example/i.png?a=1&b=2"
    assert '<a href="https://cdn.third.example/click">' in text  # links stay links in pages
