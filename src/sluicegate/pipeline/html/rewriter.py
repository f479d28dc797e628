"""The streaming rewriter: dispatches lexer tokens to registered handlers, emits bytes in order.

Theory of operation. ``HtmlRewriter.feed`` appends input to one buffer and walks it with the
``lexer``. Every token's bytes are emitted exactly as received unless a handler changed them, so
output equals input when nothing matches. Between tokens that no handler can care about, a single
compiled "boring run" regex (the lol_html *fast tag scanner* idea) skips text and whole tags in C:
it stops only at tags that change tokenizer state (``script``, ``style``, ``svg``...), tags a
handler selects by name, tags whose bytes contain a handler's *needle* (e.g. the origin host), end
tags a handler watches, and markup declarations other than whole comments. Foreign content, pending
element-end actions and content observers switch to token-by-token mode. Compiled with mypyc, the
same scan is the byte loop ``scan_boring`` (equivalent, checked by tests). With several needles
the scan stops at the nearest (``needles.NeedleScan``: ``bytes.find`` per needle). A plain start
tag that holds the raw hook's needle (and no other handler's) can be handed to a byte-level ``raw``
hook (``on_element``) instead of going through ``Token``/``Element``; the hook may decline, and
then the tag takes the full path.

Bounded memory: the buffer holds at most the current incomplete token. A tag still open after
``max_tag_bytes`` is streamed out (its structure followed byte by byte, no handlers; its bytes
through the long-tag filter when one is set, which may refuse it) and a tag that long is never
handed to handlers even when it arrived whole, so the output does not depend on chunking.
Character data that no text handler collects goes through the text filter when one is set
(``set_text_filter``); the fast scan stops short of the filter's needles for it. Text of
elements with text handlers (``script``, ``style``) is collected whole up to
``max_text_bytes``; beyond that it is emitted unmodified (and logged), after the handlers have been
told (``TextBody.complete`` False).

Output is a queue of byte pieces and ``Deferred`` slots. ``feed`` returns the bytes up to the
first unresolved slot; everything after a slot is held, in order, until it is resolved (during a
later handler or at document end; unresolved slots fall back to their original bytes at
``finish``). ``held_bytes`` reports how much is held so a handler can enforce its own cap.

Must not know: sluicegate's rules (``rules``), hosts, configuration models, I/O.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sluicegate.pipeline.html.charrefs import decode, segments
from sluicegate.pipeline.html.lexer import (
    ATTR,
    DATA,
    END,
    START,
    TAG,
    TEXT,
    Attr,
    Lexer,
    Token,
    decode_raw,
    iter_attrs,
    self_closing,
)
from sluicegate.pipeline.html.needles import NeedleScan, only_inside
from sluicegate.pipeline.html.treesim import RAW_STATE, TreeSim

if TYPE_CHECKING:
    # Native 64-bit ints for the byte-loop indices when compiled (mypyc: no tagged-int checks,
    # ~25% faster scans); annotations only, so the interpreted modules never import it.
    from mypy_extensions import i64

log = logging.getLogger("sluicegate.html")

VOID = frozenset(
    b"area base basefont bgsound br col embed frame hr image img input keygen link meta param source "
    b"track wbr".split()
)
_WS = b"\t\n\f\r "
_ATTR_UNSAFE = re.compile(r"[\t\n\f\r \"'=<>`&]")
# Compiled with mypyc: the boring-run scan is the hand-written ``scan_boring`` (a byte loop is fast
# there); interpreted, the regex of ``_boring_re`` (a Python byte loop would be far slower).
COMPILED_SCAN: bool = not __file__.endswith(".py")


def _encode_value(value: str, quote: bytes) -> tuple[bytes, bytes]:
    """(quote, escaped bytes) for writing ``value`` back; keeps the original quoting if it can."""
    if decode(value, in_attribute=True) != value:
        value = value.replace("&", "&amp;")
    if not quote:
        if value and not _ATTR_UNSAFE.search(value):
            return b"", value.encode("utf-8", "surrogateescape")
        quote = b'"'
    value = value.replace('"', "&quot;") if quote == b'"' else value.replace("'", "&#39;")
    return quote, value.encode("utf-8", "surrogateescape")


def _by_vstart(edit: tuple[Attr, bytes]) -> int:
    return edit[0].vstart


def _decode_value(raw: bytes) -> str:
    return decode(decode_raw(raw), in_attribute=True)


def _splice_value(raw: bytes, new: str, quote: bytes) -> bytes | None:
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


def find_bytes(buf: bytes, sub: bytes, start: i64, end: i64) -> i64:
    """``buf.find(sub, start, end)`` (``sub`` non-empty, ``0 <= start``, ``end <= len(buf)``) by a
    byte loop: compiled, a method call costs more than this loop over a tag's few dozen bytes."""
    n: i64 = len(sub)
    c0 = sub[0]
    last: i64 = end - n
    i: i64 = start
    while i <= last:
        if buf[i] == c0:
            j: i64 = 1
            while j < n and buf[i + j] == sub[j]:
                j += 1
            if j == n:
                return i
        i += 1
    return -1


def needle_attr_spans(buf: bytes, low: bytes, astart: i64, aend: i64,
                      needle: bytes) -> list[tuple[int, int, int, int, int]]:
    """``needle_attrs`` as spans, by a byte loop (no match or ``Attr`` objects): for each
    first-occurrence attribute whose value holds ``needle``, ``(name start, name end, value start,
    value end, quote byte or 0)``; ``low[name start:name end]`` is the lower-cased name. Follows
    ``lexer.ATTR``'s grammar over the attribute text ``buf[astart:aend]``."""
    nxt = find_bytes(low, needle, astart, aend)
    out: list[tuple[int, int, int, int, int]] = []
    if nxt < 0:
        return out
    names: list[tuple[int, int]] = []
    p = astart
    while p < aend:
        c = buf[p]
        if is_ws(c) or c == 0x2F:
            p += 1
            continue
        ns = p
        p += 1
        while p < aend:
            c = buf[p]
            if is_ws(c) or c == 0x2F or c == 0x3E or c == 0x3D:
                break
            p += 1
        ne = p
        vs: i64 = -1
        ve: i64 = -1
        quote = 0
        q = p
        while q < aend and is_ws(buf[q]):
            q += 1
        if q < aend and buf[q] == 0x3D:  # '='
            q += 1
            while q < aend and is_ws(buf[q]):
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
                    if is_ws(c) or c == 0x3E:
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


class Deferred:
    """An output slot whose bytes are decided later; output after it is held until ``resolve``."""

    __slots__ = ("_rw", "original", "resolved", "value")

    def __init__(self, rw: HtmlRewriter, original: bytes) -> None:
        self._rw = rw
        self.original = original
        self.resolved = False
        self.value = original

    def resolve(self, new_raw: bytes) -> None:
        if self.resolved:
            raise RuntimeError("Deferred already resolved")
        self.resolved = True
        self.value = new_raw
        self._rw._drain()


