"""``images.source.SourceReader`` over ``upstream.handover.detach_body``: a source read straight into our
buffer, against a real origin socket (``asyncio.start_server`` writing exact bytes), on asyncio's own loop
and on uvloop (what ``sluicegate serve`` runs). Nothing of the client is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from sluicegate.images.source import SPLICE_LOWAT, SourceReader
from sluicegate.images.stream import open_pipe
from sluicegate.upstream.errors import OriginBodyError
from sluicegate.upstream.handover import detach_body
from sluicegate.upstream.http1 import OriginPool
from tests.support.pki import Pki

WAIT = 5.0
BODY = os.urandom(3 * 1024 * 1024 + 17)
SMALL = BODY[:100_000]  # arrives in one socket read, over the high water
HOST = [("host", "origin.test")]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(coro_fn: Callable[[], Awaitable[None]], loop_kind: str) -> None:
    if loop_kind == "uvloop":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(asyncio.wait_for(coro_fn(), WAIT * 4))
    else:
        asyncio.run(asyncio.wait_for(coro_fn(), WAIT * 4))


async def _request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def with_origin(handler: Handler, body: Callable[[OriginPool, list[int]], Awaitable[None]],
                      high_water: int = 256 * 1024, tls: tuple[ssl.SSLContext, str] | None = None) -> None:
    accepted: list[int] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=tls[0] if tls else None)
    port = server.sockets[0].getsockname()[1]
    pool = OriginPool("https" if tls else "http", "127.0.0.1", port, connect_timeout=WAIT, high_water=high_water,
                      ca_file=tls[1] if tls else "")
    try:
        await body(pool, accepted)
    finally:
        await pool.close()
        server.close()


def serving(data: bytes, piece: int = 65536, pause: float = 0.0) -> Handler:
    """``data`` in ``piece``-byte writes (drained; ``pause`` s after each), then a small response on the
    same connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data))
        for i in range(0, len(data), piece):
            writer.write(data[i:i + piece])
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext!")
        await writer.drain()
        await reader.read()  # until the client closes

    return handler


