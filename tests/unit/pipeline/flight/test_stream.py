"""``text/x-component`` rewriting: framing of every React 19 row kind, chunk independence, caps."""

from __future__ import annotations

import logging

import pytest

from sluicegate.config.flight import FlightSettings
from sluicegate.pipeline import Identity
from sluicegate.pipeline.flight import FlightStreamRewriter, build_flight_processor
from sluicegate.pipeline.flight.lexer import LENGTH_TAGS, LINE_TAGS

from .helpers import rewriter, run_stream


def t_row(row_id: str, content: bytes) -> bytes:
    return b"%s:T%x," % (row_id.encode(), len(content)) + content


def all_splits(src: bytes) -> None:
    whole = run_stream([src])
    for k in range(len(src) + 1):
        assert run_stream([src[:k], src[k:]]) == whole, f"split at {k}"
    assert run_stream([bytes([b]) for b in src]) == whole
    for k in range(1, len(src)):
        for j in range(k, len(src), 5):
            assert run_stream([src[:k], b"", src[k:j], src[j:]]) == whole


def test_spec_examples() -> None:
    assert run_stream([b'0:["https://origin.example.com/page"]\n']) == b'0:["https://www.example.com/page"]\n'
    src = b'1:T29,{"url":"https://origin.example.com/page"}2:["ok"]\n'
    assert run_stream([src]) == b'1:T26,{"url":"https://www.example.com/page"}2:["ok"]\n'
    all_splits(src)


def test_hostname_boundaries_and_forms() -> None:
    src = (
        b'0:["cdn.origin.example.com","notorigin.example.com","origin.example.com.uk",'
        b'"origin.example.com/news","origin.example.com","//origin.example.com/a",'
        b'"https:\\/\\/origin.example.com\\/b","http://origin.example.com/c"]\n'
    )
    assert run_stream([src]) == (
        b'0:["cdn.origin.example.com","notorigin.example.com","origin.example.com.uk",'
        b'"www.example.com/news","www.example.com","//www.example.com/a",'
        b'"https:\\/\\/www.example.com\\/b","https://www.example.com/c"]\n'
    )
    all_splits(src)


def test_t_row_multibyte_content_split_everywhere() -> None:
    content = "Grüße ☕ 𝄞 https://origin.example.com/ä?x=1\nzweite Zeile 日本".encode()
    src = b'0:"$1"\n' + t_row("1", content) + b'2:{"u":"//origin.example.com"}\n'
    out = run_stream([src])
    new = content.replace(b"origin.example.com", b"www.example.com")
    assert out == b'0:"$1"\n' + t_row("1", new) + b'2:{"u":"//www.example.com"}\n'
    assert len(new) != len(new.decode())  # bytes, not characters
    all_splits(src)


def test_t_row_unchanged_keeps_original_header_bytes() -> None:
    # Upper-case hex and leading zeros are kept when the content does not change.
    src = b"5:T00A,0123456789" + b'6:"x"\n'
    assert run_stream([src]) == src


def test_t_row_that_ends_on_a_host_is_judged_without_the_next_row() -> None:
    src = t_row("a", b"see https://origin.example.com") + b'b:"next"\n'
    assert run_stream([src]) == t_row("a", b"see https://www.example.com") + b'b:"next"\n'
    all_splits(src)


@pytest.mark.parametrize("tag", sorted(chr(t) for t in LENGTH_TAGS - {ord("T")}))
def test_binary_rows_are_copied_byte_exact(tag: str) -> None:
    payload = b"\n:T5,https://origin.example.com\n\x00\xff"
    src = b"1:%s%x," % (tag.encode(), len(payload)) + payload + b'2:["https://origin.example.com"]\n'
    out = run_stream([src])
    assert out == b"1:%s%x," % (tag.encode(), len(payload)) + payload + b'2:["https://www.example.com"]\n'
    all_splits(src)


