"""Next.js glue for the HTML rewriter: the per-document ``ScriptFilter``.

Owns only the mapping between the HTML rewriter's script hook (``ScriptText``: ``raw``,
``attrs``, ``replace``, ``defer``, ``on_end``, ``held_bytes``) and the sans-IO
``InlineFlightRewriter``: a script whose answer is ready is replaced in place; a held one becomes a
``Deferred`` slot that is resolved when a later script (or the end of the document) decides it.
While slots are open the HTML rewriter holds everything after them; when that exceeds
``[flight] max_inline_hold_bytes`` (checked at each script, the only moments this hook runs) the
open ``T`` row is given up (passed through unrewritten) so the held bytes are released.
Also rewrites the Pages Router ``<script id="__NEXT_DATA__">``
JSON (the whole body is handed over, so a URL is never split).

One instance per document. Knows nothing about tokenizing, Flight framing or host forms.
"""

from __future__ import annotations

from sluicegate.config.flight import FlightSettings
from sluicegate.pipeline.flight.inline import InlineFlightRewriter
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html import Deferred, DocumentEnd, ScriptText


class NextjsScriptFilter:
    """``ScriptFilter`` for ``build_html_processor(..., script_filter=NextjsScriptFilter(...))``."""

    def __init__(self, rewriter: HostRewriter, settings: FlightSettings) -> None:
        self.rewriter = rewriter
        self.settings = settings
        self.inline = InlineFlightRewriter(
            rewriter, max_row_bytes=settings.max_row_bytes, max_hold_bytes=settings.max_inline_hold_bytes
        )
        self._slots: dict[int, Deferred] = {}
        self._hooked = False
        self.max_html_held = 0

    def __call__(self, body: ScriptText) -> bool:
        if not self.settings.enabled:
            return False
        if body.attrs.get("id") == "__NEXT_DATA__":
            new = self.rewriter.rewrite(body.raw)
            if new is not body.raw:
                body.replace(new)
            return True
        self.max_html_held = max(self.max_html_held, body.held_bytes)
        result = self.inline.script(body.raw)
        if not result.flight:
            return False
        if not self._hooked:
            body.on_end(self._on_end)
            self._hooked = True
        own = result.slot
        earlier: list[tuple[int, bytes]] = []
        for slot, raw in result.ready:
            if slot == own:
                if raw is not body.raw:
                    body.replace(raw)
            else:
                earlier.append((slot, raw))
        if own is not None and own not in {s for s, _ in result.ready}:
            self._slots[own] = body.defer()
        self._resolve(earlier)
        held = body.held_bytes
        self.max_html_held = max(self.max_html_held, held)
        if held > self.settings.max_inline_hold_bytes and self._slots:
            self._resolve(self.inline.relieve(f"HTML held behind __next_f scripts exceeds {held} bytes"))
        return True

    def _resolve(self, ready: list[tuple[int, bytes]]) -> None:
        for slot, raw in ready:
            self._slots.pop(slot).resolve(raw)

    def _on_end(self, doc: DocumentEnd) -> None:
        self.max_html_held = max(self.max_html_held, doc.held_bytes)
        self._resolve(self.inline.finish())


def build_nextjs_script_filter(rewriter: HostRewriter, settings: FlightSettings) -> NextjsScriptFilter:
    """A fresh per-document filter (holds that document's Flight stream state)."""
    return NextjsScriptFilter(rewriter, settings)


# The name the publisher's processor selection imports.
build_next_script_filter = build_nextjs_script_filter