class _Content:
    """Insertion points shared by elements, end tags and text bodies."""

    def __init__(self) -> None:
        self._before: list[bytes] = []
        self._after: list[bytes] = []

    def before(self, content: bytes) -> None:
        """Insert raw HTML right before this unit."""
        self._before.append(content)

    def after(self, content: bytes) -> None:
        """Insert raw HTML right after this unit (for an element: after its end tag)."""
        self._after.append(content)


class Element(_Content):
    """A start tag handed to element handlers. Attribute values are decoded strings."""

    def __init__(self, buf: bytes, tok: Token) -> None:
        super().__init__()
        self.raw = buf[tok.start : tok.end]
        base = tok.start
        self._astart, self._aend = tok.astart - base, tok.aend - base
        self.name = tok.name
        self.tag = tok.name.decode("utf-8", "surrogateescape")
        self._attrs: list[Attr] | None = None
        self._edits: dict[bytes, str | None] = {}
        self._raw_edits: dict[bytes, tuple[Attr, bytes]] = {}
        self._prepend: list[bytes] = []
        self._append: list[bytes] = []
        self.removed = False

    def _list(self) -> list[Attr]:
        if self._attrs is None:
            self._attrs = iter_attrs(self.raw, self._astart, self._aend)
        return self._attrs

    @property
    def self_closing(self) -> bool:
        return self_closing(self.raw, self._astart, self._aend)

    def all_attrs(self) -> list[Attr]:
        """Every attribute as written (duplicates included), in order."""
        return self._list()

    @property
    def attributes(self) -> dict[str, str]:
        """Decoded attributes as the browser sees them (first of duplicates wins)."""
        out: dict[str, str] = {}
        for a in self._list():
            key = a.name.decode("utf-8", "surrogateescape")
            if key not in out:
                out[key] = self._value(a)
        for name, (_, new) in self._raw_edits.items():
            out[name.decode("utf-8", "surrogateescape")] = _decode_value(new)
        for name, value in self._edits.items():
            key = name.decode()
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    def _value(self, a: Attr) -> str:
        if a.vstart < 0:
            return ""
        return _decode_value(self.raw[a.vstart : a.vend])

    def value(self, a: Attr) -> str:
        """Decoded value of attribute ``a`` as received (``""`` when it has none)."""
        return self._value(a)

    def needle_attrs(self, needle: bytes) -> list[Attr]:
        """The first-occurrence attributes whose raw value contains the lower-case ``needle``
        (case-insensitively): what ``attrs_containing`` selects, without decoding anything and
        without parsing the attributes that follow the last occurrence of ``needle``."""
        raw = self.raw
        return needle_attrs(raw, raw.lower(), self._astart, self._aend, needle)

    def set_raw_value(self, a: Attr, new_raw: bytes) -> None:
        """Replace the raw bytes between the quotes of attribute ``a`` (from ``needle_attrs`` or
        ``_list``) with ``new_raw``, which the caller guarantees needs no escaping there."""
        self._edits.pop(a.name, None)
        self._raw_edits[a.name] = (a, new_raw)

    def attrs_containing(self, needle: bytes) -> list[tuple[str, str]]:
        """Decoded ``(name, value)`` of first-occurrence attributes whose raw value contains the
        lower-case ``needle`` (case-insensitively) — a cheap pre-filter for rules."""
        out: list[tuple[str, str]] = []
        raw = self.raw
        seen: set[bytes] = set()
        for a in self._list():
            if a.name in seen:
                continue
            seen.add(a.name)
            if a.vstart >= 0 and needle in raw[a.vstart : a.vend].lower():
                out.append((a.name.decode("utf-8", "surrogateescape"), self._value(a)))
        return out

    def get_attribute(self, name: str) -> str | None:
        key = name.lower().encode()
        if key in self._edits:
            return self._edits[key]
        if key in self._raw_edits:
            return _decode_value(self._raw_edits[key][1])
        for a in self._list():
            if a.name == key:
                return self._value(a)
        return None

    def has_attribute(self, name: str) -> bool:
        return self.get_attribute(name) is not None

    def set_attribute(self, name: str, value: str) -> None:
        key = name.lower().encode()
        self._raw_edits.pop(key, None)
        self._edits[key] = value

    def remove_attribute(self, name: str) -> None:
        key = name.lower().encode()
        self._raw_edits.pop(key, None)
        self._edits[key] = None

    def prepend(self, content: bytes) -> None:
        """Insert raw HTML as the first child (right after the start tag)."""
        self._prepend.append(content)

    def append(self, content: bytes) -> None:
        """Insert raw HTML as the last child (right before the end tag)."""
        self._append.append(content)

    def remove(self) -> None:
        """Remove the element with its content and end tag."""
        self.removed = True

    def serialize(self) -> bytes:
        """The start tag as it will be written (the original bytes when nothing was edited)."""
        raw = self.raw
        if self._raw_edits:
            if not self._edits:
                if len(self._raw_edits) == 1:
                    for a, new_raw in self._raw_edits.values():
                        return b"".join((raw[: a.vstart], new_raw, raw[a.vend :]))
                parts: list[bytes] = []
                pos = 0
                for a, new_raw in sorted(self._raw_edits.values(), key=_by_vstart):
                    parts += [raw[pos : a.vstart], new_raw]
                    pos = a.vend
                parts.append(raw[pos:])
                return b"".join(parts)
            for key, (_, new_raw) in self._raw_edits.items():
                self._edits[key] = _decode_value(new_raw)
            self._raw_edits.clear()
        if not self._edits:
            return raw
        edits = dict(self._edits)
        parts = []
        pos = 0
        seen: set[bytes] = set()
        last = self._astart
        for a in self._list():
            last = a.end
            if a.name in seen or a.name not in edits:
                seen.add(a.name)
                continue
            seen.add(a.name)
            value = edits.pop(a.name)
            if value is None:
                parts.append(raw[pos : a.start])
                pos = a.end
                continue
            old_quote = a.quote if a.vstart >= 0 else b'"'
            if a.vstart >= 0 and value == self._value(a):
                continue
            spliced = _splice_value(raw[a.vstart : a.vend], value, a.quote) if a.vstart >= 0 else None
            if spliced is not None:
                parts += [raw[pos : a.vstart], spliced]
                pos = a.vend
                continue
            quote, enc = _encode_value(value, old_quote)
            if a.vstart >= 0:
                vs, ve = (a.vstart - 1, a.vend + 1) if a.quote else (a.vstart, a.vend)
                parts += [raw[pos:vs], quote, enc, quote]
                pos = ve
            else:
                parts += [raw[pos : a.end], b"=", quote, enc, quote]
                pos = a.end
        new = [(n, v) for n, v in edits.items() if v is not None]
        if new:
            parts.append(raw[pos:last])
            pos = last
            for n, v in new:
                quote, enc = _encode_value(v, b'"')
                parts += [b" ", n, b"=", quote, enc, quote]
        parts.append(raw[pos:])
        return b"".join(parts)


