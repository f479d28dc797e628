"""HTML text through the one mapping, decided as the browser reads it (#12 §1).

Owns the text filter of the HTML rewriter: character data (data state, ``<title>``,
``<textarea>``...) is passed through the one mapping (``pipeline.hosts``) like
``text.StreamingHostReplacer`` does, except that a run holding a character reference (``&#46;``,
``&#x68;``, ``&period;``...) is matched on its *decoded* view, the way the browser renders it: a
match is replaced in the raw bytes by the public reference as plain text (it holds no ``&`` or
``<``), every byte outside a match keeps its spelling. So ``https://origin&#46;example/p`` renders
as what React renders from the rewritten Flight string.

Streaming: with no suspect ``&`` in the buffer (``_SUSPECT_REF``) the hold is the mapping's own
(``HostRewriter.hold``); with one, a host may be spelled with references (up to ``_SPREAD`` raw
bytes per character), so the hold grows to that bound. A host spelled with more bytes per character
than that (leading zeros: ``&#0000046;``) is decided only when the whole spelling arrives within one
hold. References are resolved as the tokenizer does in text (``charrefs``), also in raw-text
elements (``<xmp>``), where the browser shows them literally.

Must not know about markup beyond character references.
"""

from __future__ import annotations

import re
from typing import Final

from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html.charrefs import decode, segments

# Raw bytes per decoded character a streaming decision allows for (``&period;`` is 8, ``&#x2f;`` 6).
_SPREAD: Final = 8
# Already-emitted raw bytes kept as look-behind context (one decoded character, a reference long).
_CONTEXT: Final = 16
# A character reference's raw spelling (for "never cut one in two"; charrefs decides what it means).
_REF: Final = re.compile(rb"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
# An ``&`` that may start a reference to a host or URL character: anything but the escapes React and
# most templates write for ``& < > " '`` (and a few typographic ones), which never spell one. One C
# search: the common page's text takes the raw-byte path and the small hold.
_SUSPECT_REF: Final = re.compile(rb"&(?=[#a-z])(?!(?:amp|lt|gt|quot|apos|nbsp|copy|#x0*2[27]|#x0*2[0-9a-f]{2}|"
                                 rb"#x0*3[ce]|#0*3[49]|#0*38|#0*6[02]|#0*8[0-9]{3}|#x0*20[0-9a-f]{2});)", re.I)


def decode_refs(raw: bytes) -> tuple[bytes, list[int], list[int]]:
    """``raw`` with character references resolved as the browser's tokenizer does in text
    (``charrefs``), UTF-8; and for each decoded byte the raw index where its spelling starts and
    where it ends. A reference's decoded characters all map to the reference's whole span
    (a legacy name's literal remainder, ``&copyx``, maps byte for byte)."""
    dec = bytearray()
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    for rpiece, dpiece in segments(raw.decode("latin-1"), in_attribute=False):
        n = len(rpiece)
        if rpiece == dpiece:
            for j in range(i, i + n):
                dec.append(raw[j])
                starts.append(j)
                ends.append(j + 1)
        else:
            k = 0  # literal remainder after a legacy named reference
            while k < n - 1 and k < len(dpiece) and rpiece[n - 1 - k] == dpiece[len(dpiece) - 1 - k] \
                    and rpiece[n - 1 - k].isalnum():
                k += 1
            for c in dpiece[: len(dpiece) - k].encode("utf-8", "surrogatepass"):
                dec.append(c)
                starts.append(i)
                ends.append(i + n - k)
            for j in range(i + n - k, i + n):
                dec.append(raw[j])
                starts.append(j)
                ends.append(j + 1)
        i += n
    return bytes(dec), starts, ends


class TextRefReplacer:
    """``feed(bytes) -> bytes``, ``finish() -> bytes``: one text run at a time (``finish`` at its end)."""

    def __init__(self, rewriter: HostRewriter) -> None:
        self._rw = rewriter
        self._tail = rewriter.tail
        self._max_prefix = rewriter.max_prefix
        self._buf = b""
        self._ctx = 0  # ``_buf[:_ctx]`` was emitted already (look-behind only)

    def _splice(self, buf: bytes, start: int, limit: int) -> tuple[list[bytes], int]:
        if _SUSPECT_REF.search(buf) is None or not self._rw.might_contain(
                decode(buf.decode("latin-1"), in_attribute=False).encode("utf-8", "surrogatepass")):
            return self._rw.splice(buf, start, limit, False)
        dec, starts, ends = decode_refs(buf)
        # decoded indices of the raw window: first byte spelled at/after ``start``, last host start <= limit
        ds = 0
        while ds < len(dec) and starts[ds] < start:
            ds += 1
        dl = ds
        while dl < len(dec) and starts[dl] <= limit:
            dl += 1
        out: list[bytes] = []
        pos = start
        rw = self._rw
        for a, b, form in rw.matcher.matches(dec, ds, dl - 1, False):
            ra, rb = starts[a], ends[b - 1]
            out.append(buf[pos:ra])
            out.append(rw.replacement(dec, a, b, form))
            pos = rb
        return out, pos

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        buf = self._buf + data if self._buf else data
        spread = _SPREAD if _SUSPECT_REF.search(buf) is not None else 1
        limit = len(buf) - self._tail * spread
        safe = limit + 1 - self._max_prefix * spread
        if safe <= self._ctx:
            self._buf = buf
            return b""
        out, pos = self._splice(buf, self._ctx, limit)
        cut = max(pos, safe)
        if spread > 1:  # never cut a character reference in two (its decoded view would change)
            p = buf.rfind(b"&", max(pos, cut - 48), cut)
            if p >= 0:
                m = _REF.match(buf, p)
                if m is not None and m.end() > cut:
                    cut = p
        out.append(buf[pos:cut])
        k = min(cut, _CONTEXT)
        self._ctx = k
        self._buf = buf[cut - k :]
        return b"".join(out)

    def finish(self) -> bytes:
        buf = self._buf
        out, pos = self._splice(buf, self._ctx, len(buf))
        out.append(buf[pos:])
        self._buf = b""
        self._ctx = 0
        return b"".join(out)
