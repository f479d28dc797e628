"""Third-party HTML relayed by ``/proxy`` (``markup.proxied_html``) gets the publisher-page rules:
URL literals in inline scripts, ``<noscript>`` markup, ``style=`` and ``<style>`` ``url()`` are
signed for hosts on ``allowed_domains``; other hosts and ``javascript:``/``data:`` stay as written;
the output is the same for every chunking, long (streamed) bodies included."""

from __future__ import annotations

import random
from urllib.parse import parse_qs, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.domains import DomainList
from sluicegate.firstparty.inline import sign_script
from sluicegate.firstparty.markup import UrlMinter, proxied_html
from sluicegate.firstparty.signing import Signer
from tests.unit.pipeline.html.test_properties import cut

NOW = 1_800_000_000
SIGNER = Signer([b"k1-0123456789abcdefghijklmnopqrstuvwxyz"], "/first-party", 60, clock=lambda: NOW)
ALLOWED = DomainList(["cdn.third.example", "*.ads.example"])
BASE = "https://x.ads.example/c/creative.html"


def minter() -> UrlMinter:
    return UrlMinter(SIGNER, ALLOWED, base=BASE)


def relay(chunks: list[bytes], max_text_bytes: int = 1 << 20) -> bytes:
    h = proxied_html(minter(), max_tag_bytes=65536, max_text_bytes=max_text_bytes, max_css_token_bytes=4096)
    return b"".join(h.feed(c) for c in chunks) + h.finish()


def target(signed: str, kind: str = "proxy") -> str:
    assert signed.startswith(f"/first-party/{kind}?url="), signed
    return SIGNER.verify(kind, urlsplit(signed.replace("&amp;", "&")).query).url


DOC = (
    b'<html><head><script>var s=document.createElement("script");s.src="https://cdn.third.example/t.js?a=1&b=2";'
    b"var p='//x.ads.example/pixel.gif';var cfg={\"u\":\"https:\\/\\/cdn.third.example\\/c.json\"};"
    b'var keep="https://not-allowed.example/x.js";var keep2=\'//not-allowed.example/y.js\';'
    b'var j="javascript:void(0)";var d="data:image/gif;base64,R0lGOD";var cat="https://cdn.third.example/" + f;'
    b"</script><style>.a{background:url(https://cdn.third.example/bg.png)}.b{background:url(bg2.png)}"
    b".c{background:url(https://not-allowed.example/k.png)}</style></head><body>"
    b'<div style="background:url(\'https://cdn.third.example/d.png\')">d</div>'
    b'<noscript><img src="https://cdn.third.example/ns.png?x=1&amp;y=2"><img src="rel/ns2.png">'
    b'<img src="https://not-allowed.example/ns3.png"><a href="https://landing.example/buy">buy</a>'
    b'<iframe src="javascript:alert(1)"></iframe></noscript>'
    b'<a href="javascript:alert(2)">j</a><img src="data:image/png;base64,AAAA"></body></html>'
)


def test_inline_scripts_noscript_and_css_are_signed_like_publisher_pages() -> None:
    out = relay([DOC]).decode()
    script = out.split("<script>")[1].split("</script>")[0]
    assert target(script.split('s.src="')[1].split('"')[0]) == "https://cdn.third.example/t.js?a=1&b=2"
    assert target(script.split("var p='")[1].split("'")[0]) == "https://x.ads.example/pixel.gif"
    escaped = script.split('{"u":"')[1].split('"')[0]
    assert escaped.startswith("\\/first-party\\/proxy?url=")
    assert target(escaped.replace("\\/", "/")) == "https://cdn.third.example/c.json"
    # off the list: as written (a scheme-relative one is not even made absolute), and never a scheme
    # that is not http(s), nor an operand of +
    for kept in ('var keep="https://not-allowed.example/x.js"', "var keep2='//not-allowed.example/y.js'",
                 'var j="javascript:void(0)"', 'var d="data:image/gif;base64,R0lGOD"',
                 'var cat="https://cdn.third.example/" + f'):
        assert kept in script, kept
    style = out.split("<style>")[1].split("</style>")[0]
    urls = [u.split(")")[0].strip("\"'") for u in style.split("url(")[1:]]
    assert target(urls[0]) == "https://cdn.third.example/bg.png"
    assert target(urls[1]) == "https://x.ads.example/c/bg2.png"  # relative: against the document's URL
    assert urls[2] == "https://not-allowed.example/k.png"
    div = out.split("<div style=\"")[1].split('"')[0]
    assert target(div.split("url(")[1].split(")")[0].strip("'").replace("&#39;", "")) == (
        "https://cdn.third.example/d.png")
    noscript = out.split("<noscript>")[1].split("</noscript>")[0]
    imgs = [s.split('"')[0] for s in noscript.split('<img src="')[1:]]
    assert target(imgs[0]) == "https://cdn.third.example/ns.png?x=1&y=2"
    assert target(imgs[1]) == "https://x.ads.example/c/rel/ns2.png"
    assert imgs[2] == "https://not-allowed.example/ns3.png"
    click = noscript.split('<a href="')[1].split('"')[0]
    assert target(click, "click") == "https://landing.example/buy"  # a link is a signed redirect, as outside
    assert '<iframe src="javascript:alert(1)">' in noscript
    assert '<a href="javascript:alert(2)">' in out and '<img src="data:image/png;base64,AAAA">' in out


