"""The HTTP/1.1 protocol uvicorn runs, with a request-head deadline (slowloris guard).

uvicorn (httptools) has no bound on how long a request head may take: a client that connects and sends
nothing, or sends its headers a byte at a time, holds a connection (and a file descriptor) for ever; the
fault suite measured 300 such connections still open. ``guarded_protocol(seconds)`` returns uvicorn's
``HttpToolsProtocol`` with one addition: from the connection's start (first request) or a request's first
byte (later requests on a kept-alive connection) the head must be complete within ``[timeouts]
client_header``, else the connection is closed (nginx's ``client_header_timeout``). Idle time between
requests stays uvicorn's keep-alive timeout. With ``[server] http2`` it also offers each new connection's
first bytes to the ``server.h2`` switch (one call: ALPN ``h2`` or the h2c preface hand the connection to
the HTTP/2 protocol). Must not know about the app.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 20.0  # set on the bound subclass
    http2: Any = None  # a server.h2.Http2Switch, set on the bound subclass
    _head_timer: asyncio.TimerHandle | None = None
    _sniff: bytes | None = b""  # the first bytes, until the h2 switch has decided (None: decided)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        if self._sniff is not None:
            if self.http2 is None:
                self._sniff = None
            else:
                data = self._sniff + data
                verdict = self.http2.take(self.transport, data, self.server_state)
                if verdict is None:  # a prefix of the h2 preface so far
                    self._sniff = data
                    return
                self._sniff = None
                if verdict:  # the connection is HTTP/2's now
                    self._stop_head_timer()
                    self.connections.discard(self)
                    return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(header_timeout: float, http2: Any = None) -> type[GuardedHttpToolsProtocol]:
    return type("BoundGuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "http2": http2})
