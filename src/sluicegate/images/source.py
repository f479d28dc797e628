"""An image source's body read straight from the origin's socket into our own buffer (``BufferedProtocol``).

Owns: ``SourceReader``, which takes over the rest of a ``Content-Length`` body from the origin client
(``upstream.handover.detach_body``) and has the event loop's socket reads land in a buffer we chose: the whole
source's own buffer, sized once from the length (a source read whole), or one reused buffer whose bytes
go into the decoder's pipe (a streamed source, ``images.stream``). The origin client's ordinary reads make
a bytes object per socket read, the parser copies each into another, and the reader joins and appends
them: three copies and fresh allocations (page faults) per byte, measured at ~1 ms of the loop's CPU per
MB of source (docs/images.md). Here: one copy, by the kernel, into memory already there. When the last
byte is in, the connection goes back to the origin client, reusable as after an ordinary read.

A streamed source on a plain TCP connection can instead be moved from the socket into the decoder's pipe by
``splice(2)`` (``splice_into``): the bytes go from the socket's buffers into the pipe inside the kernel, never
through our memory (the read buffer's copy in and the pipe write's copy out are both gone, and a pump step
moves up to a pipe's worth, waking for the origin only once ``SPLICE_LOWAT`` bytes are in: ``SO_RCVLOWAT``);
TLS connections (the bytes must be decrypted here) keep ``readinto``.

Reading never goes past the body (a read's buffer, or a splice, is at most the bytes still to come); a
connection lost early raises the origin client's own ``OriginError``. The caller bounds waiting
(``asyncio.timeout``) and releases the response as usual (a body not read to the end closes the connection).
Must not know about images, libvips or HTTP framing beyond a length.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import termios

from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.handover import DetachedBody

SPLICE_BYTES = 1024 * 1024  # at most per splice: the decoder's pipe's size (images.stream.PIPE_BYTES)
SPLICE_LOWAT = 256 * 1024  # a wait for the origin ends once this much (or the rest of the body) is in the socket
_SPLICE_F_MOVE = getattr(os, "SPLICE_F_MOVE", 1)
_SPLICE_F_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 2)


def _pending(fd: int) -> int:
    """Bytes waiting in a socket's receive queue (FIONREAD)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0


