"""sluicegate's HTML rules, expressed with the rewriter API, and the factory the proxy calls.

Owns *what* gets rewritten in an HTML document: URL-bearing attributes (``href``, ``src``,
``srcset`` candidates, ``style="url(...)"``, ``<meta http-equiv=refresh content>``, Open Graph
``content``...), inline ``<script>`` and ``<style>`` bodies (written back raw, never
HTML-escaped), and the configured head / body-end snippets. Every origin-host decision is
delegated to ``pipeline.hosts.HostRewriter``; this module has no host pattern of its own.

Attribute rules declare the origin host as their *needle*, so tags that do not mention it stay on
the rewriter's fast path. Injection: head snippets go in as the first children of the first
``<head>``, or — with no ``<head>`` start tag — right before the first element or non-blank text
that would open ``<body>``; body-end snippets go before the first real ``</body>`` end tag (found
by the tokenizer, so a ``"</body>"`` inside a script or comment never attracts it), else at end of
document. Documents in a charset that is not ASCII-compatible (UTF-16/32, by declaration or BOM)
pass through unmodified.

Must not know: tokenization details, chunking, I/O, HTTP headers.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from html import unescape as html_unescape
from urllib.parse import unquote

from sluicegate.config.html import HtmlSettings
from sluicegate.pipeline import Transformer, UnsafeOverlongTag
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html.lexer import Attr
from sluicegate.pipeline.html.rewriter import COMPILED_SCAN as _COMPILED
from sluicegate.pipeline.html.rewriter import (
    DocumentEnd,
    Element,
    EndTag,
    HtmlRewriter,
    TextBody,
    TextChunk,
    find_bytes,
    is_ws,
    needle_attr_spans,
    needle_attrs,
)
from sluicegate.pipeline.html.textrefs import TextRefReplacer
from sluicegate.pipeline.text import StreamingHostReplacer

ScriptText = TextBody
ScriptFilter = Callable[[TextBody], bool]
"""Called with each inline ``<script>``'s whole text before the URL rule; True = handled."""

URL_ATTRS = frozenset((
    "href", "src", "action", "formaction", "poster", "cite", "background", "longdesc", "manifest",
    "xlink:href", "codebase", "icon", "lowsrc", "dynsrc", "profile", "itemtype",
))
SRCSET_ATTRS = frozenset(("srcset", "imagesrcset"))
META_URL_KEYS = frozenset((
    "og:url", "og:image", "og:image:url", "og:image:secure_url", "og:video", "og:video:url",
    "og:video:secure_url", "og:audio", "og:audio:url", "og:audio:secure_url", "twitter:image",
    "twitter:image:src", "twitter:url", "twitter:player", "twitter:player:stream", "thumbnail",
    "msapplication-tileimage", "msapplication-config", "msapplication-square150x150logo",
    "image", "url", "contenturl", "thumbnailurl", "embedurl",
))
# Elements that may sit in <head>: seeing one of them does not yet open <body>.
_HEAD_OK = frozenset((
    "html", "head", "base", "basefont", "bgsound", "link", "meta", "title", "noscript", "noframes",
    "style", "script", "template",
))
_BLANK = b"\t\n\f\r "  # whitespace (and a UTF-8 BOM) does not open <body>
_BOM = b"\xef\xbb\xbf"
_CSS_URL = re.compile(r"""(url\(\s*)(["']?)([^"')]*)""", re.I)
_CSS_URL_B = re.compile(_CSS_URL.pattern.encode(), re.I)
_REFRESH = re.compile(r"""^(\s*[0-9.]*\s*[;,]?\s*(?:url\s*=\s*)?)(["']?)(.*)$""", re.I | re.S)
_SRCSET_URL = re.compile(r"[\t\n\f\r ,]*([^\t\n\f\r ]+)([^,]*(?:\([^)]*\)[^,]*)*)")
_SRCSET_URL_B = re.compile(_SRCSET_URL.pattern.encode())
# Tags whose values may spell an origin authority without its literal host: a character reference
# that can stand for a URL character, or a percent-encoded byte in an authority. Such tags go to
# the URL rule on the full path, which decides on the values as the browser decodes them.
SUSPECT = re.compile(rb"&(?:#|period;|sol;|colon;|bsol;|percnt;|commat;)"
                     rb"|[/\\][/\\][a-z0-9.\-_~]*(?:%[0-9a-f]{2}|[\t\n\r][a-z0-9])")
