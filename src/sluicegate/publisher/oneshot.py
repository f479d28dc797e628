"""The Stream route's small-body fast path: a whole small body in hand, transformed in one pass.

Most rewritten pages a proxy serves are small, and their origin's bytes are all there at the first read
(a Content-Length or chunked body that arrived with its head). For those, the streaming machinery (the
response's ``BodyWork``, its CPU slice, the piece generator, a chunked body) costs more than the work.
``transform_whole`` decodes, rewrites and re-encodes such a body in one pass, so that the relay can answer
with a ``Content-Length`` and head + body in one write.

When it applies (decided by the relay, ``Relay.respond``): the origin response is ``ready()`` (``read()``
returns at once), that read ends the body (``at_eof()``), and it holds at most
``[limits] one_pass_body_bytes``. Here, in addition, the body must *decode* to at most one piece of
``[event_loop] piece_bytes`` (and ``one_pass_body_bytes``): a one-pass body is never more work than one
step of the streaming path, which checks its CPU slice only between pieces (docs/fairness.md), so the
loop is held no longer than before. A body that decodes to more (a well-compressed page) goes on by the
streaming path from where decoding stopped (``Resumed``): nothing is decoded twice.

Equivalence: the rewritten bytes are those of the streaming path for the same body (the processor is fed
the same decoded bytes; rewriters' output is chunk-split invariant), and the encoded bytes are those the
streaming path sends for a body that arrives in one read (compress, then finish: no sync flush), except for
a gzip body the processor left unchanged, which leaves as the origin encoded it (``reuse_wire``: no
re-encode; the same decoded bytes).
Bounds: the decoder's ``max_decoded_body_bytes`` and the ``max_decoded_bytes_without_output`` check apply
as on the streaming path.

Owns: the one-pass transform and the resumption of a body that turns out larger. Must not know: sockets,
headers, the ASGI messages (``relay`` sends).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from sluicegate.pipeline import PipelineError, Transformer, WorkBoundExceeded
from sluicegate.pipeline.codecs import Decoder, Encoder


class Resumed:
    """A decoder whose first pieces were already taken by ``transform_whole``: ``feed_pieces`` hands them on,
    then the rest of the same decoding (its argument is the chunk those pieces came from, already fed)."""

    __slots__ = ("_inner", "_pieces")

    def __init__(self, inner: Decoder, pieces: Iterator[bytes]) -> None:
        self._inner = inner
        self._pieces: Iterator[bytes] | None = pieces

    @property
    def decoded(self) -> int:
        """Decoded bytes so far (counted, and bounded, by the inner decoder)."""
        return self._inner.decoded

    @decoded.setter
    def decoded(self, value: int) -> None:
        self._inner.decoded = value

    def feed_pieces(self, data: bytes) -> Iterator[bytes]:
        pieces = self._pieces
        if pieces is None:  # the body ended in that first chunk: no later read reaches here, but stay exact
            return self._inner.feed_pieces(data)
        self._pieces = None
        return pieces

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.feed_pieces(data))

    def finish(self) -> bytes:
        return self._inner.finish()


def raising(exc: PipelineError) -> Iterator[bytes]:
    """Pieces that fail with ``exc`` (a failure of the one-pass transform, met again by the streaming path
    once the response head is out, so that it ends the response as every failure after the head does)."""
    raise exc
    yield b""  # type: ignore[unreachable]  # pragma: no cover - makes this a generator


def transform_whole(
    data: bytes, decoder: Decoder, processor: Transformer, encoder: Encoder | None, *, limit: int, quiet_cap: int,
    reuse_wire: bool = False, make_encoder: Callable[[int], Encoder] | None = None,
) -> bytes | Resumed:
    """The whole body ``data`` decoded, processed and encoded in one pass (the coding's trailer included), or,
    when it decodes to more than ``limit`` bytes, a ``Resumed`` decoder for the streaming path (nothing of
    the processor or encoder used yet). Raises what the stages raise (``PipelineError``,
    ``WorkBoundExceeded``) exactly as the streaming path would for the same body.

    ``reuse_wire`` (the body leaves in the gzip coding it came in): when the processor changed nothing, the
    answer is ``data`` itself, the origin's own encoding of the same bytes, and nothing is re-encoded (a page
    with only relative links; issue 19). Not when the gzip decoder skipped trailing garbage (those bytes would
    reach the client).

    ``make_encoder`` (instead of ``encoder``): the encoder is made once the output's size is known, from that size
    (``codecs.encoder_for(..., size_hint=)``: gzip's window sized to the body, the same bytes out), and only when
    something is encoded; the streaming path makes its own when the body resumes there."""
    pieces = decoder.feed_pieces(data)
    first = next(pieces, b"")
    if len(first) > limit:
        return Resumed(decoder, itertools.chain((first,), pieces))
    second = next(pieces, None)
    if second is not None:
        return Resumed(decoder, itertools.chain((first, second), pieces))
    out = processor.feed(first) if first else b""
    if not out and len(first) > quiet_cap:
        raise WorkBoundExceeded(
            "max_decoded_bytes_without_output",
            f"{len(first)} decoded bytes consumed without output (max_decoded_bytes_without_output={quiet_cap})",
        )
    # as BodyWork.feed and BodyWork.tail do it (the same encoder calls: the same encoded bytes)
    rest = decoder.finish()
    tail = processor.feed(rest) + processor.finish() if rest else processor.finish()
    if (reuse_wire and len(out) + len(tail) == len(first) and first.startswith(out) and first.endswith(tail)
            and getattr(decoder, "trailing_garbage_bytes", 0) == 0):
        return data
    if encoder is None:
        assert make_encoder is not None, "transform_whole needs an encoder or make_encoder"
        encoder = make_encoder(len(out) + len(tail))
    return b"".join((encoder.compress(out), encoder.compress(tail), encoder.finish()))
