"""The factories the proxy calls: sluicegate's rules on a rewriter, behind a charset gate.

Owns: ``build_html_rewriter`` (an ``HtmlRewriter`` with ``SluicegateRules`` and any extra rules,
one tokenizer pass), ``build_html_processor`` (the ``Transformer`` for ``text/html`` bodies) and
the charset gate: a body declared in, or starting with the BOM of, a charset that is not
ASCII-compatible (UTF-16/32) passes through unmodified.
Must not know: tokenization, rules' details, I/O, HTTP headers.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from sluicegate.config.html import HtmlSettings
from sluicegate.pipeline import Transformer
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html.dispatch import HtmlRewriter
from sluicegate.pipeline.html.rules import ScriptFilter, SluicegateRules


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


def charset_gate(inner: Transformer, charset: str | None) -> Transformer:
    """``inner`` (an HTML rewriter built elsewhere: the first-party ``/proxy`` documents and page
    stage) behind the charset gate of ``build_html_processor``: a body whose declared ``charset``
    or BOM is not ASCII-compatible (UTF-16/32) passes through unmodified."""
    if charset is not None and not ascii_compatible(charset):
        return _Passthrough()
    return _BomGate(inner)
