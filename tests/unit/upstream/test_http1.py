"""``upstream.http1``: the publisher's pooled HTTP/1.1 origin client, against raw (and hostile) origins.

Every origin here is a real ``asyncio.start_server`` socket on 127.0.0.1 that writes exact bytes; nothing
of the client is mocked. The client's internals are only read where a bound is the point (``_conn.buffered``,
``_waiters`` to know that requests are queued for a slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sluicegate.upstream.errors import (
    BodySourceStopped,
    OriginBodyError,
    OriginClosedError,
    OriginConnectError,
    OriginProtocolError,
)
from sluicegate.upstream.http1 import OriginPool, OriginResponse
from sluicegate.upstream.pools import Pools

HOST = [("host", "origin.test")]
WAIT = 3.0  # the most any single step may take before the test calls it a hang


def ok(body: bytes = b"ok", extra: bytes = b"", status: bytes = b"200 OK", version: bytes = b"HTTP/1.1") -> bytes:
    return version + b" " + status + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


def fetch_headers(response: bytes) -> list[tuple[bytes, bytes]]:
    """The raw header fields of a raw response, as the client reports them."""
    lines = response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [(name, value.strip()) for name, value in (line.split(b":", 1) for line in lines)]


# ---------------------------------------------------------------------------------------------- origin harness


class Peer:
    """One connection accepted by an ``Origin``, as the origin sees it."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.received = bytearray()  # every byte the client sent on this connection
        self.requests: list[bytes] = []  # raw requests (head and framed body)
        self.eof = asyncio.Event()  # the client closed (or reset) the connection

    async def _until(self, sep: bytes) -> bytes:
        data = await self.reader.readuntil(sep)
        self.received += data
        return data

    async def _exactly(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.received += data
        return data

    async def read_head(self) -> bytes | None:
        """The next request head, or None when the client closed first."""
        try:
            return await self._until(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.received += exc.partial
            self.eof.set()
            if exc.partial:
                raise
            return None
        except ConnectionError:
            self.eof.set()
            return None

    async def read_request(self) -> bytes | None:
        """The next raw request, body framed by its content-length or chunked coding; None at EOF."""
        head = await self.read_head()
        if head is None:
            return None
        raw = bytearray(head)
        fields = [line.split(b":", 1) for line in head.lower().split(b"\r\n")[1:] if b":" in line]
        values = {name.strip(): value.strip() for name, value in fields}
        if b"content-length" in values:
            raw += await self._exactly(int(values[b"content-length"]))
        elif values.get(b"transfer-encoding") == b"chunked":
            while True:
                size_line = await self._until(b"\r\n")
                raw += size_line
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    raw += await self._until(b"\r\n")
                    break
                raw += await self._exactly(size + 2)
        self.requests.append(bytes(raw))
        return bytes(raw)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_eof(self) -> None:
        """Read (and keep) whatever the client still sends, until it closes."""
        with contextlib.suppress(ConnectionError):
            while data := await self.reader.read(65536):
                self.received += data
        self.eof.set()

    async def serve(self, respond: Callable[[bytes], bytes] = lambda _req: ok()) -> None:
        """Answer every request on this connection with ``respond(request)`` until the client closes."""
        while (req := await self.read_request()) is not None:
            await self.send(respond(req))


Handler = Callable[[Peer], Awaitable[None]]


class Origin:
    """A raw TCP origin on 127.0.0.1: ``handler`` runs once per accepted connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.peers: list[Peer] = []
        self.open_now = 0
        self.max_open = 0
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def accepted(self) -> int:
        return len(self.peers)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(len(self.peers), reader, writer)
        self.peers.append(peer)
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self.handler(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            peer.eof.set()
        except asyncio.CancelledError:
            pass  # stop(): ending quietly (a cancelled client_connected_cb task is logged as an error)
        finally:
            self.open_now -= 1
            writer.close()
            self._tasks.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


class Harness:
    def __init__(self) -> None:
        self.origins: list[Origin] = []
        self.pools: list[OriginPool] = []

    async def origin(self, handler: Handler) -> Origin:
        origin = Origin(handler)
        await origin.start()
        self.origins.append(origin)
        return origin

    def pool(self, port: int, **kw: Any) -> OriginPool:
        pool = OriginPool("http", "127.0.0.1", port, connect_timeout=2.0, **kw)
        self.pools.append(pool)
        return pool


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    for pool in harness.pools:
        await pool.close()
    for origin in harness.origins:
        await origin.stop()


async def serve_all(peer: Peer) -> None:
    await peer.serve()


async def read_body(resp: OriginResponse) -> bytes:
    parts = []
    while chunk := await asyncio.wait_for(resp.read(), WAIT):
        parts.append(chunk)
    return b"".join(parts)


async def fetch(
    pool: OriginPool,
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: AsyncIterator[bytes] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One whole exchange: status, headers, body; the response is released."""
    resp = await asyncio.wait_for(pool.request(method, target, HOST if headers is None else headers, body), WAIT)
    try:
        return resp.status, resp.headers, await read_body(resp)
    finally:
        resp.release()


async def read_until_error(resp: OriginResponse, error: type[Exception]) -> bytes:
    """The bytes read() returned before raising ``error`` (fails the test if the body ends cleanly)."""
    got = bytearray()
    with pytest.raises(error):
        while chunk := await asyncio.wait_for(resp.read(), WAIT):
            got += chunk
    return bytes(got)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


# ---------------------------------------------------------------------------------------------- keep-alive


async def test_fifty_sequential_gets_reuse_one_connection(h: Harness) -> None:
    origin = await h.origin(lambda peer: peer.serve(lambda req: ok(req.split(b" ")[1])))
    pool = h.pool(origin.port)
    for i in range(50):
        status, headers, body = await fetch(pool, target=f"/r{i}")
        assert (status, body) == (200, f"/r{i}".encode())
        assert headers == [(b"Content-Length", str(len(body)).encode())]
    assert origin.accepted == 1
    assert len(origin.peers[0].requests) == 50
    assert origin.peers[0].requests[0] == b"GET /r0 HTTP/1.1\r\nhost: origin.test\r\n\r\n"


@pytest.mark.parametrize(
    ("response", "reused"),
    [
        (ok(extra=b"Connection: close\r\n"), False),
        (ok(version=b"HTTP/1.0"), False),
        (ok(version=b"HTTP/1.0", extra=b"Connection: keep-alive\r\n"), True),  # control: 1.0 may keep alive
        (ok(extra=b"Connection: keep-alive\r\n"), True),
    ],
    ids=["close", "http10", "http10-keep-alive", "http11-keep-alive"],
)
async def test_connection_reused_only_when_origin_keeps_it_alive(h: Harness, response: bytes, reused: bool) -> None:
    # The origin would happily answer more requests on every connection: only the client's decision counts.
    origin = await h.origin(lambda peer: peer.serve(lambda _req: response))
    pool = h.pool(origin.port)
    for _ in range(3):
        assert await fetch(pool) == (200, fetch_headers(response), b"ok")
    assert origin.accepted == (1 if reused else 3)
    if not reused:
        for peer in origin.peers:
            await asyncio.wait_for(peer.eof.wait(), WAIT)  # the client closed each one


async def test_idle_connection_older_than_keepalive_timeout_is_not_reused(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port, keepalive_timeout=0.05)
    assert (await fetch(pool))[2] == b"ok"
    await asyncio.sleep(0.08)
    assert (await fetch(pool))[2] == b"ok"
    assert origin.accepted == 2
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)  # the expired one was closed, not leaked


async def test_pool_close_closes_idle_connections_and_pools_nothing_after(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    first = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    second = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)  # in flight while the pool closes
    assert await read_body(first) == b"ok"
    first.release()  # idle now
    await pool.close()
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)
    assert await read_body(second) == b"ok"
    second.release()
    await asyncio.wait_for(origin.peers[1].eof.wait(), WAIT)
    assert origin.accepted == 2


