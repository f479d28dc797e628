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

import re
from collections.abc import Callable
from typing import Final

from sluicegate.config.html import HtmlSettings
from sluicegate.pipeline.bytescan import is_ws
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html.attrs import needle_attr_spans
from sluicegate.pipeline.html.dispatch import HtmlRewriter
from sluicegate.pipeline.html.lexer import ATTR, iter_attrs
from sluicegate.pipeline.html.scanner import COMPILED_SCAN
from sluicegate.pipeline.html.textrefs import TextRefReplacer
from sluicegate.pipeline.html.units import DocumentEnd, Element, EndTag, TextBody, TextChunk
from sluicegate.pipeline.html.urlvalues import (
    ATTR_KIND,
    K_CONTENT,
    K_DATA,
    K_PING,
    K_SRCSET,
    K_STYLE,
    K_URL,
    META_URL_KEYS,
    QUOTED_UNSAFE,
    SUSPECT,
    UNQUOTED_UNSAFE,
    LongTagFilter,
    SuspectScan,
    attr_vstart,
    plain_span,
    replacements_simple,
    rewrite_refresh,
    rewrite_srcset,
    rewrite_srcset_bytes,
    simple_value,
    tag_may_hide,
)
from sluicegate.pipeline.text import StreamingHostReplacer

ScriptText = TextBody
ScriptFilter = Callable[[TextBody], bool]
"""Called with each inline ``<script>``'s whole text before the URL rule; True = handled."""

WHOLE_HEAD: Final = 64
"""A ``<script>``/``<style>`` body longer than this is decided on its first ``WHOLE_HEAD`` bytes
(``text_stream``): held whole for a script filter that wants it whole (``wants_whole``), else
streamed through the one mapping with a bounded hold. A script filter with ``wants_whole`` must
decide from those bytes too (the Next.js filter's ``__next_f`` mark), so that a streamed body is
one its whole-body rule would have left to the generic rule; a filter without ``wants_whole``
gets every script whole."""

# Elements that may sit in <head>: seeing one of them does not yet open <body>.
_HEAD_OK: Final = frozenset((
    "html", "head", "base", "basefont", "bgsound", "link", "meta", "title", "noscript", "noframes",
    "style", "script", "template",
))
_BLANK: Final = b"\t\n\f\r "  # whitespace (and a UTF-8 BOM) does not open <body>
_BOM: Final = b"\xef\xbb\xbf"
_SAME: Final = b"\0unchanged"  # ``_raw_value``: the value is unchanged (a sentinel, compared by identity)
_META_KEYS: Final = (b"property", b"name", b"itemprop")
_META_URL_KEYS_B: Final = frozenset(k.encode() for k in META_URL_KEYS)
_META_ODD: Final = re.compile(rb"[^\x20-\x7e]|&")  # a key value only decoding reads: the full path


