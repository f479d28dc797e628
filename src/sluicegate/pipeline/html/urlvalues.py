"""URL-bearing attribute values and what they may hide: the value-level helpers of the HTML rules.

Owns: which attributes carry URLs (``URL_ATTRS``, ``SRCSET_ATTRS``, ``META_URL_KEYS``, the kind
table of the URL rule), how a ``srcset``, a CSS ``url()`` and a refresh ``content`` are split into
URLs (each URL then goes to the one mapping, ``pipeline.hosts.HostRewriter``), when a raw value can
be rewritten as bytes (``simple_value``, ``plain_span``: no references, CR, NUL or quote), which
tags may spell an origin authority without its literal host (``SUSPECT``, ``suspect_at``,
``tag_may_hide``), and ``LongTagFilter`` for tags over ``[html] max_tag_bytes``.
Must not know: host patterns or URL forms (all origin decisions are ``HostRewriter``'s), the
rewriter's registry or main loop, configuration.
"""

from __future__ import annotations

import re
from html import unescape as html_unescape
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote

from sluicegate.pipeline import UnsafeOverlongTag
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html.lexer import Attr
from sluicegate.pipeline.html.scanner import COMPILED_SCAN as _COMPILED
from sluicegate.pipeline.text import StreamingHostReplacer

if TYPE_CHECKING:
    from mypy_extensions import i64  # native ints for the byte loops when compiled

URL_ATTRS: Final = frozenset((
    "href", "src", "action", "formaction", "poster", "cite", "background", "longdesc", "manifest",
    "xlink:href", "codebase", "icon", "lowsrc", "dynsrc", "profile", "itemtype",
))
SRCSET_ATTRS: Final = frozenset(("srcset", "imagesrcset"))
META_URL_KEYS: Final = frozenset((
    "og:url", "og:image", "og:image:url", "og:image:secure_url", "og:video", "og:video:url",
    "og:video:secure_url", "og:audio", "og:audio:url", "og:audio:secure_url", "twitter:image",
    "twitter:image:src", "twitter:url", "twitter:player", "twitter:player:stream", "thumbnail",
    "msapplication-tileimage", "msapplication-config", "msapplication-square150x150logo",
    "image", "url", "contenturl", "thumbnailurl", "embedurl",
))
_CSS_URL: Final = re.compile(r"""(url\(\s*)(["']?)([^"')]*)""", re.I)
_CSS_URL_B: Final = re.compile(_CSS_URL.pattern.encode(), re.I)
_REFRESH: Final = re.compile(r"""^(\s*[0-9.]*\s*[;,]?\s*(?:url\s*=\s*)?)(["']?)(.*)$""", re.I | re.S)
_SRCSET_URL: Final = re.compile(r"[\t\n\f\r ,]*([^\t\n\f\r ]+)([^,]*(?:\([^)]*\)[^,]*)*)")
_SRCSET_URL_B: Final = re.compile(_SRCSET_URL.pattern.encode())
# Tags whose values may spell an origin authority without its literal host: a character reference
# that can stand for a URL character, or a percent-encoded byte in an authority. Such tags go to
# the URL rule on the full path, which decides on the values as the browser decodes them.
SUSPECT: Final = re.compile(rb"&(?:#|period;|sol;|colon;|bsol;|percnt;|commat;)"
                     rb"|[/\\][/\\][a-z0-9.\-_~]*(?:%[0-9a-f]{2}|[\t\n\r][a-z0-9])")
_REF_NAMES: Final = (b"#", b"period;", b"sol;", b"colon;", b"bsol;", b"percnt;", b"commat;")


def suspect_at(low: bytes, start: int, end: int) -> int:
    """First position in lower-cased ``low[start:end]`` where ``SUSPECT`` could match, or -1: a
    character reference for a URL character (``&`` by ``bytes.find``, a memchr, then its name: the
    regex ``&(?:#|period;|...)`` scanned the whole buffer byte by byte), a ``%`` right inside
    a ``//`` authority, or a backslash next to a slash (``bytes.find`` passes; ``%`` and ``\\``
    are rare in HTML, ``//`` is not). A pre-filter only: ``SUSPECT`` decides per tag. (A
    tab/newline inside an authority is decided only for tags that reach the rule otherwise.)"""
    return _suspect_rest(low, start, end, _first_ref(low, start, end))


