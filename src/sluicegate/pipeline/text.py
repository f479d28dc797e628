"""Boundary-aware origin-host replacement for non-HTML text (CSS, JS, JSON, XML, plain text).

Works on bytes, so any ASCII-compatible charset and invalid UTF-8 pass through intact. A chunk
boundary may fall anywhere: the replacer holds back at most ``HostRewriter.hold`` bytes (the
longest possible match plus its look-ahead), and a match is decided only once all the context
it depends on has arrived, so the output is the same for every split of the input.
"""

from __future__ import annotations

from sluicegate.pipeline.hosts import CONTEXT, HostRewriter


class StreamingHostReplacer:
    def __init__(self, rewriter: HostRewriter, escapes: bool = True) -> None:
        """``escapes`` False for HTML text (a backslash there is a character, not an escape)."""
        self._rw = rewriter
        self._escapes = escapes
        self._tail = rewriter.tail
        self._max_prefix = rewriter.max_prefix
        # ``_buf[:_ctx]`` was already emitted; it stays only as look-behind context.
        self._buf = b""
        self._ctx = 0

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        buf = self._buf + data if self._buf else data
        limit = len(buf) - self._tail  # hosts starting at or before this index see full context
        safe = limit + 1 - self._max_prefix  # no undecided match can start before this index
        if safe <= self._ctx:
            self._buf = buf
            return b""
        out, pos = self._rw.splice(buf, self._ctx, limit, self._escapes)
        cut = max(pos, safe)
        out.append(buf[pos:cut])
        k = min(cut, CONTEXT)
        self._ctx = k
        self._buf = buf[cut - k :]
        return b"".join(out)

    def finish(self) -> bytes:
        buf = self._buf
        out, pos = self._rw.splice(buf, self._ctx, len(buf), self._escapes)
        out.append(buf[pos:])
        self._buf = b""
        self._ctx = 0
        return b"".join(out)
