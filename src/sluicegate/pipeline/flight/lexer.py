"""The streaming React Flight row lexer and rewriter core (React 19 wire format).

Owns the framing of a Flight byte stream, exactly as React 19's ``processBinaryChunk`` reads it:
a row is ``<hex id>:`` then a tag byte that decides how the row ends:

* ``T`` (text) and the binary tags ``A O o U S s L l G g M m V b`` are length-prefixed:
  ``<hex length>,`` then exactly that many bytes, no terminator;
* ``A``-``Z`` (other than those), ``#``, ``r``, ``x`` are tagged rows ending at ``\\n``;
* any other byte is the first byte of an untagged (JSON) row ending at ``\\n``.

What it rewrites: origin references in newline rows and in ``T`` content (through
``HostRewriter``'s matcher, never a regex of its own); a ``T`` header gets the byte length of the
rewritten content. Binary rows are copied through byte-exact and unheld.

Output is a sequence of *ops* ``(input_length, output, atomic)`` that cover the input stream in
order. Identity ops (``atomic=False``) copy their input unchanged and may be cut anywhere by a
caller that splits the stream into pieces again (the inline ``__next_f`` path); atomic ops (a
rewritten reference, a recomputed ``T`` header) must land whole in the piece where their input
starts. What it holds: the content of one open ``T`` row (bounded by ``max_text_bytes``: over it
the row passes through with its original header, unrewritten, and a warning is logged) and at
most ``HostRewriter.hold`` undecided bytes of an open newline row, only when those bytes could
still begin an origin reference. A newline row is otherwise streamed as it arrives.

Knows nothing about HTTP, HTML, scripts or JavaScript escaping.
"""

from __future__ import annotations

import logging

from sluicegate.pipeline.hosts import CONTEXT, HostRewriter

log = logging.getLogger(__name__)

Op = tuple[int, bytes, bool]

# Length-prefixed row tags of React 19 (``T`` text, the rest binary / typed arrays / debug).
LENGTH_TAGS = frozenset(b"TAOobUSsLlGgMmV")
# Tags whose row ends at a newline; any other byte starts an untagged row.
LINE_TAGS = frozenset(set(range(ord("A"), ord("Z") + 1)) - LENGTH_TAGS) | frozenset(b"#rx")
_HEX = b"0123456789abcdefABCDEF"
_MAX_ID_DIGITS = 16
_MAX_LEN_DIGITS = 12


_ID, _TAG, _LEN_T, _LEN_BIN, _TEXT, _TEXT_RAW, _BIN, _LINE, _RAW = range(9)


def _is_hex(b: bytes) -> bool:
    return not b.translate(None, _HEX)


