"""Codec round trips, multi-member gzip, raw deflate, truncation, corruption and bombs."""

import gzip
import os
import zlib

import brotli
import pytest
import zstandard

from sluicegate.pipeline import LimitExceeded
from sluicegate.pipeline.codecs import PIECE, CorruptEncoding, TruncatedEncoding, decoder_for, encoder_for

DATA = b"".join(b"<p>line %d %s</p>\n" % (i, os.urandom(6).hex().encode()) for i in range(20000))
COMPRESS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}
DECOMPRESS = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
    "zstd": lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d),
}


def decode_all(coding: str, blob: bytes, step: int = 997, cap: int = 10**9) -> bytes:
    d = decoder_for(coding, cap)
    return b"".join(d.feed(blob[i : i + step]) for i in range(0, len(blob), step)) + d.finish()


@pytest.mark.parametrize("coding", list(COMPRESS))
@pytest.mark.parametrize("step", [1, 7, 4096, 10**7])
def test_decode_any_chunking(coding: str, step: int) -> None:
    blob = COMPRESS[coding](DATA[: 20000 if step == 1 else None])
    assert decode_all(coding, blob, step) == DATA[: 20000 if step == 1 else None]


@pytest.mark.parametrize("coding", list(COMPRESS))
def test_encode_flushes_every_segment(coding: str) -> None:
    """Each emitted segment must be decodable on arrival: a browser renders as bytes come."""
    enc = encoder_for(coding)
    d = decoder_for(coding, 10**9)
    seen = b""
    for i in range(0, 100_000, 10_000):
        segment = enc.feed(DATA[i : i + 10_000])
        seen += d.feed(segment)
        assert seen == DATA[: i + 10_000]  # nothing withheld by the encoder
    seen += d.feed(enc.finish()) + d.finish()
    assert seen == DATA[:100_000]


@pytest.mark.parametrize("coding", list(COMPRESS))
def test_round_trip_with_standard_decoders(coding: str) -> None:
    enc = encoder_for(coding)
    blob = b"".join(enc.feed(DATA[i : i + 8192]) for i in range(0, len(DATA), 8192)) + enc.finish()
    assert DECOMPRESS[coding](blob) == DATA


@pytest.mark.parametrize("coding", list(COMPRESS))
def test_truncated_stream_is_an_error(coding: str) -> None:
    blob = COMPRESS[coding](DATA)
    with pytest.raises(TruncatedEncoding):
        decode_all(coding, blob[: len(blob) // 2])


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_corrupt_stream_is_an_error(coding: str) -> None:
    blob = bytearray(COMPRESS[coding](DATA))
    for i in range(20, len(blob) - 20, 50):
        blob[i] ^= 0xFF
    with pytest.raises((CorruptEncoding, TruncatedEncoding)):
        decode_all(coding, bytes(blob))


def test_gzip_multi_member_and_trailing_garbage() -> None:
    blob = gzip.compress(b"first ") + gzip.compress(b"second") + b"\x00\x00junk after the last member"
    d = decoder_for("gzip", 10**9)
    out = b"".join(d.feed(blob[i : i + 3]) for i in range(0, len(blob), 3)) + d.finish()
    assert out == b"first second"


def test_gzip_not_gzip_at_all() -> None:
    with pytest.raises(CorruptEncoding):
        decode_all("gzip", b"<html>plain text claiming to be gzip</html>")


def test_raw_deflate_fallback() -> None:
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    blob = raw.compress(DATA) + raw.flush()
    assert decode_all("deflate", blob) == DATA


@pytest.mark.parametrize("coding", list(COMPRESS))
def test_bomb_stopped_at_cap_in_bounded_pieces(coding: str) -> None:
    bomb = COMPRESS[coding](b"\0" * (64 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    d = decoder_for(coding, 8 * 1024 * 1024)
    biggest = 0
    total = 0
    with pytest.raises(LimitExceeded):
        for i in range(0, len(bomb), 16384):
            for piece in d.feed_pieces(bomb[i : i + 16384]):
                biggest = max(biggest, len(piece))
                total += len(piece)
    assert total <= 8 * 1024 * 1024
    assert biggest <= 2 * PIECE  # memory per step stays flat (brotli treats its limit as approximate)


def test_empty_body_is_fine() -> None:
    for coding in COMPRESS:
        assert decoder_for(coding, 10).finish() == b""


@pytest.mark.parametrize("coding", list(COMPRESS))
def test_pieces_honour_the_requested_size_even_in_a_bomb(coding: str) -> None:
    """The relay's unit of work: no step hands on more than ``piece`` decoded bytes (zstd decodes whole
    128 KiB blocks and an RLE frame expands ~32000:1, so its input is fed in adaptive steps and re-cut)."""
    for data in (b"a" * (32 * 1024 * 1024), DATA):
        blob = COMPRESS[coding](data)
        d = decoder_for(coding, 10**10, 4096)
        sizes: list[int] = []
        for i in range(0, len(blob), 65536):
            sizes += [len(p) for p in d.feed_pieces(blob[i : i + 65536])]
        d.finish()
        assert sum(sizes) == len(data)
        assert max(sizes) <= 4096, max(sizes)


@pytest.mark.parametrize("coding", list(COMPRESS))
def test_compress_then_flush_is_decodable_at_every_flush(coding: str) -> None:
    enc = encoder_for(coding)
    sent = b""
    for part in (DATA[:5000], DATA[5000:9000], DATA[9000:20000]):
        sent += enc.compress(part[:1000]) + enc.compress(part[1000:]) + enc.flush()
        d = decoder_for(coding, 10**9)
        assert b"".join(d.feed_pieces(sent)).startswith(DATA[:1000])
    sent += enc.finish()
    assert DECOMPRESS[coding](sent) == DATA[:20000]
