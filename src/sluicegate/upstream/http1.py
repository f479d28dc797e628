"""The origin client of both faces (publisher origins, inference providers): pooled keep-alive HTTP/1.1
connections, framing parsed by llhttp.

Why not aiohttp on this path (figures in docs/stack.md): a relay's per-request cost is what limits req/s,
and aiohttp's general-purpose client (cookie and redirect machinery, multidicts, a StreamReader with its
own timers, a separate writer task per request) costs more per request and per body chunk than this
purpose-built one. Framing (status line, headers, Content-Length, chunked, consecutive messages on one
connection) is done by llhttp through ``httptools``, the parser uvicorn and Node use; this module owns:

* the pool: at most ``limit`` connections, LIFO reuse of idle ones, idle ones dropped after
  ``keepalive_timeout``, one retry on a fresh connection when a reused one turns out to be closed before
  any response byte (only for requests without a body, or whose whole body is given as bytes: nothing
  can have been consumed); with ``tunnel``, every connection is opened through that proxy (CONNECT,
  ``upstream/proxy.py``) and TLS runs inside the tunnel;
* serialisation of the request head, a ``bytes`` body written with it, or a streamed request body (the
  client's ``Content-Length``, or chunked when it has none), written with the transport's backpressure,
  concurrently with waiting for the response (an origin may answer, e.g. 413, before the upload ends);
* the framing facts llhttp leaves to its caller: a response to HEAD has no body, a body with neither
  ``Content-Length`` nor chunked coding ends at EOF (any other EOF before the end is a truncation),
  1xx interim responses are skipped, a 101 is refused, and a connection is reused only when request and
  response are both complete and the origin keeps it alive;
* bounds: the response head is limited to ``max_head_bytes``; at most ``high_water`` body bytes wait in
  memory before reading from the origin pauses (the client's backpressure reaches the origin).

Timeouts: the pool bounds what only it can see (``connect_timeout`` for a new connection,
``keepalive_timeout`` for an idle one); every wait for the origin's bytes is the caller's to bound
(``edge.deadline.Deadline`` cancels the waiting task). A cancelled or failed exchange closes its
connection, it is never reused.

Raises only ``upstream.errors`` kinds (and ``CancelledError``); knows nothing of ASGI or of who the
caller serves: a request body whose source stops (e.g. the caller's client left) is reported by the
caller raising ``BodySourceStopped`` from its body iterator, which ``request`` re-raises as it is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import cast

import httptools

from sluicegate.upstream.errors import (
    BodySourceStopped,
    OriginBodyError,
    OriginClosedError,
    OriginConnectError,
    OriginError,
    OriginProtocolError,
)
from sluicegate.upstream.proxy import Proxy, open_tunnel
from sluicegate.upstream.tls import client_context

_NO_BODY_STATUS = frozenset({204, 304})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class _Connection(asyncio.Protocol):
    """One origin connection and the state of the exchange running on it (at most one at a time)."""

    def __init__(self, pool: OriginPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.served = 0  # exchanges completed on this connection
        self.idle_since = 0.0
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._begin(head_only=False)
        self.active = False

    # -------------------------------------------------------------- exchange state

    def _begin(self, *, head_only: bool) -> None:
        self.active = True
        self.head_only = head_only
        self.head: asyncio.Future[None] = self.loop.create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.head_received = 0  # raw bytes fed while the head is incomplete (interim responses included)
        self.interim = False
        self.keep_alive = False
        self.until_eof = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.reading_paused = False
        self.complete = False
        self.error: OriginError | None = None
        self.received_any = False
        self.waiter: asyncio.Future[None] | None = None

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a small request head must not wait on Nagle
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:
            # Bytes nobody asked for (after a complete response, or on an idle connection): the stream
            # can no longer be trusted to frame the next response.
            self._fail(OriginProtocolError("origin sent bytes outside any response"))
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(OriginProtocolError("origin switched protocols (101); only HTTP/1.1 is proxied"))
        except httptools.HttpParserError as exc:
            if self.error is None:
                self._fail(OriginProtocolError(f"invalid response from origin: {exc}"))
            else:
                self._fail(self.error)
            return
        if not self.head.done():
            # httptools hands a header (and llhttp the status line) over only once it ends: an endless one
            # would grow in memory, or be waited for, without on_header's bound ever being checked.
            self.head_received += len(data)
            if self.head_received > self.pool.max_head_bytes:
                self._fail(OriginProtocolError(f"response head exceeds {self.pool.max_head_bytes} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.pool._lost(self)
        drain = self._drain
        if drain is not None and not drain.done():  # an upload waiting for the socket to drain: it never will
            drain.set_exception(OriginBodyError("origin connection closed while the request body was being sent"))
            drain.exception()
        if not self.active or self.complete or self.error is not None:
            return  # (an exchange that already failed keeps its first cause, e.g. a protocol error)
        if not self.head.done():
            self._fail(OriginClosedError("origin closed the connection before the response head"))
        elif self.until_eof and exc is None:
            self.complete = True  # a body without Content-Length or chunked coding ends here
            self._wake()
        else:
            self._fail(OriginBodyError("origin connection ended before the end of the body"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # -------------------------------------------------------------- llhttp callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            # A second response in the same bytes: never relay it as part of the first.
            self.error = OriginProtocolError("origin sent bytes after the end of the response")
            raise self.error

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.pool.max_head_bytes:
            self.error = OriginProtocolError(f"response head exceeds {self.pool.max_head_bytes} bytes")
            raise self.error
        if self.head.done():
            return  # a trailer field (after a chunked body): the caller already has the head's headers
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101:
            # Refused here, before the head is handed over (llhttp reports the upgrade only after it).
            self.error = OriginProtocolError("origin switched protocols (101); only HTTP/1.1 is proxied")
            raise self.error
        if 100 <= status < 200:
            self.interim = True  # 100 Continue / 103 Early Hints: the real response follows
            self.headers = []
            self.head_bytes = 0
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()  # llhttp answers this only until the message ends
        if not self.head_only and status not in _NO_BODY_STATUS:
            framed = False
            for name, value in self.headers:
                low = name.lower()
                if low == b"content-length":
                    framed = True  # (llhttp itself rejects a response carrying both)
                    break
                if low == b"transfer-encoding":
                    # The last coding of the last field decides, as for llhttp: "chunked" then "gzip" ends at EOF.
                    framed = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
            self.until_eof = not framed
        if not self.head.done():
            self.head.set_result(None)
        if self.head_only:
            self.complete = True  # whatever follows is not a body; the connection is not reused

    def on_body(self, body: bytes) -> None:
        if self.interim:
            # A 1xx has no content, but llhttp frames an unknown one by its Content-Length: never relay
            # those bytes as the final response's body.
            self.error = OriginProtocolError("origin sent a body with an interim (1xx) response")
            raise self.error
        if self.head_only:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > self.pool.high_water and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self._wake()

    # -------------------------------------------------------------- used by the exchange

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: OriginError) -> None:
        self.error = error
        if self.active and not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: a caller that was cancelled must not leave a warning
        self._wake()
        self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.error is not None:
            raise OriginBodyError("origin connection closed while the request body was being sent")
        self.transport.write(data)
        if self._write_paused:
            self._drain = self.loop.create_future()
            await self._drain

    async def read(self) -> bytes:
        """Body bytes buffered so far (joined), waiting for some if there are none; b"" at the end."""
        while True:
            chunks = self.chunks
            if chunks:
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.buffered = 0
                if self.reading_paused and self.transport is not None and not self.closed:
                    self.reading_paused = False
                    self.transport.resume_reading()
                return data
            if self.complete:
                return b""
            if self.error is not None:
                raise self.error
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    def reusable(self) -> bool:
        return (
            self.complete
            and self.error is None
            and not self.closed
            and not self.head_only
            and not self.until_eof
            and not self.chunks
            and self.keep_alive
        )


class OriginResponse:
    """Status, raw headers and the body of one origin response; ``release()`` ends the exchange."""

    __slots__ = ("_conn", "_pool", "_upload", "headers", "status")

    def __init__(self, pool: OriginPool, conn: _Connection, upload: asyncio.Task[None] | None) -> None:
        self._pool = pool
        self._conn = conn
        self._upload = upload
        self.status = conn.status
        self.headers = conn.headers

    def read(self) -> collections.abc.Coroutine[object, object, bytes]:
        return self._conn.read()

    def at_eof(self) -> bool:
        conn = self._conn
        return conn.complete and not conn.chunks

    def ready(self) -> bool:
        """``read()`` will return at once (bytes buffered, the end reached, or a failure) without waiting."""
        conn = self._conn
        return bool(conn.chunks) or conn.complete or conn.error is not None

    def release(self) -> None:
        """Return the connection to the pool if the exchange ended cleanly, else close it. Idempotent."""
        conn = self._conn
        if not conn.active:
            return
        conn.active = False
        upload = self._upload
        if upload is not None and (not upload.done() or upload.cancelled() or upload.exception() is not None):
            # The request body did not (yet) end as declared: the origin may still wait for the rest,
            # so this connection's next bytes cannot be trusted to frame anything.
            upload.cancel()
            conn.abort()
            return
        if conn.reusable():
            conn.served += 1
            self._pool._idle_push(conn)
        else:
            conn.abort()


class OriginPool:
    """Keep-alive connections to one origin (``scheme://host:port``), shared by a worker's requests."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        verify_tls: bool = True,
        limit: int = 512,
        keepalive_timeout: float = 30.0,
        max_head_bytes: int = 64 * 1024,
        high_water: int = 256 * 1024,
        server_name: str | None = None,
        tunnel: Proxy | None = None,
        ca_file: str = "",
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host = host.strip("[]")
        # TLS name (SNI + certificate check) when ``host`` is an address resolved and checked by the
        # caller (first-party fetches connect to the address they vetted, not to a name again).
        self.server_name = server_name.strip("[]") if server_name else self.host
        self.port = port
        self.connect_timeout = connect_timeout
        self.limit = limit
        self.keepalive_timeout = keepalive_timeout
        self.max_head_bytes = max_head_bytes
        self.high_water = high_water
        self.tunnel = tunnel  # connect through this proxy with CONNECT (upstream/proxy.py)
        self.ssl: ssl.SSLContext | None = None
        if scheme == "https":
            self.ssl = client_context(verify=verify_tls, ca_file=ca_file)  # SNI: server_name, below
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closing = False

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None = None,
    ) -> OriginResponse:
        """Send the request; return at the response head. Raises ``OriginError`` (or ``BodySourceStopped``).

        A ``bytes`` body is sent with the head in one write (its ``Content-Length`` added unless given, and a
        given one that differs refused);
        an async iterator is streamed (chunked when no ``Content-Length`` is given)."""
        chunked = False
        whole = isinstance(body, bytes)
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        for name, value in headers:
            lines.append(f"{name}: {value}\r\n")
        declared = next((v.strip() for n, v in headers if n.lower() == "content-length"), None)
        size = len(cast(bytes, body)) if whole else 0
        if whole and declared is not None and declared != str(size):
            # A length that is not the body's would leave the origin waiting for bytes, or read the rest as
            # the next request: refused before anything is written.
            raise OriginProtocolError(f"content-length {declared} does not match the {size}-byte body")
        if body is not None and declared is None:
            if whole:
                lines.append(f"content-length: {size}\r\n")
            else:
                chunked = True
                lines.append("transfer-encoding: chunked\r\n")
        lines.append("\r\n")
        head_text = "".join(lines)
        # Each line must end where we ended it: a CR or LF inside a name, value or target would let a
        # request smuggle a second one. Two C-level counts instead of a scan per header.
        if head_text.count("\n") != len(lines) or head_text.count("\r") != len(lines) or "\0" in head_text:
            raise OriginProtocolError("request head contains a control character (CR, LF or NUL)")
        try:
            head = head_text.encode("latin-1")
        except UnicodeEncodeError:
            raise OriginProtocolError("request head is not representable in latin-1") from None
        head_only = method == "HEAD"
        if whole:
            head += cast(bytes, body)
        # Sent twice only when nothing of it can have been consumed or acted on: an idempotent request
        # without a body (as nginx's proxy_next_upstream), or a request whose whole body we hold, on a
        # kept-alive connection that the origin closed before answering a byte (its idle-close race).
        retry_safe = (body is None and method in _IDEMPOTENT) or whole
        for attempt in (0, 1):
            conn = await self._acquire(fresh=attempt > 0)
            conn._begin(head_only=head_only)
            upload: asyncio.Task[None] | None = None
            try:
                assert conn.transport is not None
                conn.transport.write(head)
                if body is not None and not whole:
                    upload = asyncio.ensure_future(_upload(conn, cast(AsyncIterator[bytes], body), chunked))
                    upload.add_done_callback(_on_upload_done(conn))
                await conn.head
            except OriginClosedError:
                if upload is not None:
                    upload.cancel()
                conn.active = False
                conn.abort()
                if retry_safe and conn.served and not conn.received_any and attempt == 0:
                    continue  # a kept-alive connection the origin had just closed: retry once, fresh
                raise
            except BaseException:
                if upload is not None:
                    upload.cancel()
                conn.active = False
                conn.abort()
                raise
            return OriginResponse(self, conn, upload)
        raise AssertionError("unreachable")

    def _pop_idle(self) -> _Connection | None:
        """The most recently used idle connection still worth using; dead or expired ones are closed."""
        now = self.loop.time()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_timeout:
                return conn
            conn.abort()
        return None

    async def _acquire(self, *, fresh: bool) -> _Connection:
        if not fresh and (conn := self._pop_idle()) is not None:
            return conn
        while self._open >= self.limit:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled before running: pass the wake-up on, else it is lost
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if not fresh and (conn := self._pop_idle()) is not None:
                return conn
        self._open += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.tunnel is not None:
                    _, proto = await open_tunnel(
                        self.tunnel,
                        self.host,
                        self.port,
                        lambda: _Connection(self),
                        self.ssl,
                        self.server_name if self.ssl is not None else None,
                    )
                else:
                    _, proto = await self.loop.create_connection(
                        lambda: _Connection(self),
                        self.host,
                        self.port,
                        ssl=self.ssl,
                        server_hostname=self.server_name if self.ssl is not None else None,
                    )
        except TimeoutError:
            self._released_slot()
            raise OriginConnectError(f"connect to origin timed out after {self.connect_timeout:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            self._released_slot()
            raise OriginConnectError(f"cannot connect to origin: {exc.__class__.__name__}") from None
        except BaseException:
            self._released_slot()
            raise
        assert isinstance(proto, _Connection)
        return proto

    def _released_slot(self) -> None:
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _lost(self, conn: _Connection) -> None:
        self._released_slot()

    def _idle_push(self, conn: _Connection) -> None:
        if self._closing:
            conn.abort()
            return
        now = self.loop.time()
        conn.idle_since = now
        idle = self._idle
        # The oldest idle connection sits at the bottom of the stack: drop it once it has idled too long.
        if idle and now - idle[0].idle_since >= self.keepalive_timeout:
            idle.pop(0).abort()
        idle.append(conn)
        self._wake_one()  # someone waits for a slot: an idle connection serves as one

    async def close(self) -> None:
        self._closing = True
        for conn in self._idle:
            conn.abort()
        self._idle.clear()


def _on_upload_done(conn: _Connection) -> collections.abc.Callable[[asyncio.Task[None]], None]:
    """An upload that fails before the response head fails the exchange (its source stopped, or the origin)."""

    def done(task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None or conn.head.done():
            return
        if isinstance(exc, BodySourceStopped):
            conn.head.set_exception(exc)
            conn.head.exception()
        elif isinstance(exc, OriginError):
            conn._fail(exc)
        else:
            conn._fail(OriginBodyError(f"sending the request body failed: {exc.__class__.__name__}"))

    return done


async def _upload(conn: _Connection, body: AsyncIterator[bytes], chunked: bool) -> None:
    if chunked:
        async for chunk in body:
            if chunk:
                await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        await conn.write(b"0\r\n\r\n")
    else:
        async for chunk in body:
            await conn.write(chunk)