class EndTag(_Content):
    """An end tag handed to end-tag handlers."""

    def __init__(self, name: bytes, raw: bytes) -> None:
        super().__init__()
        self.name = name
        self.tag = name.decode("utf-8", "surrogateescape")
        self.raw = raw


class TextBody(_Content):
    """The whole text of a raw-text element (``<script>``, ``<style>``...), handed to text handlers.

    ``raw`` is the body exactly as received. ``replace`` sets new raw bytes (written as is, never
    HTML-escaped). ``defer`` turns the body's output into a ``Deferred`` slot.
    """

    def __init__(self, rw: HtmlRewriter, tag: bytes, start_tag: bytes, raw: bytes, complete: bool = True) -> None:
        super().__init__()
        self._rw = rw
        self.name = tag
        self.tag = tag.decode("utf-8", "surrogateescape")
        self._start_tag = start_tag
        self.raw = raw
        self.complete = complete
        self.output: bytes = raw
        self.slot: Deferred | None = None
        self._attrs: dict[str, str] | None = None

    @property
    def attrs(self) -> dict[str, str]:
        """Decoded attributes of the element's start tag."""
        if self._attrs is None:
            tok = Token(START, 0, len(self._start_tag))
            m = re.match(rb"</?[^\t\n\f\r />]*", self._start_tag)
            tok.astart = m.end() if m else 0
            tok.aend = len(self._start_tag) - 1 if self._start_tag.endswith(b">") else len(self._start_tag)
            tok.name = self.name
            self._attrs = Element(self._start_tag, tok).attributes
        return self._attrs

    @property
    def start_tag(self) -> bytes:
        """The element's start tag as received (for a handler that must reopen the element)."""
        return self._start_tag

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "surrogateescape")

    def replace(self, new_raw: bytes) -> None:
        if self.slot is not None:
            raise RuntimeError("text already deferred; resolve the Deferred instead")
        self.output = new_raw

    def defer(self) -> Deferred:
        if self.slot is None:
            self.slot = Deferred(self._rw, self.output)
        return self.slot

    def on_end(self, callback: Callable[[DocumentEnd], None]) -> None:
        self._rw.on_end(callback)

    @property
    def held_bytes(self) -> int:
        return self._rw.held_bytes


class TextChunk(_Content):
    """A run of data-state text seen by content observers (not rewritable, only insertable into).

    Text runs are split wherever chunks or markup split them, so an observer that needs a stable
    position should use ``insert`` at an offset it derives from the bytes themselves."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw
        self._inserts: list[tuple[int, bytes]] = []

    def insert(self, offset: int, content: bytes) -> None:
        """Insert raw HTML before byte ``offset`` of this run."""
        self._inserts.append((offset, content))

    def serialize(self) -> bytes:
        if not self._inserts:
            return self.raw
        parts: list[bytes] = []
        pos = 0
        for off, content in sorted(self._inserts, key=lambda x: x[0]):
            parts += [self.raw[pos:off], content]
            pos = off
        parts.append(self.raw[pos:])
        return b"".join(parts)


class DocumentEnd:
    def __init__(self, rw: HtmlRewriter) -> None:
        self._rw = rw

    def append(self, content: bytes) -> None:
        """Insert raw HTML at the very end of the document."""
        self._rw._emit(content)

    @property
    def held_bytes(self) -> int:
        return self._rw.held_bytes


ElementHandler = Callable[[Element], None]
EndTagHandler = Callable[[EndTag], None]
TextHandler = Callable[[TextBody], None]
EndHandler = Callable[[DocumentEnd], None]
ContentObserver = Callable[["Element | TextChunk"], bool]
class TextFilter(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


RawTagHandler = Callable[[bytes, bytes, int, int, int, int, bytes], "bytes | None"]
"""``(buf, low, start, astart, aend, end, name) -> new tag bytes | None``: see ``on_element``."""


class _Pending:
    __slots__ = ("after", "append", "depth", "name", "removed")

    def __init__(self, name: bytes, append: list[bytes], after: list[bytes], removed: bool) -> None:
        self.name = name
        self.append = append
        self.after = after
        self.removed = removed
        self.depth = 0


class _TagSkipper:
    """Follows an over-long tag's structure byte by byte (only on the pathological path)."""

    # States (plain class constants so that mypyc can compile the class).
    _NAME = 0
    _BAN = 1
    _AN = 2
    _AAN = 3
    _BAV = 4
    _DQ = 5
    _SQ = 6
    _AQ = 7
    _UQ = 8
    _SC = 9

    def __init__(self, *, doctype: bool = False) -> None:
        self.state = self._NAME
        self.closing = False
        self.doctype = doctype

    def scan(self, data: bytes) -> int:
        """Index just past the tag's ``>`` in ``data``, or -1 if it continues."""
        if self.doctype:
            g = data.find(b">")
            return g + 1 if g >= 0 else -1
        s = self.state
        for i, c in enumerate(data):
            ws = c in _WS
            if s == self._DQ or s == self._SQ:
                if c == (0x22 if s == self._DQ else 0x27):
                    s = self._AQ
                continue
            if c == 0x3E and s != self._DQ:  # '>'
                self.closing = s == self._SC
                self.state = s
                return i + 1
            if s == self._UQ:
                if ws:
                    s = self._BAN
            elif s == self._BAV:
                if c == 0x22:
                    s = self._DQ
                elif c == 0x27:
                    s = self._SQ
                elif not ws:
                    s = self._UQ
            elif c == 0x2F and s != self._BAV:
                s = self._SC
            elif ws:
                s = self._AAN if s == self._AN else self._BAN
            elif c == 0x3D and s in (self._AN, self._AAN):
                s = self._BAV
            elif s != self._NAME:
                s = self._AN
        self.state = s
        return -1


