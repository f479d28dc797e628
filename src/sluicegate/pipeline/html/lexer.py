"""The HTML lexer: WHATWG tokenization states over bytes, as spans, resumable at any byte.

Theory of operation. The lexer never copies or decodes input: ``next(buf, pos, final)`` returns
one ``Token`` — a kind and a ``[start, end)`` span of ``buf`` — or ``None`` when the bytes at
``pos`` could still become something else once more input arrives. The caller owns the buffer; it
drops consumed bytes and calls again. Every byte of input belongs to exactly one token, so writing
the spans back out reproduces the input exactly.

Each state is scanned with C-speed searches, not per-byte Python loops:

* data: ``bytes.find(b"<")``; a tag is one possessive regex (quote-aware, linear on failure) that
  matches the tag up to its real ``>``; ``<!``/``<?``/``</x`` dispatch to comment, DOCTYPE, CDATA;
* RCDATA/RAWTEXT: search for the appropriate end tag ``</name`` + delimiter;
* script data: search for ``<!--``, ``-->``, ``<script``/``</script`` + delimiter, tracking the
  escaped and double-escaped sub-states exactly as the spec's states do;
* comments, bogus comments and CDATA sections are streamed as pieces (start / data... / end), so
  they never need to be held whole. A raw-text search that fails holds back only the few bytes a
  terminator could still begin with.

Character data is ASCII-structured, so this works for any ASCII-compatible charset. Which text
state follows a start tag comes from ``treesim.TreeSim`` when one is given (the rewriter); without
one the lexer is the bare tokenizer the html5lib tests describe.

Must not know: rewriting, handlers, output, entity decoding (``charrefs``), token formatting.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

from sluicegate.pipeline.bytescan import is_ws
from sluicegate.pipeline.html.charrefs import decode
from sluicegate.pipeline.html.treesim import DATA as DATA
from sluicegate.pipeline.html.treesim import PLAINTEXT as PLAINTEXT
from sluicegate.pipeline.html.treesim import RAW_STATE, TreeSim
from sluicegate.pipeline.html.treesim import RAWTEXT as RAWTEXT
from sluicegate.pipeline.html.treesim import RCDATA as RCDATA
from sluicegate.pipeline.html.treesim import SCRIPT as SCRIPT

if TYPE_CHECKING:
    from mypy_extensions import i64

# Compiled with mypyc, a tag's span is found by the byte loops below instead of the ``TAG`` regex
# (a loop over a tag's bytes costs less than a regex call there; interpreted, the regex wins).
_COMPILED: Final[bool] = not __file__.endswith(".py")

# Lexer states beyond the text states of ``treesim``.
CDATA: Final = 5
COMMENT: Final = 6
BOGUS: Final = 7

# Token kinds.
TEXT: Final = 0  # character data, in ``Token.state``
START: Final = 1  # start tag; ``name``, attributes in ``[astart, aend)``
END: Final = 2  # end tag
COMMENT_START: Final = 3  # ``<!--``, or the opener of a bogus comment (``state`` = BOGUS)
COMMENT_DATA: Final = 4
COMMENT_END: Final = 5  # ``-->`` / ``>``; empty span when the comment ran to end of input
DOCTYPE: Final = 6  # whole ``<!DOCTYPE ...>``
CDATA_START: Final = 7  # ``<![CDATA[``
CDATA_DATA: Final = 8
CDATA_END: Final = 9  # ``]]>``; empty at end of input
IGNORED: Final = 10  # ``</>`` and an unfinished tag at end of input: bytes without a token

# A whole tag: name, then attributes (a value after ``=`` must be complete: an unclosed quote makes
# the match fail, i.e. "incomplete"); possessive quantifiers keep failure linear in the tag length.
TAG: Final = re.compile(
    rb"<(/?)([a-zA-Z][^\t\n\f\r />]*+)"
    rb"((?:[\t\n\f\r /]++|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)"
    rb"|(?![\t\n\f\r ]*+=)))*+)>"
)
ATTR: Final = re.compile(
    rb"[\t\n\f\r /]*+([^\t\n\f\r />][^\t\n\f\r />=]*+)"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"([^\"]*+)\"|'([^']*+)'|([^\t\n\f\r >]*+)))?+"
)
_COMMENT_END: Final = re.compile(rb"--!?>")
_CDATA_END: Final = re.compile(rb"\]\]>")
_ALPHA: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DELIM: Final = rb"[\t\n\f\r />]"

_FOREIGN_ROOTS: Final = frozenset((b"svg", b"math"))

# Script data sub-states.
_SCRIPT_PLAIN: Final = 0
_SCRIPT_ESCAPED: Final = 1
_SCRIPT_DOUBLE: Final = 2


class Token:
    __slots__ = ("aend", "astart", "end", "kind", "name", "start", "state")

    def __init__(self, kind: int, start: int, end: int, state: int = DATA) -> None:
        self.kind = kind
        self.start = start
        self.end = end
        self.state = state
        self.name = b""
        self.astart = 0
        self.aend = 0

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.start}, {self.end}, {self.name!r})"


class Attr:
    """One attribute as written: lower-cased name, raw value span (``vstart == -1``: no value)."""

    __slots__ = ("end", "name", "nstart", "quote", "start", "vend", "vstart")

    def __init__(self, m: re.Match[bytes]) -> None:
        self.start = m.start()
        self.end = m.end()
        self.nstart = m.start(1)
        self.name = m.group(1).lower()
        g = m.lastindex or 1
        self.quote = b'"' if g == 2 else b"'" if g == 3 else b""
        self.vstart, self.vend = m.span(g) if g > 1 else (-1, -1)


def iter_attrs(buf: bytes, start: int, end: int) -> list[Attr]:
    """Every attribute in the attribute text ``buf[start:end]`` of a tag, duplicates included."""
    out: list[Attr] = []
    pos = start
    match = ATTR.match
    while pos < end:
        m = match(buf, pos, end)
        if m is None:
            break
        out.append(Attr(m))
        pos = m.end()
    return out


def name_end(buf: bytes, p: i64, end: i64) -> i64:
    """Where a tag name that continues at ``buf[p]`` ends (whitespace, ``/`` or ``>``), or ``end``.
    (``is_ws`` written out in these two loops: mypyc does not inline calls, and they run per byte.)"""
    while p < end:
        c = buf[p]
        if (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D) or c == 0x2F or c == 0x3E:  # '/', '>'
            return p
        p += 1
    return end


def attrs_end(buf: bytes, p: i64, end: i64) -> i64:
    """End of a tag whose attribute text starts at ``buf[p]`` (right after the name) if the tag
    completes before ``end``, else -1: the attribute grammar of ``TAG`` as a byte loop."""
    while p < end:
        c = buf[p]
        if c == 0x3E:
            return p + 1
        if (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D) or c == 0x2F:
            p += 1
            continue
        p += 1  # the attribute name's first byte may be anything else, even '='
        while p < end:
            c = buf[p]
            if (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D) or c == 0x2F or c == 0x3E or c == 0x3D:
                break
            p += 1
        q = p
        while q < end:
            c = buf[q]
            if not (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D):
                break
            q += 1
        if q < end and buf[q] == 0x3D:  # '=': a value follows
            q += 1
            while q < end:
                c = buf[q]
                if not (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D):
                    break
                q += 1
            if q >= end:
                return -1
            c = buf[q]
            if c == 0x22 or c == 0x27:  # a quoted value must close before ``end``
                q += 1
                while q < end and buf[q] != c:
                    q += 1
                if q >= end:
                    return -1
                p = q + 1
            else:
                while q < end:
                    c = buf[q]
                    if (c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D) or c == 0x3E:
                        break
                    q += 1
                p = q
    return -1


def self_closing(buf: bytes, astart: int, aend: int) -> bool:
    """Whether the tag's ``/`` before ``>`` is the self-closing flag (not part of a value)."""
    if aend == astart or buf[aend - 1] != 0x2F:
        return False
    if _COMPILED:
        return _last_attr_end(buf, astart, aend) < aend
    attrs = iter_attrs(buf, astart, aend)
    return not attrs or attrs[-1].end < aend


