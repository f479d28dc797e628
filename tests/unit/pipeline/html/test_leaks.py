"""No origin URL reaches the browser through the HTML rewriter, whatever its spelling or size
(#12 §1-2, #22): each case here passed an origin authority through on the code before."""

import re
from html import unescape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.html import HtmlSettings
from sluicegate.config.origin import Origin
from sluicegate.pipeline import UnsafeOverlongTag
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.pipeline.html import build_html_processor
from sluicegate.pipeline.html.charrefs import decode
from tests.unit.pipeline.html.helpers import run, run_all_splits

ORIGIN = Origin.parse("https://origin.example.com")
ALIASES = ["www.origin.example.com", "origin-internal:8443"]
RW = OriginMatcher(ORIGIN, ALIASES).for_request("https", "pub.example")
RW1 = OriginMatcher(ORIGIN).for_request("https", "pub.example")
RW_SAME = OriginMatcher(ORIGIN).for_request("https", "pub.example.com.au")  # same length: lag is exact
PLAIN = HtmlSettings()


def rewrite(src: str, rw=RW1, settings: HtmlSettings = PLAIN) -> str:  # type: ignore[no-untyped-def]
    return run_all_splits(lambda: build_html_processor(rw, settings), src.encode()).decode()


# What the browser resolves: an origin authority after decoding references, case, dots, ports...
_AUTH = re.compile(r"(?:https?:)?[/\\]{2,}([^/\\?#\s\"'<>]*)", re.I)


def leaks(html: str) -> list[str]:
    """Origin authorities the browser would see in ``html`` (references and %-escapes decoded)."""
    from urllib.parse import unquote

    text = re.sub(r"[\t\n\r]", "", unquote(unescape(html)).lower())
    return [h for h in _AUTH.findall(text) if h.split("@")[-1].rstrip(".").split(":")[0]
            in ("origin.example.com", "www.origin.example.com", "origin-internal")]


@pytest.mark.parametrize(
    "src",
    [
        '<a href="https://origin.&#x65;xample.com/p">x</a>',
        '<a href="https://origin&period;example&period;com/p">x</a>',
        '<a href="https://origin&#46;example&#46;com/p">x</a>',
        '<a href="https:&#x2F;&#x2F;origin&#46;example.com/p">x</a>',
        '<a href="HTTPS://ORIGIN.EXAMPLE.COM/p">x</a>',
        '<a href="https://origin.example.com./p">x</a>',
        '<a href="https://origin.example.com:443/p">x</a>',
        '<a href="https:\\\\origin.example.com\\p">x</a>',
        '<a href="https://%6Frigin.example.com/p">x</a>',
        '<a href="//origin%2Eexample%2Ecom/p">x</a>',
        '<img src="https://ori\ngin.example.com/i.png" alt="origin.example.com">',  # found by the host elsewhere
        '<img srcset="https://origin&#46;example.com/a.png 1x, /b.png 2x">',
        '<link rel=alternate href="/embed?url=https%3A%2F%2Forigin.example.com%2Fhello%2F">',
        '<a href="/share?u=http%3a%2f%2forigin.example.com%2fp&amp;t=1">x</a>',
        '<div data-src="https://origin.example.com/lazy.jpg" title="origin.example.com"></div>',
        '<p>Visit https://origin.example.com/about or origin.example.com.</p>',
        "<title>https://origin.example.com/</title><textarea>//origin.example.com/t</textarea>",
    ],
)
def test_spellings_are_rewritten(src: str) -> None:
    assert leaks(src), "the case must name the origin"
    out = rewrite(src)
    assert leaks(out) == []


@pytest.mark.parametrize(
    "src",
    [
        '<a href="https://www.origin.example.com/p">www</a> www.origin.example.com',
        '<img src="http://origin-internal:8443/i.png">',
        '<a href="/r?to=https%3A%2F%2Fwww.origin.example.com%2F">x</a>',
    ],
)
def test_aliases_are_rewritten(src: str) -> None:
    assert leaks(src)
    assert leaks(rewrite(src, rw=RW)) == []
    assert leaks(rewrite(src, rw=RW1))  # without the aliases configured they stay