class FlightLexer:
    """Incremental Flight lexer; ``feed`` bytes, collect ``take_ops``; ``finish`` once."""

    def __init__(self, rewriter: HostRewriter, max_text_bytes: int, *, text: bool = True) -> None:
        self._rw = rewriter
        # ``text`` False ([html] rewrite_text = false): only ``H`` (hint) and ``I`` (module) rows,
        # which never feed rendered text, are rewritten; ``T`` rows and model rows pass unchanged.
        self._text = text
        self._line_rw = True
        self._matcher = rewriter.matcher
        self._repl = rewriter.replacements
        self._hold = rewriter.hold
        self._tail = rewriter.tail
        forms = self._matcher.ref_forms  # every prefix form of every origin authority
        self._form_prefixes = frozenset(f[:k] for f in forms for k in range(1, len(f) + 1))
        self._max_prefix = self._matcher.max_prefix
        self._max_text = max_text_bytes
        self.ops: list[Op] = []
        self._state = _ID
        self._digits = 0
        self._length = 0
        self._remaining = 0
        self._t_head = b""  # ``T<hex>,`` of the open text row (held)
        self._t_parts: list[bytes] = []
        self._t_size = 0
        self._ctx = b""  # last already-emitted bytes of the open newline row (look-behind)
        self._carry = b""  # undecided bytes of the open newline row (held)
        self.largest_text_row = 0
        self.abandoned_rows = 0

    # -- public --------------------------------------------------------------------------

    @property
    def held_bytes(self) -> int:
        return len(self._t_head) + self._t_size + len(self._carry)

    @property
    def in_text_row(self) -> bool:
        return self._state in (_LEN_T, _TEXT)

    def take_ops(self) -> list[Op]:
        ops = self.ops
        self.ops = []
        return ops

    def feed(self, data: bytes) -> None:
        i = 0
        n = len(data)
        ops = self.ops
        while i < n:
            st = self._state
            if st == _LINE and not self._line_rw:
                j = data.find(b"\n", i)
                end = n if j < 0 else j + 1
                ops.append((end - i, data[i:end], False))
                if j < 0:
                    return
                self._state = _ID
                i = end
            elif st == _LINE:
                j = data.find(b"\n", i)
                if j < 0:
                    self._line_partial(data[i:])
                    return
                self._line_final(data[i:j])
                ops.append((1, b"\n", False))
                self._state = _ID
                i = j + 1
            elif st == _ID:
                j = data.find(b":", i)
                end = n if j < 0 else j
                digits = data[i:end]
                self._digits += len(digits)
                if not _is_hex(digits) or self._digits > _MAX_ID_DIGITS:
                    self._go_raw("row id is not hex")
                    continue
                if j < 0:
                    if digits:
                        ops.append((len(digits), digits, False))
                    return
                ops.append((j + 1 - i, data[i : j + 1], False))
                self._digits = 0
                self._state = _TAG
                i = j + 1
            elif st == _TAG:
                b = data[i]
                if b == 0x54 and not self._text:  # T row left alone: framed like a binary row
                    ops.append((1, data[i : i + 1], False))
                    self._length = 0
                    self._state = _LEN_BIN
                    i += 1
                elif b == 0x54:  # T
                    self._t_head = b"T"
                    self._length = 0
                    self._state = _LEN_T
                    i += 1
                elif b in LENGTH_TAGS:
                    ops.append((1, data[i : i + 1], False))
                    self._length = 0
                    self._state = _LEN_BIN
                    i += 1
                elif b in LINE_TAGS:
                    ops.append((1, data[i : i + 1], False))
                    self._state = _LINE
                    self._line_rw = self._text or b in b"HI"
                    i += 1
                else:
                    self._state = _LINE
                    self._line_rw = self._text
            elif st in (_LEN_T, _LEN_BIN):
                j = data.find(b",", i)
                end = n if j < 0 else j
                digits = data[i:end]
                self._digits += len(digits)
                if not _is_hex(digits) or self._digits > _MAX_LEN_DIGITS:
                    self._go_raw("row length is not hex")
                    continue
                if digits:
                    self._length = (self._length << (4 * len(digits))) | int(digits, 16)
                if st == _LEN_T:
                    self._t_head += data[i : end + 1] if j >= 0 else digits
                elif j >= 0:
                    ops.append((j + 1 - i, data[i : j + 1], False))
                elif digits:
                    ops.append((len(digits), digits, False))
                if j < 0:
                    return
                self._digits = 0
                i = j + 1
                self._remaining = self._length
                if st == _LEN_T:
                    self._state = _TEXT
                    self._t_parts = []
                    self._t_size = 0
                    if self._length == 0:
                        self._text_done()
                    elif len(self._t_head) + self._length > self._max_text:
                        self._abandon_text()
                else:
                    self._state = _BIN if self._length else _ID
            elif st == _TEXT:
                take = min(self._remaining, n - i)
                self._t_parts.append(data[i : i + take])
                self._t_size += take
                self._remaining -= take
                i += take
                if self._remaining == 0:
                    self._text_done()
            elif st in (_BIN, _TEXT_RAW):
                take = min(self._remaining, n - i)
                ops.append((take, data[i : i + take], False))
                self._remaining -= take
                i += take
                if self._remaining == 0:
                    self._state = _ID
            else:  # _RAW
                ops.append((n - i, data[i:], False))
                return

    def finish(self) -> None:
        """End of stream: decide the open newline row, pass an unfinished row through raw."""
        st = self._state
        if st == _LINE:
            self._line_final(b"")
        elif st in (_LEN_T, _TEXT):
            self._release_text()
        self._state = _ID

    def abandon(self, reason: str) -> None:
        """Stop holding: an open ``T`` row passes through unrewritten with its original header,
        and the undecided tail of an open newline row is released as it is."""
        if self._state in (_LEN_T, _TEXT):
            log.warning("flight: T row passed through unrewritten: %s", reason)
            self.abandoned_rows += 1
            if self._state == _LEN_T:  # length not known yet: frame it like a binary row
                self._release_text()
                self._state = _LEN_BIN
            else:
                self._release_text()
                self._state = _TEXT_RAW if self._remaining else _ID
        elif self._state == _LINE:
            self._line_flush_carry()

    def go_raw(self, reason: str) -> None:
        """Copy everything from here on unchanged (the stream is no longer understood)."""
        self._go_raw(reason)

    # -- T rows ---------------------------------------------------------------------------

    def _release_text(self) -> None:
        self.ops.append((len(self._t_head), self._t_head, False))
        for part in self._t_parts:
            self.ops.append((len(part), part, False))
        self._t_head = b""
        self._t_parts = []
        self._t_size = 0

    def _abandon_text(self) -> None:
        log.warning("flight: T row of %d bytes exceeds the hold cap; passed through unrewritten", self._length)
        self.abandoned_rows += 1
        self._release_text()
        self._state = _TEXT_RAW if self._remaining else _ID

    def _text_done(self) -> None:
        content = b"".join(self._t_parts) if len(self._t_parts) != 1 else self._t_parts[0]
        head = self._t_head
        self._t_head = b""
        self._t_parts = []
        self._t_size = 0
        self._state = _ID
        if len(content) > self.largest_text_row:
            self.largest_text_row = len(content)
        new = self._rw.rewrite(content, False)  # T content is plain text, not JSON
        if new is content:
            self.ops.append((len(head), head, True))
            if content:
                self.ops.append((len(content), content, False))
            return
        self.ops.append((len(head), b"T%x," % len(new), True))
        self.ops.append((len(content), new, True))  # atomic: see ``_emit_matches``

    # -- newline rows ---------------------------------------------------------------------

    def _spliced(self, buf: bytes, start: int, found: list[tuple[int, int, int]], upto: int) -> list[bytes]:
        """``buf[start:upto]`` with the references ``found`` replaced, as pieces."""
        repl = self._repl
        out: list[bytes] = []
        pos = start
        rw = self._rw
        for m_start, m_end, form in found:
            out.append(buf[pos:m_start])
            out.append(repl[form] if (form == -1 or 0 <= form < 6) else rw.replacement(buf, m_start, m_end, form))
            pos = m_end
        out.append(buf[pos:upto])
        return out

    def _emit_matches(self, buf: bytes, start: int, found: list[tuple[int, int, int]], upto: int) -> None:
        # One op for the whole span: a rewritten span is atomic (it lands in the literal where it
        # starts; the stream the browser concatenates is the same), so it costs one op per feed,
        # not two per reference.
        if found:
            self.ops.append((upto - start, b"".join(self._spliced(buf, start, found, upto)), True))
        elif upto > start:
            self.ops.append((upto - start, buf[start:upto], False))

    def _line_final(self, chunk: bytes) -> None:
        ctx = self._ctx
        buf = ctx + self._carry + chunk if (ctx or self._carry) else chunk
        start = len(ctx)
        self._ctx = b""
        self._carry = b""
        found = self._matcher.matches(buf, start, len(buf)) if len(buf) > start else []
        self._emit_matches(buf, start, found, len(buf))

    def _line_partial(self, chunk: bytes) -> None:
        ctx = self._ctx
        buf = ctx + self._carry + chunk if (ctx or self._carry) else chunk
        start = len(ctx)
        size = len(buf)
        found = self._matcher.matches(buf, start, size - self._tail) if size - self._tail >= start else []
        pos = found[-1][1] if found else start
        cut = self._undecided_from(buf, max(pos, size - self._hold))
        self._emit_matches(buf, start, found, cut)
        if cut > start:
            self._ctx = buf[max(0, cut - CONTEXT) : cut]
        self._carry = buf[cut:]

    def _line_flush_carry(self) -> None:
        if self._carry:
            self.ops.append((len(self._carry), self._carry, False))
            self._ctx = (self._ctx + self._carry)[-CONTEXT:]
            self._carry = b""

    def _undecided_from(self, buf: bytes, frm: int) -> int:
        """Earliest index >= ``frm`` where an origin reference could still start, given that more
        bytes of this row may follow; ``len(buf)`` when every byte is decided."""
        size = len(buf)
        if frm >= size:
            return size
        low = buf[frm:].lower()
        best = size
        k = self._matcher.find_needle(low)
        if k >= 0:  # a complete host whose look-ahead or prefix may still change the verdict
            best = frm + max(0, k - self._max_prefix)
        # a percent-encoded host (``%2F%2Forigin%2Eexample``) is not a needle: hold from its ``%2F%2F``
        j = low.find(b"%2f%2f", max(0, len(low) - self._tail - 6))
        if j >= 0:
            best = min(best, frm + max(0, j - self._max_prefix))
        prefixes = self._form_prefixes
        for k in range(len(low)):
            if frm + k >= best:
                break
            if low[k:] in prefixes:
                return frm + k
        return best

    # -- raw ------------------------------------------------------------------------------

    def _go_raw(self, reason: str) -> None:
        if self._state == _RAW:
            return
        log.warning("flight: stream not understood (%s); passing the rest through unchanged", reason)
        if self._state in (_LEN_T, _TEXT):
            self._release_text()
        elif self._state == _LINE:
            self._line_flush_carry()
        self._state = _RAW
