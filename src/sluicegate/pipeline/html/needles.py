"""Several needles at once, by ``bytes.find`` each: the rewriter's multi-needle fast path.

Owns: the nearest position of any of several lower-case needles in a lower-cased buffer
(``NeedleScan``: one ``find`` per needle, repeated only for the needles the scan has passed),
the reduction of a needle set to the needles a scan must look for (``minimal_needles``: a needle
that contains another is found by the other's occurrences), and the test that a tag's bytes hold
other needles only inside occurrences of one needle (``only_inside``), which keeps the raw-byte
hook usable when origin aliases are substrings of the origin host (``example.com`` inside
``www.example.com``). Must not know HTML, rules or hosts: positions in bytes only.
"""

from __future__ import annotations


def minimal_needles(needles: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """``needles`` without those that contain another one (sorted, distinct). An occurrence of a
    dropped needle at ``p`` holds a kept one at ``p + d`` (``0 <= d < len(dropped)``, ``slack``):
    inside the same tag, so a scan that stops at kept occurrences stops at every tag holding
    any needle; a caller that must stop some bytes *before* a needle subtracts ``slack`` too."""
    uniq = sorted(set(needles))
    kept: list[bytes] = []
    for nd in uniq:
        if not any(o != nd and o in nd for o in uniq):
            kept.append(nd)
    return tuple(kept)


def slack(needles: tuple[bytes, ...]) -> int:
    """How far past a dropped needle's start (``minimal_needles``) its kept needle may begin."""
    kept = minimal_needles(needles)
    return max((len(nd) for nd in set(needles) if nd not in kept), default=0)


class NeedleScan:
    """The nearest occurrence of any of ``needles`` at or after a position, in one buffer.

    ``reset(low)`` starts on a new lower-cased buffer; ``next(pos)`` answers positions that do
    not go backwards, re-searching only the needles whose last occurrence lies before ``pos``
    (``len(low)``: none left)."""

    def __init__(self, needles: tuple[bytes, ...]) -> None:
        self.needles = minimal_needles(needles)
        self.slack = slack(needles)
        self.at: list[int] = [-1] * len(self.needles)
        self.low = b""
        self.n = 0

    def reset(self, low: bytes) -> None:
        self.low = low
        self.n = len(low)
        at = self.at
        for i in range(len(at)):
            at[i] = -1

    def next(self, pos: int) -> int:
        low = self.low
        n = self.n
        at = self.at
        needles = self.needles
        best = n
        for i in range(len(at)):
            p = at[i]
            if p < pos:
                p = low.find(needles[i], pos)
                if p < 0:
                    p = n
                at[i] = p
            if p < best:
                best = p
        return best


def only_inside(low: bytes, lo: int, hi: int, needle: bytes, others: tuple[bytes, ...]) -> bool:
    """True when ``low[lo:hi]`` holds ``needle`` and every occurrence there of each of
    ``others`` lies inside an occurrence of ``needle`` within ``low[lo:hi]`` (a substring of
    it, such as an alias domain inside the origin host); False when any other occurrence is
    found."""
    if low.find(needle, lo, hi) < 0:
        return False
    ln = len(needle)
    for o in others:
        p = low.find(o, lo, hi)
        if p < 0:
            continue
        offsets: list[int] = []
        d = needle.find(o)
        while d >= 0:
            offsets.append(d)
            d = needle.find(o, d + 1)
        if not offsets:
            return False  # ``o`` is no part of ``needle``: it stands on its own
        while p >= 0:
            inside = False
            for d in offsets:
                s = p - d
                if s >= lo and s + ln <= hi and low.startswith(needle, s):
                    inside = True
                    break
            if not inside:
                return False
            p = low.find(o, p + 1, hi)
    return True