@pytest.mark.parametrize(
    "src",
    [
        '<a href="https://other.example/&#x65;&period;">x</a>',
        '<a href="/p?a=1&amp;b=%2F%2Fx">x</a> &#8217; &copy;',
        '<a href="https://origin.example.com.evil.example/">x</a>',
        '<img src="//cdn.example.net/%6Frigin.example.com">',
        "<!-- https://origin.example.com/ -->",
    ],
)
def test_bytes_untouched_where_nothing_matches(src: str) -> None:
    assert rewrite(src) == src


def test_text_and_attribute_entities_keep_their_bytes() -> None:
    src = '<a title="a &amp; b" href="https://origin.&#x65;xample.com/p?a=1&amp;b=2">origin.example.com &amp; co</a>'
    out = rewrite(src)
    assert out == '<a title="a &amp; b" href="https://pub.example/p?a=1&amp;b=2">pub.example &amp; co</a>'


def test_text_split_across_chunks() -> None:
    src = b"<p>" + b"x" * 5000 + b" see https://origin.example.com/a and %2F%2Forigin.example.com</p>"
    for size in (1, 3, 7, 64, 8192):
        out = run(lambda: build_html_processor(RW1, PLAIN), [src[i : i + size] for i in range(0, len(src), size)])
        assert out == src.replace(b"origin.example.com", b"pub.example")


def test_rewrite_text_off_leaves_text_alone() -> None:
    off = HtmlSettings(rewrite_text=False)
    src = '<p>https://origin.example.com/</p><title>origin.example.com</title><a href="https://origin.example.com/">'
    assert rewrite(src, settings=off) == (
        '<p>https://origin.example.com/</p><title>origin.example.com</title><a href="https://pub.example/">'
    )


@pytest.mark.parametrize("filler", [
    ' data-x="' + "A" * 200_000 + '"',
    ' src="data:image/svg+xml;utf8,' + "<svg xmlns=%27http://www.w3.org/2000/svg%27>" + "<g/>" * 50_000 + '"',
])
def test_overlong_tag_is_still_rewritten(filler: str) -> None:
    src = "<p>a</p><img" + filler + ' href="https://origin.example.com/after" srcset="//origin.example.com/x 2x">b'
    settings = HtmlSettings(max_tag_bytes=64 * 1024)
    data = src.encode()
    expected = src.replace("origin.example.com", "pub.example").encode()
    for size in (len(data), 65_543, 8192, 1000):  # (1-byte feeds of a 200 KB tag are quadratic)
        out = run(lambda: build_html_processor(RW1, settings), [data[i : i + size] for i in range(0, len(data), size)])
        assert out == expected


def test_overlong_tag_with_an_escaped_origin_fails_closed() -> None:
    src = ('<img data-x="' + "A" * 100_000 + '" href="https://origin&#46;example.com/p">').encode()
    settings = HtmlSettings(max_tag_bytes=64 * 1024)
    for size in (len(src), 8192, 1000):
        p = build_html_processor(RW1, settings)
        with pytest.raises(UnsafeOverlongTag):
            for i in range(0, len(src), size):
                p.feed(src[i : i + size])
            p.finish()
    # a harmless reference in a long tag is not a reason to fail
    ok = ('<img data-x="' + "&#39;" * 30_000 + '" href="https://origin.example.com/p">').encode()
    out = run(lambda: build_html_processor(RW1, settings), [ok])
    assert out == ok.replace(b"origin.example.com", b"pub.example")


def test_long_inline_scripts_and_styles_stream_with_a_bounded_lag() -> None:
    """#12 §3: a 2 MB inline script or style is not held whole: output lags input by the hold
    of one text unit at most (32 KiB offer threshold + the mapping's hold), and it is rewritten."""
    js = ("var u='https://origin.example.com/a';" + "x" * 70 + "\n") * 18_000
    css = (".a{background:url(//origin.example.com/i.png)}" + " " * 50 + "\n") * 18_000
    page = ("<html><body><script>" + js + "</script><p>t</p><style>" + css + "</style></body></html>").encode()
    p = build_html_processor(RW_SAME, PLAIN)
    fed = out_len = lag = 0
    out = []
    for i in range(0, len(page), 8192):
        piece = page[i : i + 8192]
        fed += len(piece)
        o = p.feed(piece)
        out.append(o)
        out_len += len(o)
        lag = max(lag, fed - out_len)
    out.append(p.finish())
    assert b"".join(out) == page.replace(b"origin.example.com", b"pub.example.com.au")
    assert lag <= 64 * 1024, lag