class HtmlRewriter:
    """Sans-IO HTML rewriter. Register handlers, then ``feed``/``finish``."""

    def __init__(self, *, max_tag_bytes: int = 64 * 1024, max_text_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_tag_bytes = max_tag_bytes
        self.max_text_bytes = max_text_bytes
        self._sim = TreeSim()
        self._lexer = Lexer(sim=self._sim)
        self._buf = b""
        self._final = False
        self._start_handlers: dict[bytes, list[ElementHandler]] = {}
        self._any_handlers: list[ElementHandler] = []
        self._needle_handlers: list[tuple[bytes, ElementHandler]] = []
        self._end_tag_handlers: dict[bytes, list[EndTagHandler]] = {}
        self._text_handlers: dict[bytes, list[TextHandler]] = {}
        self._end_handlers: list[EndHandler] = []
        self._observers: list[ContentObserver] = []
        self._pending: list[_Pending] = []
        self._suppress = 0
        # text collection for the element being read
        self._text: list[bytes] | None = None
        self._text_size = 0
        self._text_tag = b""
        self._text_start = b""
        self._text_overflow = False
        # streamed text bodies (``set_text_streamer``)
        self._streamer: Callable[[bytes, bytes, bytes], TextFilter | None] | None = None
        self.stream_text_after = 32 * 1024
        self._text_stream: TextFilter | None = None
        self._text_asked = False
        # output
        self._ready: list[bytes] = []
        self._queue: list[bytes | Deferred] = []
        self._held = 0
        self._skipper: _TagSkipper | None = None
        self._skip_name = b""
        self._boring: re.Pattern[bytes] | None = None
        self._needle = b""
        # several needles (``needles.py``): the scan stops at the nearest, found by ``bytes.find``
        # each; False: the older needle-guarded pattern and no raw hook (the tests' reference)
        self.multi_needle_fast = True
        self._scan: NeedleScan | None = None
        self._hook_needle = b""
        self._hook_others: tuple[bytes, ...] = ()
        self._hook_blockers: tuple[bytes, ...] = ()
        self._tf_scan: NeedleScan | None = None
        self._low = b""
        self._buf_run = b""
        self._raw_hook: RawTagHandler | None = None
        self._raw_hooks: list[RawTagHandler | None] = []
        self._stop_names: frozenset[bytes] = frozenset()
        self._stop_ends: frozenset[bytes] = frozenset()
        # text filter (``set_text_filter``): character data not collected by a text handler
        self._suspect: Callable[[bytes, int, int], int] | None = None
        # cache of the suspect scan: no suspect in ``_s_buf[_s_from:_s_at]``, one at ``_s_at``
        self._s_buf = b""
        self._s_from = 0
        self._s_at = -1
        # over-long tags (``set_long_tag_filter``): the filter factory and the one in use
        self._lt_make: Callable[[], TextFilter] | None = None
        self._lt: TextFilter | None = None
        self._tf: TextFilter | None = None
        self._tf_pending = False
        self._tf_needles: tuple[bytes, ...] = ()
        self._tf_re: re.Pattern[bytes] | None = None
        self._tf_behind = 0
        self._tf_hold = 0

    # -- registration ----------------------------------------------------------------------------

    def on_element(self, selector: str, handler: ElementHandler, *, needle: bytes | None = None,
                   raw: RawTagHandler | None = None, suspect: Callable[[bytes, int, int], int] | None = None) -> None:
        """Call ``handler`` for start tags matching ``selector``: ``"a"``, ``"*"``, ``"a[href]"``,
        ``"*[src]"``. ``needle`` (lower-case bytes) promises the handler only acts on tags whose
        bytes contain it (case-insensitively), which keeps other tags on the fast path.

        ``raw`` (``"*"`` with a ``needle`` only) is a byte-level shortcut for ``handler``: on the
        fast path, a plain start tag holding the needle is handed to it as spans of the buffer
        (``buf``, ``low`` = ``buf.lower()``, tag ``start``, attribute text ``astart:aend``, tag
        ``end``, lower-cased ``name``) without ``Token``/``Element`` objects. It returns the tag's
        new bytes — which must equal what ``handler`` would make ``Element.serialize`` produce,
        and ``handler`` must not insert content or remove the element for such a tag — or
        ``None`` to take the full path. Used only when it is the one needle handler with a raw
        hook, for tags that hold its needle and no needle of another handler; needles of other
        registrations of the same ``handler`` object (origin aliases) may occur only inside
        occurrences of its own (``needles.only_inside``).

        ``suspect`` (with ``needle``): ``suspect(low, start, end)`` gives the first position in
        ``low[start:end]`` (lower-cased bytes) of something the handler must see, or -1; a tag
        holding one is handed to ``handler`` too, on the full path, even without the needle (for
        spellings of the needle the bytes do not show, such as character references)."""
        m = re.fullmatch(r"\s*([a-zA-Z][^\s\[]*|\*)\s*(?:\[\s*([^\s\]]+)\s*\])?\s*", selector)
        if m is None:
            raise ValueError(f"unsupported selector {selector!r}")
        tag, attr = m.group(1).lower(), m.group(2)
        h = handler
        if attr is not None:
            attr_l = attr.lower()

            def h(el: Element, _inner: ElementHandler = handler, _a: str = attr_l) -> None:
                if el.has_attribute(_a):
                    _inner(el)

        if tag == "*":
            if needle is not None:
                if suspect is not None:
                    self._suspect = suspect
                self._needle_handlers.append((needle.lower(), h))
                self._raw_hooks.append(raw if attr is None else None)
            else:
                self._any_handlers.append(h)
        else:
            self._start_handlers.setdefault(tag.encode(), []).append(h)
        self._boring = None

    def on_end_tag(self, name: str, handler: EndTagHandler) -> None:
        self._end_tag_handlers.setdefault(name.lower().encode(), []).append(handler)
        self._boring = None

    def on_text(self, tag: str, handler: TextHandler) -> None:
        """Hand the whole text of raw-text elements ``tag`` (script, style, title, textarea...).

        A body over ``max_text_bytes`` is handed over once with ``complete`` False and only its
        first bytes in ``raw`` (the rest streams through unmodified); most handlers just return."""
        name = tag.lower().encode()
        if name not in RAW_STATE:
            raise ValueError(f"text handlers are for raw-text elements, not {tag!r}")
        self._text_handlers.setdefault(name, []).append(handler)

    def set_text_filter(self, filt: TextFilter, *, needles: tuple[bytes, ...], behind: int, hold: int) -> None:
        """Pass all character data that no text handler collects (data state, RCDATA
        ``title``/``textarea``, other raw text, PLAINTEXT) through ``filt`` in document order.
        ``filt.feed`` may hold bytes back; ``filt.finish`` is called at every markup token (a
        text run ends there) and at document end. The filter promises to change only text
        around one of ``needles`` (lower-case; found case-insensitively) starting at most
        ``behind`` bytes before it, and to hold at most ``hold`` bytes: text elsewhere stays on
        the fast path."""
        self._tf = filt
        self._tf_needles = tuple(n.lower() for n in needles)
        self._tf_re = re.compile(b"|".join(re.escape(n) for n in self._tf_needles)) if len(needles) > 1 else None
        self._tf_behind = behind
        self._tf_hold = hold

    def set_text_streamer(self, decide: Callable[[bytes, bytes, bytes], TextFilter | None], *,
                          after: int = 32 * 1024) -> None:
        """Bodies of text-handler elements longer than ``after`` bytes are offered to
        ``decide(tag, start_tag, first_bytes)`` once: a filter it returns streams the rest of
        the body (handlers are then not called for it; output lags by the filter's hold only);
        ``None`` keeps collecting it whole for the handlers (up to ``max_text_bytes``)."""
        self._streamer = decide
        self.stream_text_after = after

    @property
    def text_streamer(self) -> Callable[[bytes, bytes, bytes], TextFilter | None] | None:
        """The ``decide`` of ``set_text_streamer`` (None: not set), for a rule that wraps it."""
        return self._streamer

    def _suspect_next(self, low: bytes, lo: int) -> int:
        """Position of the next suspect at or after ``lo`` in ``low`` (``len(low)``: none), one
        scan per buffer however many tags ask."""
        if low is self._s_buf and self._s_from <= lo <= self._s_at:
            return self._s_at
        suspect = self._suspect
        assert suspect is not None
        p = suspect(low, lo, len(low))
        if p < 0:
            p = len(low)
        self._s_buf = low
        self._s_from = lo
        self._s_at = p
        return p

    def set_long_tag_filter(self, make: Callable[[], TextFilter]) -> None:
        """Bytes of a tag over ``max_tag_bytes`` (which handlers never see) pass through a fresh
        ``make()`` filter per tag; it may raise a pipeline error to refuse the tag."""
        self._lt_make = make

    def _emit_long(self, data: bytes) -> None:
        """Bytes of an over-long tag, through the long-tag filter when one is set."""
        lt = self._lt
        self._emit(lt.feed(data) if lt is not None else data)

    def _lt_end(self) -> None:
        lt = self._lt
        if lt is not None:
            self._lt = None
            self._emit(lt.finish())

    def _tf_flush(self) -> None:
        tf = self._tf
        if tf is not None and self._tf_pending:
            self._tf_pending = False
            self._emit(tf.finish())

    def on_end(self, handler: EndHandler) -> None:
        """Call ``handler`` once at end of document (before unresolved slots fall back)."""
        self._end_handlers.append(handler)

    def observe(self, observer: ContentObserver) -> None:
        """See every start tag and every data-state text run until the observer returns False."""
        self._observers.append(observer)

    @property
    def held_bytes(self) -> int:
        """Bytes of output held behind unresolved ``Deferred`` slots."""
        return self._held

    # -- output ----------------------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        if self._suppress or not data:
            return
        if self._queue:
            self._queue.append(data)
            self._held += len(data)
        else:
            self._ready.append(data)

    def _emit_slot(self, slot: Deferred) -> None:
        if self._suppress:
            return
        self._queue.append(slot)
        self._held += len(slot.original)
        self._drain()

    def _drain(self) -> None:
        q = self._queue
        i = 0
        while i < len(q):
            item = q[i]
            if isinstance(item, Deferred):
                if not item.resolved:
                    break
                self._held -= len(item.original)
                if item.value:
                    self._ready.append(item.value)
            else:
                self._held -= len(item)
                self._ready.append(item)
            i += 1
        del q[:i]

    def _take(self) -> bytes:
        out = b"".join(self._ready)
        self._ready.clear()
        return out

    # -- the fast scanner ------------------------------------------------------------------------

    def _boring_re(self) -> re.Pattern[bytes]:
        needles = frozenset(n for n, _ in self._needle_handlers)
        # One needle: the scan is bounded by the needle's next position in the lower-cased buffer
        # instead (``_run``), so the pattern needs no per-byte needle guard.
        self._needle = next(iter(needles)) if len(needles) == 1 else b""
        # Several needles: bounded the same way by the nearest of them (``NeedleScan``).
        multi = len(needles) > 1 and self.multi_needle_fast
        self._scan = NeedleScan(tuple(needles)) if multi else None
        hooks = self._raw_hooks
        self._raw_hook = hooks[0] if self._needle and len(hooks) == 1 else None
        with_hook = [i for i, hk in enumerate(hooks) if hk is not None]
        if multi and len(with_hook) == 1:
            i = with_hook[0]
            own, h = self._needle_handlers[i]
            others: list[bytes] = []
            blockers: list[bytes] = []
            usable = True
            for j, (nd, hj) in enumerate(self._needle_handlers):
                if j == i or (nd == own and hj is h):
                    continue
                if nd == own:
                    usable = False  # another handler wants every tag the hook would take
                elif hj is h:
                    others.append(nd)
                else:
                    blockers.append(nd)
            if usable:
                self._raw_hook = hooks[i]
                self._hook_needle = own
                self._hook_others = tuple(dict.fromkeys(others))
                self._hook_blockers = tuple(dict.fromkeys(blockers))
        self._tf_scan = (NeedleScan(self._tf_needles)
                         if len(self._tf_needles) > 1 and self.multi_needle_fast else None)
        self._stop_names = frozenset(RAW_STATE) | {b"svg", b"math"} | frozenset(self._start_handlers)
        self._stop_ends = frozenset(self._end_tag_handlers)
        return _boring_re(
            frozenset(RAW_STATE) | {b"svg", b"math"} | frozenset(self._start_handlers),
            frozenset(self._end_tag_handlers),
            frozenset() if self._needle or multi else needles,
        )

    # -- the main loop ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        if data:
            self._buf = self._buf + data if self._buf else data
            self._run()
        return self._take()

    def finish(self) -> bytes:
        self._final = True
        self._run()
        self._tf_flush()
        self._lt_end()
        self._flush_text()
        doc = DocumentEnd(self)
        for h in self._end_handlers:
            h(doc)
        for item in self._queue:
            if isinstance(item, Deferred) and not item.resolved:
                item.resolved = True
        self._drain()
        return self._take()

    def _run(self) -> None:
        buf = self._buf
        pos = 0
        n = len(buf)
        final = self._final
        lexer = self._lexer
        max_tag = self.max_tag_bytes
        boring = self._boring or self._boring_re()
        self._boring = boring
        needle = self._needle
        scan = self._scan
        # the hand-written scan (compiled builds) covers the pattern without needle guards
        hand = COMPILED_SCAN and (bool(needle) or scan is not None or not self._needle_handlers)
        stop_names = self._stop_names
        stop_ends = self._stop_ends
        raw_hook = self._raw_hook
        nlen = len(needle)
        # The lower-cased buffer (one C pass) locates the single needle for the fast scan and for
        # ``_start``'s needle check; ``nxt`` is the needle's next position at or after ``pos``.
        low = buf.lower() if needle or scan is not None else buf
        self._low = low
        self._buf_run = buf
        if scan is not None:
            scan.reset(low)
            nxt = scan.next(pos)
        else:
            nxt = low.find(needle, pos) if needle else -1
            if nxt < 0:
                nxt = n
        hook_needle = self._hook_needle
        hook_others = self._hook_others
        hook_blockers = self._hook_blockers
        # Text filter: the fast scan must stop ``behind`` bytes before the next text needle and,
        # mid-stream, ``hold`` bytes before the end (a needle may be cut by the chunk boundary).
        tf = self._tf
        tlow = b""
        tnxt = n
        tcap = n
        tf_re = self._tf_re
        tf_needle = self._tf_needles[0] if self._tf_needles else b""
        tf_scan = self._tf_scan
        tf_behind = self._tf_behind + (tf_scan.slack if tf_scan is not None else 0)
        suspect = self._suspect
        snxt = n
        if tf is not None or suspect is not None:
            tlow = low if needle or scan is not None else buf.lower()
            if tf_scan is not None:
                tf_scan.reset(tlow)
        if tf is not None:
            tcap = n if final else n - self._tf_hold
            tnxt = -2
        if suspect is not None:
            snxt = -2
        while pos < n or final:
            if self._tf_pending and pos < n and buf[pos] == 0x3C and pos + 1 < n and (
                    _is_alpha(buf[pos + 1]) or buf[pos + 1] in b"/!?"):
                self._tf_flush()  # markup: the text run ended
            if self._skipper is not None:
                end = self._skipper.scan(buf[pos:])
                if end < 0:
                    self._emit_long(buf[pos:])
                    pos = n
                    break
                self._emit_long(buf[pos : pos + end])
                self._lt_end()
                pos += end
                self._skipped_tag_done()
                continue
            if (lexer.state == DATA and not self._pending and not self._observers and not self._any_handlers
                    and not self._sim.stack and not self._tf_pending):
                if nxt < pos:
                    if scan is not None:
                        nxt = scan.next(pos)
                    elif needle:
                        nxt = low.find(needle, pos)
                        if nxt < 0:
                            nxt = n
                bound = nxt
                if tf is not None:
                    if tnxt < pos:
                        if tf_scan is not None:
                            tnxt = tf_scan.next(pos)
                        elif tf_re is not None:
                            tm = tf_re.search(tlow, pos)
                            tnxt = n if tm is None else tm.start()
                        else:
                            tnxt = tlow.find(tf_needle, pos)
                            if tnxt < 0:
                                tnxt = n
                    tb = tnxt - tf_behind if tnxt < n else n
                    if tb < bound:
                        bound = tb
                    if tcap < bound:
                        bound = tcap
                if suspect is not None:
                    if snxt < pos:
                        snxt = self._suspect_next(tlow, pos)
                    # a text filter decides a reference spelled with character references from
                    # the text before it too (``https://origin&#46;example``): stop that far back,
                    # but not before the last ``>`` (no reference holds one; tags keep the fast path)
                    sb = snxt
                    if tf is not None and snxt < n:
                        sb = snxt - self._tf_hold
                        gt = buf.rfind(b">", sb if sb > pos else pos, snxt)
                        if gt >= 0:
                            sb = gt + 1
                    if sb < bound:
                        bound = sb
                if bound < pos:
                    bound = pos
                if hand:
                    q = scan_boring(buf, pos, bound, stop_names, stop_ends)
                else:
                    m = boring.match(buf, pos, bound)
                    q = m.end() if m is not None else pos
                if q > pos:
                    self._emit(buf[pos:q])
                    pos = q
                    if pos >= n and not final:
                        break
                if raw_hook is not None and nxt < n and buf[pos] == 0x3C:  # '<'
                    # Byte-level shortcut for a plain start tag that holds the needle.
                    te, ne = tag_span(buf, pos, n) if hand else _tag_span_re(buf, pos)
                    if scan is None:
                        ok = te >= nxt + nlen
                    else:
                        ok = nxt < te and only_inside(low, pos, te, hook_needle, hook_others)
                        for b in hook_blockers:
                            if ok and low.find(b, pos, te) >= 0:
                                ok = False
                    if ok and te - pos <= max_tag and snxt >= te:
                        name = low[pos + 1 : ne]
                        if name not in stop_names:
                            new = raw_hook(buf, low, pos, ne, te - 1, te, name)
                            if new is not None:
                                self._emit(new)
                                pos = te
                                continue
            tok = lexer.next(buf, pos, final)
            if tok is None:
                if n - pos > max_tag and not final:
                    pos = self._start_skipping(buf, pos)
                    continue
                break
            kind = tok.kind
            if kind != TEXT:
                self._tf_flush()
            if (kind in (START, END)) and tok.end - tok.start > max_tag:
                # An over-long tag that arrived whole is treated like one that arrived in pieces:
                # passed through without handlers (the lexer already applied its state change).
                log.warning("html: tag of %d bytes passed through without handlers", tok.end - tok.start)
                if kind == END:
                    self._flush_text()
                if self._lt_make is not None:
                    self._lt = self._lt_make()
                self._emit_long(buf[tok.start : tok.end])
                self._lt_end()
                if kind == START:
                    self._begin_text(tok.name, b"<" + tok.name + b">")
            else:
                self._token(buf, tok)
            pos = tok.end
        self._buf = buf[pos:] if pos < n else b""

    def _start_skipping(self, buf: bytes, pos: int) -> int:
        """An incomplete tag outgrew ``max_tag_bytes``: stream it out raw from here on."""
        self._tf_flush()
        log.warning("html: tag longer than %d bytes streamed through without handlers", self.max_tag_bytes)
        m = re.match(rb"<(/?)([a-zA-Z][^\t\n\f\r />]*)", buf[pos : pos + 4096])
        skipper = _TagSkipper(doctype=m is None)
        self._skip_name = (m.group(1) + m.group(2).lower()) if m else b""
        self._skipper = skipper
        if self._skip_name.startswith(b"/"):
            self._flush_text()
        start = pos + 2 if m else pos  # the skipper starts inside the tag name
        if self._lt_make is not None:
            self._lt = self._lt_make()
        end = skipper.scan(buf[start:])
        if end < 0:
            self._emit_long(buf[pos:])
            return len(buf)
        self._emit_long(buf[pos : start + end])  # not reached: the lexer would have completed it
        self._lt_end()
        self._skipped_tag_done()
        return start + end

    def _skipped_tag_done(self) -> None:
        skipper = self._skipper
        assert skipper is not None
        self._skipper = None
        name = self._skip_name
        if not name:
            return  # a DOCTYPE
        lexer = self._lexer
        if name.startswith(b"/"):
            name = name[1:]
            if lexer.state != DATA:
                lexer.state = DATA
                lexer.script_sub = 0
            else:
                self._sim.end_tag(name)
            return
        lexer.last_start_tag = name
        lexer.state = self._sim.start_tag(name, skipper.closing, lambda _n: None)
        lexer.script_sub = 0
        self._begin_text(name, b"<" + name + b">")

    # -- tokens ----------------------------------------------------------------------------------

    def _token(self, buf: bytes, tok: Token) -> None:
        kind = tok.kind
        if kind == TEXT:
            piece = buf[tok.start : tok.end]
            if self._text is not None:
                self._collect(piece)
            elif self._observers and tok.state == DATA:
                unit = TextChunk(piece)
                self._observers = [o for o in self._observers if o(unit)]
                for b in unit._before:
                    self._emit(b)
                self._emit_text(unit.serialize())
                for b in unit._after:
                    self._emit(b)
            else:
                self._emit_text(piece)
        elif kind == START:
            self._start(buf, tok)
        elif kind == END:
            self._end(buf, tok)
        else:
            self._emit(buf[tok.start : tok.end])

    def _emit_text(self, piece: bytes) -> None:
        tf = self._tf
        if tf is None or self._suppress:
            self._emit(piece)
            return
        self._tf_pending = True
        self._emit(tf.feed(piece))

    def _start(self, buf: bytes, tok: Token) -> None:
        name = tok.name
        for p in self._pending:
            if p.name == name:
                p.depth += 1
        handlers = self._start_handlers.get(name)
        needle_hs = self._needle_handlers
        el: Element | None = None
        if handlers or self._any_handlers or self._observers:
            el = Element(buf, tok)
            for o in list(self._observers):
                if not o(el):
                    self._observers.remove(o)
            for h in self._any_handlers:
                h(el)
            for h in handlers or ():
                h(el)
        if needle_hs:
            if (self._needle or self._scan is not None) and buf is self._buf_run:
                lowered = self._low  # the whole buffer, lower-cased once per ``_run``
                lo, hi = tok.start, tok.end
            else:
                lowered = buf[tok.start : tok.end].lower()
                lo, hi = 0, len(lowered)
            called = False
            for needle, h in needle_hs:
                if lowered.find(needle, lo, hi) >= 0:
                    if el is None:
                        el = Element(buf, tok)
                    h(el)
                    called = True
            if not called and self._suspect is not None and (
                    self._suspect_next(lowered, lo) < hi
                    if lowered is self._low and (self._needle or self._scan is not None)
                    else self._suspect(lowered, lo, hi) >= 0):
                if el is None:
                    el = Element(buf, tok)
                for _n, h in needle_hs:
                    h(el)
        if el is None:
            self._emit(buf[tok.start : tok.end])
            self._begin_text(name, buf[tok.start : tok.end])
            return
        for b in el._before:
            self._emit(b)
        void = name in VOID or (self._lexer.state == DATA and self._sim.stack and el.self_closing)
        if el.removed:
            if void:
                for b in el._after:
                    self._emit(b)
            else:
                self._track_end(_Pending(name, [], el._after, True))
                self._suppress += 1
            self._begin_text(name, el.raw)
            return
        self._emit(el.serialize())
        for b in el._prepend:
            self._emit(b)
        if void:
            for b in el._append + el._after:
                self._emit(b)
        elif el._append or el._after:
            self._track_end(_Pending(name, el._append, el._after, False))
        self._begin_text(name, el.raw)

    def _track_end(self, pending: _Pending) -> None:
        # This start tag was counted as nesting for older entries; it now has its own entry.
        for p in self._pending:
            if p.name == pending.name:
                p.depth -= 1
        self._pending.append(pending)

    def _begin_text(self, name: bytes, start_tag: bytes) -> None:
        if self._lexer.state != DATA and name in self._text_handlers:
            self._text = []
            self._text_size = 0
            self._text_tag = name
            self._text_start = start_tag
            self._text_overflow = False
            self._text_stream = None
            self._text_asked = False

    def _collect(self, piece: bytes) -> None:
        assert self._text is not None
        stream = self._text_stream
        if stream is not None:
            self._emit(stream.feed(piece))
            return
        if self._text_overflow:
            self._emit(piece)
            return
        self._text.append(piece)
        self._text_size += len(piece)
        if (self._streamer is not None and not self._text_asked
                and self._text_size > min(self.stream_text_after, self.max_text_bytes)):
            self._text_asked = True
            head = b"".join(self._text)
            stream = self._streamer(self._text_tag, self._text_start, head)
            if stream is not None:
                self._text_stream = stream
                self._text = []
                self._emit(stream.feed(head))
                return
        if self._text_size > self.max_text_bytes:
            log.warning("html: <%s> text over %d bytes passed through unmodified",
                        self._text_tag.decode(errors="replace"), self.max_text_bytes)
            self._text_overflow = True
            # Handlers still see the first bytes (``complete`` False) so that a stateful one
            # (inline Flight) knows a body went by unseen; they may replace those bytes only.
            body = TextBody(self, self._text_tag, self._text_start, b"".join(self._text), complete=False)
            self._text = []
            for h in self._text_handlers.get(self._text_tag, ()):
                h(body)
            for b in body._before:
                self._emit(b)
            self._emit(body.output if body.slot is None else body.raw)
            for b in body._after:
                self._emit(b)

    def _flush_text(self) -> None:
        """Run text handlers on the collected body and emit it."""
        if self._text is None:
            return
        pieces, self._text = self._text, None
        stream = self._text_stream
        if stream is not None:
            self._text_stream = None
            self._emit(stream.finish())
            return
        if self._text_overflow:
            return
        body = TextBody(self, self._text_tag, self._text_start, b"".join(pieces))
        for h in self._text_handlers.get(self._text_tag, ()):
            h(body)
            if body.slot is not None:
                break
        for b in body._before:
            self._emit(b)
        if body.slot is not None:
            self._emit_slot(body.slot)
        else:
            self._emit(body.output)
        for b in body._after:
            self._emit(b)

    def _end(self, buf: bytes, tok: Token) -> None:
        name = tok.name
        raw = buf[tok.start : tok.end]
        if self._text is not None:
            self._flush_text()
        pend: _Pending | None = None
        for i in range(len(self._pending) - 1, -1, -1):
            p = self._pending[i]
            if p.name == name:
                if p.depth == 0:
                    pend = p
                    del self._pending[i]
                else:
                    p.depth -= 1
                break
        if pend is not None and not pend.removed:
            for b in pend.append:
                self._emit(b)
        handlers = self._end_tag_handlers.get(name)
        if handlers:
            et = EndTag(name, raw)
            for h in handlers:
                h(et)
            for b in et._before:
                self._emit(b)
            self._emit(raw)
            for b in et._after:
                self._emit(b)
        else:
            self._emit(raw)
        if pend is not None:
            if pend.removed:
                self._suppress -= 1
            for b in pend.after:
                self._emit(b)


@functools.lru_cache(maxsize=64)
def _boring_re(names: frozenset[bytes], ends: frozenset[bytes], needle_set: frozenset[bytes]) -> re.Pattern[bytes]:
    """One regex matching a run of text and tags no handler can care about (compiled once)."""
    alt = b"|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    ws, d = rb"\t\n\f\r ", rb"[\t\n\f\r />]"
    value_dq, value_sq, value_uq = rb'[^"]*+', rb"[^']*+", rb"(?![\"'])[^\t\n\f\r >]*+"
    if needle_set:
        needles = sorted(needle_set)
        firsts = bytes(sorted({c for n in needles for c in (n[:1].lower() + n[:1].upper())}))
        fc = re.escape(firsts).replace(b"-", rb"\-")
        rest = b"|".join(re.escape(n[1:]) for n in needles)
        guard = b"[" + fc + b"](?!(?i:" + rest + b"))"
        value_dq = b'(?:[^"' + fc + b"]++|" + guard + b")*+"
        value_sq = b"(?:[^'" + fc + b"]++|" + guard + b")*+"
        # the value must end right after: a needle may not restart as an attribute name
        value_uq = rb"(?![\"'])(?:[^\t\n\f\r >" + fc + b"]++|" + guard + rb")*+(?=[\t\n\f\r >])"
    attrs = (
        b"(?:[" + ws + b"/]++|[^" + ws + b"/>][^" + ws + b"/>=]*+(?:[" + ws + b"]*+=[" + ws + b"]*+"
        b'(?:"' + value_dq + b'"|\'' + value_sq + b"'|" + value_uq + b")|(?![" + ws + b"]*+=)))*+"
    )
    any_attrs = (
        b"(?:[" + ws + b"/]++|[^" + ws + b"/>][^" + ws + b"/>=]*+(?:[" + ws + b"]*+=[" + ws + b"]*+"
        rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|(?![" + ws + b"]*+=)))*+"
    )
    start = b"<(?!(?i:" + alt + b")" + d + b")[a-zA-Z][^" + ws + b"/>]*+" + attrs + b">"
    if ends:
        ealt = b"|".join(re.escape(n) for n in sorted(ends, key=len, reverse=True))
        end = b"</(?!(?i:" + ealt + b")" + d + b")[a-zA-Z][^" + ws + b"/>]*+" + any_attrs + b">"
    else:
        end = b"</[a-zA-Z][^" + ws + b"/>]*+" + any_attrs + b">"
    # a whole comment, ended as the lexer ends it: ``<!-->``, ``<!--->`` or the first ``--!?>``
    comment = rb"<!--(?:>|->|(?:[^-]++|-(?!-!?>))*+--!?>)"
    return re.compile(b"(?:[^<]++|" + start + b"|" + end + b"|" + comment + rb"|<(?=[^a-zA-Z!/?]))*+")


