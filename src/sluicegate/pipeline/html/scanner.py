"""The fast tag scanner: how far a run of text and tags that no handler can care about reaches.

Owns the lol_html *fast tag scanner* idea in two equivalent forms: one compiled regex per handler
set (``boring_re``; interpreted builds, where C beats a Python byte loop) and the hand-written byte
loop ``scan_boring`` (compiled builds: a loop step costs less than a method call), plus
``tag_span`` / ``tag_span_re`` (a plain start tag's end and name end, for the raw-byte hook). A run
stops at tags that change tokenizer state, tags or end tags a handler selects, markup declarations
other than whole comments, processing instructions and anything incomplete.
Must not know: handlers, the output queue, rules or hosts (names and needles come as arguments).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

from sluicegate.pipeline.bytescan import find_bytes, is_alpha, is_ws
from sluicegate.pipeline.html.lexer import TAG, attrs_end, name_end

if TYPE_CHECKING:
    # Native 64-bit ints for the byte-loop indices when compiled (mypyc: no tagged-int checks,
    # ~25% faster scans); annotations only, so the interpreted modules never import it.
    from mypy_extensions import i64

# Compiled with mypyc: the boring-run scan is the hand-written ``scan_boring`` (a byte loop is fast
# there); interpreted, the regex of ``boring_re`` (a Python byte loop would be far slower).
COMPILED_SCAN: Final[bool] = not __file__.endswith(".py")


def _not_named(names: frozenset[bytes], delim: bytes) -> bytes:
    """A look-ahead refusing a tag named one of ``names`` (any case) then ``delim``. The names'
    first letters are checked first as one class: most tags fail there, without trying each
    name of the (case-insensitive) alternation (-20 % of the scan's time on the bench page)."""
    if not names:
        return b""
    alt = b"|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    firsts = bytes(sorted({c for n in names for c in (n[:1].lower() + n[:1].upper())}))
    fc = re.escape(firsts).replace(b"-", rb"\-")
    return b"(?!(?=[" + fc + b"])(?i:" + alt + b")" + delim + b")"


@functools.lru_cache(maxsize=64)
def boring_re(names: frozenset[bytes], ends: frozenset[bytes], needle_set: frozenset[bytes]) -> re.Pattern[bytes]:
    """One regex matching a run of text and tags no handler can care about (compiled once)."""
    ws, d = rb"\t\n\f\r ", rb"[\t\n\f\r />]"
    value_dq, value_sq, value_uq = rb'[^"]*+', rb"[^']*+", rb"(?![\"'])[^\t\n\f\r >]*+"
    if needle_set:
        needles = sorted(needle_set)
        firsts = bytes(sorted({c for n in needles for c in (n[:1].lower() + n[:1].upper())}))
        fc = re.escape(firsts).replace(b"-", rb"\-")
        rest = b"|".join(re.escape(n[1:]) for n in needles)
        guard = b"[" + fc + b"](?!(?i:" + rest + b"))"
        value_dq = b'(?:[^"' + fc + b"]++|" + guard + b")*+"
        value_sq = b"(?:[^'" + fc + b"]++|" + guard + b")*+"
        # the value must end right after: a needle may not restart as an attribute name
        value_uq = rb"(?![\"'])(?:[^\t\n\f\r >" + fc + b"]++|" + guard + rb")*+(?=[\t\n\f\r >])"
    attrs = (
        b"(?:[" + ws + b"/]++|[^" + ws + b"/>][^" + ws + b"/>=]*+(?:[" + ws + b"]*+=[" + ws + b"]*+"
        b'(?:"' + value_dq + b'"|\'' + value_sq + b"'|" + value_uq + b")|(?![" + ws + b"]*+=)))*+"
    )
    any_attrs = (
        b"(?:[" + ws + b"/]++|[^" + ws + b"/>][^" + ws + b"/>=]*+(?:[" + ws + b"]*+=[" + ws + b"]*+"
        rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|(?![" + ws + b"]*+=)))*+"
    )
    start = b"<" + _not_named(names, d) + b"[a-zA-Z][^" + ws + b"/>]*+" + attrs + b">"
    if ends:
        end = b"</" + _not_named(ends, d) + b"[a-zA-Z][^" + ws + b"/>]*+" + any_attrs + b">"
    else:
        end = b"</[a-zA-Z][^" + ws + b"/>]*+" + any_attrs + b">"
    # a whole comment, ended as the lexer ends it: ``<!-->``, ``<!--->`` or the first ``--!?>``
    comment = rb"<!--(?:>|->|(?:[^-]++|-(?!-!?>))*+--!?>)"
    return re.compile(b"(?:[^<]++|" + start + b"|" + end + b"|" + comment + rb"|<(?=[^a-zA-Z!/?]))*+")