async def test_unsolicited_bytes_on_an_idle_connection_drop_it(h: Harness) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(ok())
            await asyncio.sleep(0.02)
            await peer.send(ok(b"unasked"))  # nothing was requested: this must never be taken as a response
            await peer.wait_eof()
        else:
            await peer.serve(lambda _req: ok(b"fresh"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    assert (await fetch(pool))[2] == b"ok"
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)  # the client dropped it on the stray bytes
    assert (await fetch(pool))[2] == b"fresh"
    assert origin.accepted == 2


# ---------------------------------------------------------------------------------------------- body framing


async def test_content_length_body_written_in_many_pieces(h: Harness) -> None:
    body = bytes(range(256)) * 400  # 102,400 bytes

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(0, len(body), 1000):
                await peer.send(body[i : i + 1000])
                if i % 20_000 == 0:
                    await asyncio.sleep(0.001)

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    assert (await fetch(pool))[2] == body
    assert (await fetch(pool))[2] == body
    assert origin.accepted == 1


async def test_chunked_body_split_across_many_small_writes(h: Harness) -> None:
    parts = [bytes([65 + i % 26]) * (i * 37 % 500 + 1) for i in range(40)]
    wire = b"".join(
        b"%x;ext=1\r\n%b\r\n" % (len(p), p) if i % 7 == 0 else b"%X\r\n%b\r\n" % (len(p), p)
        for i, p in enumerate(parts)
    )
    wire += b"0\r\n\r\n"

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(wire), 7):  # cuts through size lines, CRLFs and data alike
                await peer.send(wire[i : i + 7])
                if i % 700 == 0:
                    await asyncio.sleep(0.001)

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    status, headers, body = await fetch(pool)
    assert (status, headers, body) == (200, [(b"Transfer-Encoding", b"chunked")], b"".join(parts))
    assert (await fetch(pool))[2] == b"".join(parts)  # the parser ended exactly at the 0-chunk
    assert origin.accepted == 1


