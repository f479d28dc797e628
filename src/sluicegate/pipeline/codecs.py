"""Content codings: streaming decoders and encoders for gzip, deflate, br and zstd.

Decoders count decoded bytes themselves and stop at the cap, so a small bomb can never expand
past ``max_decoded_body_bytes``; they also yield output in bounded pieces (``feed_pieces``, a lazy
generator) so the relay can push each piece through the rest of the pipeline before decoding
more, and pause between pieces: memory stays flat however far a body inflates, and the CPU spent
per piece is bounded too (at most ``piece`` decoded bytes per step: zlib ``max_length`` with
``unconsumed_tail``, brotli ``output_buffer_limit``, zstd by feeding input in steps sized from the
expansion seen so far, since python-zstandard's ``decompressobj`` has no output limit). ``finish``
proves the stream was complete (gzip trailer, zlib end marker, brotli last block, zstd frame end)
and raises otherwise.

Encoders flush after every ``feed`` so each emitted segment is decodable by a browser as it
arrives (gzip/zlib sync flush, brotli FLUSH, zstd block flush); ``finish`` writes the trailer.
``compress`` + ``flush`` split the same work so a caller can compress several pieces and flush
once (one sync-flush marker per sent segment instead of one per piece).

``narrow_accept_encoding``: the client's ``Accept-Encoding`` narrowed to the codings decoded here, for a
request to an origin or third party (so what comes back can be decoded when it must be rewritten).
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from typing import Protocol

import brotli
import zstandard

from sluicegate.gate import DECODABLE
from sluicegate.pipeline import PipelineError, WorkBoundExceeded

PIECE = 64 * 1024  # decoded bytes produced per step (default; the relay may ask for smaller pieces)
# zstd input per step: starts small and adapts so one step decodes about one piece (an RLE block
# turns 4 input bytes into 128 KiB, so 1 KiB of a crafted frame decodes to ~32 MiB in one call).
# A step never decodes less than a whole block, so its output is re-cut into pieces.
_ZSTD_FIRST_STEP = 4
_ZSTD_MAX_STEP = 16 * 1024
_ZLIB_STEP = 8 * 1024  # compressed bytes per zlib step (see _ZlibFamily._drain)
_GZIP_MAGIC = b"\x1f\x8b"


class CorruptEncoding(PipelineError):
    kind = "decode"


class TruncatedEncoding(PipelineError):
    kind = "truncated"


class Decoder(Protocol):
    decoded: int

    def feed_pieces(self, data: bytes) -> Iterator[bytes]: ...

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Encoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def finish(self) -> bytes: ...


class _BudgetedDecoder:
    name = ""

    def __init__(self, max_decoded: int, piece: int = PIECE) -> None:
        self.max_decoded = max_decoded
        self.piece = piece
        self.decoded = 0

    def _count(self, piece: bytes) -> bytes:
        self.decoded += len(piece)
        if self.decoded > self.max_decoded:
            raise WorkBoundExceeded(
                "max_decoded_body_bytes", f"{self.name} body decodes past max_decoded_body_bytes={self.max_decoded}"
            )
        return piece

    def _cut(self, out: bytes) -> Iterator[bytes]:
        """``out`` counted and handed on in pieces of at most ``piece`` bytes (for codecs that decode more
        per step than asked: zstd whole blocks, brotli at least ~32 KiB)."""
        if len(out) <= self.piece:
            yield self._count(out)
            return
        view = memoryview(out)
        for start in range(0, len(out), self.piece):
            yield self._count(bytes(view[start : start + self.piece]))

    def feed_pieces(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError  # pragma: no cover - abstract

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.feed_pieces(data))


class _ZlibFamily(_BudgetedDecoder):
    """Shared loop for gzip and deflate: bounded ``decompress`` with ``unconsumed_tail``."""

    def __init__(self, max_decoded: int, piece: int = PIECE) -> None:
        super().__init__(max_decoded, piece)
        self._obj: zlib._Decompress | None = None
        self._seen_input = False

    def _drain(self, data: bytes) -> Generator[bytes, None, bytes]:
        """Yield decoded pieces of ``data``; return the bytes after the end of the stream (if it ended).

        Input goes in ``_ZLIB_STEP`` slices: ``unconsumed_tail`` is a copy of the input not yet consumed, and
        a bomb (1 KiB -> 1 MiB) would otherwise copy a whole read per decoded piece."""
        assert self._obj is not None
        obj = self._obj
        view = memoryview(data)
        pos = 0
        end = len(data)
        tail: bytes | memoryview = b""
        limit = self.piece
        while True:
            if tail:
                inp = tail
            elif pos < end:
                inp = view[pos : pos + _ZLIB_STEP]
                pos += len(inp)
            else:
                return b""
            try:
                piece = obj.decompress(inp, limit)
            except zlib.error as exc:
                raise CorruptEncoding(f"corrupt {self.name} stream: {exc}") from None
            if piece:
                yield self._count(piece)
            if obj.eof:
                return obj.unused_data + bytes(view[pos:])
            tail = obj.unconsumed_tail


class GzipDecoder(_ZlibFamily):
    """RFC 1952, multi-member. After a complete member, bytes that do not start a new member are
    trailing garbage: ignored (servers append junk), never decoded as text."""

    name = "gzip"

    def __init__(self, max_decoded: int, piece: int = PIECE) -> None:
        super().__init__(max_decoded, piece)
        self._pending = b""  # bytes after a member end, too short to tell magic from garbage
        self._garbage = False
        self.trailing_garbage_bytes = 0

    def feed_pieces(self, data: bytes) -> Iterator[bytes]:
        if self._garbage:
            self.trailing_garbage_bytes += len(data)
            return
        if self._pending:
            data = self._pending + data
            self._pending = b""
        while data:
            if self._obj is None:
                if len(data) < 2:
                    self._pending = data
                    return
                if not data.startswith(_GZIP_MAGIC):
                    if not self._seen_input:
                        raise CorruptEncoding("gzip stream does not start with the gzip magic bytes")
                    self._garbage = True
                    self.trailing_garbage_bytes += len(data)
                    return
                self._obj = zlib.decompressobj(31)
                self._seen_input = True
            rest = yield from self._drain(data)
            if self._obj.eof:
                data = rest
                self._obj = None
            else:
                data = b""

    def finish(self) -> bytes:
        if self._pending and not self._garbage:
            if self._seen_input:
                self.trailing_garbage_bytes += len(self._pending)
                return b""
            raise TruncatedEncoding("gzip stream ends inside its header")
        if self._obj is not None:
            tail = self._obj.flush()
            raise TruncatedEncoding(f"gzip stream is truncated ({len(tail)} bytes undelivered)")
        return b""


class DeflateDecoder(_ZlibFamily):
    """HTTP "deflate" is zlib-wrapped (RFC 1950); some servers send raw deflate, accepted too."""

    name = "deflate"

    def __init__(self, max_decoded: int, piece: int = PIECE) -> None:
        super().__init__(max_decoded, piece)
        self._head = b""
        self._done = False

    def feed_pieces(self, data: bytes) -> Iterator[bytes]:
        if self._done:
            return  # bytes after the end marker are ignored
        if self._obj is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            cmf, flg = data[0], data[1]
            zlib_wrapped = (cmf & 0x0F) == 8 and (cmf >> 4) <= 7 and ((cmf << 8) | flg) % 31 == 0
            self._obj = zlib.decompressobj(15 if zlib_wrapped else -15)
            self._seen_input = True
        yield from self._drain(data)
        if self._obj.eof:
            self._done = True

    def finish(self) -> bytes:
        if not self._seen_input and not self._head:
            return b""
        if not self._done:
            raise TruncatedEncoding("deflate stream is truncated (no end marker)")
        return b""


class BrotliDecoder(_BudgetedDecoder):
    name = "br"

    def __init__(self, max_decoded: int, piece: int = PIECE) -> None:
        super().__init__(max_decoded, piece)
        self._obj = brotli.Decompressor()
        self._seen_input = False

    def feed_pieces(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        if self._obj.is_finished():
            return  # trailing bytes after the last meta-block are ignored
        self._seen_input = True
        try:
            limit = self.piece
            piece = self._obj.process(data, output_buffer_limit=limit)
            # A full output buffer means more output is pending: drain it with empty input
            # (``can_accept_more_data`` is not a reliable signal across brotli versions).
            while piece:
                yield from self._cut(piece)
                if len(piece) < limit:
                    break
                piece = self._obj.process(b"", output_buffer_limit=limit)
        except brotli.error as exc:
            raise CorruptEncoding(f"corrupt br stream: {exc}") from None

    def finish(self) -> bytes:
        if self._seen_input and not self._obj.is_finished():
            raise TruncatedEncoding("br stream is truncated")
        return b""


class ZstdDecoder(_BudgetedDecoder):
    """One or more concatenated zstd frames."""

    name = "zstd"

    def __init__(self, max_decoded: int, piece: int = PIECE) -> None:
        super().__init__(max_decoded, piece)
        self._dctx = zstandard.ZstdDecompressor()
        self._obj: zstandard.ZstdDecompressionObj | None = None
        self._step = _ZSTD_FIRST_STEP

    def feed_pieces(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        pos = 0
        end = len(data)
        while pos < end:
            if self._obj is None:
                self._obj = self._dctx.decompressobj(write_size=self.piece)
            step = self._step
            chunk = view[pos : pos + step]
            pos += len(chunk)
            try:
                piece = self._obj.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise CorruptEncoding(f"corrupt zstd stream: {exc}") from None
            # Next step's input: aim at about one piece of output at the expansion just seen.
            if len(piece) > self.piece:
                self._step = max(1, step * self.piece // len(piece))
            elif len(piece) * 2 < self.piece:
                self._step = min(_ZSTD_MAX_STEP, step * 2)
            if piece:
                # zstd decodes whole blocks (up to 128 KiB, two per input byte at worst): handed on in pieces
                yield from self._cut(piece)
            if self._obj.eof:
                rest = self._obj.unused_data
                if rest:
                    data = rest + bytes(view[pos:])
                    view = memoryview(data)
                    pos = 0
                    end = len(data)
                self._obj = None

    def finish(self) -> bytes:
        if self._obj is not None:
            raise TruncatedEncoding("zstd stream is truncated")
        return b""


class GzipEncoder:
    def __init__(self, level: int, wbits: int = 31) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, wbits)

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        return self._obj.compress(data) + self._obj.flush(zlib.Z_SYNC_FLUSH)

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data) if data else b""

    def flush(self) -> bytes:
        return self._obj.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._obj.flush(zlib.Z_FINISH)


class BrotliEncoder:
    def __init__(self, quality: int) -> None:
        self._obj = brotli.Compressor(quality=quality, lgwin=22)

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        return bytes(self._obj.process(data)) + bytes(self._obj.flush())

    def compress(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data)) if data else b""

    def flush(self) -> bytes:
        return bytes(self._obj.flush())

    def finish(self) -> bytes:
        return bytes(self._obj.finish())


class ZstdEncoder:
    def __init__(self, level: int) -> None:
        self._obj = zstandard.ZstdCompressor(level=level).compressobj()

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        # (typed locals: zstandard is Any where it is not installed, e.g. the isolated wheel build's mypyc check)
        out: bytes = self._obj.compress(data) + self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        return out

    def compress(self, data: bytes) -> bytes:
        out: bytes = self._obj.compress(data) if data else b""
        return out

    def flush(self) -> bytes:
        out: bytes = self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        return out

    def finish(self) -> bytes:
        out: bytes = self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
        return out


class IdentityDecoder(_BudgetedDecoder):
    name = "identity"

    def feed_pieces(self, data: bytes) -> Iterator[bytes]:
        piece = self.piece
        if len(data) <= piece:
            if data:
                yield self._count(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), piece):
            yield self._count(bytes(view[start : start + piece]))

    def finish(self) -> bytes:
        return b""


class IdentityEncoder:
    def feed(self, data: bytes) -> bytes:
        return data

    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


def decoder_for(coding: str, max_decoded: int, piece: int = PIECE) -> Decoder:
    """``piece``: the most decoded bytes one step yields (the relay's unit of work between pauses)."""
    if coding == "gzip":
        return GzipDecoder(max_decoded, piece)
    if coding == "deflate":
        return DeflateDecoder(max_decoded, piece)
    if coding == "br":
        return BrotliDecoder(max_decoded, piece)
    if coding == "zstd":
        return ZstdDecoder(max_decoded, piece)
    if coding in ("", "identity"):
        return IdentityDecoder(max_decoded, piece)
    raise ValueError(f"no decoder for {coding!r}")


def window_bits(size: int) -> int:
    """The smallest deflate window (9..15 bits) whose reach (the window less zlib's 262-byte lookahead) covers
    ``size`` bytes. For an input that short no match can reach further back than this window, so the compressed
    bytes are those of the full 32 KiB window, while zlib sets up and touches far less state (a 2 KB page: 512
    B..4 KiB of window instead of 32 KiB, ~25 -> ~16 us per page for set-up + compress + finish)."""
    bits = 9
    while bits < 15 and (1 << bits) - 262 < size:
        bits += 1
    return bits


def encoder_for(
    coding: str, *, gzip_level: int = 4, brotli_quality: int = 4, zstd_level: int = 3, size_hint: int = 0
) -> Encoder:
    """``size_hint``: the whole input's size when it is known before the first byte is compressed (a one-pass
    body, ``publisher.oneshot``): gzip's window is sized to it (``window_bits``: the same bytes out)."""
    if coding == "gzip":
        return GzipEncoder(gzip_level, 16 + window_bits(size_hint) if size_hint > 0 else 31)
    if coding == "deflate":
        return GzipEncoder(gzip_level, wbits=15)
    if coding == "br":
        return BrotliEncoder(brotli_quality)
    if coding == "zstd":
        return ZstdEncoder(zstd_level)
    if coding in ("", "identity"):
        return IdentityEncoder()
    raise ValueError(f"no encoder for {coding!r}")


def narrow_accept_encoding(value: str | None) -> str | None:
    """The codings among ours that the client accepts with q > 0, in our preference order.

    Absent stays absent (the origin answers identity); nothing acceptable -> ``identity``.
    """
    if value is None:
        return None
    accepted: dict[str, float] = {}
    for item in value.split(","):
        parts = [p.strip() for p in item.split(";")]
        token = parts[0].lower()
        if not token:
            continue
        q = 1.0
        for param in parts[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        accepted.setdefault(token, q)
    star = accepted.get("*")
    chosen = [c for c in DECODABLE if accepted.get(c, star if star is not None else 0.0) > 0]
    return ", ".join(chosen) if chosen else "identity"