# Foreign content (``treesim``): a whole ``<svg>``/``<math>`` element can be skipped as one run when
# nothing in it changes the tree simulator's outcome: no tag that breaks out of foreign content
# (``BREAKOUT``, ``font``), opens an HTML integration point, nests another root, or ends ``br``/``p``
# (which pop every foreign element). Then its end tag pops exactly the frames its start tag and
# children pushed, and the stack is empty again, as after the same tokens one by one.
FOREIGN_ROOTS: Final = frozenset((b"svg", b"math"))
FOREIGN_STOPS: Final = frozenset(
    b"b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li "
    b"listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var font "
    b"svg math foreignobject desc title mi mo mn ms mtext annotation-xml".split()
)
FOREIGN_END_STOPS: Final = frozenset((b"br", b"p", b"svg", b"math"))


@functools.lru_cache(maxsize=64)
def foreign_re(names: frozenset[bytes], ends: frozenset[bytes]) -> re.Pattern[bytes]:
    """A whole ``<svg>``/``<math>`` element (not self-closing) whose content is a boring run
    (``boring_re(names, ends)``, ``names``/``ends`` including ``FOREIGN_STOPS`` /
    ``FOREIGN_END_STOPS``) up to its own end tag: ``foreign_end`` as one regex (interpreted)."""
    ws = rb"\t\n\f\r "
    inner = boring_re(names, ends, frozenset()).pattern
    any_attrs = (
        b"(?:[" + ws + b"/]++|[^" + ws + b"/>][^" + ws + b"/>=]*+(?:[" + ws + b"]*+=[" + ws + b"]*+"
        rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|(?![" + ws + b"]*+=)))*+"
    )
    alts = []
    for root in sorted(FOREIGN_ROOTS):
        r = b"".join(b"[" + bytes((c,)) + bytes((c,)).upper() + b"]" for c in root)
        alts.append(b"<" + r + rb"(?=[\t\n\f\r />])" + any_attrs + b"(?<!/)>" + inner
                    + b"</" + r + rb"(?=[\t\n\f\r />])" + any_attrs + b">")
    return re.compile(b"|".join(alts))


def foreign_end(buf: bytes, pos: i64, end: i64, names: frozenset[bytes], ends: frozenset[bytes],
                nfilt: bytes, efilt: bytes) -> i64:
    """End of the whole foreign element whose start tag is at ``buf[pos]`` when it completes
    before ``end`` and its content is a boring run (``scan_boring(names, ends)``) up to its own
    end tag; else -1. The byte-loop twin of ``foreign_re`` (compiled builds)."""
    p: i64 = pos + 1
    if p >= end:
        return -1
    c = buf[p] | 0x20
    if c != 0x73 and c != 0x6D:  # 's', 'm': most tags end here, before any slice
        return -1
    ne = name_end(buf, p + 1, end)
    if ne >= end:
        return -1
    root = buf[p:ne].lower()
    if root not in FOREIGN_ROOTS:
        return -1
    te = attrs_end(buf, ne, end)
    if te < 0 or buf[te - 2] == 0x2F:  # '/>': maybe self-closing (no frame): the token path decides
        return -1
    r = scan_boring(buf, te, end, names, ends, nfilt, efilt)
    k: i64 = r + 2 + len(root)
    if k >= end or buf[r] != 0x3C or buf[r + 1] != 0x2F:
        return -1
    if name_end(buf, r + 2, end) != k or buf[r + 2 : k].lower() != root:
        return -1
    return attrs_end(buf, k, end)


