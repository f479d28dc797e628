"""``text/x-component`` bodies: the Flight lexer as a sans-IO ``Transformer``.

Owns only the glue between ``FlightLexer`` ops and ``feed``/``finish`` bytes: every op's output is
emitted as soon as the lexer produces it, so completed rows (and the decided part of an open
newline row, and binary row bytes) leave at once; only an open ``T`` row is held, bounded by
``[flight] max_row_bytes``. Knows nothing about HTTP or HTML.
"""

from __future__ import annotations

from sluicegate.config.flight import FlightSettings
from sluicegate.pipeline.flight.lexer import FlightLexer
from sluicegate.pipeline.hosts import HostRewriter


class FlightStreamRewriter:
    """Rewrites origin references in a Flight stream; output is identical for every chunking."""

    def __init__(self, rewriter: HostRewriter, settings: FlightSettings, *, rewrite_text: bool = True) -> None:
        self.lexer = FlightLexer(rewriter, settings.max_row_bytes, text=rewrite_text)
        self.max_held = 0

    def _drain(self) -> bytes:
        ops = self.lexer.take_ops()
        if not ops:
            return b""
        if len(ops) == 1:
            return ops[0][1]
        return b"".join([op[1] for op in ops])

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self.lexer.feed(data)
        held = self.lexer.held_bytes
        if held > self.max_held:
            self.max_held = held
        return self._drain()

    def finish(self) -> bytes:
        self.lexer.finish()
        return self._drain()