class SuspectScan:
    """``suspect_at`` for one rewriter, its character-reference search remembered per buffer.

    The rewriter asks again each time its position passes the last suspect (a backslash in a
    script, say); ``suspect_at`` then walked every ``&`` (``&amp;`` in text: ~11 per 8 KiB
    chunk of the bench page, a ``find`` call each) to the buffer's end again. The first URL
    reference in ``low[f:end]`` is still the first in ``low[start:end]`` for ``start >= f`` when
    it lies at or after ``start`` (or when there is none), so that answer is kept for the same
    buffer object and end. Holds a reference to the last buffer asked about (the rewriter's own)."""

    __slots__ = ("_end", "_from", "_low", "_ref")

    def __init__(self) -> None:
        self._low = b""
        self._from = 0
        self._end = -1
        self._ref = -1

    def at(self, low: bytes, start: int, end: int) -> int:
        """``suspect_at(low, start, end)``."""
        ref = self._ref
        if not (low is self._low and end == self._end and self._from <= start and (ref < 0 or ref >= start)):
            ref = _first_ref(low, start, end)
            self._low = low
            self._from = start
            self._end = end
            self._ref = ref
        return _suspect_rest(low, start, end, ref)


def _first_ref(low: bytes, start: int, end: int) -> int:
    """First ``&`` in ``low[start:end]`` that starts a reference to a URL character, or -1."""
    best = low.find(b"&", max(start, 0), end)
    while best >= 0:
        # the byte after it first: most references (``&amp;``) start with no name's first letter,
        # and a tuple ``startswith`` costs several times a byte read (compiled: a generic call)
        if best + 1 < end:
            c = low[best + 1]
            if c == 0x23:  # '#'
                return best
            if (c == 0x70 or c == 0x73 or c == 0x63 or c == 0x62) and low.startswith(_REF_NAMES, best + 1, end):
                return best  # period; percnt; sol; colon; commat; bsol;
        best = low.find(b"&", best + 1, end)
    return best


def _suspect_rest(low: bytes, start: int, end: int, best: int) -> int:
    """``suspect_at`` given ``best``, the first reference (``_first_ref``) or -1."""
    stop = end if best < 0 else best
    pct = low.find(b"%", start, stop)
    while pct >= 0:
        q = pct
        while q > start and _is_host_byte(low[q - 1]):
            q -= 1
        if q - 2 >= start and low[q - 1] in b"/\\" and low[q - 2] in b"/\\":
            best = stop = q - 2
            break
        pct = low.find(b"%", pct + 1, stop)
    bs = low.find(b"\\", max(start, 0), stop)
    while bs >= 0:
        if (bs + 1 < stop and low[bs + 1] in b"/\\") or (bs > start and low[bs - 1] == 0x2F):
            return bs - 1 if bs > start and low[bs - 1] == 0x2F else bs
        bs = low.find(b"\\", bs + 1, stop)
    return best


def tag_may_hide(buf: bytes, low: bytes, start: int, end: int) -> bool:
    """A tab/CR/LF in the tag and ``SUSPECT`` matching it (a host split by whitespace, which the
    browser's URL parser removes): only ``urls`` on the full path decides such a tag."""
    if not _COMPILED:
        # interpreted: C searches beat a Python byte loop (no slice of the tag); three memchr
        # ``find``s cost a third of one ``[\t\n\r]`` regex search, which steps byte by byte
        if buf.find(b"\n", start, end) < 0 and buf.find(b"\t", start, end) < 0 and buf.find(b"\r", start, end) < 0:
            return False
        return SUSPECT.search(low, start, end) is not None
    i: i64 = start
    e: i64 = end
    while i < e:
        c = buf[i]
        if c == 0x0A or c == 0x09 or c == 0x0D:
            return SUSPECT.search(low, start, end) is not None
        i += 1
    return False


