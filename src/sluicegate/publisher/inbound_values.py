"""One percent-encoded value (a query value, a form field value, a cookie value), public -> origin.

Sans-IO core of the inbound mapping. The percent-decoded view of the value is what gets mapped, by
the one mapping (``pipeline.hosts``) run backwards; what changed is then re-encoded the way the value
was sent, so the origin receives exactly what it wrote into its page:

* bytes that the mapping did not change keep their exact original spelling (``%2F`` stays ``%2F``,
  ``%2f`` stays ``%2f``, a literal ``/`` stays literal, ``+`` stays ``+``);
* a byte the mapping inserted is spelled as the same byte was spelled nearest before it in the same
  neighbourhood (``%3A`` or ``:``), with that neighbourhood's hex case; a byte never seen there is
  literal when unreserved, and percent-encoded when the neighbourhood encodes ``:`` or ``/``
  (``encodeURIComponent`` style).

Work is done per *segment*: the bytes around one or more nearby occurrences of the public host, wide
enough (``margin``) that a match decision inside can read all its context. Outside segments no byte
can change, which is also what lets ``map_prefix`` stream a long value with a bounded hold.

Left untouched, never "fixed" (bad input): a segment with malformed percent-encoding (``%2``,
``%zz``), and a host whose scheme or slashes were percent-encoded twice (``%253A%252F%252F``: after one
decoding a ``%`` still stands right before the host) -- the outbound mapping recognises an origin URL
percent-encoded once, so only that form may come back. A form body is the one place with a layer
more: the browser encodes the field's text, which may hold a once-encoded URL (``serialized_by_browser``).

Must not know about requests, headers or sockets.
"""

from __future__ import annotations

import difflib
import re
from urllib.parse import unquote_to_bytes

from sluicegate.pipeline.hosts import HostRewriter

_ESC = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_ESC = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# an escape that spells an unreserved byte (digits, letters, "-", ".", "_", "~")
_ESC_UNRESERVED = re.compile(rb"%(?:3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|2[DEde]|5[Ff]|7[Ee])")
_FORM_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DIFF_MAX = 4096  # a changed segment longer than this is aligned by common prefix/suffix only
_ENCODED_SCHEME_WINDOW = 16  # bytes before a host searched for a leftover "%" (double encoding)


def _decode(raw: bytes) -> tuple[bytes, list[int]]:
    """The once-decoded bytes, and for each decoded byte the index in ``raw`` where its spelling starts
    (plus one final entry: ``len(raw)``). Malformed escapes stay as literal bytes."""
    dec = bytearray()
    pos: list[int] = []
    i = 0
    for m in _ESC.finditer(raw):
        s = m.start()
        dec += raw[i:s]
        pos.extend(range(i, s))
        dec.append(int(m.group(1), 16))
        pos.append(s)
        i = m.end()
    dec += raw[i:]
    pos.extend(range(i, len(raw)))
    pos.append(len(raw))
    return bytes(dec), pos


