"""React Server Components (Flight) rewriting: ``text/x-component`` bodies and inline Next.js data.

* ``build_flight_processor`` - the ``Transformer`` the gate uses for ``text/x-component``.
* ``FlightLexer`` (``lexer``) - the React 19 row lexer/rewriter core both paths share.
* ``InlineFlightRewriter`` (``inline``) - ``self.__next_f.push`` scripts, sans-IO, no HTML parser.
* ``nextjs`` - the thin adapter that plugs the inline rewriter (and ``__NEXT_DATA__``) into the
  HTML rewriter's script filter hook.

Host rewriting always goes through ``pipeline.hosts.HostRewriter``; nothing here knows sockets.
"""

from __future__ import annotations

from sluicegate.config.flight import FlightSettings
from sluicegate.pipeline import Transformer
from sluicegate.pipeline.flight.inline import InlineFlightRewriter, InlineResult
from sluicegate.pipeline.flight.lexer import FlightLexer
from sluicegate.pipeline.flight.nextjs import (
    NextjsScriptFilter,
    build_next_script_filter,
    build_nextjs_script_filter,
)
from sluicegate.pipeline.flight.stream import FlightStreamRewriter
from sluicegate.pipeline.hosts import HostRewriter

__all__ = [
    "FlightLexer",
    "FlightStreamRewriter",
    "InlineFlightRewriter",
    "InlineResult",
    "NextjsScriptFilter",
    "build_flight_processor",
    "build_next_script_filter",
    "build_nextjs_script_filter",
]


def build_flight_processor(rewriter: HostRewriter, settings: FlightSettings, *,
                           rewrite_text: bool = True) -> Transformer:
    """Streaming rewriter for a ``text/x-component`` (React Flight) body. ``rewrite_text`` is
    ``[html] rewrite_text``: off, only hint and module rows are rewritten (text stays consistent)."""
    if not settings.enabled:
        from sluicegate.pipeline import Identity

        return Identity()
    return FlightStreamRewriter(rewriter, settings, rewrite_text=rewrite_text)