def _is_host_byte(c: int) -> bool:
    return (0x61 <= c <= 0x7A) or (0x30 <= c <= 0x39) or c == 0x2E or c == 0x2D or c == 0x5F or c == 0x7E


UNQUOTED_UNSAFE: Final = re.compile(rb"[\t\n\f\r \"'=<>`&\0]")
# ``simple_value`` of a quoted value (which cannot hold its own quote) as one search, no slice
QUOTED_UNSAFE: Final = re.compile(rb"[&\r\0]")
# Attribute kinds of the URL rule, by lower-cased raw name.
K_URL: Final = 1
K_DATA: Final = 2
K_SRCSET: Final = 3
K_PING: Final = 4
K_STYLE: Final = 5
K_CONTENT: Final = 6
ATTR_KIND: Final[dict[bytes, int]] = {
    **{n.encode(): K_URL for n in URL_ATTRS}, b"data": K_DATA,
    **{n.encode(): K_SRCSET for n in SRCSET_ATTRS}, b"ping": K_PING, b"style": K_STYLE, b"content": K_CONTENT,
}


def attr_vstart(a: Attr) -> int:

    return a.vstart


def rewrite_srcset(rw: HostRewriter, value: str) -> str:
    """Rewrite each candidate URL of a ``srcset``; separators and descriptors are kept as they are."""
    out: list[str] = []
    pos = 0
    while pos < len(value):
        m = _SRCSET_URL.match(value, pos)
        if m is None or m.end() == pos:
            break
        url = m.group(1)
        start, end = m.span(1)
        trail = len(url) - len(url.rstrip(","))
        if trail == len(url):  # only commas: separators, not a candidate (and no endless loop)
            out.append(value[pos : m.end()])
            pos = m.end()
            continue
        if trail:  # "a.jpg," — the commas end the candidate (no descriptors)
            end -= trail
            new = rw.rewrite_url(value[start:end])
            out += [value[pos:start], new]
            pos = end
            continue
        out += [value[pos:start], rw.rewrite_url(url), m.group(2)]
        pos = m.end()
    out.append(value[pos:])
    return "".join(out)


def rewrite_srcset_bytes(rw: HostRewriter, value: bytes) -> bytes | None:
    """``rewrite_srcset`` on raw UTF-8 bytes (``None``: a candidate needs the ``str`` version).
    Bytes between candidate URLs (separators, descriptors) are copied as they stand, so only the
    URLs' spans are kept (one slice and ``rewrite_url_bytes`` per candidate, pieces joined once)."""
    pieces: list[bytes] | None = None
    pos = 0  # where the next match starts
    done = 0  # bytes before this are in ``pieces``
    n = len(value)
    match = _SRCSET_URL_B.match
    while pos < n:
        m = match(value, pos)
        if m is None:
            break
        start, end = m.span(1)
        if value[end - 1] == 0x2C:  # ',': the commas end the candidate (no descriptors)
            e = end - 1
            while e > start and value[e - 1] == 0x2C:
                e -= 1
            if e == start:  # only commas: separators, as in ``rewrite_srcset``
                pos = m.end()
                continue
            end = e
            pos = e
        else:
            pos = m.end()
        url = value[start:end]
        new = rw.rewrite_url_bytes(url)
        if new is None:
            return None
        if new is not url:
            if pieces is None:
                pieces = []
            pieces.append(value[done:start])
            pieces.append(new)
            done = end
    if pieces is None:
        return value
    pieces.append(value[done:])
    return b"".join(pieces)


def plain_span(buf: bytes, start: int, end: int) -> bool:
    """``simple_value(buf[start:end], quote)`` for a quoted value (which cannot hold its quote),
    by a byte loop: no ``&``, CR or NUL."""
    i: i64 = start
    e: i64 = end
    while i < e:
        c = buf[i]
        if c == 0x26 or c == 0x0D or c == 0:
            return False
        i += 1
    return True





