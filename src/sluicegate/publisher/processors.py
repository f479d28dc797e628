"""Which body processor a processable response gets (the gate's ``Kind`` -> a Transformer)."""

from __future__ import annotations

from collections.abc import Callable

from sluicegate.config.model import Settings
from sluicegate.gate import Kind, charset_of
from sluicegate.pipeline import Identity, Transformer
from sluicegate.pipeline.flight import build_flight_processor, build_next_script_filter
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html import HtmlRewriter, ScriptFilter, build_html_processor
from sluicegate.pipeline.text import StreamingHostReplacer


def build_processor(
    kind: Kind,
    rewriter: HostRewriter,
    settings: Settings,
    *,
    navigation_request: bool,
    content_type: str = "",
    extra_html_rules: Callable[[HtmlRewriter], None] | None = None,
) -> Transformer:
    """``navigation_request`` is False for RSC / Next.js router fetches: they never get HTML snippets.
    ``extra_html_rules`` installs more rules on an HTML page's own rewriter (one pass)."""
    if kind is Kind.HTML:
        # Always installed: with [flight] disabled it still keeps the generic script rule away from
        # __next_f pushes, whose T-row lengths a blind rewrite would break.
        script_filter: ScriptFilter = build_next_script_filter(
            rewriter, settings.flight, rewrite_text=settings.html.rewrite_text)
        return build_html_processor(
            rewriter,
            settings.html,
            inject=navigation_request,
            script_filter=script_filter,
            charset=charset_of(content_type),
            extra_rules=extra_html_rules,
        )
    if kind is Kind.FLIGHT:
        return build_flight_processor(rewriter, settings.flight, rewrite_text=settings.html.rewrite_text)
    if kind is Kind.TEXT:
        return StreamingHostReplacer(rewriter)
    return Identity()
