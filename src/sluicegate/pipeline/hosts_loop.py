"""The origin's host pattern as a byte loop: the compiled origin-tag path's host match.

Owns ``HostLoop.match_end``, which answers what ``OriginMatcher.pattern.match(low, i, lend)`` answers
for a single authority (``hosts._host_pattern(..., first=True)``: the host, one trailing dot before a URL
delimiter, the port ``:P`` / ``%3aP`` (optional when it is the scheme's default), and the hostname
boundary look-ahead), with no regex call: compiled with mypyc, a loop over a host's few bytes costs less
than ``re`` (``tests/unit/pipeline/test_hosts.py`` checks it against the regex with hypothesis).
Must not know: URL forms, prefixes, replacements (``hosts``), markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import i64  # native ints for the byte loops when compiled


def _equal_end(low: bytes, at: i64, lend: i64, want: bytes) -> i64:
    """``at + len(want)`` when ``low[at:lend]`` starts with ``want``, else -1 (the host, then the port)."""
    n: i64 = len(want)
    if at + n > lend:
        return -1
    j: i64 = 0
    while j < n:
        if low[at + j] != want[j]:
            return -1
        j += 1
    return at + n


class HostLoop:
    """One authority's host pattern (lower-case ``host``, ``port`` digits, ``port_optional``)."""

    def __init__(self, host: bytes, port: bytes, port_optional: bool) -> None:
        self.host = host
        self.port = port
        self.port_optional = port_optional

    def match_end(self, low: bytes, i: i64, lend: i64) -> i64:
        """``pattern.match(low, i, lend).end()`` for the origin's host pattern, or -1: the regex's
        backtracking order (trailing dot, then port, each tried before leaving it out)."""
        h = _equal_end(low, i, lend, self.host)
        if h < 0:
            return -1
        # one trailing dot belongs to the host when a URL delimiter follows it
        dot = False
        if h < lend and low[h] == 0x2E and h + 1 < lend:
            c = low[h + 1]
            if c == 0x2F or c == 0x3F or c == 0x23 or c == 0x3A:
                dot = True
            elif c == 0x25 and h + 3 < lend:
                a = low[h + 2]
                b = low[h + 3]
                dot = (a == 0x32 and (b == 0x66 or b == 0x33)) or (a == 0x33 and (b == 0x66 or b == 0x61))
        d: i64 = h + 1 if dot else h
        while d >= h:
            e = self._port_end(low, d, lend)
            if e >= 0 and self._boundary(low, e, lend, True):
                return e
            if self.port_optional and self._boundary(low, d, lend, False):
                return d
            d -= 1
        return -1

    def _port_end(self, low: bytes, d: i64, lend: i64) -> i64:
        """End of ``:PORT`` or ``%3aPORT`` at ``low[d]``, or -1."""
        if d < lend and low[d] == 0x3A:
            d += 1
        elif d + 3 <= lend and low[d] == 0x25 and low[d + 1] == 0x33 and low[d + 2] == 0x61:
            d += 3
        else:
            return -1
        return _equal_end(low, d, lend, self.port)

    def _boundary(self, low: bytes, e: i64, lend: i64, ported: bool) -> bool:
        """The host does not continue at ``low[e]`` (the pattern's negative look-ahead; after an
        explicit port only a digit continues it)."""
        if e >= lend:
            return True
        c = low[e]
        if 0x30 <= c <= 0x39:
            return False
        if ported and not self.port_optional:
            return True
        if (0x61 <= c <= 0x7A) or c == 0x5F or c == 0x2D:
            return False
        if e + 1 < lend:
            c2 = low[e + 1]
            if c == 0x2E and ((0x61 <= c2 <= 0x7A) or (0x30 <= c2 <= 0x39) or c2 == 0x2D):
                return False
            if c == 0x3A and 0x30 <= c2 <= 0x39:
                return False
        # '%3a' and a digit: another port
        return not (c == 0x25 and e + 3 < lend and low[e + 1] == 0x33 and low[e + 2] == 0x61
                    and 0x30 <= low[e + 3] <= 0x39)