def _last_attr_end(buf: bytes, p: i64, aend: i64) -> i64:
    """Where the last attribute of the attribute text ``buf[p:aend]`` ends (``iter_attrs(...)[-1].end``),
    or -1 when it holds none: ``ATTR``'s grammar as a byte loop."""
    last: i64 = -1
    while p < aend:
        c = buf[p]
        if is_ws(c) or c == 0x2F:
            p += 1
            continue
        if c == 0x3E:  # no attribute starts with '>' (not in a tag's attribute text anyway)
            break
        p += 1  # the name's first byte: anything else
        while p < aend:
            c = buf[p]
            if is_ws(c) or c == 0x2F or c == 0x3E or c == 0x3D:
                break
            p += 1
        last = p
        q = p
        while q < aend and is_ws(buf[q]):
            q += 1
        if q < aend and buf[q] == 0x3D:  # '=': a value follows
            q += 1
            while q < aend and is_ws(buf[q]):
                q += 1
            if q < aend and (buf[q] == 0x22 or buf[q] == 0x27):
                qc = buf[q]
                r = q + 1
                while r < aend and buf[r] != qc:
                    r += 1
                if r < aend:  # closed: else ATTR reads an unquoted value from the quote
                    p = last = r + 1
                    continue
            while q < aend:
                c = buf[q]
                if is_ws(c) or c == 0x3E:
                    break
                q += 1
            p = last = q
    return last