_REF_SUSPECT = re.compile(rb"&(?:#|period;|sol;|colon;|bsol;|percnt;|commat;)")


def suspect_at(low: bytes, start: int, end: int) -> int:
    """First position in lower-cased ``low[start:end]`` where ``SUSPECT`` could match, or -1: a
    character reference for a URL character (one literal-prefixed regex), a ``%`` right inside
    a ``//`` authority, or a backslash next to a slash (``bytes.find`` passes; ``%`` and ``\\``
    are rare in HTML, ``//`` is not). A pre-filter only: ``SUSPECT`` decides per tag. (A
    tab/newline inside an authority is decided only for tags that reach the rule otherwise.)"""
    m = _REF_SUSPECT.search(low, start, end)
    best = -1 if m is None else m.start()
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


def _tag_may_hide(buf: bytes, low: bytes, start: int, end: int) -> bool:
    """A tab/CR/LF in the tag and ``SUSPECT`` matching it (a host split by whitespace, which the
    browser's URL parser removes): only ``urls`` on the full path decides such a tag."""
    if not _COMPILED:  # interpreted: C searches beat a Python byte loop
        seg = buf[start:end]
        return (b"\n" in seg or b"\t" in seg or b"\r" in seg) and SUSPECT.search(low, start, end) is not None
    for i in range(start, end):
        c = buf[i]
        if c == 0x0A or c == 0x09 or c == 0x0D:
            return SUSPECT.search(low, start, end) is not None
    return False


def _is_host_byte(c: int) -> bool:
    return (0x61 <= c <= 0x7A) or (0x30 <= c <= 0x39) or c == 0x2E or c == 0x2D or c == 0x5F or c == 0x7E


_QUOTE_BYTES: dict[int, bytes] = {0: b"", 0x22: b'"', 0x27: b"'"}
_UNQUOTED_UNSAFE = re.compile(rb"[\t\n\f\r \"'=<>`&\0]")
# Attribute kinds of the URL rule, by lower-cased raw name.
_URL, _DATA, _SRCSET, _PING, _STYLE, _CONTENT = 1, 2, 3, 4, 5, 6
_ATTR_KIND: dict[bytes, int] = {
    **{n.encode(): _URL for n in URL_ATTRS}, b"data": _DATA,
    **{n.encode(): _SRCSET for n in SRCSET_ATTRS}, b"ping": _PING, b"style": _STYLE, b"content": _CONTENT,
}


def _attr_vstart(a: Attr) -> int:
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
    """``rewrite_srcset`` on raw UTF-8 bytes (``None``: a candidate needs the ``str`` version)."""
    out: list[bytes] = []
    pos = 0
    changed = False
    while pos < len(value):
        m = _SRCSET_URL_B.match(value, pos)
        if m is None or m.end() == pos:
            break
        url = m.group(1)
        start, end = m.span(1)
        trail = len(url) - len(url.rstrip(b","))
        if trail == len(url):  # only commas: separators, as in ``rewrite_srcset``
            out.append(value[pos : m.end()])
            pos = m.end()
            continue
        if trail:  # "a.jpg," — the commas end the candidate (no descriptors)
            end -= trail
            url = value[start:end]
        new = rewrite_url_raw(rw, url) if _COMPILED else rw.rewrite_url_bytes(url)
        if new is None:
            return None
        if new is not url:
            changed = True
        if trail:
            out += [value[pos:start], new]
            pos = end
        else:
            out += [value[pos:start], new, m.group(2)]
            pos = m.end()
    if not changed:
        return value
    out.append(value[pos:])
    return b"".join(out)


def _needle_attr_spans_re(buf: bytes, low: bytes, astart: int, aend: int,
                          needle: bytes) -> list[tuple[int, int, int, int, int]]:
    """``needle_attr_spans`` by ``needle_attrs`` (regex; faster than a byte loop interpreted)."""
    return [(a.nstart, a.nstart + len(a.name), a.vstart, a.vend, a.quote[0] if a.quote else 0)
            for a in needle_attrs(buf, low, astart, aend, needle)]


