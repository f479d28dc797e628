"""The Stream route's small-body fast path (``publisher.oneshot``) against the streaming path (``BodyWork``).

What it promises: the same rewritten bytes as the streaming path for every page, coding and chunking of the
origin's body (the encoded bytes too when the body arrives in one read); a body that decodes past the bound
goes on by the streaming path without being decoded twice; the stages' bounds still hold. Over real sockets:
a small rewritten page is answered with a Content-Length (head and body framed as one), a larger or late one
is streamed, and both carry the same body and headers (Vary, weak ETag); a corrupt small body still ends the
response as an abort after the head."""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import zlib
from pathlib import Path

import brotli
import pytest
import zstandard

from sluicegate.config.model import Settings
from sluicegate.dev.origin.content import page
from sluicegate.edge.asgi import Message
from sluicegate.gate import Kind
from sluicegate.pipeline import Transformer, WorkBoundExceeded
from sluicegate.pipeline.codecs import CorruptEncoding, Encoder, decoder_for, encoder_for, window_bits
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.publisher.oneshot import Resumed, transform_whole
from sluicegate.publisher.processors import build_processor
from sluicegate.publisher.relay import BodyWork
from sluicegate.publisher.slicing import Slice, lane_for
from tests.unit.publisher.harness import PUBLIC, ScriptedOrigin, publisher, request, settings

ORIGIN = "http://origin.test"
SITES = Path(__file__).resolve().parents[2] / "fixtures" / "sites"
PIECE = 16 * 1024
CODINGS = ("", "gzip", "deflate", "br", "zstd")


def _settings() -> Settings:
    return Settings.model_validate({"publisher": {"origin_url": ORIGIN, "public_hosts": [PUBLIC]}})


def _processor(config: Settings) -> Transformer:
    matcher = OriginMatcher(config.publisher.origin, config.publisher.all_origin_aliases)
    return build_processor(Kind.HTML, matcher.for_request("https", PUBLIC), config, navigation_request=True,
                           content_type="text/html; charset=utf-8")


def _encode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "br":
        return bytes(brotli.compress(data))
    if coding == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def _decode(coding: str, data: bytes) -> bytes:
    return decoder_for(coding, 1 << 30).feed(data) if coding else data


def _pages() -> list[tuple[str, bytes]]:
    out = [(f"bench-{n}", page(ORIGIN, n)) for n in (1024, 2048, 9000, 16 * 1024)]
    for path in sorted(SITES.rglob("*.html"))[:6]:
        out.append((path.parent.name + "/" + path.name, path.read_bytes().replace(b"{{origin}}", ORIGIN.encode())))
    return out