def test_every_chunking_gives_the_same_bytes() -> None:
    whole = relay([DOC])
    rnd = random.Random(17)
    for _ in range(300):
        at = sorted(rnd.randrange(len(DOC)) for _ in range(rnd.randint(1, 12)))
        assert relay(cut(DOC, at)) == whole
    assert relay([DOC[i : i + 1] for i in range(len(DOC))]) == whole


PIECES = [
    '"', "'", "`", "https://cdn.third.example/a.js", "//x.ads.example/p", "https:\\/\\/cdn.third.example\\/j",
    "//not-allowed.example/n", "javascript:x()", "?q=1&r=2", " ", "\n", " + ", "x", ";", "=", "${p}", "(", ")",
]
scripts = st.lists(st.sampled_from(PIECES), max_size=30).map(lambda xs: "".join(xs).encode())
points = st.lists(st.integers(min_value=0, max_value=100_000), max_size=10)


@settings(max_examples=60, deadline=None)
@given(scripts, points)
def test_long_script_streams_and_equals_the_whole_body_rule(js: bytes, at: list[int]) -> None:
    """A body over ``stream_text_after`` (32 KiB) is streamed (``ScriptUrlStream``), not held whole,
    with the bytes the whole-body rule gives."""
    body = js + b";" + b" " * 40_000 + b'var late="https://cdn.third.example/late.js";' + js
    doc = b"<p>x</p><script>" + body + b"</script><p>y</p>"
    out = relay(cut(doc, at))
    assert out == b"<p>x</p><script>" + sign_script(minter(), ALLOWED.needles(), body) + b"</script><p>y</p>"
    assert b'var late="/first-party/proxy?url=' in out


def test_long_script_over_max_text_bytes_is_still_signed() -> None:
    """Streamed bodies are not bounded by ``max_text_bytes`` (their hold is ``max_css_token_bytes``)."""
    body = b" " * 200_000 + b'u="https://cdn.third.example/far.js";'
    out = relay([b"<script>", body[:70_000], body[70_000:], b"</script>"], max_text_bytes=64 * 1024)
    assert b'u="/first-party/proxy?url=' in out and b"far.js" not in out.split(b"url=")[0]
    got = out.split(b'u="')[1].split(b'"')[0].decode()
    assert parse_qs(urlsplit(got).query)["url"][0] == "https://cdn.third.example/far.js"


def test_utf16_documents_pass_unmodified() -> None:
    """The publisher pages' charset gate: a UTF-16 document (declared, or by its BOM) is not parsed
    as ASCII markup (its characters may be the bytes of a tag: ``in_utf16le``)."""
    from sluicegate.gate import charset_of
    from sluicegate.pipeline.html.processor import charset_gate
    from tests.integration.firstparty.conftest import in_utf16le

    text = ('<script>u="https://cdn.third.example/a.js"</script><img src="https://cdn.third.example/i">'
            + in_utf16le("<base href=x >") + in_utf16le('<img src="https://cdn.third.example/j" >'))
    for charset, body in (("utf-16", text.encode("utf-16")), (None, text.encode("utf-16")),
                          ("utf-16le", text.encode("utf-16le"))):
        assert relay([body]) != body  # what the gate prevents
        gated = charset_gate(proxied_html(minter(), max_tag_bytes=65536, max_text_bytes=1 << 20), charset)
        out = b"".join(gated.feed(c) for c in cut(body, [1, 7, 40])) + gated.finish()
        assert out == body, charset
    assert charset_of('text/html; charset="UTF-16"') == "utf-16" and charset_of("text/html") is None
    gated = charset_gate(proxied_html(minter(), max_tag_bytes=65536, max_text_bytes=1 << 20), "utf-8")
    assert b"/first-party/proxy?url=" in gated.feed(text.encode()) + gated.finish()
