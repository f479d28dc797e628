"""Callback mode for an origin response's body: the caller runs in the connection's data callback instead of a
task woken per read.

Owns ``DataWatch``: installed on the response's transport (``set_protocol``) in front of the ``http1``
connection, it forwards every read to the connection (llhttp parses and buffers exactly as for ``read``:
framing, the ``max_head_bytes`` and ``high_water`` bounds, errors) and then calls the caller's callback once
per read, after all of it has been handled; a lost connection is forwarded, then reported the same way.
``take`` is ``read`` without the wait (the buffered bytes; reading resumes if ``high_water`` had paused it),
``finished`` says the response ended or failed (``read`` then returns the rest, then b"", or raises). The
relay of a streamed answer (``inference.pump``) uses it so that an SSE event costs one call chain from the
socket to the client's write, with no future, no task step and no coroutine resumed per event.

``stop`` gives the transport back to the connection; it must run before the response is released (an idle
pooled connection must never call a finished request's callback). A friend of ``http1`` (as
``upstream.handover``): it reads that module's connection state and leaves its file as it is. Must not know
who the caller is or what the body is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sluicegate.upstream.http1 import OriginResponse, _Connection


class DataWatch(asyncio.Protocol):
    """The transport's protocol while a caller relays from the data callback (``start`` .. ``stop``)."""

    __slots__ = ("_callback", "_conn", "_transport")

    def __init__(self, response: OriginResponse, callback: Callable[[], None]) -> None:
        self._conn: _Connection = response._conn
        self._transport = self._conn.transport
        self._callback = callback

    def start(self) -> bool:
        """Install the watch. False (nothing installed) when the response has already ended or failed, or the
        connection is gone: the caller reads with ``read`` then."""
        conn, transport = self._conn, self._transport
        if transport is None or conn.closed or conn.complete or conn.error is not None:
            return False
        transport.set_protocol(self)
        return True

    def stop(self) -> None:
        transport = self._transport
        if transport is not None and transport.get_protocol() is self:
            transport.set_protocol(self._conn)

    # the connection's protocol, forwarded
    def data_received(self, data: bytes) -> None:
        self._conn.data_received(data)
        self._callback()

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn.connection_lost(exc)
        self._callback()

    def eof_received(self) -> bool | None:
        return self._conn.eof_received()

    def pause_writing(self) -> None:
        self._conn.pause_writing()

    def resume_writing(self) -> None:
        self._conn.resume_writing()

    # the response's state, for the callback
    def finished(self) -> bool:
        """The response ended or failed: what is buffered and the end (or the failure) are ``read``'s."""
        conn = self._conn
        return conn.complete or conn.error is not None

    def take(self) -> bytes:
        """The body bytes buffered so far, joined (b"" when none): ``read`` without the wait."""
        conn = self._conn
        chunks = conn.chunks
        if not chunks:
            return b""
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        conn.buffered = 0
        if conn.reading_paused and conn.transport is not None and not conn.closed:
            conn.reading_paused = False
            conn.transport.resume_reading()
        return data