def is_ws(c: int) -> bool:
    """HTML whitespace (tab, LF, FF, CR, space)."""
    return c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D


def _is_alpha(c: int) -> bool:
    return 0x61 <= (c | 0x20) <= 0x7A


def _scan_tag(buf: bytes, p: i64, end: i64, stop: frozenset[bytes]) -> i64:
    """End of the tag whose name starts at ``buf[p]`` (a letter) if it completes before ``end``
    and its lower-cased name is not in ``stop``; else -1. The tag grammar of ``_boring_re``."""
    s: i64 = p
    p += 1
    while p < end:
        c = buf[p]
        if is_ws(c) or c == 0x2F or c == 0x3E:  # '/', '>'
            break
        p += 1
    if p >= end:
        return -1
    if stop and buf[s:p].lower() in stop:
        return -1
    while p < end:
        c = buf[p]
        if c == 0x3E:
            return p + 1
        if is_ws(c) or c == 0x2F:
            p += 1
            continue
        p += 1  # the attribute name's first byte may be anything else, even '='
        while p < end:
            c = buf[p]
            if is_ws(c) or c == 0x2F or c == 0x3E or c == 0x3D:
                break
            p += 1
        q = p
        while q < end and is_ws(buf[q]):
            q += 1
        if q < end and buf[q] == 0x3D:  # '=': a value follows
            q += 1
            while q < end and is_ws(buf[q]):
                q += 1
            if q >= end:
                return -1
            c = buf[q]
            if c == 0x22 or c == 0x27:  # a quoted value must close before ``end``
                q += 1
                while q < end and buf[q] != c:
                    q += 1
                if q >= end:
                    return -1
                p = q + 1
            else:
                while q < end:
                    c = buf[q]
                    if is_ws(c) or c == 0x3E:
                        break
                    q += 1
                p = q
    return -1