class ValueMapper:
    """Public -> origin for percent-encoded values, one per (public host, request target)."""

    def __init__(self, rewriter: HostRewriter, public_host: str, *, serialized_by_browser: bool = False) -> None:
        self.rw = rewriter
        # Form bodies: the browser serialised each field's text (everything but letters, digits and
        # "*-._" percent-encoded), so a byte with no spelling nearby is spelled as the browser spells
        # it; and the text it serialised is what the page held (an attribute value), which may itself
        # hold a percent-encoded URL the outbound mapping wrote: one layer more is decoded, by ``inner``.
        self.browser = serialized_by_browser
        self.inner = ValueMapper(rewriter, public_host) if serialized_by_browser else None
        self.needle = public_host.lower().encode()
        self._plain_needle = all(c in _UNRESERVED for c in self.needle)
        # Context a match decision may read on either side of the host (scheme and slashes before it,
        # port and look-ahead after it), with room to spare. With an inner layer, twice the inner
        # margin (and an escape's length): the inner mapping's own neighbourhoods never reach the edges
        # of ours, where an escape of the inner layer may be cut in two.
        inner_margin = 32 + 2 * len(self.needle)
        self.margin = 2 * inner_margin + 3 if self.inner is not None else inner_margin
        # Bytes at the end of an unfinished value that ``map_prefix`` keeps back.
        self.keep = self.margin + len(self.needle) + 2

    def might_contain(self, raw: bytes) -> bool:
        """Cheap pre-check: can this value hold a public host, encoded or not?"""
        if self.needle in raw.lower():
            return True
        # only an escaped letter, digit, "-" or "." can hide a host name (escaped ":" and "/" cannot);
        # an IPv6 literal ("[", ":") can hide behind any escape
        hidden = _ESC_UNRESERVED.search(raw) is not None if self._plain_needle else b"%" in raw
        return hidden and self.needle in unquote_to_bytes(raw).lower()

    def map(self, raw: bytes) -> bytes:
        """A complete value, mapped."""
        if not self.might_contain(raw):
            return raw
        out, _ = self._map(raw, final=True)
        return out

    def map_prefix(self, raw: bytes) -> tuple[bytes, int]:
        """The mapped output for ``raw[:n]`` and ``n``: the part of an unfinished value that no later
        byte can change. ``n`` may be 0 (everything is still within reach of a possible match)."""
        if len(raw) <= self.keep:
            return b"", 0
        if not self.might_contain(raw):
            # no host yet: keep enough raw bytes (escapes spell one byte in three) that a host arriving
            # later still has its whole decoded context (scheme, slashes) in the held tail
            n = len(raw) - 3 * self.keep
            if n <= 0:
                return b"", 0
            # never cut inside an escape: the held rest must start at a unit boundary
            p = raw.rfind(b"%", max(0, n - 2), n)
            if p >= 0:
                n = p
            return raw[:n], n
        return self._map(raw, final=False)

    def _segments(self, dec: bytes) -> list[tuple[int, int, list[int]]]:
        low = dec.lower()
        needle = self.needle
        margin = self.margin
        segs: list[tuple[int, int, list[int]]] = []
        h = low.find(needle)
        while h >= 0:
            a = max(0, h - margin)
            b = min(len(dec), h + len(needle) + margin)
            if segs and a <= segs[-1][1]:
                pa, _, hosts = segs[-1]
                hosts.append(h)
                segs[-1] = (pa, b, hosts)
            else:
                segs.append((a, b, [h]))
            h = low.find(needle, h + 1)
        return segs

    def _map(self, raw: bytes, final: bool) -> tuple[bytes, int]:
        dec, pos = _decode(raw)
        segs = self._segments(dec)
        cut = len(dec)
        if not final:
            cut = len(dec) - self.keep
            for a, b, _ in segs:
                if b > cut:  # reaches into the held tail: hold this segment whole
                    cut = min(cut, a)
                    break
            if cut <= 0:
                return b"", 0
        out: list[bytes] = []
        done = 0  # decoded index up to which output was produced
        for a, b, hosts in segs:
            if a >= cut:
                break
            out.append(raw[pos[done] : pos[a]])
            out.append(self._segment(raw, dec, pos, a, b, hosts))
            done = b
        out.append(raw[pos[done] : pos[cut]])
        return b"".join(out), pos[cut]

    def _segment(self, raw: bytes, dec: bytes, pos: list[int], a: int, b: int, hosts: list[int]) -> bytes:
        original = raw[pos[a] : pos[b]]
        if _BAD_ESC.search(original):
            return original  # malformed percent-encoding near the host: not ours to touch
        seg = dec[a:b]
        if self.inner is not None:
            new = self.inner.map(seg)  # the decoded text is itself a value (an attribute's text)
        else:
            for h in hosts:
                if b"%" in dec[max(a, h - _ENCODED_SCHEME_WINDOW) : h]:
                    return original  # encoded twice (or more): the outbound mapping never wrote this
            new = self.rw.rewrite(seg)
        if new == seg:
            return original
        if len(hosts) > 1 and len(seg) <= _DIFF_MAX and len(new) <= _DIFF_MAX:
            # several matches: align so the bytes between them keep their spelling
            ops = difflib.SequenceMatcher(None, seg, new, autojunk=False).get_opcodes()
        else:
            # one match (or a long run): one changed stretch between the common prefix and suffix
            p = _common_prefix(seg, new)
            s = _common_prefix(seg[p:][::-1], new[p:][::-1])
            ops = [("equal", 0, p, 0, p), ("replace", p, len(seg) - s, p, len(new) - s)]
            ops.append(("equal", len(seg) - s, len(seg), len(new) - s, len(new)))
        pieces: list[bytes] = []
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                pieces.append(raw[pos[a + i1] : pos[a + i2]])
            elif tag in ("replace", "insert"):
                at, end = pos[a + i1] - pos[a], pos[a + i2] - pos[a]
                pieces.append(self._spell(new[j1:j2], original, at, end, _lower_hex(original, at, end)))
        return b"".join(pieces)

    def _spell(self, data: bytes, original: bytes, at: int, end: int, lower_hex: bool) -> bytes:
        """Spell inserted bytes as the same bytes are spelled nearest the replaced ``original[at:end]``
        (the closer of before and after; before on a tie). ``:`` and ``/`` count as one class: every
        common encoder (``encodeURIComponent``, PHP ``urlencode``) encodes both or neither, so the
        nearest of either decides for both."""
        out = bytearray()
        unreserved_literal = _ESC_UNRESERVED.search(original) is None
        seen: dict[int, bool | None] = {}
        replaced = original[at:end]
        for c in data:
            if unreserved_literal and c in (_FORM_SAFE if self.browser else _UNRESERVED):
                out.append(c)  # nobody around here encodes letters, digits, "-._~": neither do we
                continue
            enc = (b"%%%02x" if lower_hex else b"%%%02X") % c
            if c in seen:
                choice = seen[c]
            elif c in _UNRESERVED and (b"%%%02x" % c) in replaced.lower():
                # the replaced host encoded this very character (``pub%2Etest``: the outbound mapping
                # spells the public host as the page spelled the origin's): so did the page
                choice = seen[c] = False
            else:
                choice = seen[c] = _nearest(original, at, end, _LINKED.get(c, (c,)))
            if choice is None:
                if self.browser:
                    if c in _FORM_SAFE:
                        out.append(c)
                    else:
                        out += enc
                elif c in _UNRESERVED:
                    out.append(c)
                elif c < 0x21 or c >= 0x7F or c == 0x25 or b"%3a" in original.lower() or b"%2f" in original.lower():
                    out += enc
                else:
                    out.append(c)
            elif choice and c != 0x25:
                out.append(c)
            else:
                out += enc
        return bytes(out)