def raw_text_end(buf: bytes, low: bytes, te: int, n: int, name: bytes, script: bool) -> tuple[int, int]:
    """Where the raw-text element ``name`` (RAWTEXT, or script data when ``script``) whose start
    tag ends at ``te`` ends: (body end, end of its end tag) when its end tag (``</name`` and a
    delimiter, found in the lower-cased ``low``; the first one, as the lexer finds it) completes
    in ``buf[:n]`` and, for script data, no ``<!--`` precedes it (no escaped sub-states);
    else ``(-1, -1)``."""
    close = b"</" + name
    k = len(close)
    bs = low.find(close, te)
    while bs >= 0 and bs + k < n:
        c = low[bs + k]
        if c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D or c == 0x2F or c == 0x3E:
            break
        bs = low.find(close, bs + 1)
    if bs < 0 or bs + k >= n or (script and low.find(b"<!--", te, bs) >= 0):
        return -1, -1
    if COMPILED_SCAN:
        ee = attrs_end(buf, bs + k, n)
    else:
        m = TAG.match(buf, bs)
        ee = m.end() if m is not None else -1
    return (bs, ee) if ee >= 0 else (-1, -1)


def past_last_gt(buf: bytes, bound: int, pos: int, hi: int) -> int:
    """``bound`` moved to just past the last ``>`` in ``buf[max(bound, pos):hi]``, if any (a
    backward byte loop compiled: the span is a reference's few prefix bytes, shorter than the cost
    of an ``rfind`` call; ``rfind`` interpreted)."""
    lo = bound if bound > pos else pos
    if COMPILED_SCAN:
        i: i64 = hi - 1
        while i >= lo:
            if buf[i] == 0x3E:
                return i + 1
            i -= 1
        return bound
    gt = buf.rfind(b">", lo, hi)
    return gt + 1 if gt >= 0 else bound


def has_needle(low: bytes, needle: bytes, lo: int, hi: int) -> bool:
    """``needle`` in ``low[lo:hi]``: a byte loop compiled (cheaper than a ``find`` method call
    over a tag's bytes), ``bytes.find`` interpreted."""
    if COMPILED_SCAN:
        return find_bytes(low, needle, lo, hi) >= 0
    return low.find(needle, lo, hi) >= 0


def name_filter(names: frozenset[bytes]) -> bytes:
    """A 512-byte table that rules out most tag names without slicing or lower-casing them:
    entry ``min(length, 15) * 32 + (first letter & 31)`` is 1 when some name in ``names`` has
    that length (15: that or longer) and first letter (either case), else 0."""
    table = bytearray(512)
    for n in names:
        if n:
            table[min(len(n), 15) * 32 + (n[0] & 31)] = 1
    return bytes(table)


_FILTERS: Final[dict[frozenset[bytes], bytes]] = {}


def _filter_for(names: frozenset[bytes]) -> bytes:
    f = _FILTERS.get(names)
    if f is None:
        if len(_FILTERS) > 256:
            _FILTERS.clear()
        f = _FILTERS[names] = name_filter(names)
    return f


def _scan_tag(buf: bytes, p: i64, end: i64, stop: frozenset[bytes], filt: bytes) -> i64:
    """End of the tag whose name starts at ``buf[p]`` (a letter) if it completes before ``end``
    and its lower-cased name is not in ``stop`` (``filt`` = ``name_filter(stop)``: only a name
    whose length and first letter some stop name has is sliced and looked up); else -1. The tag
    grammar of ``boring_re`` (= ``lexer.TAG``'s: ``lexer.attrs_end``)."""
    s: i64 = p
    p = name_end(buf, p + 1, end)
    if p >= end:
        return -1
    ln: i64 = p - s
    if ln > 15:
        ln = 15
    if filt[ln * 32 + (buf[s] & 31)] and buf[s:p].lower() in stop:
        return -1
    return attrs_end(buf, p, end)


