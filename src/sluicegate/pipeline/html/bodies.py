"""Raw-text bodies for text handlers: collected whole, streamed, or passed through when too long.

Owns the text of the one raw-text element being read (``<script>``, ``<style>``, ``<noscript>``...)
whose tag has text handlers: its pieces are collected up to ``max_text_bytes`` and handed to the
handlers whole at its end tag (``TextBody``: replaced bytes, or a ``Deferred`` output slot); past
``stream_decide_at`` bytes (sluicegate's rules: ``rules.WHOLE_HEAD``, 64) the registry's text
streamer decides on the first ``stream_decide_at`` bytes whether the body streams (bounded hold:
a chunk that ends inside an inline ``<style>`` or script lets its bytes out) or stays whole;
past ``max_text_bytes`` the handlers are told once (``complete`` False) and the rest
streams through unmodified. Memory: at most ``max_text_bytes`` held.
Must not know: tokenization, the scanner, rules, hosts.
"""

from __future__ import annotations

import logging
from typing import Final

from sluicegate.pipeline.html.output import OutputQueue
from sluicegate.pipeline.html.registry import HandlerRegistry
from sluicegate.pipeline.html.units import TextBody, TextFilter

log = logging.getLogger("sluicegate.html")


FINISHED: Final = HandlerRegistry(max_tag_bytes=0, max_text_bytes=0)
"""The registry of a finished rewriter's text bodies (``HtmlRewriter.finish`` breaks its reference cycle)."""


class TextBodies:
    """The collection state of the current raw-text body (``text`` is None between bodies)."""

    def __init__(self, reg: HandlerRegistry, out: OutputQueue) -> None:
        self.reg = reg
        self.out = out
        self.text: list[bytes] | None = None
        self.size = 0
        self.tag = b""
        self.start_tag = b""
        self.overflow = False
        self.stream: TextFilter | None = None
        self.asked = False

    def begin(self, name: bytes, start_tag: bytes, whole: bool = False) -> None:
        """A raw-text element ``name`` whose body the text handlers want starts. ``whole``: the
        caller has the whole body (the fast path's ``_raw_body``, under ``stream_text_after``):
        the handlers get it whole without asking the streamer, which by its contract would have
        made the same bytes of it (one rewrite of the body instead of a stream's two)."""
        self.text = []
        self.size = 0
        self.tag = name
        self.start_tag = start_tag
        self.overflow = False
        self.stream = None
        self.asked = whole

    def collect(self, piece: bytes) -> None:
        assert self.text is not None
        out = self.out
        stream = self.stream
        if stream is not None:
            out.emit(stream.feed(piece))
            return
        if self.overflow:
            out.emit(piece)
            return
        reg = self.reg
        self.text.append(piece)
        self.size += len(piece)
        streamer = reg.text_streamer
        decide_at = min(reg.stream_decide_at, reg.max_text_bytes)
        if streamer is not None and not self.asked and self.size > decide_at:
            # decided on the body's first ``decide_at`` bytes exactly: the same for every chunking
            self.asked = True
            head = b"".join(self.text)
            stream = streamer(self.tag, self.start_tag, head[:decide_at])
            if stream is not None:
                self.stream = stream
                self.text = []
                out.emit(stream.feed(head))
                return
        if self.size > reg.max_text_bytes:
            log.warning("html: <%s> text over %d bytes passed through unmodified",
                        self.tag.decode(errors="replace"), reg.max_text_bytes)
            self.overflow = True
            # Handlers still see the first bytes (``complete`` False) so that a stateful one
            # (inline Flight) knows a body went by unseen; they may replace those bytes only.
            body = TextBody(out, reg.on_end, self.tag, self.start_tag, b"".join(self.text), complete=False)
            self.text = []
            for h in reg.text_handlers(self.tag):
                h(body)
            for b in body._before:
                out.emit(b)
            out.emit(body.output if body.slot is None else body.raw)
            for b in body._after:
                out.emit(b)

    def flush(self) -> None:
        """Run the text handlers on the collected body and emit it (its end tag was reached)."""
        if self.text is None:
            return
        pieces, self.text = self.text, None
        out = self.out
        stream = self.stream
        if stream is not None:
            self.stream = None
            out.emit(stream.finish())
            return
        if self.overflow:
            return
        reg = self.reg
        body = TextBody(out, reg.on_end, self.tag, self.start_tag, b"".join(pieces))
        for h in reg.text_handlers(self.tag):
            h(body)
            if body.slot is not None:
                break
        for b in body._before:
            out.emit(b)
        if body.slot is not None:
            out.emit_slot(body.slot)
        else:
            out.emit(body.output)
        for b in body._after:
            out.emit(b)