_LINKED = {0x3A: (0x3A, 0x2F), 0x2F: (0x3A, 0x2F)}


def _nearest(original: bytes, at: int, end: int, chars: tuple[int, ...]) -> bool | None:
    """Is the spelling of any of ``chars`` nearest ``original[at:end]`` literal (True) or encoded (False)?"""
    best: tuple[int, bool] | None = None  # (distance, literal)
    for c in chars:
        for form, literal in ((bytes((c,)), True), (b"%%%02X" % c, False), (b"%%%02x" % c, False)):
            i = original.rfind(form, 0, at)
            if i >= 0:
                d = at - (i + len(form))
                if best is None or d < best[0]:
                    best = (d, literal)
            j = original.find(form, end)
            if j >= 0:
                d = j - end
                if best is None or d < best[0]:
                    best = (d, literal)
    return None if best is None else best[1]


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by halving (slice compares run in C)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _lower_hex(original: bytes, at: int, end: int) -> bool:
    """The hex case of the escape with a letter in it nearest ``original[at:end]`` (upper if none)."""
    best: tuple[int, bool] | None = None
    for m in _ESC.finditer(original):
        d = m.group(1)
        if d.isdigit():
            continue
        dist = at - m.end() if m.end() <= at else m.start() - end if m.start() >= end else 0
        if best is None or dist < best[0]:
            best = (dist, d == d.lower())
    return best is not None and best[1]
