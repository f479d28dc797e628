"""Inline Flight in HTML: ``self.__next_f.push([1,"..."])`` scripts, rewritten while streaming.

Owns the Next.js inline-Flight protocol as a sans-IO object independent of any HTML parser: the
caller hands it the raw text of each ``<script>`` in document order (``script``) and the end of
the document (``finish``); it answers at once which scripts carry Flight data and their new raw
text.

Next.js writes the Flight stream of the page into the document as JS string literals, split at
arbitrary points: ``[1, "<text>"]`` pushes carry the stream's UTF-8 bytes (what
``TextEncoder.encode`` makes of the string), ``[3, "<base64>"]`` pushes carry bytes that were not
valid UTF-8; ``[0]`` (bootstrap) and ``[2, ...]`` (form state) are not part of the stream. The
push forms ``self.__next_f.push``, ``window.__next_f.push`` and
``(self.__next_f=self.__next_f||[]).push`` are recognised, with either quote character.

Every data literal is decoded and fed, in order, to one ``FlightLexer``; the lexer's ops are cut
back at literal boundaries (an atomic op - a rewritten reference, a new ``T`` header - lands whole
in one literal). **No script is ever held**: each is answered in the call that offers it. Bytes
the lexer cannot decide yet - an open ``T`` row (its header needs the rewritten length) or the
last few bytes of an open row that could still begin an origin reference - are *carried*: they
leave this script and are written at the start of the next data literal instead. The browser reads
one stream from all pushes, so moving bytes between pushes changes nothing for React, which cannot
use a ``T`` row before it is complete anyway. What is held is the open ``T`` row's bytes, bounded by
``max_hold_bytes`` (and ``max_row_bytes``): a longer ``T`` row passes through unrewritten with its
original length (logged), never a wrong length. Bytes still carried at the end of the document
come back from ``finish`` as one extra push script for the caller to append. A script whose
``__next_f`` data cannot be parsed (or that the caller could not read whole: ``unreadable``) makes
the rest of the document pass through unchanged (logged); the bytes carried at that moment come
back in ``InlineResult.before``, for a script of their own ahead of it. Unchanged scripts are
returned byte-identical; changed literals are re-escaped the way Next.js escapes them (a
``[1, ...]`` literal whose new bytes are not UTF-8 becomes ``[3, base64]``).

Knows nothing about HTML tokenizing, HTTP or hosts beyond handing the ``HostRewriter`` on.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]

from sluicegate.pipeline.flight.jsstring import (
    JsStringError,
    decode_literal,
    encode_literal,
    encode_literal_utf8,
    to_utf8,
)
from sluicegate.pipeline.flight.lexer import FlightLexer
from sluicegate.pipeline.hosts import HostRewriter

log = logging.getLogger(__name__)

_PUSH = re.compile(
    r"(?:\(\s*(?:self|window|globalThis)\.__next_f\s*=\s*(?:self|window|globalThis)\.__next_f\s*\|\|\s*"
    r"\[\s*\]\s*\)|\b(?:self|window|globalThis)\.__next_f)\s*\.\s*push\s*\(\s*\[\s*(\d+)\s*"
)
_OPEN = re.compile(r",\s*([\"'])")
_BODY = {
    '"': re.compile(r'(?:[^"\\\n\r]++|\\[\s\S])*+"'),
    "'": re.compile(r"(?:[^'\\\n\r]++|\\[\s\S])*+'"),
}
_CLOSE = re.compile(r"\s*\]\s*\)")
_DATA_KINDS = (1, 3)


class InlineParseError(ValueError):
    """A ``__next_f`` data push this module cannot read."""


@dataclass
class _Literal:
    kind: int  # 1: text, 3: base64 binary
    kind_pos: int  # index of the kind digit in the script text
    quote: str
    src_start: int  # body (between the quotes) in the script text
    src_end: int
    data: bytes  # the stream bytes it carries
    start: int = 0  # absolute stream offsets
    end: int = 0
    parts: list[bytes] = field(default_factory=list)


@dataclass
class _Script:
    slot: int
    raw: bytes
    text: str
    literals: list[_Literal]


@dataclass(frozen=True)
class InlineResult:
    """Answer for one script.

    ``flight``: the script carries ``__next_f`` stream data (the caller must not apply its own
    rewriting to it). ``slot``: the number given to this script. ``ready``: ``(slot, new_raw)``
    for the scripts decided by this call - always exactly this one (the list form keeps the door
    open for callers that support holding). ``before``: when this script breaks the stream,
    the bytes carried out of earlier scripts, as the body of one push script the caller must
    place in its own ``<script>`` right before this one (else they would be lost or reordered).
    """

    flight: bool
    slot: int | None
    ready: list[tuple[int, bytes]]
    before: bytes = b""  # a push script body that must run just before this script (see ``_break``)


_NOT_FLIGHT = InlineResult(False, None, [])


def parse_pushes(text: str) -> list[_Literal]:
    """The data literals (``[1, "..."]`` / ``[3, "..."]``) of a script, in order."""
    found: list[_Literal] = []
    pos = 0
    while True:
        m = _PUSH.search(text, pos)
        if m is None:
            return found
        kind = int(m.group(1))
        pos = m.end()
        if kind not in _DATA_KINDS:
            continue
        o = _OPEN.match(text, pos)
        if o is None:
            raise InlineParseError(f"push([{kind}, ...]) without a string literal")
        quote = o.group(1)
        body_start = o.end()
        try:
            value: str | None = None
            if quote == '"':
                try:  # the common case (Next.js writes JSON): find the end and decode in one C call
                    value, after = scanstring(text, body_start, True)
                except ValueError:
                    value = None
            if value is None:
                b = _BODY[quote].match(text, body_start)
                if b is None:
                    raise InlineParseError("unterminated string literal in a __next_f push")
                after = b.end()
                data = decode_literal(text[body_start : after - 1], quote)
            else:
                data = to_utf8(value)
            if kind == 3:
                data = base64.b64decode(data, validate=True)
        except (JsStringError, binascii.Error, ValueError) as exc:
            raise InlineParseError(f"bad __next_f literal: {exc}") from exc
        body_end = after - 1
        c = _CLOSE.match(text, after)
        if c is None:
            raise InlineParseError("unexpected text after a __next_f push literal")
        found.append(_Literal(kind, m.start(1), quote, body_start, body_end, data))
        pos = c.end()


class InlineFlightRewriter:
    """Per-document state for the inline ``__next_f`` Flight stream."""

    def __init__(self, rewriter: HostRewriter, *, max_row_bytes: int, max_hold_bytes: int,
                 rewrite_text: bool = True) -> None:
        self.lexer = FlightLexer(rewriter, min(max_row_bytes, max_hold_bytes), text=rewrite_text)
        self._open: deque[_Literal] = deque()
        self._carried: list[bytes] = []  # ops output with no open literal yet (document end)
        self._pos = 0
        self._covered = 0
        self._slots = 0
        self._broken = False
        self._last_quote = '"'
        self.max_held_bytes = 0
        self.scripts_seen = 0
        self.carried_scripts = 0

    # -- public --------------------------------------------------------------------------

    @property
    def held_bytes(self) -> int:
        """Stream bytes not yet written to any script (an open ``T`` row, an undecided tail)."""
        return self._pos - self._covered

    def script(self, raw: bytes) -> InlineResult:
        """Offer the raw text of one ``<script>`` element (document order)."""
        if b"__next_f" not in raw:
            return _NOT_FLIGHT
        try:
            text = raw.decode("utf-8")
            literals = parse_pushes(text)
        except (UnicodeDecodeError, InlineParseError) as exc:
            if not self._broken and re.search(rb"push\s*\(\s*\[\s*[13]\s*,", raw) is None:
                return _NOT_FLIGHT
            return self._break(raw, str(exc))
        if not literals:
            return _NOT_FLIGHT
        slot = self._slots
        self._slots += 1
        self.scripts_seen += 1
        if self._broken:
            return InlineResult(True, slot, [(slot, raw)])
        for lit in literals:
            lit.start = self._pos
            self.lexer.feed(lit.data)
            self._pos += len(lit.data)
            lit.end = self._pos
            self._open.append(lit)
            self._last_quote = lit.quote
        self._consume()
        self._open.clear()
        held = self.held_bytes
        if held > self.max_held_bytes:
            self.max_held_bytes = held
        if self._pos > self._covered:
            self.carried_scripts += 1
        return InlineResult(True, slot, [(slot, self._render(_Script(slot, raw, text, literals)))])

    def finish(self) -> bytes:
        """End of document. Returns the body of one extra push script (``self.__next_f.push(...)``)
        carrying bytes that no later script could take (only for a document that ends inside a
        Flight row), or ``b""``; the caller appends it as a ``<script>`` at the end."""
        self.lexer.finish()
        self._consume()
        return self._carried_push()

    # -- internals -----------------------------------------------------------------------

    def unreadable(self, raw: bytes, reason: str) -> InlineResult:
        """A ``__next_f`` script this module cannot take (unparseable, or too long for the HTML
        rewriter to hand over whole): it and every later script pass through unchanged."""
        return self._break(raw, reason)

    def _break(self, raw: bytes, reason: str) -> InlineResult:
        before = b""
        if not self._broken:
            log.warning("flight: unreadable __next_f script (%s); rest of the document unchanged", reason)
            self._broken = True
            # Bytes carried out of earlier scripts (an open T row, with its original header) go
            # out now, ahead of this script, so the stream keeps its order.
            self.lexer.go_raw(reason)
            self._open.clear()
            self._consume()
            before = self._carried_push()
        slot = self._slots
        self._slots += 1
        return InlineResult(True, slot, [(slot, raw)], before)

    def _carried_push(self) -> bytes:
        """One push script body for the bytes no script has taken yet, or ``b""``."""
        data = b"".join(self._carried)
        self._carried = []
        if not data:
            return b""
        q = self._last_quote.encode()
        try:
            return b"self.__next_f.push([1,%s%s%s])" % (q, _encode_text(data, self._last_quote), q)
        except UnicodeDecodeError:
            return b"self.__next_f.push([3,%s%s%s])" % (q, base64.b64encode(data), q)

    def _consume(self) -> None:
        """Hand the lexer's ops to literals: an op whose input lies before the first open literal
        (carried from an earlier script) goes to the start of that literal."""
        ops = self.lexer.take_ops()
        if not ops:
            return
        lits = self._open
        pos = self._covered
        for in_len, out, atomic in ops:
            while len(lits) > 1 and lits[0].end <= pos:
                lits.popleft()
            if not lits:
                self._carried.append(out)
            elif atomic or pos < lits[0].start or pos + in_len <= lits[0].end:
                lits[0].parts.append(out)
            else:
                off = 0
                p = pos
                size = len(out)
                while off < size:
                    while lits[0].end <= p and len(lits) > 1:
                        lits.popleft()
                    lit = lits[0]
                    take = size - off if len(lits) == 1 else min(size - off, lit.end - p)
                    lit.parts.append(out[off : off + take])
                    off += take
                    p += take
            pos += in_len
        self._covered = pos

    @staticmethod
    def _render(sc: _Script) -> bytes:
        pieces: list[bytes] = []
        text = sc.text
        last = 0
        for lit in sc.literals:
            out = b"".join(lit.parts)
            if out == lit.data:
                continue
            kind = lit.kind
            body = b""
            if kind == 1:
                try:
                    body = _encode_text(out, lit.quote)
                except UnicodeDecodeError:  # carried bytes not UTF-8 here: send them as binary
                    kind = 3
            if kind == 3:
                body = base64.b64encode(out)
            if kind != lit.kind:
                pieces.append(text[last : lit.kind_pos].encode())
                pieces.append(b"%d" % kind)
                last = lit.kind_pos + 1
            # Only the short text between literals is re-encoded; literal bodies are built as bytes.
            pieces.append(text[last : lit.src_start].encode())
            pieces.append(body)
            last = lit.src_end
        if not pieces:
            return sc.raw
        pieces.append(text[last:].encode())
        return b"".join(pieces)


def _encode_text(data: bytes, quote: str) -> bytes:
    """Body of a ``[1, ...]`` literal for UTF-8 ``data`` (``UnicodeDecodeError`` if it is not)."""
    if quote == '"':
        if not data.isascii():
            data.decode("utf-8")  # validity only: the escaping below works on the bytes
        return encode_literal_utf8(data)
    return encode_literal(data.decode("utf-8"), quote).encode()