class SourceReader(asyncio.BufferedProtocol):
    """The rest of one body (``remaining`` bytes), read into the views ``readinto`` is given."""

    def __init__(self, body: DetachedBody) -> None:
        self._body = body
        self.remaining = body.remaining
        self.received = 0  # bytes read so far (also those of a view not yet handed back)
        self._transport = body.transport
        self._view: memoryview | None = None
        self._filled = 0
        self._want = 0  # wake the reader once this many bytes are in the view
        self._waiter: asyncio.Future[None] | None = None
        self._error: OriginError | None = None
        self._paused = True
        self._transport.pause_reading()
        self._transport.set_protocol(self)
        self._splice_sock: socket.socket | None = None  # on our duplicate of the socket's descriptor, while splicing
        self._lowat = 1  # SO_RCVLOWAT set on the socket while splicing (1: the kernel's default)
        self._dry = False  # the socket was found empty: the next splice_into waits for the origin first

    def can_splice(self) -> bool:
        """The body can be moved by ``splice_into``: a plain (not TLS) socket, on Linux."""
        sock = self._transport.get_extra_info("socket")
        return (hasattr(os, "splice") and sock is not None and self._transport.get_extra_info("sslcontext") is None
                and not self._transport.is_closing())

    # -------------------------------------------------------------- asyncio.BufferedProtocol

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self._view is not None
        return self._view[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        assert self._view is not None
        self._filled += nbytes
        self.remaining -= nbytes
        self.received += nbytes
        if self.remaining == 0:
            self._paused = False  # the connection's own protocol reads from here on
            self._view = None
            self._body.done()
        elif self._filled == len(self._view):
            self._pause()
        if self._filled >= self._want:
            self._wake()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost says the body ended early

    def connection_lost(self, exc: Exception | None) -> None:
        if self.remaining:
            self._error = self._body.lost(exc)
        else:
            self._body.lost(exc)
        self._wake()

    # -------------------------------------------------------------- used by the image's request

    async def readinto(self, view: memoryview, *, whole: bool = False) -> int:
        """Read into ``view`` (at most ``remaining`` bytes): as soon as some are in, or (``whole``) once it
        is full. Returns the bytes read; 0 at the end of the body. Raises the origin client's
        ``OriginError`` when the connection is lost before the end."""
        if self._error is not None:
            raise self._error
        size = min(len(view), self.remaining)
        if size == 0:
            return 0
        self._view = view[:size]
        self._filled = 0
        self._want = size if whole else 1
        self._resume()
        try:
            while self._filled < self._want and self._error is None:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
        finally:
            self._waiter = None
            if self.remaining:
                self._pause()  # the next view is not there yet: the kernel's buffer waits (backpressure)
                self._view = None
        if self._filled < self._want and self._error is not None:
            raise self._error
        return self._filled

    def arrived(self) -> int:
        """Bytes of the rest of the body the origin has sent so far: moved, plus any waiting in the socket
        (below ``SO_RCVLOWAT``, a stalled origin's last bytes are not moved: the 504 still counts them)."""
        sock = self._splice_sock
        return self.received + (_pending(sock.fileno()) if sock is not None else 0)

    async def splice_into(self, fd: int, timeout: float | None = None) -> tuple[int, bool]:
        """Move the next bytes of the body from the socket into the pipe ``fd``, inside the kernel, until the
        pipe is full, the socket is empty or the body is done; returns how many, and whether the pipe was
        found full (the caller then waits for the decoder before it calls again); (0, False) at the end of
        the body. A call that finds the socket empty before it has moved anything waits for the origin, at
        most ``timeout`` seconds (then ``TimeoutError``; None: the caller bounds it; what earlier calls
        returned is all that moved). A call that does not wait arms no timer. Raises the origin client's
        ``OriginError`` when the connection ends early (after returning the bytes moved before the end),
        ``BrokenPipeError`` when the pipe's reader is gone.

        One call per socketful or pipeful, not per socket read or freed pipe page, and a wait for the
        origin wakes only once
        ``SPLICE_LOWAT`` bytes (or the rest of the body) are in the socket (``SO_RCVLOWAT``, restored before
        the connection is handed back): measured at ~13 loop wake-ups per MiB of source before, each a
        Python round of the pump. The transport stays paused throughout (it reads nothing behind our back);
        we wait on our own duplicate of its descriptor, and hand the connection back (``done``) after the
        last byte."""
        if self._error is not None:
            raise self._error
        if self.remaining == 0:
            return 0, False
        if self._splice_sock is None:
            self._splice_sock = socket.socket(fileno=os.dup(self._transport.get_extra_info("socket").fileno()))
        sfd = self._splice_sock.fileno()
        loop = asyncio.get_running_loop()
        moved = 0
        while True:
            if self._dry:  # only in a call that has moved nothing yet: the caller's count is exact on a stall
                if timeout is None:
                    await self._socket_readable(loop, sfd)
                else:
                    async with asyncio.timeout(timeout):
                        await self._socket_readable(loop, sfd)
                self._dry = False
            want = min(self.remaining, SPLICE_BYTES)
            try:
                n = os.splice(sfd, fd, want, flags=_SPLICE_F_MOVE | _SPLICE_F_NONBLOCK)
            except BlockingIOError:  # no bytes from the origin yet, or the pipe is full
                if _pending(sfd) > 0:
                    return moved, True
                self._dry = True
                if moved:
                    return moved, False
                continue
            except BrokenPipeError:
                raise
            except OSError as exc:  # the origin reset the connection
                self._end_splice()
                self._error = self._body.lost(exc)
                if moved:  # these bytes are counted first; the next call raises
                    return moved, False
                raise self._error from None
            if n == 0:  # the origin closed before the end of the body
                self._end_splice()
                self._error = self._body.lost(None)
                if moved:
                    return moved, False
                raise self._error
            self.remaining -= n
            self.received += n
            moved += n
            if self.remaining == 0:
                self._end_splice()
                self._paused = False  # the connection's own protocol reads from here on
                self._body.done()
                return moved, False
            if n < want:  # the socket ran dry, or the pipe is (nearly) full: never a splice per freed page
                if _pending(sfd) > 0:
                    return moved, True
                self._dry = True  # the next call waits for the origin first
                return moved, False

    async def _socket_readable(self, loop: asyncio.AbstractEventLoop, sfd: int) -> None:
        lowat = min(self.remaining, SPLICE_LOWAT)
        sock = self._splice_sock
        if lowat != self._lowat and sock is not None:
            with contextlib.suppress(OSError):  # the wait then ends at the first byte, as without it
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
                # Linux >= 4.18 grows the receive buffer to hold it; an older kernel might never hold that many
                # bytes (the wait would end only at source_timeout): ask for what the buffer holds
                rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                if rcvbuf < lowat:
                    lowat = max(rcvbuf // 2, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
                self._lowat = lowat
        waiter = self._waiter = loop.create_future()
        loop.add_reader(sfd, self._wake)
        try:
            await waiter
        finally:
            loop.remove_reader(sfd)
            self._waiter = None
        if self._error is not None:  # the transport saw the connection go (connection_lost)
            raise self._error

    def _end_splice(self) -> None:
        sock, self._splice_sock = self._splice_sock, None
        if sock is not None:  # never registered here: _socket_readable removes its reader before it returns
            if self._lowat != 1:  # the option is the socket's, shared with the transport: back to the default
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                self._lowat = 1
            sock.close()

    def close(self) -> None:
        """Drop our duplicate descriptor (the request is over, however it ended); idempotent."""
        if self._splice_sock is not None:
            self._end_splice()

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            if not self._transport.is_closing():
                self._transport.pause_reading()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
