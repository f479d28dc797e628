"""The over-long tag follower: the rewriter's memory limiter for tags.

A tag still open after ``[html] max_tag_bytes`` is not buffered further: ``TagSkipper`` follows
its structure byte by byte (quotes, ``/>``) to find where it ends while its bytes stream out.
Runs only on that pathological path. Must not know: handlers, output, rules.
"""

from __future__ import annotations

_WS = b"\t\n\f\r "


class TagSkipper:
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
