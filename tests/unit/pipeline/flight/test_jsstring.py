"""JS string literal decoding (every escape form) and Next.js-style re-escaping."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.pipeline.flight.jsstring import JsStringError, decode_literal, encode_literal, encode_literal_utf8


@pytest.mark.parametrize(
    ("body", "quote", "value"),
    [
        (r"a\nb\tc\rd", '"', "a\nb\tc\rd"),
        (r"\"q\" \\ \/", '"', '"q" \\ /'),
        (r"\'s\'", "'", "'s'"),
        (r"\b\f\v\0", "'", "\b\f\v\0"),
        (r"\x41\xe9\xff", "'", "Aé\u00ff"),
        (r"\u00e9\u65e5\u2028", '"', "é日\u2028"),
        (r"\ud834\udd1e", '"', "𝄞"),
        (r"\u{1D11E}\u{41}", "'", "𝄞A"),
        ("line\\\ncontinued", "'", "linecontinued"),
        (r"\q\-", "'", "q-"),
        (r"\u003cscript\u003e\u0026", '"', "<script>&"),
        ("raw é 𝄞 \u2028", '"', "raw é 𝄞 \u2028"),
    ],
)
def test_decode_escapes(body: str, quote: str, value: str) -> None:
    assert decode_literal(body, quote) == value.encode("utf-8")


def test_byte_lengths_differ_from_escaped_lengths() -> None:
    assert len(decode_literal(r"\xe9", "'")) == 2  # one escape, two UTF-8 bytes
    assert len(decode_literal(r"\u2028", '"')) == 3
    assert len(decode_literal(r"\ud83d\ude00", '"')) == 4
    assert len(decode_literal(r"\0", "'")) == 1


def test_lone_surrogates_become_replacement_characters() -> None:
    # What TextEncoder does with an unpaired surrogate.
    assert decode_literal(r"a\ud800b", '"') == "a\ufffdb".encode()
    assert decode_literal(r"\udc00", "'") == "\ufffd".encode()


def test_bad_code_point() -> None:
    with pytest.raises(JsStringError):
        decode_literal(r"\u{110000}", "'")


def test_encode_matches_next_js_escaping() -> None:
    value = 'a"b\\c\n</script><!-- & \u2028\u2029 é 𝄞 \x01'
    text = encode_literal(value, '"')
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads('"' + text + '"') == value
    assert text == json.dumps(value, ensure_ascii=False)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026"
    ).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def test_encode_single_quote_round_trip() -> None:
    value = 'it\'s "x" \\ \n\t </script> é\u2028'
    text = encode_literal(value, "'")
    assert "'" not in text.replace("\\'", "")
    assert "<" not in text and "\u2028" not in text
    assert decode_literal(text, "'") == value.encode()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))
               | st.sampled_from('"\\<>&\n\r\t\b\f\x0b\x01\x7f\u2028\u2029é𝄞')))
def test_encode_on_utf8_bytes_equals_encode_on_str(value: str) -> None:
    assert encode_literal_utf8(value.encode()) == encode_literal(value, '"').encode()
