"""Boundary-aware origin-host replacement for non-HTML text (CSS, JS, JSON, XML, plain text).

Works on bytes, so any ASCII-compatible charset and invalid UTF-8 pass through intact. A chunk
boundary may fall anywhere: a match is decided only once all the context it depends on has arrived,
so the output is the same for every split of the input. At a chunk's end the replacer holds back
only the bytes that could still begin an origin reference whose verdict is open: a tail that is a
proper prefix of some reference spelling (``https://orig``, ``\\/``, ``%2F%2``, ``origin.ex``:
``OriginMatcher.ref_forms``), or a host (or a percent-encoded ``%2F%2F``) too close to the end for
its port and look-ahead to be known, from up to ``max_prefix`` bytes before it. A tail that can
begin none is not held; the hold never exceeds ``HostRewriter.hold`` (the longest possible match
plus its look-ahead). Owns the chunking only; what a reference is and what it becomes is
``pipeline.hosts``'.
"""

from __future__ import annotations

import re
from functools import lru_cache

from sluicegate.pipeline.hosts import CONTEXT, HostRewriter

_P_SL = b"%2f%2f"
_P_SCHEME = len(b"https%3a")  # the longest scheme spelling before a percent-encoded ``%2F%2F``


def _trie_alternation(words: list[bytes]) -> bytes:
    """A regex matching any non-empty prefix of one of ``words`` (non-empty): a trie, one alternation per byte."""
    firsts = sorted({w[0] for w in words})
    branches = []
    for c in firsts:
        rest = [w[1:] for w in words if w[0] == c and len(w) > 1]
        branches.append(re.escape(bytes([c])) + (b"(?:" + _trie_alternation(rest) + b")?" if rest else b""))
    return branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"


@lru_cache(maxsize=16)  # one per configured origin mapping (built in ~0.5 ms: not per request)
def partial_reference(ref_forms: tuple[bytes, ...]) -> tuple[re.Pattern[bytes], bytes, int]:
    """For a lower-cased tail: a regex whose search finds the earliest position from which the rest is a
    non-empty proper prefix of one of ``ref_forms`` (a reference spelling cut by the chunk's end); the bytes
    such a spelling is made of; the longest spelling's length."""
    pattern = re.compile(b"(?:" + _trie_alternation([f[:-1] for f in ref_forms if len(f) > 1]) + rb")\Z")
    return pattern, bytes(sorted(set(b"".join(ref_forms)))), max(len(f) for f in ref_forms)


class StreamingHostReplacer:
    def __init__(self, rewriter: HostRewriter, escapes: bool = True) -> None:
        """``escapes`` False for HTML text (a backslash there is a character, not an escape)."""
        self._rw = rewriter
        self._escapes = escapes
        self._tail = rewriter.tail
        self._max_prefix = rewriter.max_prefix
        matcher = rewriter.matcher
        self._matcher = matcher
        self._partial, self._form_bytes, self._longest_form = partial_reference(matcher.ref_forms)
        self._needle = matcher.needle if matcher.single else b""  # one authority: a plain find
        # ``_buf[:_ctx]`` was already emitted; it stays only as look-behind context.
        self._buf = b""
        self._ctx = 0

    @property
    def held(self) -> int:
        """Input bytes fed and not yet emitted (the look-behind context not counted)."""
        return len(self._buf) - self._ctx

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        buf = self._buf + data if self._buf else data
        limit = len(buf) - self._tail  # hosts starting at or before this index see full context
        if limit >= self._ctx:
            out, pos = self._rw.splice(buf, self._ctx, limit, self._escapes)
        else:
            out, pos = [], self._ctx
        # no undecided match can start before ``limit + 1 - max_prefix`` (nor inside a decided one)
        cut = self._undecided_from(buf, max(pos, limit + 1 - self._max_prefix), limit)
        if cut > pos:
            out.append(buf[pos:cut])
        keep = max(0, cut - CONTEXT)
        if keep and buf[keep] == 0x5C and buf[keep - 1] == 0x5C:
            # a backslash run crosses the context's start: an escape after it (``\\n``) is one only after an
            # odd run, so keep one more backslash when the run's part left behind is odd (the parity, not the run)
            pre = buf[:keep]
            keep -= (len(pre) - len(pre.rstrip(b"\\"))) % 2
        self._ctx = cut - keep
        self._buf = buf[keep:]
        return b"".join(out)

    def _undecided_from(self, buf: bytes, frm: int, limit: int) -> int:
        """The earliest index >= ``frm`` at which a reference undecided in ``buf`` could start (its host
        after ``limit``), or ``len(buf)``. Three C searches on the lower-cased tail, no byte loop."""
        size = len(buf)
        if frm >= size:
            return size
        low = buf[frm:].lower()
        n = len(low)
        best = n
        after = max(0, limit + 1 - frm)  # where undecided hosts start, in ``low``
        needle = self._needle
        h = low.find(needle, after) if needle else self._matcher.find_needle(low, after)
        if h >= 0:  # a whole host whose port / look-ahead is still open: from its longest prefix on
            best = max(0, h - self._max_prefix)
        p = low.find(_P_SL, max(0, after - len(_P_SL)))
        if p >= 0 and p - _P_SCHEME < best:  # a percent-encoded host may follow (``%2F%2Forigin%2Eexample``)
            best = max(0, p - _P_SCHEME)
        # a cut spelling is a run of bytes that references are spelled with, up to the end: skip what precedes
        # the last other byte (most chunks end in one: then no search at all)
        if low[n - 1] not in self._form_bytes:
            return frm + best
        s = max(0, n - self._longest_form + 1)
        s += len(low[s:].rstrip(self._form_bytes))
        if s < best:
            m = self._partial.search(low, s)
            if m is not None and m.start() < best:
                best = m.start()
        return frm + best

    def finish(self) -> bytes:
        buf = self._buf
        out, pos = self._rw.splice(buf, self._ctx, len(buf), self._escapes)
        out.append(buf[pos:])
        self._buf = b""
        self._ctx = 0
        return b"".join(out)