async def _streamed(config: Settings, coding: str, wire: bytes, cuts: list[int], slice_s: float = 0.001) -> bytes:
    """What the streaming path sends for ``wire`` arriving in reads cut at ``cuts`` (``slice_s`` 0: unsliced, so
    no pause adds a flush of its own)."""
    work = BodyWork(decoder_for(coding, 1 << 30, PIECE), _processor(config), encoder_for(coding),
                    Slice(lane_for(asyncio.get_running_loop()), slice_s, "rid", "test"), 1 << 30)
    sent: list[bytes] = []

    async def send(message: Message) -> None:
        sent.append(message["body"])

    bounds = [0, *cuts, len(wire)]
    reads = [wire[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    for i, data in enumerate(reads):
        await work.feed(data, send)
        if i < len(reads) - 1:
            await work.send_ready(send)
    sent.append(work.tail())
    return b"".join(sent)


@pytest.mark.parametrize("coding", CODINGS)
async def test_one_pass_gives_the_streaming_paths_bytes_for_every_page_and_chunking(coding: str) -> None:
    config = _settings()
    rewrote = 0
    for name, html in _pages():
        wire = _encode(coding, html)
        one = transform_whole(wire, decoder_for(coding, 1 << 30, PIECE), _processor(config), encoder_for(coding),
                              limit=PIECE, quiet_cap=1 << 30)
        assert isinstance(one, bytes), name
        # one read: the very same encoded bytes
        assert one == await _streamed(config, coding, wire, [], 0.0), name
        decoded = _decode(coding, one)
        rewrote += decoded != html
        # any chunking of the origin's body: the same rewritten bytes
        for cuts in ([1], [len(wire) // 2], [7, 8, len(wire) // 3, len(wire) - 1], list(range(97, len(wire), 97))):
            cuts = [c for c in cuts if 0 < c < len(wire)]
            assert _decode(coding, await _streamed(config, coding, wire, cuts)) == decoded, (name, cuts)
    assert rewrote >= 4  # the bench pages name the origin: the comparison is about rewritten bytes


@pytest.mark.parametrize("coding", CODINGS)
async def test_an_encoder_made_for_the_bodys_size_gives_the_same_bytes(coding: str) -> None:
    """The relay's one-pass path makes its encoder once the output's size is known (gzip's window sized to it):
    the encoded bytes are still those of the streaming path (for gzip: the full-window encoder's)."""
    config = _settings()
    sizes: list[int] = []
    for name, html in _pages():
        wire = _encode(coding, html)

        def make(size: int) -> Encoder:
            sizes.append(size)
            return encoder_for(coding, size_hint=size)

        one = transform_whole(wire, decoder_for(coding, 1 << 30, PIECE), _processor(config), None,
                              limit=PIECE, quiet_cap=1 << 30, make_encoder=make)
        assert isinstance(one, bytes), name
        assert one == await _streamed(config, coding, wire, [], 0.0), name
        assert _decode(coding, one) == transform_whole(html, decoder_for("", 1 << 30, PIECE), _processor(config),
                                                       encoder_for(""), limit=PIECE, quiet_cap=1 << 30)
    assert sizes and min(sizes) > 0


def test_a_gzip_window_sized_to_the_input_compresses_to_the_same_bytes() -> None:
    """``window_bits``: the smallest window whose reach covers the input; the compressed bytes do not change
    (no match could reach further back), at every size around each window's bound and for every level."""
    assert [window_bits(n) for n in (0, 1, 250, 251, 762, 763, 32_506, 32_507, 10**6)] == [9, 9, 9, 10, 10, 11, 15,
                                                                                            15, 15]
    noise = bytes((i * 7919 + (i >> 3) * 31 + (i * i) % 17) % 251 for i in range(40_000))
    html = page(ORIGIN, 40_000)
    for bits in range(9, 16):
        for size in {(1 << bits) - 262 - 1, (1 << bits) - 262}:
            third = size // 3
            far = noise[:third] + noise[20_000:20_000 + size - 2 * third] + noise[:third]  # a match ~size back
            for chunk in (html[:size], noise[:size], far):
                assert len(chunk) == size and window_bits(size) == bits
                for level in (1, 4, 6, 9):
                    full = encoder_for("gzip", gzip_level=level)
                    sized = encoder_for("gzip", gzip_level=level, size_hint=len(chunk))
                    want = full.compress(chunk) + full.finish()
                    assert sized.compress(chunk) + sized.finish() == want, (bits, size, level)
                    assert gzip.decompress(want) == chunk


def test_a_finished_rewriter_leaves_no_cyclic_garbage() -> None:
    """A finished page's rewriter dies by reference count: nothing is left for the cyclic collector (it held 45
    objects per page until ``HtmlRewriter.finish`` broke the rewriter <-> text bodies cycle)."""
    config = _settings()
    html = page(ORIGIN, 4000)
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            processor = _processor(config)
            out = processor.feed(html) + processor.finish()
            assert ORIGIN.encode() not in out
            del processor
        assert gc.collect() == 0
    finally:
        gc.enable()


async def test_a_body_decoding_past_the_bound_resumes_on_the_streaming_path_decoded_once() -> None:
    config = _settings()
    html = page(ORIGIN, 60 * 1024)
    wire = gzip.compress(html)
    assert len(wire) < PIECE < len(html)
    decoder = decoder_for("gzip", 1 << 30, PIECE)
    resumed = transform_whole(wire, decoder, _processor(config), encoder_for("gzip"), limit=PIECE, quiet_cap=1 << 30)
    assert isinstance(resumed, Resumed)
    assert decoder.decoded <= 2 * PIECE  # only the pieces it looked at were decoded
    work = BodyWork(resumed, _processor(config), encoder_for("gzip"),
                    Slice(lane_for(asyncio.get_running_loop()), 0.001, "rid", "test"), 1 << 30)

    async def send(message: Message) -> None:
        sent.append(message["body"])

    sent: list[bytes] = []
    await work.feed(wire, send)
    sent.append(work.tail())
    assert decoder.decoded == len(html)  # every byte decoded once
    assert _decode("gzip", b"".join(sent)) == _decode("gzip", await _streamed(config, "gzip", wire, []))


def test_an_unchanged_gzip_body_leaves_as_the_origin_encoded_it() -> None:
    config = _settings()
    elsewhere = page("http://cdn.elsewhere.test", 4000)  # names no origin host: the rewriter changes nothing
    wire = gzip.compress(elsewhere, 9)

    def one(data: bytes, html: bytes | None = None, *, reuse: bool = True) -> bytes:
        result = transform_whole(data, decoder_for("gzip", 1 << 30, PIECE), _processor(config), encoder_for("gzip"),
                                 limit=PIECE, quiet_cap=1 << 30, reuse_wire=reuse)
        assert isinstance(result, bytes)
        return result

    assert one(wire) is wire  # the origin's own bytes, not re-encoded
    assert one(wire, reuse=False) != wire and gzip.decompress(one(wire, reuse=False)) == elsewhere
    rewritten = gzip.compress(page(ORIGIN, 4000), 9)
    assert one(rewritten) != rewritten  # changed: re-encoded
    assert ORIGIN.encode() not in gzip.decompress(one(rewritten))
    garbage = wire + b"\x00trailing junk"
    out = one(garbage)
    assert out != garbage and gzip.decompress(out) == elsewhere  # the junk never reaches the client


def test_a_lower_bound_than_the_piece_also_resumes() -> None:
    html = page(ORIGIN, 9000)
    result = transform_whole(html, decoder_for("", 1 << 30, PIECE), _processor(_settings()), encoder_for(""),
                             limit=4096, quiet_cap=1 << 30)
    assert isinstance(result, Resumed)


def test_the_stages_bounds_hold_in_one_pass() -> None:
    class Swallow:
        def feed(self, data: bytes) -> bytes:
            return b""

        def finish(self) -> bytes:
            return b""

    with pytest.raises(WorkBoundExceeded) as quiet:
        transform_whole(b"x" * 5000, decoder_for("", 1 << 30, PIECE), Swallow(), encoder_for(""), limit=PIECE,
                        quiet_cap=4096)
    assert quiet.value.bound == "max_decoded_bytes_without_output"
    with pytest.raises(WorkBoundExceeded) as decoded:
        transform_whole(gzip.compress(b"a" * 8000), decoder_for("gzip", 4096, PIECE), Swallow(), encoder_for(""),
                        limit=PIECE, quiet_cap=1 << 30)
    assert decoded.value.bound == "max_decoded_body_bytes"
    with pytest.raises(CorruptEncoding):
        transform_whole(b"\x1f\x8bnot gzip at all", decoder_for("gzip", 1 << 30, PIECE), Swallow(), encoder_for(""),
                        limit=PIECE, quiet_cap=1 << 30)


# -- over real sockets ----------------------------------------------------------------------------------


async def _serve(body: bytes, *, split: bool, extra: str = "") -> tuple[dict[str, str], bytes, bool]:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        packed = gzip.compress(body.replace(b"ORIGIN", f"127.0.0.1:{origin.port}".encode()))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                     b'ETag: "v1"\r\n' + extra.encode() + f"Content-Length: {len(packed)}\r\n\r\n".encode())
        if split:  # the second half arrives late: the body is not in hand at the first read
            writer.write(packed[: len(packed) // 2])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(packed[len(packed) // 2 :])
        else:
            writer.write(packed)
        await writer.drain()

    async with ScriptedOrigin(script) as origin, publisher(settings(origin.port)) as proxy:
        r = await request(proxy.port, "/page", headers={"accept-encoding": "gzip"})
    assert r.status == 200 and r.complete
    return r.headers, gzip.decompress(r.body), r.complete


async def test_a_small_page_in_hand_is_answered_with_a_length_and_equals_the_streamed_one() -> None:
    html = page("http://ORIGIN", 4000)
    one_headers, one_body, _ = await _serve(html, split=False)
    streamed_headers, streamed_body, _ = await _serve(html, split=True)
    assert one_body == streamed_body
    assert f"https://{PUBLIC}/".encode() in one_body or f"http://{PUBLIC}/".encode() in one_body  # rewritten
    assert "transfer-encoding" not in one_headers
    assert "content-length" in one_headers
    assert streamed_headers.get("transfer-encoding") == "chunked" and "content-length" not in streamed_headers
    for h in (one_headers, streamed_headers):
        assert h["content-encoding"] == "gzip"
        assert "accept-encoding" in h["vary"].lower()
        assert h["etag"] == 'W/"v1"'


async def test_an_unchanged_small_gzip_page_is_relayed_as_the_origin_sent_it() -> None:
    html = page("http://cdn.elsewhere.test", 3000)
    packed = gzip.compress(html, 9)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                     + f"Content-Length: {len(packed)}\r\n\r\n".encode() + packed)
        await writer.drain()

    async with ScriptedOrigin(script) as origin, publisher(settings(origin.port)) as proxy:
        r = await request(proxy.port, "/page", headers={"accept-encoding": "gzip"})
    assert r.complete and r.body == packed and r.headers["content-length"] == str(len(packed))
    assert r.headers["content-encoding"] == "gzip" and "accept-encoding" in r.headers["vary"].lower()


async def test_a_small_wire_body_that_decodes_large_is_streamed_complete() -> None:
    html = page("http://ORIGIN", 60 * 1024)  # ~12 KiB gzip'd: in hand and under the bound, but 60 KiB decoded
    assert len(gzip.compress(html)) < 16 * 1024 < len(html)
    one_headers, one_body, _ = await _serve(html, split=False)
    assert one_headers.get("transfer-encoding") == "chunked" and "content-length" not in one_headers
    _, streamed_body, _ = await _serve(html, split=True)
    assert one_body == streamed_body and len(one_body) > 50 * 1024


async def test_a_corrupt_small_body_still_aborts_after_the_head() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        bad = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage that does not inflate"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                     + f"Content-Length: {len(bad)}\r\n\r\n".encode() + bad)
        await writer.drain()

    async with ScriptedOrigin(script) as origin, publisher(settings(origin.port)) as proxy:
        r = await request(proxy.port, "/page", headers={"accept-encoding": "gzip"})
    assert r.status == 200 and not r.complete  # the head was out: the client sees an abort, not a clean end


async def test_one_pass_off_streams_every_page() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        body = b"<p>small</p>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    off = {"one_pass_body_bytes": 0}
    async with ScriptedOrigin(script) as origin, publisher(settings(origin.port, limits=off)) as proxy:
        r = await request(proxy.port, "/page", headers={"accept-encoding": "identity"})
    assert r.complete and r.body == b"<p>small</p>"
    assert r.headers.get("transfer-encoding") == "chunked"