def _plain_span(buf: bytes, start: int, end: int) -> bool:
    """``_simple_value(buf[start:end], quote)`` for a quoted value (which cannot hold its quote),
    by a byte loop: no ``&``, CR or NUL."""
    for i in range(start, end):
        c = buf[i]
        if c == 0x26 or c == 0x0D or c == 0:
            return False
    return True


def rewrite_url_raw(rw: HostRewriter, value: bytes) -> bytes | None:
    """``HostRewriter.rewrite_url_bytes`` (kept as a name for compiled callers)."""
    return rw.rewrite_url_bytes(value)


class UrlSplicer:
    """``HostRewriter.rewrite_url_bytes`` on a span of a buffer whose lower-cased copy is at hand,
    answered as a splice: compiled, it needs no slice, ``lower`` or method call but the host
    pattern's one match (method calls cost more than the byte loops here)."""

    def __init__(self, rw: HostRewriter) -> None:
        self.rw = rw
        self.needle = rw.needle
        self.hold = rw.hold
        self.pattern = rw.pattern
        self.replacements = rw.replacements
        # prefix forms by first byte (none: the value cannot start with an origin reference)
        self.forms: dict[int, tuple[tuple[int, bytes], ...]] = rw._url_forms

    def splice(self, buf: bytes, low: bytes, s: int, e: int) -> tuple[int, int, int]:
        """For the URL value ``buf[s:e]`` (``low`` = ``buf.lower()``): ``(form, a, b)`` when
        ``rewrite_url_bytes`` would replace ``buf[a:b]`` with ``replacements[form]``; ``(-1, 0, 0)``
        when it would return the value unchanged, ``(-2, 0, 0)`` when it would return ``None``
        or take its slow path (a host overlapping the prefix)."""
        p = s
        while p < e and (is_ws(buf[p]) or buf[p] == 0x0B):  # what ``bytes.lstrip()`` strips
            p += 1
        if p >= e:
            return -1, 0, 0
        needle = self.needle
        c = buf[p]
        forms = self.forms.get(c)
        if forms is None:
            if 0x1C <= c <= 0x1F or c >= 0x80 or find_bytes(low, needle, p, e) >= 0:
                return -2, 0, 0
            return -1, 0, 0
        lend = min(e, p + self.hold)
        for form, prefix in forms:
            k = len(prefix)
            if p + k > lend:
                continue
            i = 0
            while i < k and low[p + i] == prefix[i]:
                i += 1
            if i < k:
                continue
            if find_bytes(low, needle, p, min(lend, p + k + len(needle) - 1)) >= 0:
                return -2, 0, 0
            m = self.pattern.match(low, p + k, lend)
            if m is None:
                return -2, 0, 0  # the needle is in the value (or it would not be here): str path
            me: int = m.end()
            # another reference later in the value, or a %3A port: the str path decides
            if find_bytes(low, needle, me, e) >= 0 or find_bytes(low, b"%3a", p + k, me) >= 0:
                return -2, 0, 0
            return form, p, me
        if find_bytes(low, needle, p, e) >= 0 or _escapy_span(buf, p, e):
            return -2, 0, 0
        return -1, 0, 0


def _escapy_span(buf: bytes, start: int, end: int) -> bool:
    """A ``%``, tab, LF or CR in ``buf[start:end]``: a URL only the browser's reading decides."""
    for i in range(start, end):
        c = buf[i]
        if c == 0x25 or c == 0x09 or c == 0x0A or c == 0x0D:
            return True
    return False


def _simple_value(raw: bytes, quote: bytes) -> bool:
    """Whether ``raw`` (an attribute value written with ``quote``) decodes to its own UTF-8 text
    and would be written back as the same bytes: no references, CR or NUL; nothing to escape."""
    if quote:
        return b"&" not in raw and b"\r" not in raw and b"\0" not in raw and quote not in raw
    return bool(raw) and _UNQUOTED_UNSAFE.search(raw) is None


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