def tag_span(buf: bytes, pos: i64, end: i64) -> tuple[i64, i64]:
    """For a start tag at ``buf[pos]`` (``<`` then a letter) that ``lexer.TAG`` matches before
    ``end``: (tag end, tag name end); else ``(-1, -1)``. The byte-loop twin of ``_tag_span_re``."""
    p = pos + 1
    if p >= end or not _is_alpha(buf[p]):
        return -1, -1
    te = _scan_tag(buf, p, end, _NO_NAMES)
    if te < 0:
        return -1, -1
    p += 1
    while True:  # the name ends before the tag does
        c = buf[p]
        if is_ws(c) or c == 0x2F or c == 0x3E:
            return te, p
        p += 1


def _tag_span_re(buf: bytes, pos: int) -> tuple[int, int]:
    """``tag_span`` by ``lexer.TAG`` (the interpreted build's way)."""
    t = TAG.match(buf, pos)
    if t is None or t.start(1) != t.end(1):
        return -1, -1
    return t.end(), t.end(2)


_NO_NAMES: frozenset[bytes] = frozenset()


def _scan_comment(buf: bytes, pos: i64, end: i64) -> i64:
    """End of the comment at ``buf[pos]`` (``<!``) if it is one and ends before ``end``, else -1:
    ``<!-->``, ``<!--->`` or up to the first ``-->`` / ``--!>`` from ``pos + 4`` (as the lexer)."""
    p: i64 = pos + 4
    if p >= end or buf[pos + 2] != 0x2D or buf[pos + 3] != 0x2D:
        return -1
    if buf[p] == 0x3E:
        return p + 1
    if buf[p] == 0x2D and p + 1 < end and buf[p + 1] == 0x3E:
        return p + 2
    while p + 2 < end:
        if buf[p] == 0x2D and buf[p + 1] == 0x2D:
            c = buf[p + 2]
            if c == 0x3E:
                return p + 3
            if c == 0x21 and p + 3 < end and buf[p + 3] == 0x3E:
                return p + 4
        p += 1
    return -1