def test_react19_length_tags_are_exactly_those_of_the_client() -> None:
    assert bytes(sorted(LENGTH_TAGS)) == bytes(sorted(b"TAOobUSsLlGgMmV"))
    assert {ord("#"), ord("r"), ord("x"), ord("I"), ord("H"), ord("E"), ord("D"), ord("W")} <= LINE_TAGS
    assert not (LINE_TAGS & LENGTH_TAGS)


def test_tagged_and_untagged_line_rows() -> None:
    src = (
        b'1:I["chunk","https://origin.example.com/_next/x.js"]\n'
        b'2:HL["https://origin.example.com/font.woff2","font"]\n'
        b'3:E{"message":"at https://origin.example.com"}\n'
        b'4:D{"name":"x"}\n'
        b'5:#"dbg"\n'
        b"6:r\n"
        b"7:x\n"
        b"8:C\n"
        b"9:123\n"
        b'a:$"x"\n'
        b"b:null\n"
    )
    assert run_stream([src]) == src.replace(b"origin.example.com", b"www.example.com")
    all_splits(src)


def test_final_row_without_newline_is_rewritten() -> None:
    assert run_stream([b'0:["https://origin.example.com/a"]']) == b'0:["https://www.example.com/a"]'
    assert run_stream([b'0:["https://origin.exa', b'mple.com"]']) == b'0:["https://www.example.com"]'


def test_truncated_t_row_at_end_passes_through_raw() -> None:
    src = b"1:T40,https://origin.example.com"
    assert run_stream([src]) == src
    assert run_stream([b"1:T4"]) == b"1:T4"


def test_t_row_over_the_cap_passes_through_with_original_length(caplog: pytest.LogCaptureFixture) -> None:
    content = b"https://origin.example.com/" + b"x" * 3000
    src = t_row("1", content) + b'2:"https://origin.example.com"\n'
    settings = FlightSettings(max_row_bytes=1024)
    with caplog.at_level(logging.WARNING):
        out = run_stream([src[:10], src[10:]], settings)
    assert out == t_row("1", content) + b'2:"https://www.example.com"\n'
    assert "unrewritten" in caplog.text
    p = FlightStreamRewriter(rewriter(), settings)
    for i in range(0, len(src), 100):
        p.feed(src[i : i + 100])
    assert p.max_held <= 1024


def test_hold_is_bounded_by_the_open_t_row() -> None:
    rows = [b'0:["https://origin.example.com/%d"]\n' % i for i in range(200)]
    big = t_row("z", b"y" * 5000 + b"https://origin.example.com")
    src = b"".join(rows[:100]) + big + b"".join(rows[100:])
    p = FlightStreamRewriter(rewriter(), FlightSettings())
    out = b""
    for i in range(0, len(src), 64):
        out += p.feed(src[i : i + 64])
        assert p.lexer.held_bytes <= len(big)
    out += p.finish()
    assert out == run_stream([src])
    assert p.max_held <= len(big)


def test_newline_rows_stream_without_waiting_for_the_newline() -> None:
    p = FlightStreamRewriter(rewriter(), FlightSettings())
    first = p.feed(b'0:["' + b"a" * 1000)
    assert first == b'0:["' + b"a" * 1000  # emitted before the row ends
    partial = p.feed(b" https://origin.exa")  # could still become a reference: held
    assert partial == b" "
    rest = p.feed(b'mple.com/x"]\n')
    assert rest == b'https://www.example.com/x"]\n'


def test_garbage_passes_through_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    src = b"<html>https://origin.example.com</html>\n"
    with caplog.at_level(logging.WARNING):
        assert run_stream([src]) == src
    assert "not understood" in caplog.text
    assert run_stream([b"1:Tzz,abc"]) == b"1:Tzz,abc"


def test_disabled_is_identity() -> None:
    assert isinstance(build_flight_processor(rewriter(), FlightSettings(enabled=False)), Identity)


def test_empty_input() -> None:
    assert run_stream([]) == b""
    assert run_stream([b"", b""]) == b""