@pytest.mark.parametrize(
    "framing",
    [b"", b"Transfer-Encoding: gzip\r\n", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"],
    ids=["no-framing", "te-not-chunked", "chunked-not-last"],
)
async def test_body_delimited_by_eof_completes_and_is_not_reused(h: Harness, framing: bytes) -> None:
    # RFC 9112 6.3: a response whose last transfer coding is not chunked, or without any framing, ends at close.
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n")
            for part in (b"first ", b"second ", b"third"):
                await asyncio.sleep(0.005)
                await peer.send(part)
            # (returning closes the connection cleanly: that is the end of the body)
        else:
            await peer.serve(lambda _req: ok(b"next"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    assert await read_body(resp) == b"first second third"
    assert resp.at_eof()
    resp.release()
    assert (await fetch(pool))[2] == b"next"
    assert origin.accepted == 2


# ---------------------------------------------------------------------------------------------- truncation


async def test_content_length_body_cut_short_raises_after_the_bytes_that_arrived(h: Harness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        await asyncio.sleep(0.01)
        await peer.send(b"y" * 20)

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    assert await read_until_error(resp, OriginBodyError) == b"x" * 40 + b"y" * 20
    with pytest.raises(OriginBodyError) as info:
        await resp.read()  # it stays failed
    assert info.value.kind == "upstream_read"
    assert not resp.at_eof()
    resp.release()


async def test_chunked_body_cut_before_the_last_chunk_raises(h: Harness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n")

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    assert await read_until_error(resp, OriginBodyError) == b"hello world"
    resp.release()


@pytest.mark.parametrize("sent", [b"", b"HTTP/1.1 200 OK\r\nContent-Le"], ids=["nothing", "half-a-head"])
async def test_close_before_the_response_head_raises_closed(h: Harness, sent: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(sent)

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    with pytest.raises(OriginClosedError) as info:
        await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    assert info.value.kind == "disconnected"
    assert origin.accepted == 1  # a fresh connection is not retried: the origin really did fail


# ---------------------------------------------------------------------------------------------- interim / upgrade


async def test_interim_responses_are_skipped(h: Harness) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 100 Continue\r\nX-Interim: a\r\n\r\n")
            await asyncio.sleep(0.005)
            await peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n")
            await asyncio.sleep(0.005)
            await peer.send(b"X-Final: 1\r\nContent-Length: 5\r\n\r\nfinal")

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    for _ in range(2):
        assert await fetch(pool) == (200, [(b"X-Final", b"1"), (b"Content-Length", b"5")], b"final")
    assert origin.accepted == 1


async def test_interim_response_with_a_body_never_leaks_into_the_final_body(h: Harness) -> None:
    # A 1xx has no content (RFC 9110 15.2), but llhttp frames an unknown 1xx by its Content-Length.
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 199 Odd\r\nContent-Length: 6\r\n\r\nLEAKED" + ok(b"final"))
        await peer.wait_eof()

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    with pytest.raises(OriginProtocolError):  # (the framing can no longer be trusted: not "LEAKEDfinal")
        await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
    ids=["websocket", "bare"],
)
async def test_switching_protocols_is_refused(h: Harness, head: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head)
        await peer.wait_eof()

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    with pytest.raises(OriginProtocolError) as info:
        await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    assert info.value.kind == "bad_response"
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)


# ---------------------------------------------------------------------------------------------- bodiless responses


@pytest.mark.parametrize(
    "head",
    [b"Content-Length: 1000\r\n", b"Transfer-Encoding: chunked\r\n", b""],
    ids=["content-length", "chunked", "unframed"],
)
async def test_head_response_has_no_body_and_its_connection_is_not_reused(h: Harness, head: bytes) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            assert (await peer.read_request() or b"").startswith(b"HEAD /h HTTP/1.1\r\n")
            await peer.send(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n")
            await peer.wait_eof()
        else:
            await peer.serve(lambda _req: ok(b"after head"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(pool.request("HEAD", "/h", HOST), WAIT)
    assert resp.status == 200
    assert await asyncio.wait_for(resp.read(), WAIT) == b""
    assert resp.at_eof()
    resp.release()
    assert await fetch(pool) == (200, [(b"Content-Length", b"10")], b"after head")
    assert origin.accepted == 2
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)


@pytest.mark.parametrize("length", [b"Content-Length: 1000\r\n", b""], ids=["content-length", "no-length"])
@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
async def test_204_and_304_have_no_body_whatever_their_head_says(h: Harness, status: bytes, length: bytes) -> None:
    # llhttp ends these messages at the head (RFC 9110 6.4.1): no wait for a body, nor for EOF, and the
    # connection stays usable.
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 " + status + b"\r\n" + length + b'ETag: "e"\r\n\r\n')
        await peer.serve(lambda _req: ok(b"second"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    status_code, headers, body = await fetch(pool)
    assert (status_code, body) == (int(status[:3]), b"")
    assert headers == fetch_headers(b"HTTP/1.1 200 OK\r\n" + length + b'ETag: "e"\r\n\r\n')
    assert (await fetch(pool))[2] == b"second"
    assert origin.accepted == 1


# ---------------------------------------------------------------------------------------------- invalid responses


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTPT/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"<html>not http at all</html>\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n",
    ],
    ids=[
        "status-code",
        "version",
        "garbage",
        "space-in-name",
        "nul-in-value",
        "bad-cl",
        "two-cl",
        "cl-and-te",
        "bad-chunk-size",
    ],
)
async def test_malformed_response_raises_protocol_error(h: Harness, response: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response)
        await peer.wait_eof()  # keeps the connection open: only the parser can end the wait

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    with pytest.raises(OriginProtocolError) as info:
        resp = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
        try:
            await read_body(resp)  # (an error found in the body surfaces here)
        finally:
            resp.release()
    assert info.value.kind == "bad_response"
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)  # and the connection was closed


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Header-%03d: %s\r\n" % (i, b"v" * 30) for i in range(100)) + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX-Endless: " + b"v" * 300_000,  # one header that never ends
        b"HTTP/1.1 200 " + b"O" * 300_000,  # a status line that never ends
    ],
    ids=["many-headers", "endless-header", "endless-status-line"],
)
async def test_response_head_bigger_than_max_head_bytes_raises(h: Harness, head: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        for i in range(0, len(head), 4096):
            await peer.send(head[i : i + 4096])
        await peer.wait_eof()

    origin = await h.origin(handler)
    pool = h.pool(origin.port, max_head_bytes=2048)
    with pytest.raises(OriginProtocolError):
        await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)


async def test_response_head_within_max_head_bytes_is_fine(h: Harness) -> None:
    extra = b"".join(b"X-Header-%02d: %s\r\n" % (i, b"v" * 30) for i in range(30))  # ~1,400 bytes
    origin = await h.origin(lambda peer: peer.serve(lambda _req: ok(extra=extra)))
    pool = h.pool(origin.port, max_head_bytes=2048)
    status, headers, body = await fetch(pool)
    assert (status, len(headers), body) == (200, 31, b"ok")


@pytest.mark.parametrize("split", [False, True], ids=["same-write", "later-write"])
async def test_second_response_glued_after_the_first_is_never_relayed(h: Harness, split: bool) -> None:
    smuggled = ok(b"SMUGGLED", extra=b"X-Smuggled: 1\r\n")

    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            first = ok(b"hello")
            if split:
                await peer.send(first)
                await asyncio.sleep(0.01)
                await peer.send(smuggled)
            else:
                await peer.send(first + smuggled)
            await peer.wait_eof()
        else:
            await peer.serve(lambda _req: ok(b"fresh"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    if split:
        await asyncio.sleep(0.03)  # the glued response arrives while this exchange is still open
    got = bytearray()
    with contextlib.suppress(OriginProtocolError):
        while chunk := await asyncio.wait_for(resp.read(), WAIT):
            got += chunk
    resp.release()
    assert got == b"hello"
    assert await fetch(pool) == (200, [(b"Content-Length", b"5")], b"fresh")
    assert origin.accepted == 2  # the first connection was not reused
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)


async def test_chunked_trailers_do_not_change_the_response_headers(h: Harness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n")
        await peer.wait_eof()

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    assert await fetch(pool) == (200, [(b"Transfer-Encoding", b"chunked")], b"ok")


# ---------------------------------------------------------------------------------------------- stale connections


@pytest.mark.parametrize("when", ["after-next-request", "right-after-response"])
async def test_stale_kept_alive_connection_is_retried_once_for_a_get(h: Harness, when: str) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(ok(b"first"))  # keep-alive... and then the origin closes it
            if when == "after-next-request":
                await peer.read_request()  # read the next request, answer nothing
        else:
            await peer.serve(lambda _req: ok(b"retried"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    assert (await fetch(pool))[2] == b"first"
    assert (await fetch(pool, target="/again"))[2] == b"retried"
    assert origin.accepted == 2
    assert origin.peers[1].requests == [b"GET /again HTTP/1.1\r\nhost: origin.test\r\n\r\n"]


async def test_a_fresh_connection_closed_by_the_origin_is_retried_at_most_once(h: Harness) -> None:
    async def close_all_after_first(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(ok())
        await peer.read_request()

    origin = await h.origin(close_all_after_first)
    pool = h.pool(origin.port)
    await fetch(pool)
    with pytest.raises(OriginClosedError):
        await fetch(pool)
    assert origin.accepted == 2  # the stale one, then one fresh retry, and no more


@pytest.mark.parametrize(("method", "has_body"), [("POST", True), ("POST", False), ("PUT", True)])
async def test_stale_connection_is_not_retried_for_a_body_or_a_non_idempotent_method(
    h: Harness, method: str, has_body: bool
) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(ok(b"first"))
            await peer.read_request()  # the whole request, body included; then close without an answer
        else:
            await peer.serve(lambda _req: ok(b"must not be asked"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    await fetch(pool)
    body = chunks(b"data") if has_body else None
    headers = [*HOST, ("content-length", "4")] if has_body else HOST
    with pytest.raises(OriginClosedError):
        await asyncio.wait_for(pool.request(method, "/p", headers, body), WAIT)
    await asyncio.sleep(0.02)
    assert origin.accepted == 1
    if has_body:
        assert origin.peers[0].requests[1].endswith(b"\r\n\r\ndata")


# ---------------------------------------------------------------------------------------------- request body


async def test_upload_with_content_length_is_sent_as_is(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    headers = [*HOST, ("content-length", "11")]
    assert (await fetch(pool, "POST", "/u", headers, chunks(b"hello", b"", b" world")))[2] == b"ok"
    assert origin.peers[0].requests == [
        b"POST /u HTTP/1.1\r\nhost: origin.test\r\ncontent-length: 11\r\n\r\nhello world"
    ]
    assert (await fetch(pool))[2] == b"ok"  # upload and response both complete: reused
    assert origin.accepted == 1


async def test_upload_without_content_length_is_chunked(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    assert (await fetch(pool, "POST", "/u", None, chunks(b"abc", b"", b"0123456789abcdef0")))[2] == b"ok"
    assert origin.peers[0].received == (
        b"POST /u HTTP/1.1\r\nhost: origin.test\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n11\r\n0123456789abcdef0\r\n0\r\n\r\n"  # (the empty part is not a premature 0-chunk)
    )
    assert (await fetch(pool))[2] == b"ok"
    assert origin.accepted == 1


async def test_empty_chunked_upload_is_just_the_last_chunk(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    await fetch(pool, "POST", "/u", None, chunks())
    assert origin.peers[0].received.endswith(b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n")


@pytest.mark.parametrize("stuck", ["body-iterator", "socket-backpressure"])
@pytest.mark.parametrize("connection", [b"close", b"keep-alive"])
async def test_origin_answering_before_the_upload_ends_yields_its_response(
    h: Harness, stuck: str, connection: bytes
) -> None:
    let_go = asyncio.Event()

    async def handler(peer: Peer) -> None:
        await peer.read_head()  # not the body
        await peer.send(ok(b"too large", extra=b"Connection: %b\r\n" % connection, status=b"413 Payload Too Large"))
        if stuck == "socket-backpressure":
            await let_go.wait()  # reads nothing until the client gave up
        await peer.wait_eof()

    sent = 0
    never = asyncio.Event()

    async def upload() -> AsyncIterator[bytes]:
        nonlocal sent
        block = b"u" * 256 * 1024
        for _ in range(256):  # 64 MB at most: far more than the socket buffers hold
            sent += len(block)
            yield block
            if stuck == "body-iterator":
                await never.wait()

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(
        pool.request("POST", "/big", [*HOST, ("content-length", str(64 << 20))], upload()), WAIT
    )
    assert resp.status == 413
    assert await read_body(resp) == b"too large"
    assert sent < 64 << 20  # the upload had not ended
    resp.release()
    let_go.set()
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)
    assert (await fetch(pool))[2] == b"too large"  # a new connection: the origin may still wait for the upload
    assert origin.accepted == 2


async def test_body_iterator_failing_before_the_head_fails_the_request(h: Harness) -> None:
    async def handler(peer: Peer) -> None:
        await peer.wait_eof()

    async def gone() -> AsyncIterator[bytes]:
        yield b"part"
        raise BodySourceStopped("the caller's client left")

    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ValueError("boom")

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    with pytest.raises(BodySourceStopped):  # the caller's own stop comes back as it is, not as an origin failure
        await asyncio.wait_for(pool.request("POST", "/", HOST, gone()), WAIT)
    with pytest.raises(OriginBodyError):
        await asyncio.wait_for(pool.request("POST", "/", HOST, broken()), WAIT)
    for peer in origin.peers:
        await asyncio.wait_for(peer.eof.wait(), WAIT)
    assert origin.accepted == 2


# ---------------------------------------------------------------------------------------------- request head


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /b", HOST),
        ("/a\n", HOST),
        ("/a\0", HOST),
        ("/", [*HOST, ("x-v", "v\r\nX-Injected: 1")]),
        ("/", [*HOST, ("x-v", "v\rX")]),
        ("/", [*HOST, ("x-v", "v\nX")]),
        ("/", [*HOST, ("x-v", "v\0")]),
        ("/", [*HOST, ("x\r\nX-Injected", "1")]),
    ],
)
async def test_control_characters_in_the_request_head_are_refused_before_writing(
    h: Harness, target: str, headers: list[tuple[str, str]]
) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    await fetch(pool)  # a pooled connection the injected request would have used
    before = bytes(origin.peers[0].received)
    with pytest.raises(OriginProtocolError):
        await pool.request("GET", target, headers)
    assert await fetch(pool, target="/after") == (200, [(b"Content-Length", b"2")], b"ok")
    assert origin.accepted == 1
    assert origin.peers[0].received == before + b"GET /after HTTP/1.1\r\nhost: origin.test\r\n\r\n"


# ---------------------------------------------------------------------------------------------- backpressure


async def test_unread_body_is_bounded_in_memory_and_arrives_whole(h: Harness) -> None:
    block = bytes(range(256)) * 4096  # 1 MB
    total = 20 * len(block)

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(20):
            await peer.send(block)
        await peer.wait_eof()

    origin = await h.origin(handler)
    pool = h.pool(origin.port, high_water=64 * 1024)
    resp = await asyncio.wait_for(pool.request("GET", "/big", HOST), WAIT)
    await asyncio.sleep(0.5)  # the caller is slow: the origin keeps writing as fast as it can
    assert resp._conn.buffered < 2 * 1024 * 1024
    got = bytearray()
    largest = 0
    while chunk := await asyncio.wait_for(resp.read(), WAIT):
        largest = max(largest, len(chunk))
        got += chunk
    resp.release()
    assert len(got) == total
    assert got == block * 20
    assert largest < 2 * 1024 * 1024


# ---------------------------------------------------------------------------------------------- connections


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_connect_failure_raises_and_frees_the_slot(h: Harness) -> None:
    pool = h.pool(closed_port(), limit=1)
    for _ in range(3):  # a leaked slot would make the second attempt wait forever
        with pytest.raises(OriginConnectError) as info:
            await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
        assert info.value.kind == "connect"


async def test_connection_limit_is_never_exceeded(h: Harness) -> None:
    in_flight = 0
    most_in_flight = 0

    async def handler(peer: Peer) -> None:
        nonlocal in_flight, most_in_flight
        while (req := await peer.read_request()) is not None:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            await asyncio.sleep(0.03)
            in_flight -= 1
            await peer.send(ok(req.split(b" ")[1]))

    origin = await h.origin(handler)
    pool = h.pool(origin.port, limit=2)
    results = await asyncio.gather(*(fetch(pool, target=f"/{i}") for i in range(5)))
    assert [r[2] for r in results] == [f"/{i}".encode() for i in range(5)]
    assert origin.max_open <= 2
    assert most_in_flight == 2
    assert origin.accepted == 2


async def test_a_slot_wakeup_is_not_lost_when_the_woken_waiter_is_cancelled(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port, limit=1)
    first = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    b = asyncio.ensure_future(pool.request("GET", "/b", HOST))  # (no wait_for: this task is the one waiting)
    c = asyncio.ensure_future(fetch(pool, target="/c"))
    while len(pool._waiters) < 2:  # both wait for the one slot
        await asyncio.sleep(0)
    assert await read_body(first) == b"ok"
    first.release()  # wakes b...
    b.cancel()  # ...which is cancelled before it runs (say, its deadline expired at the same moment)
    assert (await asyncio.wait_for(c, WAIT))[2] == b"ok"
    with pytest.raises(asyncio.CancelledError):
        await b
    assert origin.accepted == 1  # c was served by the connection first released, not by a new one


async def test_cancelled_request_closes_its_connection(h: Harness) -> None:
    got_request = asyncio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            got_request.set()
            await peer.send(b"HTTP/1.1 200 OK\r\n")  # a slow head
            await peer.wait_eof()
        else:
            await peer.serve(lambda _req: ok(b"fresh"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    task = asyncio.ensure_future(pool.request("GET", "/slow", HOST))
    await asyncio.wait_for(got_request.wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)
    assert (await fetch(pool))[2] == b"fresh"
    assert origin.accepted == 2


async def test_cancelled_body_read_closes_the_connection(h: Harness) -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await peer.wait_eof()
        else:
            await peer.serve(lambda _req: ok(b"fresh"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(pool.request("GET", "/", HOST), WAIT)
    assert await resp.read() == b"abc"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(resp.read(), 0.02)
    resp.release()
    await asyncio.wait_for(origin.peers[0].eof.wait(), WAIT)
    assert (await fetch(pool))[2] == b"fresh"
    assert origin.accepted == 2


# ------------------------------------------------------------------------------- follow-ups to the review above


async def test_retry_at_a_full_pool_gets_a_fresh_connection(h: Harness) -> None:
    """limit=2, both slots idle, one of them stale: the retry's fresh connection gets the stale one's slot."""
    first_two = asyncio.Event()

    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await first_two.wait()
            await peer.send(ok(b"a"))  # kept alive... then closed by the origin
            return
        await peer.serve(lambda _req: ok(b"b"))

    origin = await h.origin(handler)
    pool = h.pool(origin.port, limit=2)
    t1 = asyncio.create_task(fetch(pool))
    t2 = asyncio.create_task(fetch(pool))
    await asyncio.sleep(0.05)
    first_two.set()
    assert sorted([(await t1)[2], (await t2)[2]]) == [b"a", b"b"]
    assert origin.accepted == 2
    # Two idle connections now fill the pool; LIFO picks peer 0's (closed) connection or peer 1's. Ask until
    # the stale one is hit: the fresh retry must not wait forever for a slot.
    for _ in range(2):
        assert (await asyncio.wait_for(fetch(pool), WAIT))[2] == b"b"
    assert origin.max_open <= 2


async def test_upload_waiting_for_a_drain_ends_when_the_connection_drops(h: Harness) -> None:
    """The origin answers early without reading the upload, then resets: the upload task ends by itself."""

    async def handler(peer: Peer) -> None:
        await peer.read_head()
        await peer.send(ok(b"too big", status=b"413 Payload Too Large"))
        await asyncio.sleep(0.3)  # the client's send buffer fills up: its upload waits for a drain
        sock = peer.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.writer.transport.abort()  # RST

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 65536

    origin = await h.origin(handler)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(
        pool.request("POST", "/up", [*HOST, ("content-length", str(1 << 40))], endless()), WAIT
    )
    assert resp.status == 413
    upload = resp._upload
    assert upload is not None
    # Not released yet (a caller still relaying the 413): the upload must not hang on a dead socket.
    done, _ = await asyncio.wait({upload}, timeout=WAIT)
    assert done and isinstance(upload.exception(), OriginBodyError)
    resp.release()


@pytest.mark.parametrize("where", ["target", "value"])
async def test_request_head_outside_latin1_is_a_clear_error(h: Harness, where: str) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    target, headers = ("/\u20ac", HOST) if where == "target" else ("/", [*HOST, ("x-a", "\u20ac")])
    with pytest.raises(OriginProtocolError, match="latin-1"):
        await pool.request("GET", target, headers)
    assert origin.accepted == 0


# ---------------------------------------------------------------------------------------------- bytes bodies, pools


async def test_a_bytes_body_goes_out_with_the_head_and_its_length(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    resp = await asyncio.wait_for(pool.request("POST", "/v1/chat", HOST, b'{"model":"m"}'), WAIT)
    assert resp.status == 200
    resp.release()
    raw = origin.peers[0].requests[0]
    assert raw.startswith(b"POST /v1/chat HTTP/1.1\r\n") and b"content-length: 13\r\n" in raw.lower()
    assert raw.endswith(b'\r\n\r\n{"model":"m"}') and b"transfer-encoding" not in raw.lower()


async def test_a_bytes_body_must_match_a_declared_length(h: Harness) -> None:
    origin = await h.origin(serve_all)
    pool = h.pool(origin.port)
    ok_resp = await asyncio.wait_for(pool.request("PUT", "/", [*HOST, ("Content-Length", "2")], b"ab"), WAIT)
    ok_resp.release()
    with pytest.raises(OriginProtocolError, match="does not match"):
        await pool.request("PUT", "/", [*HOST, ("Content-Length", "3")], b"ab")
    assert origin.accepted == 1  # refused before writing anything


async def test_an_idempotent_request_with_a_bytes_body_is_retried_on_a_stale_connection(h: Harness) -> None:
    async def close_after_first(peer: Peer) -> None:
        if peer.index == 0:
            await peer.read_request()
            await peer.send(ok())
            await peer.read_request()  # the next request arrives; the origin closes without an answer
            return
        await peer.serve()

    origin = await h.origin(close_after_first)
    pool = h.pool(origin.port)
    first = await asyncio.wait_for(pool.request("PUT", "/a", HOST, b"one"), WAIT)
    assert await first.read() == b"ok"
    first.release()
    second = await asyncio.wait_for(pool.request("PUT", "/b", HOST, b"two"), WAIT)
    assert second.status == 200
    second.release()
    assert origin.accepted == 2 and origin.peers[1].requests[0].endswith(b"\r\n\r\ntwo")


async def test_pools_per_authority_are_reused_and_bounded(h: Harness) -> None:
    origins = [await h.origin(serve_all) for _ in range(3)]
    pools = Pools(max_pools=2, connect_timeout=2.0)
    try:
        a = pools.get("http", "127.0.0.1", origins[0].port)
        assert pools.get("http", "127.0.0.1", origins[0].port) is a
        for origin in origins:
            resp = await asyncio.wait_for(pools.get("http", "127.0.0.1", origin.port).request("GET", "/", HOST), WAIT)
            assert await resp.read() == b"ok"
            resp.release()
        assert len(pools) == 2  # the least recently used (origins[0]) was closed
        assert [key[2] for key in pools.authorities()] == [origins[1].port, origins[2].port]
        await asyncio.wait_for(origins[0].peers[0].eof.wait(), WAIT)  # its idle connection was closed
        assert pools.get("http", "127.0.0.1", origins[0].port) is not a
    finally:
        await pools.close()
    assert len(pools) == 0
    with pytest.raises(ValueError):
        Pools(max_pools=0)
