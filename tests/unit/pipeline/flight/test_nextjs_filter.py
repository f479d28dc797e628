"""The Next.js script filter inside the real HTML rewriter: slots, streaming, caps, __NEXT_DATA__."""

from __future__ import annotations

import json
import logging

import pytest

from sluicegate.config.flight import FlightSettings
from sluicegate.config.html import HtmlSettings
from sluicegate.pipeline import Transformer
from sluicegate.pipeline.flight import NextjsScriptFilter, build_next_script_filter
from sluicegate.pipeline.html import build_html_processor

from .helpers import push_script, rewriter, run_stream, stream_of


def processor(settings: FlightSettings | None = None) -> tuple[Transformer, NextjsScriptFilter]:
    f = build_next_script_filter(rewriter(), settings or FlightSettings())
    return build_html_processor(rewriter(), HtmlSettings(), script_filter=f), f


def script(body: bytes) -> bytes:
    return b"<script>" + body + b"</script>"


def t_row(row_id: str, content: bytes) -> bytes:
    return b"%s:T%x," % (row_id.encode(), len(content)) + content


CONTENT = "Grüße https://origin.example.com/ä <b>".encode()
ROW = t_row("1", CONTENT)
PAGE = (
    b'<!DOCTYPE html><html><head></head><body><a href="https://origin.example.com/a">a</a>'
    + script(b"(self.__next_f=self.__next_f||[]).push([0])")
    + script(push_script(b'0:["https://origin.example.com/r"]\n' + ROW[:8]))
    + b"<p>between</p>"
    + script(push_script(ROW[8:]))
    + b"<p>after</p>"
    + script(push_script(b'2:"https://origin.example.com"\n'))
    + b'<script id="__NEXT_DATA__" type="application/json">{"props":{"url":"https://origin.example.com/x",'
    + b'"other":"https://origin.example.com.evil/y"}}</script>'
    + script(b'console.log("https://origin.example.com")')
    + b"</body></html>"
)


def run(chunks: list[bytes]) -> bytes:
    p, _ = processor()
    return b"".join(p.feed(c) for c in chunks) + p.finish()


def flight_of(html: bytes) -> bytes:
    scripts = [s.split(b">", 1)[1] for s in html.split(b"</script>")[:-1] if b"__next_f.push([1" in s]
    return stream_of(scripts)


def test_page_rewritten_and_flight_lengths_recomputed() -> None:
    out = run([PAGE])
    assert b'href="https://www.example.com/a"' in out
    assert flight_of(out) == run_stream([flight_of(PAGE)])
    assert b'"url":"https://www.example.com/x"' in out
    assert b'"other":"https://origin.example.com.evil/y"' in out  # hostname boundary
    assert b'console.log("https://www.example.com")' in out  # other scripts: the HTML rule
    assert b"(self.__next_f=self.__next_f||[]).push([0])" in out


def test_every_chunking_gives_the_same_document() -> None:
    whole = run([PAGE])
    for k in range(0, len(PAGE) + 1, 3):
        assert run([PAGE[:k], PAGE[k:]]) == whole, k
    assert run([bytes([b]) for b in PAGE]) == whole


def test_html_is_never_held_behind_an_open_t_row() -> None:
    p, f = processor()
    cut = PAGE.index(b"<p>between</p>") + len(b"<p>between</p>")
    first = p.feed(PAGE[:cut])
    assert b'href="https://www.example.com/a"' in first
    assert b"<p>between</p>" in first  # streamed although a T row is still open
    assert f.inline.held_bytes > 0  # its bytes wait in the Flight lexer, not in the HTML output
    rest = p.feed(PAGE[cut:]) + p.finish()
    assert flight_of(first + rest) == run_stream([flight_of(PAGE)])
    assert f.max_html_held == 0


def test_scripts_without_open_t_rows_do_not_hold_anything() -> None:
    rows = b"".join(script(push_script(b'%d:["https://origin.example.com/%d"]\n' % (i, i))) for i in range(20))
    p, _ = processor()
    out = p.feed(b"<html><body>" + rows + b"<p>tail")
    assert out.count(b"www.example.com") == 20
    assert b"<p>" in out


