"""Feeding ``text.StreamingHostReplacer`` piece by piece, checking its output lag after every feed."""

from __future__ import annotations

from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.text import StreamingHostReplacer

_P_SL = b"%2f%2f"


def undecided_tail(rw: HostRewriter, seen: bytes) -> int:
    """The longest tail of ``seen`` that may still begin an origin reference whose verdict is open, written
    plainly (byte loops): a proper prefix of a reference spelling (``https://orig``, ``\\/``, ``%2f%2``); or,
    from ``max_prefix`` bytes before it, a host fewer than ``tail`` bytes from the end (its port and
    look-ahead unknown); or, from 8 bytes (``https%3a``) before it, a ``%2f%2f`` whose percent-encoded host
    may not have ended."""
    low = seen.lower()
    n = len(low)
    forms = rw.matcher.ref_forms
    longest = 0
    for k in range(1, min(n, max(map(len, forms))) + 1):
        t = low[n - k :]
        if any(f.startswith(t) and f != t for f in forms):
            longest = k
    for needle in rw.matcher.needles:
        for h in range(max(0, n - rw.tail + 1), n):
            if low.startswith(needle, h):
                longest = max(longest, min(n, n - h + rw.max_prefix))
    for p in range(max(0, n - rw.tail - len(_P_SL) + 1), n):
        if low.startswith(_P_SL, p):
            longest = max(longest, min(n, n - p + len(b"https%3a")))
    return longest


def feed_checked(rw: HostRewriter, pieces: list[bytes], escapes: bool = True) -> bytes:
    """The replacer's whole output for ``pieces``; after each feed, asserts that it holds no more than the
    undecided tail of what it was fed (and never more than ``rw.hold``)."""
    r = StreamingHostReplacer(rw, escapes)
    out = []
    seen = b""
    for piece in pieces:
        out.append(r.feed(piece))
        seen += piece
        lag = undecided_tail(rw, seen)
        assert r.held <= lag, f"holds {r.held} bytes of {seen[-rw.hold:]!r}, at most {lag} can begin a reference"
        assert r.held <= rw.hold
    out.append(r.finish())
    assert r.held == 0
    return b"".join(out)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at each of ``cuts`` (clamped, any order, repeats give empty pieces)."""
    pieces, last = [], 0
    for c in sorted(min(c, len(data)) for c in cuts):
        pieces.append(data[last:c])
        last = c
    pieces.append(data[last:])
    return pieces
