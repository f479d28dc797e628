"""Attribute values of a start tag: decoding, re-encoding, and finding the ones that hold a needle.

Owns: how an edited value is written back (``encode_value``: keep the original quoting when it
can; ``splice_value``: re-encode only the decoded span that changed, keeping entities byte for
byte), how a raw value reads (``decode_value``), and the needle attribute scanners — which
first-occurrence attributes' raw values hold a lower-case needle, by regex (``needle_attrs``,
``Attr`` objects) or by a byte loop (``needle_attr_spans``, spans only; the compiled path).
Must not know: handlers, the output queue, rules or hosts; the tag grammar is ``lexer.ATTR``'s.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sluicegate.pipeline.bytescan import find_bytes
from sluicegate.pipeline.html.charrefs import decode, segments
from sluicegate.pipeline.html.lexer import ATTR, Attr, decode_raw

if TYPE_CHECKING:
    # Native 64-bit ints for the byte-loop indices when compiled (mypyc: no tagged-int checks,
    # ~25% faster scans); annotations only, so the interpreted modules never import it.
    from mypy_extensions import i64

_ATTR_UNSAFE = re.compile(r"[\t\n\f\r \"'=<>`&]")


def encode_value(value: str, quote: bytes) -> tuple[bytes, bytes]:
    """(quote, escaped bytes) for writing ``value`` back; keeps the original quoting if it can."""
    if decode(value, in_attribute=True) != value:
        value = value.replace("&", "&amp;")
    if not quote:
        if value and not _ATTR_UNSAFE.search(value):
            return b"", value.encode("utf-8", "surrogateescape")
        quote = b'"'
    value = value.replace('"', "&quot;") if quote == b'"' else value.replace("'", "&#39;")
    return quote, value.encode("utf-8", "surrogateescape")


def by_vstart(edit: tuple[Attr, bytes]) -> int:
    return edit[0].vstart


def decode_value(raw: bytes) -> str:
    return decode(decode_raw(raw), in_attribute=True)


def splice_value(raw: bytes, new: str, quote: bytes) -> bytes | None:
    """New raw bytes for a quoted value that keep every unchanged part byte for byte (entities
    included): only the decoded span that differs is re-encoded. ``None`` when that is not possible
    (unquoted value, CR or NUL in the raw value)."""
    if not quote or b"\r" in raw or b"\0" in raw:
        return None
    if b"&" not in raw and "&" not in new:  # common case: no references on either side
        q = quote.decode()
        if q in new:
            new = new.replace(q, "&quot;" if q == '"' else "&#39;")
        return new.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "surrogateescape")
    segs = segments(text, in_attribute=True)
    old = "".join(d for _, d in segs)
    p = 0
    limit = min(len(old), len(new))
    while p < limit and old[p] == new[p]:
        p += 1
    s = 0
    while s < limit - p and old[-1 - s] == new[-1 - s]:
        s += 1
    # widen to segment boundaries
    head_raw: list[str] = []
    head_len = 0
    i = 0
    while i < len(segs) and head_len + len(segs[i][1]) <= p:
        head_raw.append(segs[i][0])
        head_len += len(segs[i][1])
        i += 1
    tail_raw: list[str] = []
    tail_len = 0
    j = len(segs)
    while j > i and tail_len + len(segs[j - 1][1]) <= s:
        tail_raw.append(segs[j - 1][0])
        tail_len += len(segs[j - 1][1])
        j -= 1
    middle = new[head_len : len(new) - tail_len]
    if "&" in middle:
        middle = middle.replace("&", "&amp;")
    middle = middle.replace('"', "&quot;") if quote == b'"' else middle.replace("'", "&#39;")
    out = "".join(head_raw) + middle + "".join(reversed(tail_raw))
    if decode(out, in_attribute=True) != new:
        return None
    return out.encode("utf-8", "surrogateescape")


def needle_attrs(raw: bytes, low: bytes, astart: int, aend: int, needle: bytes) -> list[Attr]:
    """``Element.needle_attrs`` on the attribute text ``raw[astart:aend]`` of a tag, given ``low``
    = ``raw.lower()`` (or a lower-cased buffer it is a slice of, at the same offsets)."""
    p = low.find(needle, astart, aend)
    if p < 0:
        return []
    out: list[Attr] = []
    earlier: list[bytes] = []
    for m in ATTR.finditer(raw, astart, aend):
        end = m.end()
        if end <= p:
            earlier.append(m.group(1))
            continue
        g = m.lastindex or 1
        if g > 1 and low.find(needle, m.start(g), m.end(g)) >= 0:
            a = Attr(m)
            if not earlier or all(e.lower() != a.name for e in earlier):
                out.append(a)
        p = low.find(needle, end, aend)
        if p < 0:
            break
        earlier.append(m.group(1))
    return out



def needle_attr_spans(buf: bytes, low: bytes, astart: i64, aend: i64,
                      needle: bytes) -> list[tuple[int, int, int, int, int]]:
    """``needle_attrs`` as spans, by a byte loop (no match or ``Attr`` objects): for each
    first-occurrence attribute whose value holds ``needle``, ``(name start, name end, value start,
    value end, quote byte or 0)``; ``low[name start:name end]`` is the lower-cased name. Follows
    ``lexer.ATTR``'s grammar over the attribute text ``buf[astart:aend]`` (``is_ws`` written out: mypyc
    does not inline calls, and this loop runs per byte of every origin tag)."""
    nxt = find_bytes(low, needle, astart, aend)
    out: list[tuple[int, int, int, int, int]] = []
    if nxt < 0:
        return out
    names: list[tuple[int, int]] = []
    p = astart
    while p < aend:
        c = buf[p]
        if (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D) or c == 0x2F:
            p += 1
            continue
        ns = p
        p += 1
        while p < aend:
            c = buf[p]
            if (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D) or c == 0x2F or c == 0x3E or c == 0x3D:
                break
            p += 1
        ne = p
        vs: i64 = -1
        ve: i64 = -1
        quote = 0
        q = p
        while q < aend:
            c = buf[q]
            if not (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D):
                break
            q += 1
        if q < aend and buf[q] == 0x3D:  # '='
            q += 1
            while q < aend:
                c = buf[q]
                if not (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D):
                    break
                q += 1
            r = q
            if q < aend and (buf[q] == 0x22 or buf[q] == 0x27):
                qc = buf[q]
                r = q + 1
                while r < aend and buf[r] != qc:
                    r += 1
                if r < aend:
                    vs, ve, quote = q + 1, r, qc
                    p = r + 1
                else:
                    r = q  # unclosed quote: ATTR reads an unquoted value from it
            if vs < 0:
                while r < aend:
                    c = buf[r]
                    if (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D) or c == 0x3E:
                        break
                    r += 1
                vs, ve = q, r
                p = r
        if vs >= 0 and ve > nxt:
            # ``nxt`` is the first occurrence at or after this attribute: inside the value, or
            # the value holds none unless ``nxt`` lies before it (in the name)
            if (vs <= nxt and nxt + len(needle) <= ve) or (nxt < vs and find_bytes(low, needle, vs, ve) >= 0):
                first = True
                for a, b in names:
                    if b - a == ne - ns and low[a:b] == low[ns:ne]:
                        first = False
                        break
                if first:
                    out.append((ns, ne, vs, ve, quote))
            nxt = find_bytes(low, needle, p, aend)
            if nxt < 0:
                break
        names.append((ns, ne))
    return out

