"""Inline ``__next_f`` Flight: rows split across scripts, escapes, streaming holds, caps."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from sluicegate.pipeline.flight import InlineFlightRewriter

from .helpers import push_script, rewriter, run_inline, run_stream, split_scripts, stream_of


def t_row(row_id: str, content: bytes) -> bytes:
    return b"%s:T%x," % (row_id.encode(), len(content)) + content


CONTENT = 'Grüße ☕ 𝄞 <b>"q"</b>\n https://origin.example.com/ä\\x //origin.example.com'.encode()
ROW_1 = t_row("1", CONTENT)
STREAM = (
    b'0:["$","a",null,{"href":"https://origin.example.com/x"}]\n'
    + t_row("1", CONTENT)
    + b'2:["https://origin.example.com/y","\xc3\xa9"]\n'
    + t_row("3", b"no references here, just \xe2\x98\x95")
    + b'4:"$1"\n'
)


def test_every_split_into_two_and_three_scripts() -> None:
    want = run_stream([STREAM])
    assert want != STREAM
    n = 0
    for i in range(len(STREAM) + 1):
        for j in range(i, len(STREAM) + 1, 3):
            scripts = split_scripts(STREAM, [i, j])
            if scripts is None:
                continue
            out, r, _ = run_inline(scripts)
            assert stream_of(out) == want, (i, j)
            for before, after in zip(scripts, out, strict=True):
                if stream_of([before]) == stream_of([after]):
                    assert before == after  # unchanged scripts are byte-identical
                json.loads(after.decode()[len("self.__next_f.push(") : -1])  # still valid
            assert r.max_held_bytes <= len(ROW_1) + rewriter().hold
            n += 1
    assert n > 1000


def test_t_header_in_one_script_content_in_later_ones() -> None:
    head = b'0:"$1"\n1:T'
    rest = t_row("1", CONTENT)[len(b"1:T") :]
    scripts = [push_script(head), push_script(rest[:3]), push_script(rest[3:20]), push_script(rest[20:])]
    out, _, carried = run_inline(scripts)
    assert stream_of(out) == run_stream([b'0:"$1"\n' + t_row("1", CONTENT)])
    new_len = len(CONTENT.replace(b"origin.example.com", b"www.example.com"))
    # Every script is answered at once; the open T row moves on to the script that closes it.
    assert [json.loads(o.decode()[19:-1])[1] for o in out[:3]] == ['0:"$1"\n1:', "", ""]
    assert json.loads(out[3].decode()[19:-1])[1].startswith(f"T{new_len:x},Grüße")
    assert carried == [1, 4, 21, 0]


def test_no_script_is_held_and_hold_is_bounded_by_the_t_row() -> None:
    rows = [b'%d:["https://origin.example.com/%d"]\n' % (i, i) for i in range(5)]
    big = t_row("9", b"x" * 500 + b" https://origin.example.com")
    scripts = [push_script(r) for r in rows[:2]]
    scripts += [push_script(rows[2] + big[:100]), push_script(big[100:300]), push_script(big[300:] + rows[3])]
    scripts += [push_script(rows[4])]
    out, r, carried = run_inline(scripts)
    assert len(out) == len(scripts)
    assert stream_of(out) == run_stream([b"".join(rows[:3]) + big + rows[3] + rows[4]])
    assert carried == [0, 0, 98, 298, 0, 0]
    assert r.max_held_bytes == 298 <= len(big)
    assert stream_of([out[2]]).endswith(b"9:")


def test_url_split_across_two_pushes_in_a_json_row() -> None:
    row = b'0:["https://origin.example.com/page"]\n'
    for k in range(len(row) + 1):
        out, _, carried = run_inline([push_script(row[:k]), push_script(row[k:])])
        assert stream_of(out) == b'0:["https://www.example.com/page"]\n', k
        # Only a tail that could still begin a reference is carried into the next push.
        tail = row[:k]
        forms = (b"https://origin.example.com", b"//origin.example.com", b"origin.example.com")
        undecided = any(
            f.startswith(tail[p:]) or tail[p:].startswith(f)
            for p in range(max(0, k - rewriter().hold), k)
            for f in forms
        ) and not tail.endswith(b"\n")
        assert (carried[0] > 0) == undecided, k
        assert carried[1] == 0


def test_url_split_across_two_pushes_in_a_t_row() -> None:
    src = t_row("1", b"go to https://origin.example.com/x now") + b'2:"ok"\n'
    for k in range(len(src) + 1):
        out, _, _ = run_inline([push_script(src[:k]), push_script(src[k:])])
        assert stream_of(out) == t_row("1", b"go to https://www.example.com/x now") + b'2:"ok"\n'


def test_escapes_that_change_byte_length_single_quoted_source() -> None:
    # Hand-written (non-Next) escaping: \x, \u, \u{...} forms; the T length counts UTF-8 bytes.
    content = "é☕𝄞\n'\" https://origin.example.com/é".encode()
    header = b"1:T%x," % len(content)
    body = f"1:T{len(content):x}," + r"\xe9\u2615\u{1D11E}\n\'\" https:\/\/origin.example.com\/\u00e9"
    script = ("self.__next_f.push([1,'" + body + "'])").encode()
    out, _, _ = run_inline([script])
    new = content.replace(b"origin.example.com", b"www.example.com")
    assert stream_of(out) == b"1:T%x," % len(new) + new
    assert header != b"1:T%x," % len(new)
    assert out[0].startswith(b"self.__next_f.push([1,'") and out[0].endswith(b"'])")


def test_binary_pushes_and_typed_array_rows() -> None:
    typed = b"\x00\n\xff:T3,\xfe"
    src_rows = [
        b'0:["https://origin.example.com"]\n',
        b"1:O%x," % len(typed) + typed,
        b'2:"https://origin.example.com"\n',
    ]
    scripts = [push_script(src_rows[0]), push_script(src_rows[1], kind=3), push_script(src_rows[2])]
    out, _, carried = run_inline(scripts)
    assert out[1] == scripts[1]
    assert stream_of(out) == b'0:["https://www.example.com"]\n' + src_rows[1] + b'2:"https://www.example.com"\n'
    assert carried == [0, 0, 0]
    decoded = base64.b64decode(json.loads(out[1].decode()[19:-1])[1])
    assert decoded == src_rows[1]


def test_push_forms() -> None:
    row = '0:[\\"https://origin.example.com/a\\"]\\n'
    scripts = [
        b"(self.__next_f=self.__next_f||[]).push([0])",
        ("window.__next_f.push([1, '" + row + "']);").encode(),
        ('(self.__next_f = self.__next_f || []).push([1,"' + row + '"])').encode(),
        ('self.__next_f.push([1,"' + row + '"]);self.__next_f.push([1,"' + row + '"])').encode(),
        b'self.__next_f.push([2,{"form":"https://origin.example.com"}])',
        b"console.log('unrelated https://origin.example.com')",
    ]
    out, r, _ = run_inline(scripts)
    assert out[0] == scripts[0] and out[4] == scripts[4] and out[5] == scripts[5]  # not Flight data
    assert b"www.example.com" in out[1] and b"origin.example.com" not in out[1]
    assert out[1].startswith(b"window.__next_f.push([1, '") and out[1].endswith(b"']);")
    assert out[3].count(b"www.example.com") == 2
    assert r.scripts_seen == 3


def test_hold_cap_passes_the_t_row_through_unrewritten(caplog: pytest.LogCaptureFixture) -> None:
    content = b"https://origin.example.com/ " + b"z" * 5000
    src = b'0:"https://origin.example.com"\n' + t_row("1", content) + b'2:"https://origin.example.com"\n'
    scripts = split_scripts(src, list(range(100, len(src), 700)))
    assert scripts is not None
    with caplog.at_level(logging.WARNING):
        out, r, _ = run_inline(scripts, max_hold=2048)
    want = b'0:"https://www.example.com"\n' + t_row("1", content) + b'2:"https://www.example.com"\n'
    assert stream_of(out) == want
    assert r.max_held_bytes <= 2048
    assert r.lexer.abandoned_rows == 1
    assert "unrewritten" in caplog.text


def test_unreadable_script_makes_the_rest_pass_through(caplog: pytest.LogCaptureFixture) -> None:
    good = push_script(b'0:["https://origin.example.com"]\n1:T5,ab')
    bad = b'self.__next_f.push([1,"unterminated'
    later = push_script(b'cde2:"https://origin.example.com"\n')
    with caplog.at_level(logging.WARNING):
        out, _, _ = run_inline([good, bad, later])
    assert out[2] == bad and out[3] == later and len(out) == 4
    assert stream_of([out[0]]) == b'0:["https://www.example.com"]\n1:'
    # What was carried when the stream broke is neither lost nor reordered: a push of its own,
    # unrewritten (original T length), placed before the unreadable script.
    assert stream_of([out[1]]) == b"T5,ab"
    assert "unreadable" in caplog.text


def test_document_end_returns_what_is_still_carried() -> None:
    scripts = [push_script(b'0:"https://origin.exa')]
    out, _, carried = run_inline(scripts)
    assert carried == [len(b"https://origin.exa")]
    assert stream_of(out) == b'0:"https://origin.exa' and len(out) == 2
    scripts = [push_script(b'0:"x"\n1:T99,'), push_script(b"partial https://origin.example.com")]
    out, _, _ = run_inline(scripts)
    assert stream_of(out) == b'0:"x"\n1:T99,partial https://origin.example.com'  # truncated T row: raw
    assert stream_of(out[:2]) == b'0:"x"\n1:'
    assert out[2] == push_script(b"T99,partial https://origin.example.com")


def test_carried_bytes_that_are_not_utf8_turn_a_text_push_into_base64() -> None:
    # A T row opened in a binary [3] push, its content starting with a stray byte; the next push is
    # text: the carried bytes cannot be a JS string, so that push is rewritten as [3, base64].
    binary = b"9:O1,\xff1:T11,\xc3"
    text = b"ab https://origin.example.com"[:16] + b'2:"x"\n'
    scripts = [push_script(binary, kind=3), push_script(text)]
    out, _, _ = run_inline(scripts)
    assert stream_of(out) == run_stream([binary + text])
    assert out[1].startswith(b'self.__next_f.push([3,"')


def test_not_flight() -> None:
    r = InlineFlightRewriter(rewriter(), max_row_bytes=1 << 20, max_hold_bytes=1 << 20)
    assert not r.script(b"var x = 1").flight
    assert not r.script(b"(self.__next_f=self.__next_f||[]).push([0])").flight
    assert not r.script(b"\xff\xfe __next_f").flight
    assert r.finish() == b""