class Lexer:
    """Resumable tokenizer over a caller-owned byte buffer."""

    def __init__(self, *, state: int = DATA, last_start_tag: bytes | None = None,
                 sim: TreeSim | None = None) -> None:
        self.state = state
        self.script_sub = _SCRIPT_PLAIN
        self.last_start_tag = last_start_tag
        self.sim = sim
        self._comment_first = False

    # -- helpers -------------------------------------------------------------------------------

    def _patterns(self) -> tuple[re.Pattern[bytes], ...]:
        return _end_patterns(self.last_start_tag or b"")

    def _tag(self, buf: bytes, pos: int, final: bool) -> Token | None:
        if _COMPILED:
            n = len(buf)
            is_end = buf[pos + 1] == 0x2F
            ns = pos + 2 if is_end else pos + 1
            ne = name_end(buf, ns + 1, n)
            te = attrs_end(buf, ne, n) if ne < n else -1
            if te < 0:
                return Token(IGNORED, pos, n) if final else None
            tok = Token(END if is_end else START, pos, te, self.state)
            tok.name = buf[ns:ne].lower()
            tok.astart = ne
            tok.aend = te - 1
        else:
            m = TAG.match(buf, pos)
            if m is None:
                return Token(IGNORED, pos, len(buf)) if final else None
            is_end = m.start(1) != m.end(1)
            tok = Token(END if is_end else START, pos, m.end(), self.state)
            tok.name = m.group(2).lower()
            tok.astart, tok.aend = m.span(3)
        if is_end:
            if self.state != DATA:
                self.state = DATA
                self.script_sub = _SCRIPT_PLAIN
            elif self.sim is not None:
                self.sim.end_tag(tok.name)
            return tok
        self.last_start_tag = tok.name
        sim = self.sim
        if sim is not None and not sim.stack and tok.name not in _FOREIGN_ROOTS:
            self.state = RAW_STATE.get(tok.name, DATA)  # plain HTML context: no tree lookups needed
            self.script_sub = _SCRIPT_PLAIN
        elif sim is not None:
            self.state = sim.start_tag(
                tok.name, self_closing(buf, tok.astart, tok.aend),
                lambda n: attr_value(buf, tok, n),
            )
            self.script_sub = _SCRIPT_PLAIN
        return tok

    # -- the entry point -----------------------------------------------------------------------

    def next(self, buf: bytes, pos: int, final: bool) -> Token | None:
        """The token at ``buf[pos:]``, or ``None`` if more input is needed (never when ``final``
        unless ``pos == len(buf)``)."""
        n = len(buf)
        if pos >= n:
            if final and self.state in (COMMENT, BOGUS):
                self.state = DATA
                return Token(COMMENT_END, n, n)
            if final and self.state == CDATA:
                self.state = DATA
                return Token(CDATA_END, n, n)
            return None
        state = self.state
        if state == DATA:
            return self._data(buf, pos, n, final)
        if state == COMMENT:
            return self._comment(buf, pos, n, final)
        if state == BOGUS:
            g = buf.find(b">", pos)
            if g == pos:
                self.state = DATA
                return Token(COMMENT_END, pos, pos + 1)
            return Token(COMMENT_DATA, pos, n if g < 0 else g)
        if state == CDATA:
            m = _CDATA_END.search(buf, pos)
            if m is not None:
                if m.start() == pos:
                    self.state = DATA
                    return Token(CDATA_END, pos, m.end())
                return Token(CDATA_DATA, pos, m.start())
            end = n if final else n - 2
            return Token(CDATA_DATA, pos, end) if end > pos else None
        if state == PLAINTEXT:
            return Token(TEXT, pos, n, PLAINTEXT)
        return self._rawtext(buf, pos, n, final)

    def _data(self, buf: bytes, pos: int, n: int, final: bool) -> Token | None:
        lt = buf.find(b"<", pos)
        if lt < 0:
            return Token(TEXT, pos, n)
        if lt > pos:
            return Token(TEXT, pos, lt)
        if pos + 1 >= n:
            return Token(TEXT, pos, n) if final else None
        c = buf[pos + 1]
        if c in _ALPHA:
            return self._tag(buf, pos, final)
        if c == 0x2F:  # '/'
            if pos + 2 >= n:
                return Token(TEXT, pos, n) if final else None
            c2 = buf[pos + 2]
            if c2 in _ALPHA:
                return self._tag(buf, pos, final)
            if c2 == 0x3E:  # '</>'
                return Token(IGNORED, pos, pos + 3)
            self.state = BOGUS
            return Token(COMMENT_START, pos, pos + 2, BOGUS)
        if c == 0x21:  # '!'
            return self._markup_declaration(buf, pos, n, final)
        if c == 0x3F:  # '?': the '?' is part of the bogus comment's data
            self.state = BOGUS
            return Token(COMMENT_START, pos, pos + 1, BOGUS)
        lt = buf.find(b"<", pos + 1)
        return Token(TEXT, pos, n if lt < 0 else lt)

    def _markup_declaration(self, buf: bytes, pos: int, n: int, final: bool) -> Token | None:
        rest = buf[pos + 2 : pos + 9]
        if rest[:2] == b"--":
            self.state = COMMENT
            self._comment_first = True
            return Token(COMMENT_START, pos, pos + 4, COMMENT)
        if rest.upper() == b"DOCTYPE":
            g = buf.find(b">", pos + 9)
            if g < 0:
                return Token(DOCTYPE, pos, n) if final else None
            return Token(DOCTYPE, pos, g + 1)
        foreign = self.sim is not None and self.sim.foreign
        if foreign and rest == b"[CDATA[":
            self.state = CDATA
            return Token(CDATA_START, pos, pos + 9)
        if not final and len(rest) < 7 and (
            b"--".startswith(rest[:2]) or b"DOCTYPE".startswith(rest.upper())
            or (foreign and b"[CDATA[".startswith(rest))
        ):
            return None
        self.state = BOGUS
        return Token(COMMENT_START, pos, pos + 2, BOGUS)

    def _comment(self, buf: bytes, pos: int, n: int, final: bool) -> Token | None:
        if self._comment_first:
            c = buf[pos]
            if c == 0x3E:  # '<!-->'
                self.state = DATA
                self._comment_first = False
                return Token(COMMENT_END, pos, pos + 1)
            if c == 0x2D:  # '-'
                if pos + 1 >= n:
                    if not final:
                        return None
                elif buf[pos + 1] == 0x3E:  # '<!--->'
                    self.state = DATA
                    self._comment_first = False
                    return Token(COMMENT_END, pos, pos + 2)
            self._comment_first = False
        m = _COMMENT_END.search(buf, pos)
        if m is not None:
            if m.start() == pos:
                self.state = DATA
                return Token(COMMENT_END, pos, m.end())
            return Token(COMMENT_DATA, pos, m.start())
        end = n if final else n - 3
        return Token(COMMENT_DATA, pos, end) if end > pos else None

    def _rawtext(self, buf: bytes, pos: int, n: int, final: bool) -> Token | None:
        state = self.state
        if self.last_start_tag is None:  # no appropriate end tag can exist
            return Token(TEXT, pos, n, state)
        pats = self._patterns()
        p = pos
        if state != SCRIPT:
            m = pats[0].search(buf, p)
        else:
            while True:
                sub = self.script_sub
                m = pats[1 + sub].search(buf, p)
                if m is None:
                    break
                if sub == _SCRIPT_PLAIN:
                    if m.group(1) is None:
                        break  # the end tag
                    self.script_sub = _SCRIPT_ESCAPED
                    p = m.start() + 2  # '<!--' leaves the escaped dash-dash state: '<!-->' closes
                elif sub == _SCRIPT_ESCAPED:
                    if m.group(1) is not None:
                        self.script_sub = _SCRIPT_PLAIN
                    elif m.group(2) is not None:
                        self.script_sub = _SCRIPT_DOUBLE
                    else:
                        break
                    p = m.end()
                else:
                    self.script_sub = _SCRIPT_PLAIN if m.group(1) is not None else _SCRIPT_ESCAPED
                    p = m.end()
        if m is not None:
            lt = m.start()
            if lt > pos:
                return Token(TEXT, pos, lt, state)
            return self._tag(buf, pos, final)
        if final:
            return Token(TEXT, pos, n, state)
        # A terminator not yet complete can start at most ``hold`` bytes before the end.
        hold = max(len(self.last_start_tag) + 3, 9) - 1 if state == SCRIPT else len(self.last_start_tag) + 2
        end = max(p, n - hold)
        return Token(TEXT, pos, end, state) if end > pos else None


