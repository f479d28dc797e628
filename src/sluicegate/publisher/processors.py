"""Which body processor a processable response gets (the gate's ``Kind`` -> a Transformer)."""

from __future__ import annotations

import logging

from sluicegate.config.model import Settings
from sluicegate.gate import Kind
from sluicegate.pipeline import Identity, Transformer
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.text import StreamingHostReplacer

log = logging.getLogger("sluicegate.publisher")


def build_processor(kind: Kind, rewriter: HostRewriter, settings: Settings, *, navigation_request: bool) -> Transformer:
    """``navigation_request`` is False for RSC/Next.js router fetches: they never get HTML snippets."""
    if kind is Kind.HTML:
        return _html(rewriter, settings, inject=navigation_request)
    if kind is Kind.FLIGHT:
        if settings.flight.enabled:
            return _flight(rewriter, settings)
        return StreamingHostReplacer(rewriter)
    if kind is Kind.TEXT:
        return StreamingHostReplacer(rewriter)
    return Identity()


def _html(rewriter: HostRewriter, settings: Settings, *, inject: bool) -> Transformer:
    try:
        from sluicegate.pipeline.html import build_html_processor
    except ImportError:  # bootstrap only: the HTML engine lands in its own change
        return StreamingHostReplacer(rewriter)

    script_filter = None
    if settings.flight.enabled:
        try:
            from sluicegate.pipeline.flight import build_next_script_filter
        except ImportError:
            build_next_script_filter = None
        if build_next_script_filter is not None:
            script_filter = build_next_script_filter(rewriter, settings.flight)
    return build_html_processor(rewriter, settings.html, inject=inject, script_filter=script_filter)


def _flight(rewriter: HostRewriter, settings: Settings) -> Transformer:
    from sluicegate.pipeline.flight import build_flight_processor

    return build_flight_processor(rewriter, settings.flight)
