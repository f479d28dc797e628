"""Character references (``&amp;``, ``&#x2F;``, ``&notin;``) as the WHATWG tokenizer resolves them.

Owns: turning the raw text of an attribute value or a text run into the characters a browser
sees. Named references use the longest prefix found in the HTML5 table (``html.entities.html5``);
in attribute values a reference without ``;`` followed by ``=`` or an alphanumeric is left alone
(the "historical" rule). Numeric references map NUL, surrogates and out-of-range values to U+FFFD
and the C1 range through the windows-1252 table.

Must not know: bytes, chunking, markup structure. Callers hand it complete strings.
"""

from __future__ import annotations

import re
from html.entities import html5 as _NAMED

_REF = re.compile(r"&(?:#[xX]([0-9a-fA-F]+);?|#([0-9]+);?|([a-zA-Z][a-zA-Z0-9]*;?))")
_MAX_NAME = max(len(k) for k in _NAMED)

# C1 code points a numeric reference maps through windows-1252 (the others stay as they are).
_C1 = {
    0x80: 0x20AC, 0x82: 0x201A, 0x83: 0x0192, 0x84: 0x201E, 0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021,
    0x88: 0x02C6, 0x89: 0x2030, 0x8A: 0x0160, 0x8B: 0x2039, 0x8C: 0x0152, 0x8E: 0x017D, 0x91: 0x2018,
    0x92: 0x2019, 0x93: 0x201C, 0x94: 0x201D, 0x95: 0x2022, 0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02DC,
    0x99: 0x2122, 0x9A: 0x0161, 0x9B: 0x203A, 0x9C: 0x0153, 0x9E: 0x017E, 0x9F: 0x0178,
}


def _numeric(digits: str, base: int) -> str:
    digits = digits.lstrip("0")
    if len(digits) > 8:  # far beyond U+10FFFF; avoid int() on huge digit strings
        return "\ufffd"
    cp = int(digits, base) if digits else 0
    if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        return "\ufffd"
    return chr(_C1.get(cp, cp))


def _resolve(m: re.Match[str], text: str, in_attribute: bool) -> str:
    hexd, decd, name = m.group(1), m.group(2), m.group(3)
    if hexd is not None:
        return _numeric(hexd, 16)
    if decd is not None:
        return _numeric(decd, 10)
    assert name is not None
    for n in range(min(len(name), _MAX_NAME), 1, -1):
        value = _NAMED.get(name[:n])
        if value is None:
            continue
        if in_attribute and name[n - 1] != ";":
            nxt = name[n] if n < len(name) else text[m.end() : m.end() + 1]
            if nxt == "=" or (nxt.isascii() and nxt.isalnum()):
                return m.group(0)
        return value + name[n:]
    return m.group(0)


def decode(text: str, *, in_attribute: bool) -> str:
    """Resolve every character reference in ``text`` (complete, CR/LF already normalised)."""
    if "&" not in text:
        return text
    return _REF.sub(lambda m: _resolve(m, text, in_attribute), text)


def segments(text: str, *, in_attribute: bool) -> list[tuple[str, str]]:
    """``text`` cut into ``(raw, decoded)`` pieces: plain runs and single references, so that a
    caller can map a position in the decoded string back to the raw text."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _REF.finditer(text):
        if m.start() > pos:
            out.append((text[pos : m.start()], text[pos : m.start()]))
        out.append((m.group(0), _resolve(m, text, in_attribute)))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], text[pos:]))
    return out