def scan_boring(buf: bytes, pos: i64, end: i64, names: frozenset[bytes], ends: frozenset[bytes]) -> i64:
    """Where ``_boring_re(names, ends, frozenset()).match(buf, pos, end)`` ends, by hand: runs of
    text and of start/end tags whose names are not in ``names`` / ``ends``; stops at markup
    declarations, processing instructions, bogus end tags and anything incomplete before ``end``."""
    # Byte loops rather than ``bytes.find``: compiled, a loop step costs less than a method call.
    while pos < end:
        while pos < end and buf[pos] != 0x3C:  # '<'
            pos += 1
        if pos >= end:
            return end
        if pos + 1 >= end:
            return pos
        c = buf[pos + 1]
        q: i64
        if _is_alpha(c):
            q = _scan_tag(buf, pos + 1, end, names)
        elif c == 0x2F:  # '/'
            if pos + 2 >= end or not _is_alpha(buf[pos + 2]):
                return pos
            q = _scan_tag(buf, pos + 2, end, ends)
        elif c == 0x21:  # '!': only a whole comment is boring
            q = _scan_comment(buf, pos, end)
        elif c == 0x3F:  # '?'
            return pos
        else:
            q = pos + 1  # a '<' that starts no markup is text
        if q < 0:
            return pos
        pos = q
    return pos
