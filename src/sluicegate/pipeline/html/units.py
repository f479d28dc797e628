"""The rewritable units handed to handlers: ``Element``, ``EndTag``, ``TextBody``, ``TextChunk``,
``DocumentEnd``, and the handler signatures.

Owns what a handler may read and change about one unit: an element's attributes (decoded on
demand, written back byte for byte where unchanged: ``attrs``), content inserted before / after /
inside it, removal; a raw-text body's replacement or its ``Deferred`` output slot; insertions into
a text run; bytes appended at document end. Units only record edits; the dispatcher serializes
them in document order. Must not know: the scanner, the tokenizer's state machine, rules, hosts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from sluicegate.pipeline.html.attrs import by_vstart, decode_value, encode_value, needle_attrs, splice_value
from sluicegate.pipeline.html.lexer import START, Attr, Token, iter_attrs, self_closing
from sluicegate.pipeline.html.output import Deferred, OutputQueue


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
            out[name.decode("utf-8", "surrogateescape")] = decode_value(new)
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
        return decode_value(self.raw[a.vstart : a.vend])

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
            return decode_value(self._raw_edits[key][1])
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
                for a, new_raw in sorted(self._raw_edits.values(), key=by_vstart):
                    parts += [raw[pos : a.vstart], new_raw]
                    pos = a.vend
                parts.append(raw[pos:])
                return b"".join(parts)
            for key, (_, new_raw) in self._raw_edits.items():
                self._edits[key] = decode_value(new_raw)
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
            spliced = splice_value(raw[a.vstart : a.vend], value, a.quote) if a.vstart >= 0 else None
            if spliced is not None:
                parts += [raw[pos : a.vstart], spliced]
                pos = a.vend
                continue
            quote, enc = encode_value(value, old_quote)
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
                quote, enc = encode_value(v, b'"')
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

    def __init__(self, out: OutputQueue, on_end: Callable[[EndHandler], None], tag: bytes, start_tag: bytes,
                 raw: bytes, complete: bool = True) -> None:
        super().__init__()
        self._out = out
        self._on_end = on_end
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
            self.slot = Deferred(self._out, self.output)
        return self.slot

    def on_end(self, callback: Callable[[DocumentEnd], None]) -> None:
        self._on_end(callback)

    @property
    def held_bytes(self) -> int:
        return self._out.held


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
    """The end of the document, handed to end handlers."""

    def __init__(self, out: OutputQueue) -> None:
        self._out = out

    def append(self, content: bytes) -> None:
        """Insert raw HTML at the very end of the document."""
        self._out.emit(content)

    @property
    def held_bytes(self) -> int:
        return self._out.held


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