# ``_replacements_simple`` per public host: one check per host, not 21 ``_simple_value`` calls per
# document. Bounded: with a "*" public host the Host values are the client's to choose.
_SIMPLE_REPL: dict[tuple[bytes, ...], bool] = {}
_SIMPLE_REPL_MAX = 256


def _replacements_simple(replacements: tuple[bytes, ...]) -> bool:
    known = _SIMPLE_REPL.get(replacements)
    if known is None:
        known = all(_simple_value(r, q) for r in replacements for q in (b'"', b"'", b""))
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


class SluicegateRules:
    """Per-document rule state (injection flags); registers its handlers on a rewriter."""

    def __init__(self, rewriter: HostRewriter, settings: HtmlSettings, *, inject: bool,
                 script_filter: ScriptFilter | None) -> None:
        self.rw = rewriter
        self.script_filter = script_filter
        self.head_snippet = "".join(settings.head_inject).encode() if inject else b""
        self.body_snippet = "".join(settings.body_end_inject).encode() if inject else b""
        self.head_done = not self.head_snippet
        # The public replacements need no escaping in any attribute value: then a simple value
        # stays simple after the rewrite and need not be checked again.
        self._simple_repl = _replacements_simple(rewriter.replacements)
        self.body_done = not self.body_snippet
        self._splicer: UrlSplicer | None = None  # made on the first origin tag (compiled builds)
        self._last_el: Element | None = None
        self.rewrite_text = settings.rewrite_text

    def install(self, html: HtmlRewriter) -> None:
        matcher = self.rw.matcher
        # With aliases: one needle per host, one handler object; the raw-byte hook (which reads
        # the origin host's needle) on the origin's, for tags whose other hosts are only parts of
        # the origin host (the rewriter's ``needles.only_inside``).
        urls = self.urls
        for i, needle in enumerate(matcher.needles):
            html.on_element("*", urls, needle=needle, raw=self.urls_raw if i == 0 else None, suspect=suspect_at)
        self.install_text_filter(html)
        html.set_long_tag_filter(self.long_tag_filter)
        html.set_text_streamer(self.text_stream)
        html.on_text("script", self.script)
        html.on_text("style", self.style)
        html.on_text("noscript", self.noscript)
        if not self.head_done:
            html.observe(self.head_observer)
        if not self.body_done:
            html.on_end_tag("body", self.body_end)
        if not (self.head_done and self.body_done):
            html.on_end(self.document_end)

    def text_stream(self, tag: bytes, start_tag: bytes, head: bytes) -> StreamingHostReplacer | None:
        """A long ``<style>`` or ``<script>`` body streams through the one mapping (bounded hold)
        instead of being held whole, unless the script filter needs it whole (inline Flight,
        ``__NEXT_DATA__``: ``wants_whole``); ``<noscript>`` stays whole (nested markup)."""
        if tag == b"style":
            return StreamingHostReplacer(self.rw)
        if tag != b"script":
            return None
        sf = self.script_filter
        if sf is not None:
            wants = getattr(sf, "wants_whole", None)
            if wants is None or wants(start_tag, head):
                return None
        return StreamingHostReplacer(self.rw)

    def long_tag_filter(self) -> LongTagFilter:
        return LongTagFilter(self.rw)

    def install_text_filter(self, html: HtmlRewriter) -> None:
        """HTML text (data, ``title``, ``textarea``...) through the one mapping, when enabled."""
        if self.rewrite_text:
            matcher = self.rw.matcher
            html.set_text_filter(TextRefReplacer(self.rw), needles=matcher.needles,
                                 behind=matcher.max_prefix, hold=self.rw.hold)

    # -- URL attributes ----------------------------------------------------------------------------

    def urls(self, el: Element) -> None:
        if el is self._last_el:  # one call per element, however many origin hosts it holds
            return
        self._last_el = el
        rw = self.rw
        attrs: dict[str, str] | None = None
        needles = rw.matcher.needles
        found = el.needle_attrs(needles[0])
        if len(needles) > 1:
            seen = {a.vstart for a in found}
            for n in needles[1:]:
                for a in el.needle_attrs(n):
                    if a.vstart not in seen:
                        seen.add(a.vstart)
                        found.append(a)
            found.sort(key=_attr_vstart)
        if SUSPECT.search(el.raw.lower()) is not None:
            # values that may name the origin once decoded: every first-occurrence attribute
            # with a reference or a percent sign (the browser's reading decides below)
            names = {a.name for a in found}
            vstarts = {a.vstart for a in found}
            for a in el.all_attrs():
                if a.name in names:
                    continue
                names.add(a.name)
                if a.vstart >= 0 and a.vstart not in vstarts:
                    v = el.raw[a.vstart : a.vend]
                    if b"&" in v or b"%" in v or b"\n" in v or b"\t" in v or b"\r" in v:
                        found.append(a)
            found.sort(key=_attr_vstart)
        for a in found:
            bname = a.name
            kind = _ATTR_KIND.get(bname, 0)
            if (kind == _DATA and el.name != b"object") or kind == _STYLE:
                kind = 0  # any other value: the one mapping, everywhere in it
            if kind <= _SRCSET and a.vstart >= 0:
                # Fast path: a value without references, CR or NUL reads as its own UTF-8 bytes,
                # so the rewrite can work on (and write back) raw bytes: same result, no decoding.
                raw = el.raw[a.vstart : a.vend]
                if _simple_value(raw, a.quote):
                    if kind == 0:
                        new_raw: bytes | None = rw.rewrite(raw, False)
                    elif kind == _SRCSET:
                        new_raw = rewrite_srcset_bytes(rw, raw)
                    else:
                        new_raw = rw.rewrite_url_bytes(raw)
                    if new_raw is not None:
                        if new_raw != raw and (self._simple_repl or _simple_value(new_raw, a.quote)):
                            el.set_raw_value(a, new_raw)
                            continue
                        if new_raw == raw:
                            continue
            name = bname.decode("utf-8", "surrogateescape")
            value = el.value(a)
            if kind == 0:
                new = rw.rewrite_text(value)
            elif kind in (_URL, _DATA):
                new = rw.rewrite_url(value)
            elif kind == _SRCSET:
                new = rewrite_srcset(rw, value)
            elif kind == _PING:
                new = " ".join(rw.rewrite_url(u) for u in value.split(" "))
            elif el.tag == "meta":  # content
                attrs = attrs or el.attributes
                new = self._meta_content(attrs, value)
            else:
                new = rw.rewrite_text(value)
            if new != value:
                el.set_attribute(name, new)

    def urls_raw(self, buf: bytes, low: bytes, start: int, astart: int, aend: int, end: int,
                 name: bytes) -> bytes | None:
        """``urls`` on the raw bytes of a start tag ``buf[start:end]`` (attribute text
        ``astart:aend``, lower-cased ``name``; ``low`` is ``buf.lower()``): the tag's new bytes
        when every attribute ``urls`` would touch takes its raw-byte fast path, else ``None``
        (the caller then runs ``urls`` on an ``Element``). Same result as ``urls`` +
        ``Element.serialize``."""
        if _tag_may_hide(buf, low, start, end):
            return None  # a value may spell an origin the byte hook cannot see: the full path
        if _COMPILED:
            return self.urls_spans(buf, low, start, astart, aend, end, name)
        # Interpreted: regexes and ``bytes`` methods beat Python byte loops.
        rw = self.rw
        parts: list[bytes] | None = None
        pos = start
        for ns, ne, vs, ve, qc in _needle_attr_spans_re(buf, low, astart, aend, rw.needle):
            kind = _ATTR_KIND.get(low[ns:ne], 0)
            if (kind == _DATA and name != b"object") or kind == _STYLE:
                kind = 0
            if kind > _SRCSET:
                return None
            quote = _QUOTE_BYTES[qc]
            raw = buf[vs:ve]
            if not _simple_value(raw, quote):
                return None
            if kind == 0:
                new_raw: bytes | None = rw.rewrite(raw, False)
            else:
                new_raw = rewrite_srcset_bytes(rw, raw) if kind == _SRCSET else rw.rewrite_url_bytes(raw)
            if new_raw is None:
                return None
            if new_raw == raw:
                continue
            if not (self._simple_repl or _simple_value(new_raw, quote)):
                return None
            if parts is None:
                parts = []
            parts.append(buf[pos:vs])
            parts.append(new_raw)
            pos = ve
        if parts is None:
            return buf[start:end]
        parts.append(buf[pos:end])
        return b"".join(parts)

    def urls_spans(self, buf: bytes, low: bytes, start: int, astart: int, aend: int, end: int,
                   name: bytes) -> bytes | None:
        """``urls_raw`` for compiled builds: byte loops and ``UrlSplicer`` splices instead of
        value slices, ``rewrite_url_raw`` and the srcset regex (the same results)."""
        sp = self._splicer
        if sp is None:
            sp = self._splicer = UrlSplicer(self.rw)
        parts: list[bytes] = []  # slices and replacements; empty: the tag is unchanged
        pos = start
        for ns, ne, vs, ve, qc in needle_attr_spans(buf, low, astart, aend, sp.needle):
            kind = _ATTR_KIND.get(low[ns:ne], 0)
            if (kind == _DATA and name != b"object") or kind == _STYLE:
                kind = 0
            if kind > _SRCSET or not self._simple_repl:
                return None
            if not (_plain_span(buf, vs, ve) if qc else _simple_value(buf[vs:ve], b"")):
                return None
            if kind == 0:  # any other value: the one mapping, everywhere in it
                new_style = self.rw.rewrite(buf[vs:ve], False)
                if new_style != buf[vs:ve]:
                    parts.append(buf[pos:vs])
                    parts.append(new_style)
                    pos = ve
                continue
            if kind != _SRCSET:
                form, a, b = sp.splice(buf, low, vs, ve)
                if form == -2:
                    return None
                if form >= 0:
                    parts.append(buf[pos:a])
                    parts.append(sp.replacements[form])
                    pos = b
                continue
            # srcset candidates, split as ``rewrite_srcset_bytes``'s regex splits them
            p = vs
            while p < ve:
                while p < ve and (is_ws(buf[p]) or buf[p] == 0x2C):  # ','
                    p += 1
                if p >= ve:
                    break
                us = p
                while p < ve and not is_ws(buf[p]):
                    p += 1
                ue = p
                while buf[ue - 1] == 0x2C:  # trailing commas end the candidate (``us`` is no comma)
                    ue -= 1
                form, a, b = sp.splice(buf, low, us, ue)
                if form == -2:
                    return None
                if form >= 0:
                    parts.append(buf[pos:a])
                    parts.append(sp.replacements[form])
                    pos = b
                if ue == p:  # descriptors run to the next comma
                    while p < ve and buf[p] != 0x2C:
                        p += 1
                else:
                    p = ue
        if not parts:
            return buf[start:end]
        parts.append(buf[pos:end])
        return b"".join(parts)

    def _meta_content(self, attrs: dict[str, str], value: str) -> str:
        if attrs.get("http-equiv", "").strip().lower() == "refresh":
            return rewrite_refresh(self.rw, value)
        for key in ("property", "name", "itemprop"):
            if attrs.get(key, "").strip().lower() in META_URL_KEYS:
                return self.rw.rewrite_url(value)
        return self.rw.rewrite_text(value)

    # -- script and style bodies -------------------------------------------------------------------

    def script(self, body: TextBody) -> None:
        if self.script_filter is not None and self.script_filter(body):
            return
        if not body.complete:  # an over-long body streams through unmodified
            return
        if body.slot is None and self.rw.might_contain(body.output):
            body.replace(self.rw.rewrite(body.output))

    def style(self, body: TextBody) -> None:
        if body.complete and self.rw.might_contain(body.raw):
            body.replace(self.rw.rewrite(body.raw))

    def noscript(self, body: TextBody) -> None:
        """``<noscript>`` is raw text to a scripting browser but markup to one without scripts:
        its URLs are rewritten by a nested rewriter with the same attribute rules."""
        if not body.complete or not self.rw.might_contain(body.raw):
            return
        inner = HtmlRewriter(max_tag_bytes=len(body.raw) + 1, max_text_bytes=len(body.raw) + 1)
        SluicegateRules(self.rw, HtmlSettings(rewrite_text=self.rewrite_text), inject=False,
                        script_filter=None).install(inner)
        body.replace(inner.feed(body.raw) + inner.finish())

    # -- injection ---------------------------------------------------------------------------------

    def head_observer(self, unit: Element | TextChunk) -> bool:
        if self.head_done:
            return False
        if isinstance(unit, TextChunk):
            rest = unit.raw.lstrip(_BLANK)
            while rest.startswith(_BOM):
                rest = rest[3:].lstrip(_BLANK)
            if not rest:
                return True
            unit.insert(len(unit.raw) - len(rest), self.head_snippet)
        elif unit.tag == "head":
            unit.prepend(self.head_snippet)
        elif unit.tag in _HEAD_OK:
            return True
        else:
            unit.before(self.head_snippet)
        self.head_done = True
        return False

    def body_end(self, tag: EndTag) -> None:
        if not self.body_done:
            tag.before(self.body_snippet)
            self.body_done = True

    def document_end(self, doc: DocumentEnd) -> None:
        if not self.head_done:
            doc.append(self.head_snippet)
            self.head_done = True
        if not self.body_done:
            doc.append(self.body_snippet)
            self.body_done = True