def meta_content_kind(buf: bytes, astart: int, aend: int) -> int:
    """How ``urls`` rewrites the ``content`` of the ``<meta>`` whose attribute text is
    ``buf[astart:aend]``, decided on raw bytes as ``_meta_content`` decides on the decoded
    attributes (first duplicate wins): ``K_URL`` for an Open Graph / Twitter URL key
    (``property``/``name``/``itemprop``), 0 for any other (the one mapping over the value), -1
    for ``http-equiv=refresh`` or a key value with ``&`` or a byte outside printable ASCII
    (only the decoded reading decides: the full path)."""
    vals: dict[bytes, bytes] = {}
    for a in iter_attrs(buf, astart, aend):
        n = a.name
        if n in vals or not (n == b"http-equiv" or n in _META_KEYS):
            continue
        v = buf[a.vstart : a.vend] if a.vstart >= 0 else b""
        if _META_ODD.search(v) is not None:
            return -1
        vals[n] = v.strip(b" ").lower()
    if vals.get(b"http-equiv") == b"refresh":
        return -1
    for key in _META_KEYS:
        if vals.get(key, b"") in _META_URL_KEYS_B:
            return K_URL
    return 0


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
        self._simple_repl = replacements_simple(rewriter.replacements)
        self.body_done = not self.body_snippet
        self._last_el: Element | None = None
        self.rewrite_text = settings.rewrite_text

    def install(self, html: HtmlRewriter) -> None:
        matcher = self.rw.matcher
        # With aliases: one needle per host, one handler object; the raw-byte hook (which reads
        # the origin host's needle) on the origin's, for tags whose other hosts are only parts of
        # the origin host (the rewriter's ``needles.only_inside``).
        urls = self.urls
        suspect = SuspectScan().at  # one per rewriter: it remembers its last buffer's reference search
        for i, needle in enumerate(matcher.needles):
            html.on_element("*", urls, needle=needle, raw=self.urls_raw if i == 0 else None, suspect=suspect)
        self.install_text_filter(html)
        html.set_long_tag_filter(self.long_tag_filter)
        html.set_text_streamer(self.text_stream, decide_at=WHOLE_HEAD)
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
        """A ``<style>`` or ``<script>`` body over ``WHOLE_HEAD`` bytes (``head``: its first
        ``WHOLE_HEAD``) streams through the one mapping (bounded hold) instead of being held
        whole, unless the script filter needs it whole (inline Flight, ``__NEXT_DATA__``:
        ``wants_whole``): the same bytes as ``style`` / ``script`` make of it whole, without
        holding it until its end tag. ``<noscript>`` stays whole (nested markup)."""
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
            found.sort(key=attr_vstart)
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
            found.sort(key=attr_vstart)
        for a in found:
            bname = a.name
            kind = ATTR_KIND.get(bname, 0)
            if (kind == K_DATA and el.name != b"object") or kind == K_STYLE:
                kind = 0  # any other value: the one mapping, everywhere in it
            if kind <= K_SRCSET and a.vstart >= 0:
                # Fast path: a value without references, CR or NUL reads as its own UTF-8 bytes,
                # so the rewrite can work on (and write back) raw bytes: same result, no decoding.
                raw = el.raw[a.vstart : a.vend]
                if simple_value(raw, a.quote):
                    if kind == 0:
                        new_raw: bytes | None = rw.rewrite(raw, False)
                    elif kind == K_SRCSET:
                        new_raw = rewrite_srcset_bytes(rw, raw)
                    else:
                        new_raw = rw.rewrite_url_bytes(raw)
                    if new_raw is not None:
                        if new_raw != raw and (self._simple_repl or simple_value(new_raw, a.quote)):
                            el.set_raw_value(a, new_raw)
                            continue
                        if new_raw == raw:
                            continue
            name = bname.decode("utf-8", "surrogateescape")
            value = el.value(a)
            if kind == 0:
                new = rw.rewrite_text(value)
            elif kind in (K_URL, K_DATA):
                new = rw.rewrite_url(value)
            elif kind == K_SRCSET:
                new = rewrite_srcset(rw, value)
            elif kind == K_PING:
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
        if tag_may_hide(buf, low, start, end):
            return None  # a value may spell an origin the byte hook cannot see: the full path
        if COMPILED_SCAN:
            return self.urls_spans(buf, low, start, astart, aend, end, name)
        # Interpreted: regexes and ``bytes`` methods beat Python byte loops. ``needle_attrs``
        # written out on the ``ATTR`` matches (no ``Attr`` objects) and ``simple_value`` as one
        # search on the buffer (no value slice): this runs once per origin tag.
        rw = self.rw
        needle = rw.needle
        find = low.find
        p = find(needle, astart, aend)
        if p < 0:
            return buf[start:end]
        parts: list[bytes] | None = None
        pos = start
        simple_repl = self._simple_repl
        for m in ATTR.finditer(buf, astart, aend):
            me = m.end()
            if me > p:
                g = m.lastindex or 1
                if g > 1:
                    vs, ve = m.span(g)
                    if find(needle, vs, ve) >= 0:
                        ns = m.start(1)
                        aname = low[ns : m.end(1)]
                        if find(aname, astart, ns) >= 0:
                            # maybe an earlier attribute of that name (the first one counts):
                            # the full path decides (a name not in the text before cannot be)
                            return None
                        if g == 2 and simple_repl and ATTR_KIND.get(aname) == K_URL:
                            # the common case, ``_raw_value`` written out: a double-quoted URL
                            if QUOTED_UNSAFE.search(buf, vs, ve) is not None:
                                return None
                            raw = buf[vs:ve]
                            new_raw: bytes | None = rw.rewrite_url_bytes(raw)
                            if new_raw is None:
                                return None
                            if new_raw == raw:
                                new_raw = _SAME
                        else:
                            new_raw = self._raw_value(buf, name, aname, g, vs, ve, simple_repl, astart, aend)
                            if new_raw is None:
                                return None
                        if new_raw is not _SAME:
                            if parts is None:
                                parts = []
                            parts.append(buf[pos:vs])
                            parts.append(new_raw)
                            pos = ve
                p = find(needle, me, aend)
                if p < 0:
                    break
        if parts is None:
            return buf[start:end]
        parts.append(buf[pos:end])
        return b"".join(parts)

    def _raw_value(self, buf: bytes, name: bytes, aname: bytes, g: int, vs: int, ve: int,
                   simple_repl: bool, astart: int, aend: int) -> bytes | None:
        """``urls_raw``'s decision on one value ``buf[vs:ve]`` (``ATTR`` group ``g``: 2 double-,
        3 single-quoted, 4 unquoted) of attribute ``aname`` (the tag's attribute text
        ``astart:aend``): its new bytes, ``_SAME`` when unchanged, ``None`` when only the full
        path decides (interpreted builds)."""
        kind = ATTR_KIND.get(aname, 0)
        if (kind == K_DATA and name != b"object") or kind == K_STYLE:
            kind = 0
        elif kind == K_CONTENT:
            kind = meta_content_kind(buf, astart, aend) if name == b"meta" else 0
            if kind < 0:
                return None
        if kind > K_SRCSET:
            return None
        if g == 4:
            if ve <= vs or UNQUOTED_UNSAFE.search(buf, vs, ve) is not None:
                return None
        elif QUOTED_UNSAFE.search(buf, vs, ve) is not None:
            return None
        raw = buf[vs:ve]
        rw = self.rw
        if kind == 0:
            new_raw: bytes | None = rw.rewrite(raw, False)
        else:
            new_raw = rewrite_srcset_bytes(rw, raw) if kind == K_SRCSET else rw.rewrite_url_bytes(raw)
        if new_raw is None:
            return None
        if new_raw == raw:
            return _SAME
        if not (simple_repl or simple_value(new_raw, b'"' if g == 2 else b"'" if g == 3 else b"")):
            return None
        return new_raw

    def urls_spans(self, buf: bytes, low: bytes, start: int, astart: int, aend: int, end: int,
                   name: bytes) -> bytes | None:
        """``urls_raw`` for compiled builds: byte loops and the one mapping's ``url_span`` splices
        instead of value slices, ``rewrite_url_bytes`` and the srcset regex (the same results)."""
        rw = self.rw
        repl = rw.replacements
        parts: list[bytes] = []  # slices and replacements; empty: the tag is unchanged
        pos = start
        for ns, ne, vs, ve, qc in needle_attr_spans(buf, low, astart, aend, rw.needle):
            kind = ATTR_KIND.get(low[ns:ne], 0)
            if (kind == K_DATA and name != b"object") or kind == K_STYLE:
                kind = 0
            elif kind == K_CONTENT:  # ``<meta content>``: a URL for Open Graph keys, else the mapping
                kind = meta_content_kind(buf, astart, aend) if name == b"meta" else 0
                if kind < 0:
                    return None
            if kind > K_SRCSET or not self._simple_repl:
                return None
            if not (plain_span(buf, vs, ve) if qc else simple_value(buf[vs:ve], b"")):
                return None
            if kind == 0:  # any other value: the one mapping, everywhere in it
                new_style = rw.rewrite(buf[vs:ve], False)
                if new_style != buf[vs:ve]:
                    parts.append(buf[pos:vs])
                    parts.append(new_style)
                    pos = ve
                continue
            if kind != K_SRCSET:
                form, a, b = rw.url_span(buf, low, vs, ve)
                if form == -2:
                    return None
                if form >= 0:
                    parts.append(buf[pos:a])
                    parts.append(repl[form])
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
                while p < ve:  # the URL runs to whitespace (``is_ws`` written out: per byte)
                    c = buf[p]
                    if c == 0x20 or c == 0x0A or c == 0x09 or c == 0x0C or c == 0x0D:
                        break
                    p += 1
                ue = p
                while buf[ue - 1] == 0x2C:  # trailing commas end the candidate (``us`` is no comma)
                    ue -= 1
                form, a, b = rw.url_span(buf, low, us, ue)
                if form == -2:
                    return None
                if form >= 0:
                    parts.append(buf[pos:a])
                    parts.append(repl[form])
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
        # ``rewrite`` returns its input itself when nothing matches (then ``replace`` is a no-op): a
        # ``might_contain`` check first lower-cased and searched every body twice
        if body.slot is None:
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

