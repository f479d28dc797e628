"""JavaScript string literals <-> the bytes a browser's ``TextEncoder`` would produce from them.

Owns one question for the inline Flight path: given the source text between the quotes of a JS
string literal, which UTF-8 bytes does ``new TextEncoder().encode(value)`` yield (that is what
Next.js feeds to React's Flight client), and how to write bytes back as a literal that is safe
inside an HTML ``<script>`` element.

Decoding accepts every escape form: ``\\n \\r \\t \\b \\f \\v \\0 \\" \\' \\\\ \\/ \\xHH \\uHHHH
\\u{H...}``, line continuations, any other ``\\c`` (= ``c``), surrogate pairs (joined) and lone
surrogates (U+FFFD, as ``TextEncoder`` does). Encoding writes what Next.js writes
(``JSON.stringify`` then ``<``, ``>``, ``&``, U+2028, U+2029 as ``\\uXXXX``), with the original
quote character. Knows nothing about Flight rows, scripts or hosts.
"""

from __future__ import annotations

import json
import re

_JS_ESCAPE = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|(\r\n|[\s\S]))")
_SIMPLE = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "\n": "",
    "\r": "",
    "\r\n": "",
    "\u2028": "",
    "\u2029": "",
}

# Characters Next.js's htmlEscapeJsonString turns into \\uXXXX after JSON.stringify.
_HTML_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}

_SINGLE_TABLE: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_SINGLE_TABLE.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"})
_SINGLE_TABLE.update({ord("\\"): "\\\\", ord("'"): "\\'"})
_SINGLE_TABLE.update({ord(k): v for k, v in _HTML_UNSAFE.items()})


# ``encode_literal(value, '"')`` on UTF-8 bytes, as ``bytes.replace`` passes (each a C scan; the
# str route - decode, ``json.dumps``, str replaces, encode - costs ~4x more on non-ASCII text).
# Backslash first, so the escapes added after it are not escaped again.
_DQ_REPLACEMENTS = (
    (b"\\", b"\\\\"), (b'"', b'\\"'), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\t", b"\\t"),
    (b"\x08", b"\\b"), (b"\x0c", b"\\f"), (b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
    (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"),
)
_OTHER_CONTROLS = re.compile(rb"[\x00-\x07\x0b\x0e-\x1f]")
# Every byte but those controls: ``data.translate(None, _NOT_OTHER_CONTROLS)`` keeps only them (a
# table pass in C; a regex character-class search is ~20x slower).
_NOT_OTHER_CONTROLS = bytes(b for b in range(256) if not _OTHER_CONTROLS.match(bytes((b,))))


class JsStringError(ValueError):
    """The literal cannot be decoded (a bad ``\\u{...}`` code point)."""


def _replace_escape(m: re.Match[str]) -> str:
    brace, u4, x2, other = m.groups()
    if brace is not None:
        cp = int(brace, 16)
        if cp > 0x10FFFF:
            raise JsStringError(f"code point out of range: \\u{{{brace}}}")
        return chr(cp)
    if u4 is not None:
        return chr(int(u4, 16))
    if x2 is not None:
        return chr(int(x2, 16))
    return _SIMPLE.get(other, other)


def to_utf8(value: str) -> bytes:
    """UTF-8 of a decoded JS string: surrogate pairs joined, lone surrogates -> U+FFFD."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # surrogates (json.loads leaves escaped ones as they are)
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


def decode_literal(body: str, quote: str) -> bytes:
    """Bytes of the JS string whose source between the quotes is ``body``."""
    if "\\" not in body:
        return body.encode("utf-8")
    if quote == '"':
        try:
            # JSON strings are a subset of JS strings; the C decoder handles the common case.
            value = json.loads('"' + body + '"')
        except ValueError:
            value = _JS_ESCAPE.sub(_replace_escape, body)
    else:
        value = _JS_ESCAPE.sub(_replace_escape, body)
    return to_utf8(value)


def encode_literal(value: str, quote: str) -> str:
    """Source text (without the quotes) of a JS string literal for ``value``, safe inside
    ``<script>``: no raw ``<``, ``>``, ``&``, line terminators or unescaped ``quote``."""
    if quote == '"':
        text = json.dumps(value, ensure_ascii=False)[1:-1]
        for raw, escaped in _HTML_UNSAFE.items():  # a few C-level passes beat a callback per hit
            if raw in text:
                text = text.replace(raw, escaped)
        return text
    return value.translate(_SINGLE_TABLE)


def encode_literal_utf8(data: bytes) -> bytes:
    """``encode_literal(data.decode(), '"').encode()`` for valid UTF-8 ``data``, on bytes."""
    for raw, escaped in _DQ_REPLACEMENTS:
        if raw in data:
            data = data.replace(raw, escaped)
    if data.translate(None, _NOT_OTHER_CONTROLS):
        data = _OTHER_CONTROLS.sub(lambda m: b"\\u%04x" % m.group()[0], data)
    return data
