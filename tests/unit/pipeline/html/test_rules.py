"""sluicegate's HTML rules through build_html_processor: URLs, scripts, styles, injection, charset."""

from __future__ import annotations

import pytest

from sluicegate.config.html import HtmlSettings
from sluicegate.pipeline.html import ScriptText, build_html_processor
from tests.unit.pipeline.html.helpers import host_rewriter, run, run_all_splits

RW = host_rewriter()
PLAIN = HtmlSettings()
INJ = HtmlSettings(head_inject=["<script>H()</script>"], body_end_inject=["<script>B()</script>"])


def rewrite(html: str, settings: HtmlSettings = PLAIN, **kw: object) -> str:
    out = run_all_splits(lambda: build_html_processor(RW, settings, **kw), html.encode())  # type: ignore[arg-type]
    return out.decode()


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ('<a href="https://origin.example.com/p">', '<a href="https://www.example.com/p">'),
        ("<a href='http://origin.example.com/p'>", "<a href='https://www.example.com/p'>"),
        ("<a href=//origin.example.com/p>", "<a href=//www.example.com/p>"),
        ('<A HREF="HTTPS://ORIGIN.EXAMPLE.COM/x">', '<A HREF="https://www.example.com/x">'),
        ('<form action="https://origin.example.com/s">', '<form action="https://www.example.com/s">'),
        ('<button formaction="https://origin.example.com/f">', '<button formaction="https://www.example.com/f">'),
        ('<video poster="https://origin.example.com/p.jpg">', '<video poster="https://www.example.com/p.jpg">'),
        ('<object data="https://origin.example.com/o.swf">', '<object data="https://www.example.com/o.swf">'),
        ('<q cite="https://origin.example.com/c">', '<q cite="https://www.example.com/c">'),
        ('<td background="https://origin.example.com/b.gif">', '<td background="https://www.example.com/b.gif">'),
        ('<img longdesc="https://origin.example.com/d">', '<img longdesc="https://www.example.com/d">'),
        ('<html manifest="https://origin.example.com/m">', '<html manifest="https://www.example.com/m">'),
        ('<a ping="https://origin.example.com/p1 /rel https://origin.example.com/p2">',
         '<a ping="https://www.example.com/p1 /rel https://www.example.com/p2">'),
        ('<svg><a xlink:href="https://origin.example.com/s"/></svg>',
         '<svg><a xlink:href="https://www.example.com/s"/></svg>'),
        ('<img srcset="https://origin.example.com/a.jpg 1x,https://origin.example.com/b.jpg 2x, /c.jpg 3x">',
         '<img srcset="https://www.example.com/a.jpg 1x,https://www.example.com/b.jpg 2x, /c.jpg 3x">'),
        ('<link imagesrcset="//origin.example.com/a.jpg 640w, https://cdn.example.net/b.jpg 1280w">',
         '<link imagesrcset="//www.example.com/a.jpg 640w, https://cdn.example.net/b.jpg 1280w">'),
        ('<meta http-equiv="refresh" content="5; URL=\'https://origin.example.com/r\'">',
         '<meta http-equiv="refresh" content="5; URL=\'https://www.example.com/r\'">'),
        ('<meta property="og:image" content="https://origin.example.com/og.png">',
         '<meta property="og:image" content="https://www.example.com/og.png">'),
        ('<meta name="description" content="https://origin.example.com/ is great">',
         '<meta name="description" content="https://www.example.com/ is great">'),
        ('<link rel=canonical href=https://origin.example.com/x>', '<link rel=canonical href=https://www.example.com/x>'),
        ('<div style="background:url(&quot;https://origin.example.com/bg.png&quot;)">',
         '<div style="background:url(&quot;https://www.example.com/bg.png&quot;)">'),
        ('<img src="https:&#x2F;&#x2F;origin.example.com/i.png">',
         '<img src="https:&#x2F;&#x2F;www.example.com/i.png">'),
        ("<img src='&#104;ttps://origin.example.com/i.png'>", "<img src='&#104;ttps://www.example.com/i.png'>"),
        ('<img src=https:&#x2F;&#x2F;origin.example.com/i.png>', '<img src=https://www.example.com/i.png>'),
        # unchanged parts of a rewritten value are kept byte for byte
        ('<a href="https://origin.example.com/a?x=1&y=2&amp;z=3">',
         '<a href="https://www.example.com/a?x=1&y=2&amp;z=3">'),
        ('<a href="https://origin.example.com/a?x=1&y=2">', '<a href="https://www.example.com/a?x=1&y=2">'),
        # not rewritten: other hosts, suffix hosts, relative URLs, data-* attributes, text, comments
        ('<a href="https://origin.example.com.evil.com/">', '<a href="https://origin.example.com.evil.com/">'),
        # the one mapping: every value and text node, at hostname boundaries
        ('<a href="https://cdn.example.net/?u=https://origin.example.com/">',
         '<a href="https://cdn.example.net/?u=https://www.example.com/">'),
        ('<a href="/rel" data-x="https://origin.example.com/">', '<a href="/rel" data-x="https://www.example.com/">'),
        ("<p>https://origin.example.com/</p>", "<p>https://www.example.com/</p>"),
        ("<!-- https://origin.example.com/ -->", "<!-- https://origin.example.com/ -->"),
        # duplicate attributes: the first is the one browsers use
        ('<a href="https://origin.example.com/1" href="https://origin.example.com/2">',
         '<a href="https://www.example.com/1" href="https://origin.example.com/2">'),
    ],
)
def test_url_attributes(src: str, expected: str) -> None:
    assert rewrite(src) == expected


