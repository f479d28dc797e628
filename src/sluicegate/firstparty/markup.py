"""Streaming rewriters that turn third-party URLs into signed first-party URLs.

* ``install_page_rules`` — the publisher-page rule for ``[first_party] rewrite_domains`` on the
  page's own ``HtmlRewriter`` (one pass, after the origin rules), its handlers keyed on the
  configured hosts as needles (tags that do not name one stay on the rewriter's fast path);
  ``page_stage`` is the same rule as a second ``HtmlRewriter`` chained after any processor.
  script/iframe/embed/source/video/audio ``src``, img ``src``/``srcset``, link ``href`` /
  ``imagesrcset``, ``poster``, ``style="url(...)"`` and ``<style>`` ``url()``/``@import``; whole
  URL literals in inline scripts (``inline``); the same rule inside ``<noscript>`` (nested
  rewriter). A tag that names only rewrite domains is decided on its bytes (``element_raw``, the
  rewriter's raw-byte hook): no ``Element``, only the attributes holding a domain are decoded.
* ``proxied_html`` — the same mechanism (``install_rules``) for an HTML document fetched through
  ``/proxy``, with ``allowed_domains`` as the list: every resource attribute (relative URLs
  resolved against the document's own URL) becomes a signed proxy URL, ``<a href>`` / ``<area
  href>`` signed click URLs, ``<base>`` removed; inline scripts, ``<noscript>``, ``style=`` and
  ``<style>`` as in publisher pages. Long ``<script>``/``<style>`` bodies stream (bounded hold)
  in both.
* ``CssUrlStream`` — ``url()`` and ``@import "..."`` in a CSS stream, held back only while a
  token is incomplete (bounded by ``max_css_token_bytes``; over it the text passes unmodified).

Everything is sans-IO (``feed``/``finish``) and identical for every chunking.
Must not know: sockets, consent, keys (it gets a ``UrlMinter``).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from urllib.parse import urljoin

from sluicegate.config.domains import DomainList
from sluicegate.firstparty.inline import ScriptUrlStream, names_any, sign_script
from sluicegate.firstparty.signing import BadUrl, Signer, canonical_url
from sluicegate.pipeline import Transformer
from sluicegate.pipeline.html import Element, HtmlRewriter, TextBody
from sluicegate.pipeline.html.attrs import decode_value, needle_attrs, splice_value
from sluicegate.pipeline.html.lexer import Attr, iter_attrs

log = logging.getLogger("sluicegate.firstparty")

_SRC_TAGS = frozenset({"script", "img", "iframe", "embed", "source", "video", "audio", "track", "input", "frame"})
_LINK_RELS = ("stylesheet", "preload", "modulepreload", "prefetch", "icon", "manifest")
_CSS_TOKEN = re.compile(
    rb"""(url\(\s*)(["']?)([^"'()\s]*)(\2\s*\))|(@import\s+)(["'])([^"'\r\n]*)(\6)""", re.I
)
MINT_CACHE_ENTRIES = 4096
RawKey = tuple[bytes, bytes, bytes, bytes]
_SRCSET_URL = re.compile(r"([\s,]*)(\S+)")


class UrlMinter:
    """Absolute URL -> signed first-party URL, for hosts on ``domains``; anything else: None."""

    def __init__(
        self,
        signer: Signer,
        domains: DomainList,
        base: str = "",
        cache: dict[str, tuple[int, str | None]] | None = None,
        raw_cache: dict[RawKey, tuple[int, bytes | None]] | None = None,
    ) -> None:
        self.signer = signer
        self.domains = domains
        self.base = base  # the document's URL for relative references ("" = leave relative ones)
        # value -> (expiry, answer), shared by the pages of a worker: a page names the same URLs on every view
        self.cache = cache if not base else None
        # (tag, attribute, quote, raw value) -> (expiry, new raw value or None = unchanged): the
        # byte-level hook's answers, shared alike (bounded by MINT_CACHE_ENTRIES as well)
        self.raw_cache = raw_cache if not base else None

    def mint(self, value: str, kind: str = "proxy", resolve: bool = True) -> str | None:
        """``value`` as a signed ``kind`` URL, or None to leave it. In a proxied document (``base``
        set) a relative or scheme-relative URL off the list comes back absolute, so that it still
        reaches its host once the document is served from the publisher's origin; ``resolve=False``
        (URL literals in scripts) leaves such a URL as written."""
        cache = self.cache
        if cache is None or kind != "proxy":
            return self._mint(value, kind, resolve)
        exp = self.signer.expiry()
        hit = cache.get(value)
        if hit is not None and hit[0] == exp:
            return hit[1]
        answer = self._mint(value, kind)
        if len(cache) >= MINT_CACHE_ENTRIES:
            cache.clear()
        cache[value] = (exp, answer)
        return answer

    def _mint(self, value: str, kind: str, resolve: bool = True) -> str | None:
        raw = value.strip()
        if not raw:
            return None
        if raw.startswith("//"):
            raw = "https:" + raw
        elif not raw[:8].lower().startswith(("http://", "https://")):
            if not self.base or ":" in raw.split("/", 1)[0] or raw.startswith("#"):
                return None  # data:, javascript:, mailto:, fragments... never proxied
            raw = urljoin(self.base, raw)
        try:
            target = canonical_url(raw, self.signer.max_url_bytes)
        except BadUrl:
            return None
        if kind != "click" and not self.domains.matches(target.host):  # a click is a redirect, not a fetch
            # relative made absolute still works
            return raw if resolve and self.base and raw != value.strip() else None
        return self.signer.mint(kind, target)

    def srcset(self, value: str) -> str | None:
        """Each candidate of a ``srcset`` (WHATWG split: a URL runs to whitespace, trailing commas end it,
        descriptors run to the next comma) minted; separators and descriptors kept as they are."""
        changed = False
        out: list[str] = []
        pos, n = 0, len(value)
        while pos < n:
            m = _SRCSET_URL.match(value, pos)
            if m is None:
                out.append(value[pos:])
                break
            lead, url = m.group(1), m.group(2)
            pos = m.end()
            stripped = url.rstrip(",")
            tail = url[len(stripped) :]
            desc = ""
            if not tail:
                end = value.find(",", pos)
                end = n if end < 0 else end
                desc, pos = value[pos:end], end
            new = self.mint(stripped) if stripped else None
            if new is not None:
                changed = True
                stripped = new
            out.append(lead + stripped + tail + desc)
        return "".join(out) if changed else None

    def css(self, text: bytes) -> bytes:
        def repl(m: re.Match[bytes]) -> bytes:
            if m.group(1) is not None:
                head, quote, url, tail = m.group(1), m.group(2), m.group(3), m.group(4)
            else:
                head, quote, url, tail = m.group(5), m.group(6), m.group(7), m.group(8)
            try:
                new = self.mint(url.decode("ascii"))
            except UnicodeDecodeError:
                return m.group(0)
            if new is None:
                return m.group(0)
            if not quote and b"url(" in head.lower():
                quote, tail = b'"', b'"' + tail
            return head + quote + new.encode() + tail

        return _CSS_TOKEN.sub(repl, text)


class _ElementRules:
    """The one rule set of publisher pages and proxied documents (``install_rules``).

    Page rule (``clicks`` False): only tags, ``<style>``/``<noscript>`` bodies and attributes
    naming a rewrite domain (``needles``) are looked at. Proxied document (``clicks`` True):
    every tag (relative URLs are resolved against ``minter.base``, ``<a href>`` become click
    URLs, ``<base>`` is removed) and every ``<style>`` / ``<noscript>`` body. Inline scripts
    are the same in both: whole URL literals on ``minter.domains`` (``inline.sign_script``)."""

    def __init__(self, minter: UrlMinter, *, clicks: bool, max_css_token_bytes: int = 8192) -> None:
        self.minter = minter
        self.clicks = clicks
        self.text_needles = minter.domains.needles()
        # page rule: only attributes naming one of these are looked at; None: every attribute
        self.needles: list[bytes] | None = None if clicks else self.text_needles
        self.max_css_token_bytes = max_css_token_bytes
        self._last: Element | None = None

    def element(self, el: Element) -> None:
        if el is self._last:  # one handler per needle: a tag naming two hosts is seen twice
            return
        self._last = el
        tag = el.tag
        if self.clicks and tag == "base":
            el.remove()
            return
        if self.needles is None:
            items = list(el.attributes.items())
        elif len(self.needles) == 1:
            items = el.attrs_containing(self.needles[0])
        else:
            seen: dict[str, str] = {}
            for n in self.needles:
                seen.update(el.attrs_containing(n))
            items = list(seen.items())
        for name, found in items:
            # one pass: the origin rule on the same rewriter may have edited the value already
            value = el.get_attribute(name) if self.needles is not None else found
            if value:
                new = self.rewrite(el.get_attribute, tag, name, value)
                if new is not None and new != value:
                    el.set_attribute(name, new)

    def element_raw(self, buf: bytes, low: bytes, start: int, astart: int, aend: int, end: int,
                    name: bytes) -> bytes | None:
        """``element`` + ``Element.serialize`` on the raw bytes of a start tag that names a rewrite
        domain and nothing another handler wants (the rewriter's raw-byte hook; ``low`` is
        ``buf.lower()``, ``buf[astart:aend]`` the attribute text, ``name`` the lower-cased tag
        name): only the attributes whose raw values hold a domain needle are decoded and minted;
        the tag's new bytes, or ``None`` (take the full path) where only the ``Element`` way
        decides (an unquoted value that changes)."""
        needles = self.needles
        assert needles is not None
        found = needle_attrs(buf, low, astart, aend, needles[0])
        if len(needles) > 1:
            seen = {a.vstart for a in found}
            for n in needles[1:]:
                for a in needle_attrs(buf, low, astart, aend, n):
                    if a.vstart not in seen:
                        seen.add(a.vstart)
                        found.append(a)
            found.sort(key=_vstart)
        tag = name.decode("utf-8", "surrogateescape")
        parts: list[bytes] = []
        pos = start
        getter: _RawAttrs | None = None
        # answers are cached per raw value, except where the decision reads other attributes
        rc = self.minter.raw_cache
        if name == b"link" or name == b"input":
            rc = None
        exp = self.minter.signer.expiry() if rc is not None else 0
        for a in found:
            raw = buf[a.vstart : a.vend]
            key: RawKey = (name, a.name, a.quote, raw)
            if rc is not None:
                hit = rc.get(key)
                if hit is not None and hit[0] == exp:
                    if hit[1] is not None:
                        parts.append(buf[pos : a.vstart])
                        parts.append(hit[1])
                        pos = a.vend
                    continue
            new_raw = self._new_raw(getter, buf, astart, aend, tag, a, raw)
            if new_raw is _DECLINE:
                return None
            if rc is not None:
                if len(rc) >= MINT_CACHE_ENTRIES:
                    rc.clear()
                rc[key] = (exp, new_raw)
            if new_raw is None:
                continue
            parts.append(buf[pos : a.vstart])
            parts.append(new_raw)
            pos = a.vend
        if not parts:
            return buf[start:end]
        parts.append(buf[pos:end])
        return b"".join(parts)

    def _new_raw(self, getter: _RawAttrs | None, buf: bytes, astart: int, aend: int, tag: str, a: Attr,
                 raw: bytes) -> bytes | None:
        """The new raw bytes of attribute ``a``'s value, None when unchanged, ``_DECLINE`` when
        only the ``Element`` path decides."""
        simple = b"&" not in raw and b"\r" not in raw and b"\0" not in raw
        value = raw.decode("utf-8", "surrogateescape") if simple else decode_value(raw)
        if not value:
            return None
        get = (getter or _RawAttrs(buf, astart, aend)).get
        new = self.rewrite(get, tag, a.name.decode("utf-8", "surrogateescape"), value)
        if new is None or new == value:
            return None
        if not a.quote:
            return _DECLINE
        if simple and "\r" not in new and "\0" not in new:
            # what ``splice_value`` gives for a value without references: ``new`` escaped
            esc = new.replace("&", "&amp;")
            esc = esc.replace('"', "&quot;") if a.quote == b'"' else esc.replace("'", "&#39;")
            return esc.encode("utf-8", "surrogateescape")
        new_raw = splice_value(raw, new, a.quote)
        return _DECLINE if new_raw is None else new_raw

    def rewrite(self, get: Callable[[str], str | None], tag: str, name: str, value: str) -> str | None:
        """The new value of attribute ``name`` of ``tag`` (``get`` reads the tag's other
        attributes, decoded), or None when the rule leaves it."""
        m = self.minter
        if name == "src":
            if tag in _SRC_TAGS and (tag != "input" or (get("type") or "").strip().lower() == "image"):
                return m.mint(value)
        elif name in ("srcset", "imagesrcset"):
            if tag in ("img", "source", "link"):
                return m.srcset(value)
        elif name == "href":
            if tag == "link":
                rel = (get("rel") or "").lower()
                return m.mint(value) if any(r in rel for r in _LINK_RELS) else None
            if tag in ("image", "use"):
                return m.mint(value)
            if self.clicks and tag in ("a", "area"):
                return m.mint(value, "click")
        elif name == "xlink:href":
            return m.mint(value) if tag in ("image", "use") else None
        elif name == "poster":
            return m.mint(value) if tag == "video" else None
        elif name == "data":
            return m.mint(value) if tag == "object" else None
        elif name == "style" and "url(" in value.lower():
            return m.css(value.encode()).decode()
        return None

    def style(self, body: TextBody) -> None:
        if body.complete:
            if self.needles is not None and not names_any(body.output, self.needles):
                return  # page rule: only absolute URLs on a rewrite domain are minted
            new = self.minter.css(body.output)
            if new != body.output:
                body.replace(new)

    def script(self, body: TextBody) -> None:
        """Whole third-party URL literals in an inline script (``inline.sign_script``)."""
        if body.complete and body.slot is None:
            new = sign_script(self.minter, self.text_needles, body.output)
            if new != body.output:
                body.replace(new)

    def noscript(self, body: TextBody) -> None:
        """``<noscript>`` is markup to a browser without scripts: its tags get the same rule,
        by a nested rewriter over the body as the rules before this one left it."""
        if not body.complete:
            return
        if self.needles is not None and not names_any(body.output, self.needles):
            return  # page rule: nothing in it names a rewrite domain
        raw = body.output
        inner = HtmlRewriter(max_tag_bytes=len(raw) + 1, max_text_bytes=len(raw) + 1)
        install_rules(inner, self.minter, clicks=self.clicks, max_css_token_bytes=self.max_css_token_bytes)
        new = inner.feed(raw) + inner.finish()
        if new != raw:
            body.replace(new)

    def text_stream(self, inner: Callable[[bytes, bytes, bytes], Transformer | None] | None,
                    tag: bytes, start_tag: bytes, head: bytes) -> Transformer | None:
        """A long ``<script>`` / ``<style>`` body (over the rewriter's ``stream_text_after``)
        streamed instead of held whole: through the text streamer installed before this rule
        (``inner``; the origin rules of a page), when there is one and it streams the body, then
        an ``inline.ScriptUrlStream`` / ``CssUrlStream``. ``<noscript>`` stays whole."""
        first = inner(tag, start_tag, head) if inner is not None else None
        if inner is not None and first is None:
            return None  # the rule before wants the body whole (inline Flight): so do these handlers
        own: Transformer
        if tag == b"script":
            own = ScriptUrlStream(self.minter, self.text_needles, self.max_css_token_bytes)
        elif tag == b"style":
            own = CssUrlStream(self.minter, self.max_css_token_bytes)
        else:
            return first
        return own if first is None else _Chain(first, own)


_DECLINE = b"\0decline"  # ``_new_raw``: take the full path (compared by identity)


def _vstart(a: Attr) -> int:
    return a.vstart


class _RawAttrs:
    """``Element.get_attribute`` on a tag's raw attribute text, parsed only when asked."""

    def __init__(self, buf: bytes, astart: int, aend: int) -> None:
        self.buf = buf
        self.astart = astart
        self.aend = aend
        self.attrs: list[Attr] | None = None

    def get(self, name: str) -> str | None:
        if self.attrs is None:
            self.attrs = iter_attrs(self.buf, self.astart, self.aend)
        key = name.lower().encode()
        for a in self.attrs:
            if a.name == key:
                return decode_value(self.buf[a.vstart : a.vend]) if a.vstart >= 0 else ""
        return None


class _Chain:
    def __init__(self, first: Transformer, second: Transformer) -> None:
        self.first = first
        self.second = second

    def feed(self, data: bytes) -> bytes:
        return self.second.feed(self.first.feed(data))

    def finish(self) -> bytes:
        return self.second.feed(self.first.finish()) + self.second.finish()


def install_rules(html: HtmlRewriter, minter: UrlMinter, *, clicks: bool, max_css_token_bytes: int = 8192) -> None:
    """The signing rule on ``html``, after the rules already installed: its handlers see
    elements, ``<style>``, inline ``<script>`` and ``<noscript>`` bodies as those left them. A
    long ``<style>`` or ``<script>`` body is streamed (``_ElementRules.text_stream``; the
    handlers are not called for streamed bodies). ``clicks`` False: the publisher-page rule
    (``minter.domains`` = rewrite_domains, tags keyed on their needles so others stay on the
    rewriter's fast path); True: a document relayed by ``/proxy`` (``minter.domains`` =
    allowed_domains, ``minter.base`` = its URL)."""
    rules = _ElementRules(minter, clicks=clicks, max_css_token_bytes=max_css_token_bytes)
    element = rules.element
    if clicks:
        html.on_element("*", element)
    else:
        for i, needle in enumerate(rules.text_needles):
            # the raw-byte hook: a tag naming only rewrite domains is decided on its bytes
            html.on_element("*", element, needle=needle, raw=rules.element_raw if i == 0 else None)
    html.on_text("style", rules.style)
    html.on_text("script", rules.script)
    html.on_text("noscript", rules.noscript)
    inner = html.text_streamer
    html.set_text_streamer(functools.partial(rules.text_stream, inner), after=html.stream_text_after)


def install_page_rules(html: HtmlRewriter, minter: UrlMinter, max_css_token_bytes: int = 8192) -> None:
    """The ``rewrite_domains`` rule on a publisher page's rewriter (``install_rules``)."""
    install_rules(html, minter, clicks=False, max_css_token_bytes=max_css_token_bytes)


def page_stage(minter: UrlMinter, *, max_tag_bytes: int, max_text_bytes: int,
               max_css_token_bytes: int = 8192) -> HtmlRewriter:
    """The ``rewrite_domains`` rule as a stage of its own (a second tokenizer pass)."""
    html = HtmlRewriter(max_tag_bytes=max_tag_bytes, max_text_bytes=max_text_bytes)
    install_page_rules(html, minter, max_css_token_bytes)
    return html


def chain(first: Transformer, second: Transformer) -> Transformer:
    return _Chain(first, second)


def proxied_html(minter: UrlMinter, *, max_tag_bytes: int, max_text_bytes: int,
                 max_css_token_bytes: int = 8192) -> HtmlRewriter:
    """A third-party HTML document relayed by ``/proxy`` (``minter.base`` = its URL): the page
    rule's mechanism (``install_rules``) with clicks, relative URLs and ``<base>``."""
    html = HtmlRewriter(max_tag_bytes=max_tag_bytes, max_text_bytes=max_text_bytes)
    install_rules(html, minter, clicks=True, max_css_token_bytes=max_css_token_bytes)
    return html


class CssUrlStream:
    """``UrlMinter.css`` over a stream: complete tokens are rewritten as they arrive."""

    _HOLD = 8  # a possible start of "url(" / "@import" at the end of a chunk

    def __init__(self, minter: UrlMinter, max_token_bytes: int) -> None:
        self.minter = minter
        self.max_token = max_token_bytes
        self.buf = b""

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        n = len(buf)
        cut = max(0, n - self._HOLD)
        low_tail = buf[max(0, n - self.max_token) :].lower()
        base = max(0, n - self.max_token)
        for opener in (b"url(", b"@import"):
            i = low_tail.rfind(opener)
            if i >= 0 and _CSS_TOKEN.match(buf, base + i) is None and not self._closed(buf, base + i):
                cut = min(cut, base + i)
        for m in _CSS_TOKEN.finditer(buf, 0, n):
            if m.start() < cut < m.end():
                cut = m.start()
                break
        self.buf = buf[cut:]
        return self.minter.css(buf[:cut])

    @staticmethod
    def _closed(buf: bytes, i: int) -> bool:
        """An opener whose token cannot complete any more (a ``)``, quote-less newline... follows)."""
        rest = buf[i : i + 4096]
        return b")" in rest or b";" in rest

    def finish(self) -> bytes:
        rest, self.buf = self.buf, b""
        return self.minter.css(rest)
