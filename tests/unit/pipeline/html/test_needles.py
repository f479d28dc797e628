"""The multi-needle fast path (``pipeline/html/needles.py``; origin aliases, extra needle rules)
gives exactly the bytes of the needle-guarded pattern it replaces, for any chunking.

The reference is the same rewriter with ``multi_needle_fast`` off: the scan then stops at every
tag holding any needle by a per-byte guarded pattern and the raw-byte hook stays off. Runs on
the compiled build and on ``SLUICEGATE_PURE_PYTHON=1``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.pipeline.html import HtmlRewriter
from sluicegate.pipeline.html.needles import NeedleScan, minimal_needles, only_inside
from sluicegate.pipeline.html.rules import SluicegateRules
from tests.unit.pipeline.html.helpers import run
from tests.unit.pipeline.html.test_properties import cut

ORIGIN = "https://www.origin.example.com"
# two aliases inside the origin host's name ("origin.example.com" is a substring of it), one not
ALIASES = ["origin.example.com", "cdn.origin.example.com", "origin-internal.example.net:8443"]
MATCHERS = {
    "aliases": OriginMatcher(Origin.parse(ORIGIN), ALIASES),
    "apart": OriginMatcher(Origin.parse("https://site.test"), ["static.site-cdn.test", "m.site.test"]),
}

PIECES = [
    "<p>", "</p>", "<div class=x>", "</div>", "text ", "<br>", "<!-- c -->", "&amp;", "&#47;",
    '<a href="', '<img src="', '<img srcset="', '<link rel=preload href="', '<div style="background:url(',
    '<meta property="og:url" content="', '<form action=', "<script>var u='", "';</script>",
    "<style>.a{background:url(", ")}</style>", "<title>", "</title>", "<textarea>", "</textarea>",
    "https://www.origin.example.com", "HTTPS://WWW.Origin.Example.COM", "//www.origin.example.com",
    "https://origin.example.com", "//cdn.origin.example.com", "http://origin-internal.example.net:8443",
    "origin.example.com", "www.origin.example.com.evil", "xorigin.example.com", "https:\\/\\/origin.example.com",
    "https://site.test", "//static.site-cdn.test", "https://m.site.test", "site.test", "m.site.testing",
    "https://%77ww.origin.example.com", "https://origin&#46;example.com", "/path?q=1", " 2x, ", " 1x",
    '"', "'", ">", '">', "'>", " ", "\n", "\t", "=", "a", "é",
]
docs = st.lists(st.sampled_from(PIECES), max_size=40).map(lambda xs: "".join(xs).encode())
points = st.lists(st.integers(min_value=0, max_value=4000), max_size=10)


def _make(matcher: OriginMatcher, text: bool, fast: bool) -> HtmlRewriter:
    rw = matcher.for_request("https", "www.proxy.example")
    html = HtmlRewriter()
    SluicegateRules(rw, HtmlSettings(rewrite_text=text), inject=True, script_filter=None).install(html)
    html.multi_needle_fast = fast
    return html


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(MATCHERS)), st.booleans(), docs, points)
def test_multi_needle_fast_path_equals_guarded_pattern(which: str, text: bool, doc: bytes, ps: list[int]) -> None:
    m = MATCHERS[which]
    want = run(lambda: _make(m, text, False), [doc])
    assert run(lambda: _make(m, text, True), cut(doc, ps)) == want
    assert run(lambda: _make(m, text, False), cut(doc, ps)) == want


def test_fast_path_rewrites_alias_and_origin_tags() -> None:
    doc = (b'<a href="https://www.origin.example.com/a">x</a><img src="//cdn.origin.example.com/i.png">'
           b'<link href="http://origin-internal.example.net:8443/s.css"> text origin.example.com end')
    out = run(lambda: _make(MATCHERS["aliases"], True, True), [doc])
    assert b"origin.example.com" not in out and b"origin-internal" not in out
    assert out.count(b"www.proxy.example") == 4


def test_raw_hook_taken_for_origin_tags_with_aliases() -> None:
    """With aliases inside the origin host's name, origin-only tags still take the raw hook."""
    calls: list[int] = []
    html = _make(MATCHERS["aliases"], True, True)
    hook = html._raw_hooks[0]
    assert hook is not None

    def counting(*a: object) -> bytes | None:
        calls.append(1)
        return hook(*a)  # type: ignore[arg-type]

    html._raw_hooks[0] = counting
    doc = b'<p><a href="https://www.origin.example.com/a">x</a><a href="https://origin.example.com/b">y</a></p>'
    out = html.feed(doc) + html.finish()
    assert out.count(b"https://www.proxy.example/") == 2
    assert calls == [1]  # the second tag names an alias on its own: the full path


def test_minimal_needles_and_scan() -> None:
    assert minimal_needles((b"www.a.com", b"a.com", b"cdn.a.com", b"b.net")) == (b"a.com", b"b.net")
    low = b"xx b.net yy www.a.com zz a.com"
    s = NeedleScan((b"www.a.com", b"a.com", b"b.net"))
    s.reset(low)
    assert s.slack == len(b"www.a.com")
    assert s.next(0) == 3
    assert s.next(4) == low.index(b"a.com")
    assert s.next(low.index(b"zz")) == low.rindex(b"a.com")
    assert s.next(len(low)) == len(low)


def test_only_inside() -> None:
    low = b'<a href="https://www.a.com/x" data-u="a.com">'
    cut_at = low.index(b" data-u")
    assert only_inside(low, 0, cut_at, b"www.a.com", (b"a.com", b"cdn.a.com"))
    assert not only_inside(low, 0, len(low), b"www.a.com", (b"a.com",))
    assert not only_inside(low, 0, len(low), b"www.b.com", ())
    assert not only_inside(b"www.a.com b.net", 0, 15, b"www.a.com", (b"b.net",))
