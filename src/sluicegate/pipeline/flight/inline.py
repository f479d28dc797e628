"""Inline Flight in HTML: ``self.__next_f.push([1,"..."])`` scripts, rewritten while streaming.

Owns the Next.js inline-Flight protocol as a sans-IO object independent of any HTML parser: the
caller hands it the raw text of each ``<script>`` in document order (``script``) and the end of
the document (``finish``); it answers which scripts carry Flight data and, as soon as each one is
decided, its new raw text.

Next.js writes the Flight stream of the page into the document as JS string literals, split at
arbitrary points: ``[1, "<text>"]`` pushes carry the stream's UTF-8 bytes (what
``TextEncoder.encode`` makes of the string), ``[3, "<base64>"]`` pushes carry bytes that were not
valid UTF-8; ``[0]`` (bootstrap) and ``[2, ...]`` (form state) are not part of the stream. The
push forms ``self.__next_f.push``, ``window.__next_f.push`` and
``(self.__next_f=self.__next_f||[]).push`` are recognised, with either quote character.

Every data literal is decoded and fed, in order, to one ``FlightLexer``; the lexer's ops are cut
back at literal boundaries (an atomic op - a rewritten reference, a new ``T`` header - lands whole
in the literal where its input starts). A script is final once the ops cover all of its bytes: at
once, unless a ``T`` row that starts in it is still open (or, rarely, its last few bytes could
still begin an origin reference split across two pushes); then it is held until the row closes.
Held scripts are bounded by ``max_inline_hold_bytes``: over it the open ``T`` row is passed
through unrewritten with its original length and a warning is logged, never a wrong length. A
script whose ``__next_f`` data cannot be parsed makes the rest of the document pass through
unchanged (logged). Unchanged scripts are returned byte-identical; changed literals are
re-escaped the way Next.js escapes them.

Knows nothing about HTML tokenizing, HTTP or hosts beyond handing the ``HostRewriter`` on.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections import deque
from dataclasses import dataclass, field

from sluicegate.pipeline.flight.jsstring import JsStringError, decode_literal, encode_literal
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
    end: int = 0


@dataclass(frozen=True)
class InlineResult:
    """Answer for one script.

    ``flight``: the script carries ``__next_f`` stream data (the caller must not apply its own
    rewriting to it). ``slot``: the number given to this script. ``ready``: ``(slot, new_raw)``
    for every script decided by this call, in document order - possibly this one, possibly
    earlier held ones. A Flight script whose slot is not in ``ready`` is held.
    """

    flight: bool
    slot: int | None
    ready: list[tuple[int, bytes]]


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
        b = _BODY[quote].match(text, body_start)
        if b is None:
            raise InlineParseError("unterminated string literal in a __next_f push")
        body_end = b.end() - 1
        c = _CLOSE.match(text, b.end())
        if c is None:
            raise InlineParseError("unexpected text after a __next_f push literal")
        body = text[body_start:body_end]
        try:
            if kind == 1:
                data = decode_literal(body, quote)
            else:
                data = base64.b64decode(decode_literal(body, quote), validate=True)
        except (JsStringError, binascii.Error, ValueError) as exc:
            raise InlineParseError(f"bad __next_f literal: {exc}") from exc
        found.append(_Literal(kind, quote, body_start, body_end, data))
        pos = c.end()


class InlineFlightRewriter:
    """Per-document state for the inline ``__next_f`` Flight stream."""

    def __init__(self, rewriter: HostRewriter, *, max_row_bytes: int, max_hold_bytes: int) -> None:
        self.lexer = FlightLexer(rewriter, max_row_bytes)
        self.max_hold_bytes = max_hold_bytes
        self._pending: deque[_Script] = deque()
        self._open: deque[_Literal] = deque()
        self._pos = 0
        self._covered = 0
        self._slots = 0
        self._broken = False
        self.held_bytes = 0
        self.max_held_bytes = 0
        self.scripts_seen = 0

    # -- public --------------------------------------------------------------------------

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
        sc = _Script(slot, raw, text, literals)
        for lit in literals:
            lit.start = self._pos
            self.lexer.feed(lit.data)
            self._pos += len(lit.data)
            lit.end = self._pos
            self._open.append(lit)
        sc.end = self._pos
        self._pending.append(sc)
        self.held_bytes += len(raw)
        self._consume()
        ready = self._resolve()
        if self.held_bytes > self.max_held_bytes:
            self.max_held_bytes = self.held_bytes
        if self.held_bytes > self.max_hold_bytes and self._pending:
            ready += self.relieve(f"held __next_f scripts exceed {self.max_hold_bytes} bytes")
        return InlineResult(True, slot, ready)

    def relieve(self, reason: str) -> list[tuple[int, bytes]]:
        """Stop holding now (cap reached, here or in the caller): the open ``T`` row passes
        through unrewritten; returns the scripts this decides."""
        self.lexer.abandon(reason)
        self._consume()
        return self._resolve()

    def finish(self) -> list[tuple[int, bytes]]:
        """End of document: decide every script still held."""
        self.lexer.finish()
        self._consume()
        ready = self._resolve()
        while self._pending:  # cannot happen once the lexer is finished; never drop a script
            sc = self._pending.popleft()
            ready.append((sc.slot, sc.raw))
        return ready

    @property
    def pending_slots(self) -> list[int]:
        return [sc.slot for sc in self._pending]

    # -- internals -----------------------------------------------------------------------

    def _break(self, raw: bytes, reason: str) -> InlineResult:
        if not self._broken:
            log.warning("flight: unreadable __next_f script (%s); rest of the document unchanged", reason)
            self._broken = True
            self.lexer.go_raw(reason)
            self._consume()
        ready = self._resolve()
        slot = self._slots
        self._slots += 1
        ready.append((slot, raw))
        return InlineResult(True, slot, ready)

    def _consume(self) -> None:
        ops = self.lexer.take_ops()
        if not ops:
            return
        lits = self._open
        pos = self._covered
        for in_len, out, atomic in ops:
            while lits[0].end <= pos:
                lits.popleft()
            lit = lits[0]
            if atomic or pos + in_len <= lit.end:
                lit.parts.append(out)
            else:
                off = 0
                p = pos
                size = len(out)
                while off < size:
                    while lits[0].end <= p:
                        lits.popleft()
                    lit = lits[0]
                    take = min(size - off, lit.end - p)
                    lit.parts.append(out[off : off + take])
                    off += take
                    p += take
            pos += in_len
        self._covered = pos
        while lits and lits[0].end <= pos and lits[0].start < pos:
            lits.popleft()

    def _resolve(self) -> list[tuple[int, bytes]]:
        ready: list[tuple[int, bytes]] = []
        pending = self._pending
        while pending and pending[0].end <= self._covered:
            sc = pending.popleft()
            self.held_bytes -= len(sc.raw)
            ready.append((sc.slot, self._render(sc)))
        return ready

    @staticmethod
    def _render(sc: _Script) -> bytes:
        pieces: list[str] = []
        last = 0
        for lit in sc.literals:
            out = b"".join(lit.parts)
            if out == lit.data:
                continue
            if lit.kind == 1:
                try:
                    value = out.decode("utf-8")
                except UnicodeDecodeError:  # cannot happen: cuts fall on the input's own boundaries
                    log.error("flight: rewritten __next_f literal is not UTF-8; kept unchanged")
                    continue
                body = encode_literal(value, lit.quote)
            else:
                body = base64.b64encode(out).decode("ascii")
            pieces.append(sc.text[last : lit.src_start])
            pieces.append(body)
            last = lit.src_end
        if not pieces:
            return sc.raw
        pieces.append(sc.text[last:])
        return "".join(pieces).encode("utf-8")
