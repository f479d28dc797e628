"""Next.js glue for the HTML rewriter: the per-document ``ScriptFilter``.

Owns only the mapping between the HTML rewriter's script hook (``ScriptText``: ``raw``,
``attrs``, ``replace``, ``on_end``) and the sans-IO ``InlineFlightRewriter``: every ``__next_f``
data script is answered at once and replaced in place (the inline rewriter never holds a script,
it carries undecided Flight bytes into the next push), so the HTML rewriter never holds output for
Flight. At the end of the document, bytes still carried (a document ending inside a Flight row)
are appended as one extra push script, with the nonce of the page's Flight scripts. Also rewrites
the Pages Router ``<script id="__NEXT_DATA__">`` JSON (the whole body is handed over, so a URL is
never split).

With ``[flight] enabled = false`` it still shields ``__next_f`` scripts (they pass unchanged) so
the generic script rule cannot break their ``T`` lengths. One instance per document. Knows nothing
about tokenizing, Flight framing or host forms.
"""

from __future__ import annotations

import html

from sluicegate.config.flight import FlightSettings
from sluicegate.pipeline.flight.inline import InlineFlightRewriter, InlineResult
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.pipeline.html import DocumentEnd, ScriptText
from sluicegate.pipeline.html.rules import WHOLE_HEAD


def _flight_mark(body: bytes) -> bool:
    """An inline Flight script: ``__next_f`` within its first ``WHOLE_HEAD`` bytes (Next.js writes
    ``self.__next_f.push(`` first). The one test, so that the rewriter's early streaming decision
    (``wants_whole``) and the whole-body rule agree on every script."""
    return body.find(b"__next_f", 0, WHOLE_HEAD) >= 0


class NextjsScriptFilter:
    """``ScriptFilter`` for ``build_html_processor(..., script_filter=NextjsScriptFilter(...))``."""

    def __init__(self, rewriter: HostRewriter, settings: FlightSettings, *, rewrite_text: bool = True) -> None:
        self.rewriter = rewriter
        self.settings = settings
        self.rewrite_text = rewrite_text
        self._inline: InlineFlightRewriter | None = None  # made at the first __next_f script
        self._hooked = False
        self._nonce: str | None = None
        self.max_html_held = 0

    @property
    def inline(self) -> InlineFlightRewriter:
        """This document's inline Flight state (most documents are not Next.js pages: made lazily)."""
        if self._inline is None:
            s = self.settings
            self._inline = InlineFlightRewriter(
                self.rewriter, max_row_bytes=s.max_row_bytes, max_hold_bytes=s.max_inline_hold_bytes,
                rewrite_text=self.rewrite_text,
            )
        return self._inline

    def wants_whole(self, start_tag: bytes, head: bytes) -> bool:
        """Whether a script (``head`` = its first bytes) must be handed over whole: inline
        Flight pushes and ``__NEXT_DATA__``. Any other script may stream through the URL rule.
        Decided on the first ``WHOLE_HEAD`` bytes, where ``__call__`` looks for the mark too."""
        return _flight_mark(head) or b"__next_data__" in start_tag.lower()

    def __call__(self, body: ScriptText) -> bool:
        if not self.settings.enabled:
            # Flight off: leave inline Flight exactly as the origin sent it (a plain host rewrite
            # by the generic script rule would break T lengths); other scripts get that rule.
            return _flight_mark(body.raw)
        self.max_html_held = max(self.max_html_held, body.held_bytes)
        if not body.complete:  # over [html] max_text_bytes: only its first bytes are seen
            if not _flight_mark(body.raw):
                return False
            self._place_before(body, self.inline.unreadable(body.raw, "script over [html] max_text_bytes"))
            return True
        if body.attrs.get("id") == "__NEXT_DATA__":
            if not self.rewrite_text:  # its page props feed text: left alone with HTML text
                return True
            new = self.rewriter.rewrite(body.raw)
            if new is not body.raw:
                body.replace(new)
            return True
        if not _flight_mark(body.raw):
            return False
        result = self.inline.script(body.raw)
        if not result.flight:
            return False
        if result.before:
            self._place_before(body, result)
            return True
        if not self._hooked:
            body.on_end(self._on_end)
            self._hooked = True
        self._nonce = body.attrs.get("nonce", self._nonce)
        for slot, raw in result.ready:
            if slot == result.slot and raw is not body.raw:
                body.replace(raw)
        return True

    @staticmethod
    def _place_before(body: ScriptText, result: InlineResult) -> None:
        """The stream broke at this script: the bytes carried out of earlier scripts get a script
        element of their own (same start tag, so the same nonce) right before this one's body."""
        if result.before:
            body.replace(result.before + b"</script>" + body.start_tag + body.raw)

    def _on_end(self, doc: DocumentEnd) -> None:
        self.max_html_held = max(self.max_html_held, doc.held_bytes)
        trailing = self.inline.finish()
        if trailing:
            nonce = b"" if self._nonce is None else b' nonce="%s"' % html.escape(self._nonce).encode()
            doc.append(b"<script" + nonce + b">" + trailing + b"</script>")


def build_nextjs_script_filter(rewriter: HostRewriter, settings: FlightSettings, *,
                               rewrite_text: bool = True) -> NextjsScriptFilter:
    """A fresh per-document filter (holds that document's Flight stream state). ``rewrite_text``
    is ``[html] rewrite_text``: off, Flight strings that can feed text are left alone too."""
    return NextjsScriptFilter(rewriter, settings, rewrite_text=rewrite_text)


# The name the publisher's processor selection imports.
build_next_script_filter = build_nextjs_script_filter