@functools.lru_cache(maxsize=256)
def _end_patterns(name: bytes) -> tuple[re.Pattern[bytes], ...]:
    """Searches for the raw-text terminators of element ``name`` (per text/script sub-state)."""
    # Every alternative starts with a literal byte outside any group: ``re`` then skips to
    # candidate positions in C (``(<!--)|</x`` scans ~40x slower than ``<(?:(!--)|/x)``).
    # Groups: 1 = ``<!--`` / ``-->``, 2 = ``<script`` (escaped) / ``</script`` (double-escaped).
    name = re.escape(name)
    return (
        re.compile(b"</" + name + _DELIM, re.I),
        re.compile(b"<(?:(!--)|/" + name + _DELIM + b")", re.I),
        re.compile(b"-(->)|<(?:(script)" + _DELIM + b"|/" + name + _DELIM + b")", re.I),
        re.compile(b"-(->)|<(/script" + _DELIM + b")", re.I),
    )


def attr_value(buf: bytes, tok: Token, name: bytes) -> str | None:
    """Decoded value of the first attribute ``name`` of tag ``tok`` (``""`` when valueless)."""
    for a in iter_attrs(buf, tok.astart, tok.aend):
        if a.name == name:
            if a.vstart < 0:
                return ""
            return decode(decode_raw(buf[a.vstart : a.vend]), in_attribute=True)
    return None


def decode_raw(raw: bytes, errors: str = "surrogateescape") -> str:
    """Bytes → str as the tokenizer's input stream: UTF-8 (lossless), CR/LF normalised, NUL → U+FFFD."""
    s = raw.decode("utf-8", errors)
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    if "\0" in s:
        s = s.replace("\0", "\ufffd")
    return s