def ascii_compatible(charset: str) -> bool:
    """Whether markup in ``charset`` is plain ASCII bytes (UTF-8, Latin-1, Shift_JIS... not UTF-16)."""
    try:
        codecs.lookup(charset)
        return '<a href="/">'.encode(charset) == b'<a href="/">'
    except (LookupError, UnicodeError):
        return True  # unknown label: browsers fall back to an ASCII-compatible default


class _Passthrough:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _BomGate:
    """Looks at the first two bytes: a UTF-16 BOM makes the whole body pass through unmodified."""

    def __init__(self, inner: Transformer) -> None:
        self._inner: Transformer | None = None
        self._candidate = inner
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        if self._inner is not None:
            return self._inner.feed(data)
        self._head += data
        if len(self._head) < 2:
            return b""
        return self._decide().feed(self._take_head())

    def _decide(self) -> Transformer:
        if self._head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            self._inner = _Passthrough()
        else:
            self._inner = self._candidate
        return self._inner

    def _take_head(self) -> bytes:
        head, self._head = self._head, b""
        return head

    def finish(self) -> bytes:
        if self._inner is None:
            inner = self._decide()
            return inner.feed(self._take_head()) + inner.finish()
        return self._inner.finish()


def build_html_rewriter(rewriter: HostRewriter, settings: HtmlSettings, *, inject: bool = True,
                        script_filter: ScriptFilter | None = None,
                        extra_rules: Callable[[HtmlRewriter], None] | None = None) -> HtmlRewriter:
    """The bare ``HtmlRewriter`` with sluicegate's rules installed (no charset gate).

    ``extra_rules`` installs further handlers on the same rewriter after sluicegate's own (one
    tokenizer pass), e.g. the ``[first_party] rewrite_domains`` rule; they see each element
    after the origin rules edited it."""
    html = HtmlRewriter(max_tag_bytes=settings.max_tag_bytes, max_text_bytes=settings.max_text_bytes)
    SluicegateRules(rewriter, settings, inject=inject, script_filter=script_filter).install(html)
    if extra_rules is not None:
        extra_rules(html)
    return html


def build_html_processor(rewriter: HostRewriter, settings: HtmlSettings, *, inject: bool = True,
                         script_filter: ScriptFilter | None = None,
                         charset: str | None = None,
                         extra_rules: Callable[[HtmlRewriter], None] | None = None) -> Transformer:
    """The transformer the proxy runs on ``text/html`` / ``application/xhtml+xml`` bodies.

    ``inject=False`` turns off head/body-end snippets (RSC navigation requests). ``script_filter``
    sees every inline ``<script>`` body first (see ``ScriptText``). ``charset`` is the charset the
    response declared, if any; a non-ASCII-compatible one makes the body pass through unmodified.
    """
    if charset is not None and not ascii_compatible(charset):
        return _Passthrough()
    return _BomGate(build_html_rewriter(rewriter, settings, inject=inject, script_filter=script_filter,
                                        extra_rules=extra_rules))