def tag_span(buf: bytes, pos: i64, end: i64) -> tuple[i64, i64]:
    """For a start tag at ``buf[pos]`` (``<`` then a letter) that ``lexer.TAG`` matches before
    ``end``: (tag end, tag name end); else ``(-1, -1)``. The byte-loop twin of ``tag_span_re``."""
    p = pos + 1
    if p >= end or not is_alpha(buf[p]):
        return -1, -1
    te = _scan_tag(buf, p, end, _NO_NAMES, _NO_FILTER)
    if te < 0:
        return -1, -1
    p += 1
    while True:  # the name ends before the tag does
        c = buf[p]
        if is_ws(c) or c == 0x2F or c == 0x3E:
            return te, p
        p += 1


def tag_span_re(buf: bytes, pos: int) -> tuple[int, int]:
    """``tag_span`` by ``lexer.TAG`` (the interpreted build's way)."""
    t = TAG.match(buf, pos)
    if t is None or t.start(1) != t.end(1):
        return -1, -1
    return t.end(), t.end(2)


_NO_NAMES: Final[frozenset[bytes]] = frozenset()
_NO_FILTER: Final[bytes] = bytes(512)


def _scan_comment(buf: bytes, pos: i64, end: i64) -> i64:
    """End of the comment at ``buf[pos]`` (``<!``) if it is one and ends before ``end``, else -1:
    ``<!-->``, ``<!--->`` or up to the first ``-->`` / ``--!>`` from ``pos + 4`` (as the lexer)."""
    p: i64 = pos + 4
    if p >= end or buf[pos + 2] != 0x2D or buf[pos + 3] != 0x2D:
        return -1
    if buf[p] == 0x3E:
        return p + 1
    if buf[p] == 0x2D and p + 1 < end and buf[p + 1] == 0x3E:
        return p + 2
    while p + 2 < end:
        if buf[p] == 0x2D and buf[p + 1] == 0x2D:
            c = buf[p + 2]
            if c == 0x3E:
                return p + 3
            if c == 0x21 and p + 3 < end and buf[p + 3] == 0x3E:
                return p + 4
        p += 1
    return -1


def scan_boring(buf: bytes, pos: i64, end: i64, names: frozenset[bytes], ends: frozenset[bytes],
                nfilt: bytes = b"", efilt: bytes = b"") -> i64:
    """Where ``boring_re(names, ends, frozenset()).match(buf, pos, end)`` ends, by hand: runs of
    text and of start/end tags whose names are not in ``names`` / ``ends``; stops at markup
    declarations, processing instructions, bogus end tags and anything incomplete before ``end``.
    ``nfilt`` / ``efilt``: ``name_filter(names)`` / ``name_filter(ends)`` when the caller keeps them
    (the main loop does, per feed), else looked up here."""
    # Byte loops rather than ``bytes.find``: compiled, a loop step costs less than a method call.
    if not nfilt:
        nfilt = _filter_for(names)
    if not efilt:
        efilt = _filter_for(ends)
    while pos < end:
        while pos < end and buf[pos] != 0x3C:  # '<'
            pos += 1
        if pos >= end:
            return end
        if pos + 1 >= end:
            return pos
        c = buf[pos + 1]
        q: i64
        if is_alpha(c):
            q = _scan_tag(buf, pos + 1, end, names, nfilt)
        elif c == 0x2F:  # '/'
            if pos + 2 >= end or not is_alpha(buf[pos + 2]):
                return pos
            q = _scan_tag(buf, pos + 2, end, ends, efilt)
        elif c == 0x21:  # '!': only a whole comment is boring
            q = _scan_comment(buf, pos, end)
        elif c == 0x3F:  # '?'
            return pos
        else:
            q = pos + 1  # a '<' that starts no markup is text
        if q < 0:
            return pos
        pos = q
    return pos