def test_inline_flight_scripts_are_still_held_whole() -> None:
    from sluicegate.config.flight import FlightSettings
    from sluicegate.pipeline.flight import build_next_script_filter

    f = build_next_script_filter(RW1, FlightSettings())
    assert f.wants_whole(b"<script>", b'self.__next_f.push([1,"')
    assert f.wants_whole(b'<script id="__NEXT_DATA__" type="application/json">', b"{")
    assert not f.wants_whole(b"<script>", b"var x = 1;")


# #12 §1: text nodes decided on their decoded value, like attributes
@pytest.mark.parametrize(
    "src,expected",
    [
        ("<p>Visit https://origin&#46;example&#46;com/p now</p>", "<p>Visit https://pub.example/p now</p>"),
        ("<p>https&#58;//origin.example.com/</p>", "<p>https://pub.example/</p>"),
        ("<p>&#x68;ttps://origin.example.com/x</p>", "<p>https://pub.example/x</p>"),
        ("<title>origin&period;example&period;com</title>", "<title>pub.example</title>"),
        ("<textarea>see //origin&#x2E;example.com/t &amp; co</textarea>",
         "<textarea>see //pub.example/t &amp; co</textarea>"),
        ("<p>it&#x27;s origin.example.com &#x27;ok&#x27;</p>", "<p>it&#x27;s pub.example &#x27;ok&#x27;</p>"),
        # not the origin once decoded: untouched
        ("<p>&#120;origin.example.com</p>", "<p>&#120;origin.example.com</p>"),
        ("<p>origin&#46;example&#46;com&#46;evil</p>", "<p>origin&#46;example&#46;com&#46;evil</p>"),
        ("<p>&#8217; &copy; origin&#46;examplex</p>", "<p>&#8217; &copy; origin&#46;examplex</p>"),
    ],
)
def test_text_with_character_references(src: str, expected: str) -> None:
    assert rewrite(src) == expected
    assert unescape(rewrite(src)) == unescape(RW1.rewrite_text(unescape(src)))
    out = run(lambda: build_html_processor(RW1, HtmlSettings(rewrite_text=False)), [src.encode()])
    assert out == src.encode()


def test_text_references_after_a_long_run_stream() -> None:
    src = b"<p>" + b"x&#x27;" * 2000 + b" https://origin&#46;example&#46;com/a " + b"y" * 3000 + b"</p>"
    for size in (1, 5, 64, 8192):
        out = run(lambda: build_html_processor(RW1, PLAIN), [src[i : i + size] for i in range(0, len(src), size)])
        assert out == src.replace(b"origin&#46;example&#46;com", b"pub.example")


_TEXT_PIECES = ["https://", "//", "https&#58;//", "&#x68;ttps://", "origin", "&#46;", "&period;", ".", "example",
                "com", "&#x2F;", "/p", " ", "x", "&amp;", "&#x27;", "&#120;", "&", "&#4", ";", "-",
                "origin.example.com", "&copy", "&#0046;"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TEXT_PIECES), max_size=25).map("".join), st.lists(st.integers(0, 300), max_size=6))
def test_text_references_any_split_renders_as_the_mapping(text: str, cuts: list[int]) -> None:
    """Whatever the chunking, the rewritten text renders as the mapping of what the original renders."""
    src = f"<p>{text}</p>".encode()
    pieces, last = [], 0
    for c in sorted({min(c, len(src)) for c in cuts}):
        pieces.append(src[last:c])
        last = c
    pieces.append(src[last:])
    out = run(lambda: build_html_processor(RW1, PLAIN), pieces)
    assert out == run(lambda: build_html_processor(RW1, PLAIN), [src])
    # as the browser decodes text (html.unescape drops C0 controls such as ``&#4``; the tokenizer does not)
    assert decode(out.decode()[3:-4], in_attribute=False) == RW1.rewrite_text(decode(text, in_attribute=False))