async def second_request(pool: OriginPool, accepted: list[int]) -> None:
    resp = await pool.request("GET", "/b", HOST)
    assert await asyncio.wait_for(resp.read(), WAIT) == b"next!"
    resp.release()
    assert len(accepted) == 1, "the connection was reused after the detached body"


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_whole_body_into_one_buffer_then_connection_reused(loop_kind: str) -> None:
    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        assert len(detached.first) + detached.remaining == len(BODY)
        buf = bytearray(len(BODY))
        got = len(detached.first)
        buf[:got] = detached.first
        reader = SourceReader(detached)
        view = memoryview(buf)
        while got < len(BODY):
            n = await asyncio.wait_for(reader.readinto(view[got:], whole=True), WAIT)
            assert n > 0
            got += n
        assert await reader.readinto(view[:1]) == 0  # the end
        assert bytes(buf) == BODY
        resp.release()
        await second_request(pool, accepted)

    run(lambda: with_origin(serving(BODY), body), loop_kind)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    cert, key = pki.leaf("origin")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx, str(Path(pki.ca))


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_whole_and_streamed_over_tls(loop_kind: str, tls: tuple[ssl.SSLContext, str]) -> None:
    """An HTTPS origin (an S3 bucket): the reader sits on the TLS transport's application side."""

    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        buf = bytearray(detached.first)
        reader = SourceReader(detached)
        half = memoryview(bytearray(detached.remaining // 2))
        assert await asyncio.wait_for(reader.readinto(half, whole=True), WAIT) == len(half)
        buf += half
        view = memoryview(bytearray(65536))
        while n := await asyncio.wait_for(reader.readinto(view), WAIT):
            buf += view[:n]
        assert bytes(buf) == BODY
        resp.release()
        await second_request(pool, accepted)

    run(lambda: with_origin(serving(BODY), body, tls=tls), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_streamed_reads_into_a_reused_buffer(loop_kind: str) -> None:
    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        out = bytearray(detached.first)
        reader = SourceReader(detached)
        view = memoryview(bytearray(100_000))
        reads = 0
        while n := await asyncio.wait_for(reader.readinto(view), WAIT):
            assert n <= 100_000
            out += view[:n]
            reads += 1
            await asyncio.sleep(0)  # the consumer's turn (the pump writing into the pipe)
        assert bytes(out) == BODY and reads >= len(BODY) // 100_000
        resp.release()
        await second_request(pool, accepted)

    run(lambda: with_origin(serving(BODY), body), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_body_already_buffered_past_high_water(loop_kind: str) -> None:
    """The whole body arrived (reading paused at the client's high water) before the image code asked:
    nothing is left to read, and the connection must be reading again when it goes back to the pool."""

    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if resp.ready() and resp._conn.reading_paused:
                break
        detached = detach_body(resp)
        assert detached is not None
        if detached.remaining == 0:
            assert detached.first == SMALL[:len(detached.first)] and len(detached.first) == len(SMALL)
        else:  # paused at the high water before the end: the rest is read by the reader
            buf = bytearray(detached.first)
            reader = SourceReader(detached)
            view = memoryview(bytearray(detached.remaining))
            assert await asyncio.wait_for(reader.readinto(view, whole=True), WAIT) == detached.remaining
            buf += view
            assert bytes(buf) == SMALL
        resp.release()
        await second_request(pool, accepted)

    run(lambda: with_origin(serving(SMALL, len(SMALL)), body, high_water=1024), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_connection_cut_mid_body_raises_the_origin_error(loop_kind: str) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 300_000)
        await writer.drain()
        await asyncio.sleep(0.05)

    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        got = len(detached.first)
        reader = SourceReader(detached)
        view = memoryview(bytearray(detached.remaining))
        with pytest.raises(OriginBodyError, match="ended before the end of the body"):
            await asyncio.wait_for(reader.readinto(view, whole=True), WAIT)
        assert got + reader._filled == 300_000  # every byte sent was read, none invented
        resp.release()
        assert pool._open == 0  # the lost connection is counted out of the pool

    run(lambda: with_origin(cut, body), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_chunked_body_is_not_detached(loop_kind: str) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def body(pool: OriginPool, accepted: list[Any]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        assert detach_body(resp) is None
        assert await asyncio.wait_for(resp.read(), WAIT) == b"hello"
        resp.release()

    run(lambda: with_origin(chunked, body), loop_kind)


def _drain_pipe(fd: int, out: bytearray, delay: float = 0.0) -> threading.Thread:
    """The decoder's side: a thread reading the pipe to its end (``delay`` per read: a slow decoder)."""

    def run() -> None:
        while chunk := os.read(fd, 256 * 1024):
            out.extend(chunk)
            if delay:
                time.sleep(delay)
        os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_streamed_body_spliced_into_a_pipe_then_connection_reused(loop_kind: str) -> None:
    """splice(2) from the origin's socket into the decoder's pipe: every byte, in order, none through our
    memory; a slow reader fills the pipe (-1: the caller waits); the connection is reusable afterwards."""

    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        reader = SourceReader(detached)
        assert reader.can_splice()
        r, w = open_pipe()
        fcntl.fcntl(w, 1031, 65536)  # F_SETPIPE_SZ: a small pipe, filled by the origin faster than it drains
        out = bytearray(detached.first)
        thread = _drain_pipe(r, out, delay=0.01)
        moved, full = 0, 0
        while True:
            n, was_full = await asyncio.wait_for(reader.splice_into(w), WAIT)
            if not n and not was_full:
                break
            moved += n
            if was_full:
                full += 1
                await asyncio.sleep(0.001)
        os.close(w)
        await asyncio.to_thread(thread.join)
        assert bytes(out) == BODY and moved == len(BODY) - len(detached.first)
        assert full > 0  # the slow reader's pipe was found full at least once
        assert reader._splice_sock is None  # our duplicate descriptor is closed at the end
        resp.release()
        await second_request(pool, accepted)

    run(lambda: with_origin(serving(BODY), body), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_splice_waits_for_the_origin_in_large_steps_and_restores_the_socket(loop_kind: str) -> None:
    """An origin writing 16 KiB at a time: a wait for it ends once SPLICE_LOWAT bytes (or the rest) are in,
    not at every write; SO_RCVLOWAT is back at 1 after the body, so the reused connection's short answer
    is read at once."""

    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        sock = detached.transport.get_extra_info("socket")
        reader = SourceReader(detached)
        waits = 0
        wait_for_origin = reader._socket_readable

        async def counted(loop: asyncio.AbstractEventLoop, fd: int) -> None:
            nonlocal waits
            waits += 1
            lowat = min(reader.remaining, SPLICE_LOWAT)
            await wait_for_origin(loop, fd)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == lowat

        reader._socket_readable = counted  # type: ignore[method-assign]
        r, w = open_pipe()
        out = bytearray(detached.first)
        thread = _drain_pipe(r, out)
        while True:
            n, full = await asyncio.wait_for(reader.splice_into(w), WAIT)
            if not n and not full:
                break
            if full:
                await asyncio.sleep(0.001)
        os.close(w)
        await asyncio.to_thread(thread.join)
        assert bytes(out) == BODY
        pieces = len(BODY) // (16 * 1024)
        assert 0 < waits <= pieces // 4, f"{waits} waits for {pieces} writes of the origin"
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
        resp.release()
        await second_request(pool, accepted)

    run(lambda: with_origin(serving(BODY, piece=16 * 1024, pause=0.001), body), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_splice_cut_mid_body_raises_the_origin_error(loop_kind: str) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 300_000)
        await writer.drain()
        await asyncio.sleep(0.05)

    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        reader = SourceReader(detached)
        r, w = open_pipe()
        out = bytearray(detached.first)
        thread = _drain_pipe(r, out)
        with pytest.raises(OriginBodyError, match="ended before the end of the body"):
            while (await asyncio.wait_for(reader.splice_into(w), WAIT))[0]:
                pass
        os.close(w)
        await asyncio.to_thread(thread.join)
        assert bytes(out) == b"x" * 300_000  # every byte sent was moved, none invented
        assert reader._splice_sock is None
        resp.release()
        assert pool._open == 0

    run(lambda: with_origin(cut, body), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_splice_into_a_closed_pipe_is_a_broken_pipe(loop_kind: str) -> None:
    """The decoder stopped reading (an image refused from its header): the pump sees EPIPE, and the
    request's end drops our duplicate descriptor."""

    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        reader = SourceReader(detached)
        r, w = open_pipe()
        os.close(r)
        with pytest.raises(BrokenPipeError):
            await asyncio.wait_for(reader.splice_into(w), WAIT)
        os.close(w)
        assert reader._splice_sock is not None
        reader.close()
        assert reader._splice_sock is None
        resp.release()

    run(lambda: with_origin(serving(BODY), body), loop_kind)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_tls_is_not_spliced(loop_kind: str, tls: tuple[ssl.SSLContext, str]) -> None:
    async def body(pool: OriginPool, accepted: list[int]) -> None:
        resp = await pool.request("GET", "/a", HOST)
        detached = detach_body(resp)
        assert detached is not None
        assert not SourceReader(detached).can_splice()  # the bytes must be decrypted here
        resp.release()

    run(lambda: with_origin(serving(BODY), body, tls=tls), loop_kind)
