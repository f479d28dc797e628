"""One HTTP/2 stream as an ASGI request/response cycle: the ``receive`` and ``send`` the app is given.

Owns the per-stream state and the ASGI semantics the faces rely on (the same as uvicorn's HTTP/1.1):
``receive`` returns the request body as it arrives (each chunk acknowledged to the connection's flow control
only when the app takes it, so what a client may make us hold is the stream's window), then blocks until
the response is complete (``http.disconnect``, the normal end) or the client reset the stream or left
(``http.disconnect`` at once: the faces' ``ClientWatch`` cancels the upstream work). ``send`` maps
``http.response.start`` to a HEADERS frame sent at once, each body chunk to DATA as it comes (waiting for
flow-control window and socket drain), ``more_body=False`` to END_STREAM. Sends after the client left are
dropped (as uvicorn does). Must not know about frames beyond the connection's calls, or about the faces.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from sluicegate.server.h2.headers import response_headers

if TYPE_CHECKING:
    from sluicegate.server.h2.connection import H2Protocol

_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


class Stream:
    __slots__ = ("body", "body_done", "closed", "complete", "conn", "delivered", "id", "scope", "started",
                 "task", "waiter", "window_waiter")

    def __init__(self, conn: H2Protocol, stream_id: int, scope: dict[str, Any]) -> None:
        self.conn = conn
        self.id = stream_id
        self.scope = scope
        self.body: deque[tuple[bytes, int]] = deque()  # (data, flow-controlled length) not yet read
        self.body_done = False  # the client ended its side (END_STREAM)
        self.delivered = False  # the last http.request (more_body False) was handed to the app
        self.started = False  # response head sent
        self.complete = False  # response END_STREAM sent
        self.closed = False  # reset (either side) or connection gone: nothing more is sent
        self.waiter: asyncio.Future[None] | None = None  # receive() waiting for body / the end
        self.window_waiter: asyncio.Future[None] | None = None  # send() waiting for window / drain
        self.task: asyncio.Task[None] | None = None

    # -- connection side ---------------------------------------------------------------------------------

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def wake_sender(self) -> None:
        w = self.window_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def gone(self) -> None:
        """Reset by the client (or by us), or the connection ended: the app sees ``http.disconnect``."""
        self.closed = True
        self.wake()
        self.wake_sender()

    # -- ASGI side ----------------------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.closed or self.complete:
                return _DISCONNECT
            if self.body:
                body = self.body
                if len(body) == 1:
                    data, n = body.popleft()
                else:
                    parts = list(body)
                    body.clear()
                    data = b"".join(p[0] for p in parts)
                    n = sum(p[1] for p in parts)
                self.conn.consumed(self, n)
                last = self.body_done
                if last:
                    self.delivered = True
                return {"type": "http.request", "body": data, "more_body": not last}
            if self.body_done and not self.delivered:
                self.delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            self.waiter = fut = self.conn.loop.create_future()
            try:
                await fut
            finally:
                self.waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response ended")
            if self.closed:
                return
            more = message.get("more_body", False)
            await self.conn.send_body(self, message.get("body", b""), not more)
            if not more:
                self.complete = True
                self.wake()
                self.conn.response_done(self)
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            if self.closed:
                return
            self.conn.send_head(self, response_headers(message["status"], message.get("headers", ()),
                                                           self.conn.options.never_indexed))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP/2 stream")
