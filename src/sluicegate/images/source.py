"""An image source's body read straight from the origin's socket into our own buffer (``BufferedProtocol``).

Owns: ``SourceReader``, which takes over the rest of a ``Content-Length`` body from the origin client
(``upstream.handover.detach_body``) and has the event loop's socket reads land in a buffer we chose: the whole
source's own buffer, sized once from the length (a source read whole), or one reused buffer whose bytes
go into the decoder's pipe (a streamed source, ``images.stream``). The origin client's ordinary reads make
a bytes object per socket read, the parser copies each into another, and the reader joins and appends
them: three copies and fresh allocations (page faults) per byte, measured at ~1 ms of the loop's CPU per
MB of source (docs/images.md). Here: one copy, by the kernel, into memory already there. When the last
byte is in, the connection goes back to the origin client, reusable as after an ordinary read.

Reading never goes past the body (a read's buffer is at most the bytes still to come); a connection lost
early raises the origin client's own ``OriginError``. The caller bounds waiting (``asyncio.timeout``) and
releases the response as usual (a body not read to the end closes the connection).
Must not know about images, libvips or HTTP framing beyond a length.
"""

from __future__ import annotations

import asyncio

from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.handover import DetachedBody


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
