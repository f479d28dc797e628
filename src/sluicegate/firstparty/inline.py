"""Third-party URLs in inline ``<script>`` bodies, signed where the first-party page rule applies.

Owns one decision: which bytes of a script body are a whole third-party URL that can be replaced
by a signed first-party URL without changing what the script computes. Only a *whole string
literal* qualifies — ``"https://cdn.example/t.js?a=1"``, ``'//cdn.example/p.png'``, a template
literal without substitutions, and the JSON-escaped spelling ``"https:\\/\\/cdn.example\\/t.js"``
(written back escaped alike) — and only when it is not an operand of ``+`` (``"https://cdn/" +
path`` would become a broken URL). The host must be on the minter's list (``UrlMinter`` decides, with
the same canonical form and allowlist as attributes): ``rewrite_domains`` in publisher pages,
``allowed_domains`` in documents relayed by ``/proxy``; a literal off the list is never touched
(not even made absolute), and ``javascript:``/``data:`` literals never qualify. Inline Flight
payloads (``self.__next_f``) are left alone: their rows count bytes, so a longer URL would
corrupt them.

``sign_script`` rewrites a whole body; ``ScriptUrlStream`` does the same over a stream (long
bodies the origin rules stream), holding back at most ``max_token`` bytes: from the last quote
in that window, where a literal may still be open. Must not know: markup, sockets, keys.
"""

from __future__ import annotations

import re
from typing import Protocol

# A string literal holding one absolute or scheme-relative URL, plain or with ``\/`` escapes; the
# path stops at quotes, whitespace, ``<>``, backslashes other than ``\/`` and template braces.
_LITERAL = re.compile(
    rb"""(["'`])((?:[hH][tT][tT][pP][sS]?:)?(?:\\?/){2}[A-Za-z0-9][A-Za-z0-9.\-]*(?::[0-9]{1,5})?"""
    rb"""(?:\\/|[^"'`\s<>\\{}])*)\1"""
)
_SPACE = b" \t\n\r\f\v"
_FLIGHT = b"__next_f"


class _Minter(Protocol):
    """What ``sign_script`` needs of ``markup.UrlMinter``."""

    def mint(self, value: str, kind: str = "proxy", resolve: bool = True) -> str | None: ...


def _prev_byte(buf: bytes, pos: int, before: int) -> int:
    """The last non-space byte of ``buf[:pos]`` (``before`` when there is none)."""
    i = pos - 1
    while i >= 0 and buf[i] in _SPACE:
        i -= 1
    return buf[i] if i >= 0 else before


def _next_byte(buf: bytes, pos: int) -> int:
    """The first non-space byte of ``buf[pos:]`` (0 when there is none)."""
    n = len(buf)
    while pos < n and buf[pos] in _SPACE:
        pos += 1
    return buf[pos] if pos < n else 0


def _sign(minter: _Minter, buf: bytes, matches: list[re.Match[bytes]], end: int, before: int) -> bytes:
    """``buf[:end]`` with the URL of each qualifying literal of ``matches`` (all ending by
    ``end``) signed; a literal's context is read from all of ``buf`` (``before``: the non-space
    byte that preceded ``buf``)."""
    out: list[bytes] = []
    pos = 0
    for m in matches:
        if _prev_byte(buf, m.start(), before) == 0x2B or _next_byte(buf, m.end()) == 0x2B:  # '+'
            continue
        url = m.group(2)
        escaped = b"\\/" in url
        try:
            value = (url.replace(b"\\/", b"/") if escaped else url).decode("ascii")
        except UnicodeDecodeError:
            continue
        new = minter.mint(value, resolve=False)  # a literal off the list stays as written
        if new is None:
            continue
        enc = new.encode("ascii")
        if escaped:
            enc = enc.replace(b"/", b"\\/")
        out.append(buf[pos : m.start(2)])
        out.append(enc)
        pos = m.end(2)
    if not out:
        return buf[:end]
    out.append(buf[pos:end])
    return b"".join(out)


def names_any(text: bytes, needles: list[bytes]) -> bool:
    low = text.lower()
    return any(n in low for n in needles)


def sign_script(minter: _Minter, needles: list[bytes], text: bytes) -> bytes:
    """``text`` (a whole script body) with each qualifying third-party URL literal signed."""
    if not names_any(text, needles) or _FLIGHT in text:
        return text
    return _sign(minter, text, list(_LITERAL.finditer(text)), len(text), 0)


class ScriptUrlStream:
    """``sign_script`` over a stream, with the same result for any chunking (a URL literal longer
    than ``max_token`` excepted): bytes that cannot belong to an undecided literal pass at once."""

    def __init__(self, minter: _Minter, needles: list[bytes], max_token: int) -> None:
        self.minter = minter
        self.needles = needles
        self.max_token = max_token
        self.buf = b""
        self.before = 0  # the last non-space byte passed on
        self.off = False  # a Flight payload: everything passes unmodified

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        if self.off or _FLIGHT in buf:
            self.off = True
            self.buf = b""
            return buf
        n = len(buf)
        matches = list(_LITERAL.finditer(buf))
        hold = n
        # a literal may still be open at the last quote (no quote follows it), unless a match
        # closed there; one too long for the window is given up
        lo = max(0, n - self.max_token)
        last = max(buf.rfind(b'"', lo), buf.rfind(b"'", lo), buf.rfind(b"`", lo))
        if last >= 0 and not (matches and matches[-1].end() - 1 == last):
            hold = last
        # a literal followed only by spaces: a '+' may still come
        while matches and _next_byte(buf, matches[-1].end()) == 0:
            hold = min(hold, matches.pop().start())
        while matches and matches[-1].end() > hold:
            matches.pop()
        keep = n - hold
        if keep > self.max_token:  # bounded: pass on all but the window
            hold = n - self.max_token
            while matches and matches[-1].end() > hold:
                matches.pop()
        out = _sign(self.minter, buf, matches, hold, self.before) if matches else buf[:hold]
        self.before = _prev_byte(buf, hold, self.before)
        self.buf = buf[hold:]
        return out

    def finish(self) -> bytes:
        rest, self.buf = self.buf, b""
        if self.off or not rest:
            return rest
        return _sign(self.minter, rest, list(_LITERAL.finditer(rest)), len(rest), self.before)