def test_script_and_style_bodies_written_raw() -> None:
    src = ('<script>if (a < b && c > d) location = "https:\\/\\/origin.example.com\\/x";</script>'
           '<style>.a > .b { background: url(https://origin.example.com/i.png) } '
           '@import "//origin.example.com/p.css";</style>'
           '<script type="application/ld+json">{"url":"https://origin.example.com/n"}</script>')
    assert rewrite(src) == (
        '<script>if (a < b && c > d) location = "https:\\/\\/www.example.com\\/x";</script>'
        '<style>.a > .b { background: url(https://www.example.com/i.png) } '
        '@import "//www.example.com/p.css";</style>'
        '<script type="application/ld+json">{"url":"https://www.example.com/n"}</script>'
    )


def test_tricky_script_content_is_one_script() -> None:
    src = ('<script>var s = "</scr" + "ipt>"; // <!--<script> x </script> still script\n'
           'u = "https://origin.example.com/a" --></script><p>https://origin.example.com/t</p>')
    assert rewrite(src) == src.replace("https://origin.example.com/", "https://www.example.com/")


def test_head_injection_first_children_of_first_head() -> None:
    src = "<!DOCTYPE html><html><HEAD data-x=1><title>t</title></head><head></head><body>x</body></html>"
    assert rewrite(src, INJ) == (
        "<!DOCTYPE html><html><HEAD data-x=1><script>H()</script><title>t</title></head><head></head>"
        "<body>x<script>B()</script></body></html>"
    )


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("<html><title>t</title><div>x</div>", "<html><title>t</title><script>H()</script><div>x</div>"
         "<script>B()</script>"),
        ("<meta charset=utf-8>\n  Hello", "<meta charset=utf-8>\n  <script>H()</script>Hello<script>B()</script>"),
        ("<body><p>x</p></body>", "<script>H()</script><body><p>x</p><script>B()</script></body>"),
        ("", "<script>H()</script><script>B()</script>"),
    ],
)
def test_injection_without_head(src: str, expected: str) -> None:
    assert rewrite(src, INJ) == expected


def test_body_end_ignores_body_strings_in_scripts_and_comments() -> None:
    src = ('<head></head><body><script>document.write("</body>")</script><!-- </body> -->'
           "<textarea></body></textarea><p>x</p></BODY ><body></body>")
    assert rewrite(src, INJ) == (
        '<head><script>H()</script></head><body><script>document.write("</body>")</script><!-- </body> -->'
        "<textarea></body></textarea><p>x</p><script>B()</script></BODY ><body></body>"
    )


def test_inject_false_disables_snippets() -> None:
    src = "<html><head></head><body>x</body></html>"
    assert rewrite(src, INJ, inject=False) == src


def test_utf16_passes_through() -> None:
    body = "<a href='https://origin.example.com/'>".encode("utf-16")
    assert run(lambda: build_html_processor(RW, INJ), [body[:1], body[1:]]) == body
    body_be = "<a href='https://origin.example.com/'>".encode("utf-16-be")
    assert run(lambda: build_html_processor(RW, INJ, charset="UTF-16BE"), [body_be]) == body_be


def test_latin1_bytes_preserved() -> None:
    src = b'<p title="caf\xe9">\xe9</p><a href="https://origin.example.com/\xe9">'
    out = run(lambda: build_html_processor(RW, PLAIN, charset="iso-8859-1"), [src])
    assert out == b'<p title="caf\xe9">\xe9</p><a href="https://www.example.com/\xe9">'


def test_script_filter_sees_whole_script_and_can_claim_it() -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []

    def filt(s: ScriptText) -> bool:
        seen.append((s.raw, s.attrs))
        if b"__next_f" in s.raw:
            s.replace(s.raw.replace(b"push", b"PUSH"))
            return True
        return False

    src = ('<script id="a" nonce=x>self.__next_f.push([1,"https://origin.example.com/"])</script>'
           '<script>u="https://origin.example.com/"</script>')
    out = rewrite(src, PLAIN, script_filter=filt)
    assert out == ('<script id="a" nonce=x>self.__next_f.PUSH([1,"https://origin.example.com/"])</script>'
                   '<script>u="https://www.example.com/"</script>')
    assert seen[0] == (b'self.__next_f.push([1,"https://origin.example.com/"])', {"id": "a", "nonce": "x"})


def test_long_script_streams_through_the_mapping() -> None:
    settings = HtmlSettings(max_text_bytes=1024)  # over it: streamed (bounded hold), not held whole
    body = "x" * 2000 + "https://origin.example.com/"
    src = f"<script>{body}</script><style>{body}</style><a href='https://origin.example.com/'>"
    assert rewrite(src, settings) == src.replace("origin.example.com", "www.example.com")
