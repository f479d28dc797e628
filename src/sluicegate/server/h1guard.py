"""The HTTP/1.1 protocol uvicorn runs, with a request-head deadline (slowloris guard).

uvicorn (httptools) has no bound on how long a request head may take: a client that connects and sends
nothing, or sends its headers a byte at a time, holds a connection (and a file descriptor) for ever; the
fault suite measured 300 such connections still open. ``guarded_protocol(seconds)`` returns uvicorn's
``HttpToolsProtocol`` with one addition: from the connection's start (first request) or a request's first
byte (later requests on a kept-alive connection) the head must be complete within ``[timeouts]
client_header``, else the connection is closed (nginx's ``client_header_timeout``). Idle time between
requests stays uvicorn's keep-alive timeout. Must not know about the app.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 20.0  # set on the bound subclass
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

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


def guarded_protocol(header_timeout: float) -> type[GuardedHttpToolsProtocol]:
    return type("BoundGuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"header_timeout": header_timeout})