def simple_value(raw: bytes, quote: bytes) -> bool:
    """Whether ``raw`` (an attribute value written with ``quote``) decodes to its own UTF-8 text
    and would be written back as the same bytes: no references, CR or NUL; nothing to escape."""
    if quote:
        return b"&" not in raw and b"\r" not in raw and b"\0" not in raw and quote not in raw
    return bool(raw) and UNQUOTED_UNSAFE.search(raw) is None


def rewrite_css_urls(rw: HostRewriter, value: str) -> str:
    return _CSS_URL.sub(lambda m: m.group(1) + m.group(2) + rw.rewrite_url(m.group(3)), value)


def rewrite_css_urls_bytes(rw: HostRewriter, value: bytes) -> bytes | None:
    """``rewrite_css_urls`` on raw UTF-8 bytes: the same result, or ``None`` when only the ``str``
    version can decide. The patterns differ only where ``str``'s ``\\s`` matches a character that
    ``bytes``' does not (U+001C..U+001F, non-ASCII spaces); the bytes version then sees that
    character at the start of the URL, where ``rewrite_url_bytes`` declines."""
    out: list[bytes] = []
    pos = 0
    for m in _CSS_URL_B.finditer(value):
        url = m.group(3)
        new = rw.rewrite_url_bytes(url)
        if new is None:
            return None
        if new is not url:
            start = m.start(3)
            out.append(value[pos:start])
            out.append(new)
            pos = m.end(3)
    if not out:
        return value
    out.append(value[pos:])
    return b"".join(out)


def rewrite_refresh(rw: HostRewriter, value: str) -> str:
    m = _REFRESH.match(value)
    if m is None:
        return value
    return m.group(1) + m.group(2) + rw.rewrite_url(m.group(3))


# ``replacements_simple`` per public host: one check per host, not 21 ``simple_value`` calls per
# document. Bounded: with a "*" public host the Host values are the client's to choose.
_SIMPLE_REPL: Final[dict[tuple[bytes, ...], bool]] = {}
_SIMPLE_REPL_MAX: Final = 256


def replacements_simple(replacements: tuple[bytes, ...]) -> bool:
    known = _SIMPLE_REPL.get(replacements)
    if known is None:
        known = all(simple_value(r, q) for r in replacements for q in (b'"', b"'", b""))
        if len(_SIMPLE_REPL) >= _SIMPLE_REPL_MAX:
            _SIMPLE_REPL.clear()
        _SIMPLE_REPL[replacements] = known
    return known



class LongTagFilter:
    """The bytes of one tag over ``[html] max_tag_bytes``, streamed: every origin reference the
    byte forms show is rewritten by the one mapping (bounded hold, ``StreamingHostReplacer``);
    a spelling that only decoding reveals (``SUSPECT`` whose decoded surroundings hold more
    matches of the mapping than the raw bytes) raises ``UnsafeOverlongTag`` instead (fail
    closed: never the unrewritten tag)."""

    WINDOW = 320  # bytes of context around a suspect spelling, and of overlap between feeds

    def __init__(self, rw: HostRewriter) -> None:
        self.rw = rw
        self.replacer = StreamingHostReplacer(rw, False)
        self.tail = b""

    def feed(self, data: bytes) -> bytes:
        probe = self.tail + data.lower()
        w = self.WINDOW
        for m in SUSPECT.finditer(probe):
            raw = probe[max(0, m.start() - w) : m.end() + w]
            around = raw.decode("utf-8", "replace")
            decoded = re.sub(r"[\t\n\r]", "", unquote(html_unescape(around))).lower().encode("utf-8", "replace")
            m_ = self.rw.matcher
            if len(m_.matches(decoded, 0, len(decoded), False)) > len(m_.matches(raw, 0, len(raw), False)):
                raise UnsafeOverlongTag(
                    f"a tag over [html] max_tag_bytes spells an origin URL with escapes near {around[:80]!r}")
        self.tail = probe[-w:]
        return self.replacer.feed(data)

    def finish(self) -> bytes:
        return self.replacer.finish()