def test_t_row_over_the_hold_cap_passes_through_unrewritten(caplog: pytest.LogCaptureFixture) -> None:
    big = t_row("1", b"https://origin.example.com " + b"x" * 3000)
    page = (
        b"<html><body>"
        + script(push_script(big[:40]))
        + b"<p>"
        + b"y" * 2000
        + b"</p>"
        + script(push_script(big[40:100]))
        + script(push_script(big[100:] + b'2:"https://origin.example.com"\n'))
        + b"</body></html>"
    )
    p, f = processor(FlightSettings(max_inline_hold_bytes=1024))
    with caplog.at_level(logging.WARNING):
        out = p.feed(page) + p.finish()
    assert flight_of(out) == big + b'2:"https://www.example.com"\n'
    assert f.inline.max_held_bytes <= 1024
    assert "unrewritten" in caplog.text


def test_document_ending_inside_a_row_gets_one_extra_push() -> None:
    page = (
        b"<html><body>"
        + b'<script nonce="n&1">'
        + push_script(b'0:"a"\n1:T99,https://origin.example.com')
        + b"</script><p>x</p>"
    )
    out = run([page])
    assert out.startswith(b'<html><body><script nonce="n&1">' + push_script(b'0:"a"\n1:') + b"</script><p>x</p>")
    extra = b'<script nonce="n&amp;1">' + push_script(b"T99,https://origin.example.com") + b"</script>"
    assert out.endswith(extra)
    assert flight_of(out) == flight_of(page)  # a truncated T row is passed through raw


def test_disabled_flight_leaves_inline_flight_untouched() -> None:
    p, _ = processor(FlightSettings(enabled=False))
    out = p.feed(PAGE) + p.finish()
    assert flight_of(out) == flight_of(PAGE)  # not rewritten, and not broken by the generic rule
    assert b'href="https://www.example.com/a"' in out
    assert b'console.log("https://www.example.com")' in out
    json.loads(out.split(b'type="application/json">')[1].split(b"</script>")[0])


def test_without_the_filter_the_generic_rule_breaks_t_lengths() -> None:
    # Why the filter exists: a blind host rewrite keeps the old T length.
    p = build_html_processor(rewriter(), HtmlSettings())
    out = p.feed(PAGE) + p.finish()
    assert b"www.example.com" in flight_of(out)
    assert flight_of(out) != run_stream([flight_of(PAGE)])


def _broken_page(bad_body: bytes) -> bytes:
    """A T row opened in one push and continued in a script the filter cannot take."""
    return (
        b"<html><body>"
        + b'<script nonce="n1">' + push_script(b'0:["https://origin.example.com/r"]\n' + ROW[:8]) + b"</script>"
        + b'<script nonce="n1">' + bad_body + b"</script>"
        + b"<p>after</p></body></html>"
    )


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_unreadable_push_gets_the_carried_bytes_in_a_script_before_it(
    cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    bad = b'self.__next_f.push([1,"' + ROW[8:].replace(b"\n", b"\\n") + b'" + ""])'  # valid JS we do not parse
    page = _broken_page(bad)
    with caplog.at_level(logging.WARNING):
        out = run([page[:cut], page[cut:]])
    # The row id left with the first script; the held T header and content did not.
    carried = b'<script nonce="n1">self.__next_f.push([1,"' + ROW[2:8] + b'"])</script>'
    assert carried + b'<script nonce="n1">' + bad + b"</script>" in out
    # In document order the browser pushes: rewritten row 0, the T row's start, then its rest.
    assert flight_of(out.split(bad)[0]) == b'0:["https://www.example.com/r"]\n' + ROW[:8]
    assert "unreadable" in caplog.text


def test_push_over_max_text_bytes_breaks_the_stream_in_order(caplog: pytest.LogCaptureFixture) -> None:
    filler = b"x" * 3000
    bad = push_script(ROW[8:] + b"\n3:" + filler)
    page = _broken_page(bad)
    f = build_next_script_filter(rewriter(), FlightSettings())
    p = build_html_processor(rewriter(), HtmlSettings(max_text_bytes=1024), script_filter=f)
    with caplog.at_level(logging.WARNING):
        out = b"".join(p.feed(page[i : i + 512]) for i in range(0, len(page), 512)) + p.finish()
    # The long script streams through unmodified, preceded by its own script with the carried bytes.
    carried = b'<script nonce="n1">self.__next_f.push([1,"' + ROW[2:8] + b'"])</script>'
    assert carried + b'<script nonce="n1">' + bad + b"</script>" in out
    assert flight_of(out) == b'0:["https://www.example.com/r"]\n' + ROW + b"\n3:" + filler
    assert "max_text_bytes" in caplog.text
