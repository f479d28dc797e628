"""One request/response exchange of the native HTTP/1.1 core: the ASGI ``receive``/``send`` pair and its task.

Owns, for one request: the ``edge.asgi.DISCONNECT_HOOK`` callback (``watch_disconnect``: called from
``lost``, no task), the request body as it arrives (a bounded buffer: over ``BODY_HIGH_WATER`` the
connection stops reading until the app takes it; ``receive`` resumes it), ``100 Continue`` when the app
first asks for the body, ``http.disconnect`` as soon as the connection is lost (and once the response is
complete, as uvicorn does, so a disconnect watcher ends without a cancel), and the response on the wire:

* the fast path: ``http.response.start`` does not write; the head is held until the first body message
  or the end of the current loop turn (``loop.call_soon``), whichever comes first, so head and first
  chunk leave in one write while a head whose body is late is still on the wire at once;
* each chunk's framing and data in one write, the last chunk with the terminating ``0\\r\\n\\r\\n``;
  big chunks (and a big first body after the held head) go through ``writelines`` (one ``writev``, no copy);
  a ``Content-Length`` body after the head is written as it is (``write``: sent at once, no copy);
* ``send`` awaits nothing unless the transport asked us to pause (``pause_writing``): no task switch
  per chunk; the transport's write buffer is bounded by its high-water mark;
* the guarantees: more or fewer bytes than ``Content-Length`` aborts the connection; an exception or
  ``ResponseAborted`` after the head aborts it (``transport.abort()``: the client sees a reset, never a
  clean end of a truncated body); before the head, a 500 and close.

Must not know: the connection's parser or other requests (``protocol.H1Protocol`` owns those), the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sluicegate.edge.asgi import ClientGone, ResponseAborted, Tally, count_sent
from sluicegate.server.h1 import framing as fr

if TYPE_CHECKING:
    from sluicegate.server.h1.protocol import H1Protocol

log = logging.getLogger("sluicegate.h1")

BODY_HIGH_WATER = 64 * 1024  # request body bytes held for the app before the connection stops reading
_WRITEV_MIN = 16 * 1024  # bodies from this size go out with writelines (no copy) instead of one joined write
_DISCONNECT = {"type": "http.disconnect"}
_QUIET = (ResponseAborted, ClientGone, asyncio.CancelledError)
_DONE_SCOPE: dict[str, Any] = {}  # a started cycle's ``scope`` (the app has it; see ``run``)


class Cycle:
    __slots__ = (
        "_flush_handle", "_on_disconnect", "_pending", "_tally", "_waiter", "body", "body_size", "complete",
        "disconnected", "expect_100", "final_body_sent", "head_request", "http10", "keep_alive", "mode", "more_body",
        "proto", "remaining", "scope", "started", "task", "transport",
    )

    def __init__(
        self, proto: H1Protocol, scope: dict[str, Any], *, keep_alive: bool, expect_100: bool, http10: bool
    ) -> None:
        self.proto = proto
        self.transport = proto.transport
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_100 = expect_100
        self.http10 = http10
        self.head_request = scope["method"] == "HEAD"
        self.body: list[bytes] = []
        self.body_size = 0
        self.more_body = True
        self.final_body_sent = False  # the app has been given more_body=False
        self.disconnected = False
        self.started = False
        self.complete = False
        self.mode = fr.FRAME_NONE
        self.remaining = -1
        self._waiter: asyncio.Future[None] | None = None
        self._pending: list[bytes] | None = None  # the held head (and nothing else)
        self._flush_handle: asyncio.Handle | None = None
        self._on_disconnect: Callable[[], None] | None = None
        self._tally: Tally | None = None  # the observer's record (``tally``), kept current by receive/send
        self.task: asyncio.Task[None] | None = None  # the task running ``run``, while in ``ServerState.tasks``

    # -- from the protocol -------------------------------------------------------------------------
    def feed_body(self, data: bytes) -> bool:
        """Body bytes from the parser; True when the buffer is over its high-water mark."""
        if self.complete or self.disconnected:
            return False  # answered already: the rest of the body is read and dropped
        self.body.append(data)
        self.body_size += len(data)
        self._wake()
        return self.body_size > BODY_HIGH_WATER

    def end_body(self) -> None:
        self.more_body = False
        self._wake()

    def lost(self) -> None:
        """The connection is gone."""
        if not self.complete:
            self.disconnected = True
        self._pending = None
        self._wake()
        callback = self._on_disconnect
        if callback is not None and self.disconnected:
            self._on_disconnect = None
            callback()

    def watch_disconnect(self, callback: Callable[[], None]) -> None:
        """``edge.asgi.DISCONNECT_HOOK``: ``callback()`` once when the connection is lost before the response is
        complete (at once if it already is); never after the response is complete."""
        if self.disconnected:
            callback()
        elif not self.complete:
            self._on_disconnect = callback

    def tally(self, record: Tally) -> None:
        """``edge.asgi.OBSERVE_HOOK``: keep ``record``'s status, time to head and body byte counts current."""
        self._tally = record

    def write_more(self, body: bytes) -> bool:
        """``edge.asgi.BODY_WRITE``: ``body`` (non-empty) as one more chunk, framed and written as ``send`` writes
        it, when ``send`` would write it at once; False (nothing written) otherwise: the caller uses ``send``."""
        if (self.proto.write_paused or self._pending is not None or self.mode != fr.FRAME_CHUNKED or self.complete
                or not self.started):
            return False
        if self.disconnected:
            return True  # as ``send``: nothing goes to a client that left (its handler is being cancelled)
        size = len(body)
        if size >= _WRITEV_MIN:
            self.transport.writelines([b"%x\r\n" % size, body, fr.CRLF])
        else:
            self.transport.write(b"%x\r\n%b\r\n" % (size, body))
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the task ----------------------------------------------------------------------------------
    async def run(self, app: Any) -> None:
        # The scope holds this cycle's ``watch_disconnect`` (a reference cycle: cycle -> scope -> bound method ->
        # cycle). Dropped here, the exchange's objects (scope, headers, the request's info) die by reference count
        # when the app returns instead of waiting, ~13 per request, for the cyclic collector.
        scope = self.scope
        self.scope = _DONE_SCOPE
        try:
            await app(scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, _QUIET):
                log.error("exception in the ASGI app (%s %s)", scope["method"], scope["path"], exc_info=exc)
            if not self.started:
                if not self.disconnected:
                    self._answer_500()
            elif not self.complete:
                self._abort()
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            if not self.started:
                if not self.disconnected:
                    log.error("the ASGI app returned without a response (%s %s)", scope["method"], scope["path"])
                    self._answer_500()
            elif not self.complete and not self.disconnected:
                log.error("the ASGI app returned before its response was complete: aborted")
                self._abort()
        finally:  # out of the worker's in-flight set (``protocol._start``): no done-callback and its loop turn
            task = self.task
            if task is not None:
                self.task = None
                self.proto.state.tasks.discard(task)

    def _abort(self) -> None:
        """After the commit: the head (if still held) goes out, then the connection is reset."""
        self._flush_head()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.transport.abort()

    def _answer_500(self) -> None:
        self.started = self.complete = True
        transport = self.transport
        if not transport.is_closing():
            transport.write(fr.SERVER_ERROR)
            transport.close()

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.disconnected or self.complete:
                return _DISCONNECT
            if self.expect_100:
                self.expect_100 = False
                if not self.started and not self.transport.is_closing():
                    self.transport.write(fr.CONTINUE_100)
            if self.body or (not self.more_body and not self.final_body_sent):
                body = self.body
                data = body[0] if len(body) == 1 else b"".join(body)
                self.body = []
                self.body_size = 0
                if self._tally is not None:
                    self._tally.bytes_in += len(data)
                if not self.more_body:
                    self.final_body_sent = True
                else:
                    self.proto.resume_body()
                return {"type": "http.request", "body": data, "more_body": self.more_body}
            if self.more_body:
                self.proto.resume_body()
            waiter = self._waiter = self.proto.loop.create_future()
            await waiter

    async def send(self, message: dict[str, Any]) -> None:
        proto = self.proto
        kind = message["type"]
        tally = self._tally
        if tally is not None:  # counted as the observer's send wrapper counts: every message, before anything
            count_sent(tally, message)
        if proto.write_paused and not self.disconnected:
            await proto.drain()
        if self.disconnected:
            return
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self.started = True
            self.expect_100 = False
            try:
                head, self.mode, self.remaining, self.keep_alive = fr.encode_head(
                    message["status"], message.get("headers", ()), keep_alive=self.keep_alive,
                    head_request=self.head_request, http10=self.http10)
            except fr.HeadError:
                self.started = False  # nothing written: the failure is answered with a 500
                raise
            self._pending = [head]
            self._flush_handle = proto.loop.call_soon(self._flush_head)
            return
        if self.complete:
            raise RuntimeError(f"unexpected {kind!r} after the response was complete")
        if kind != "http.response.body":
            raise RuntimeError(f"expected 'http.response.body', got {kind!r}")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        mode = self.mode
        if mode == fr.FRAME_CHUNKED:
            size = len(body)
            if size >= _WRITEV_MIN:
                self._write_parts([b"%x\r\n" % size, body, fr.CHUNK_END_AFTER_DATA if not more else fr.CRLF])
            elif size:
                self._write(b"%x\r\n%b\r\n0\r\n\r\n" % (size, body) if not more else b"%x\r\n%b\r\n" % (size, body))
            elif not more:
                self._write(fr.CHUNK_END)
        elif mode == fr.FRAME_LENGTH:
            remaining = self.remaining - len(body)
            if remaining < 0 or (not more and remaining):
                self._abort()
                self.complete = True
                raise RuntimeError("response body longer than Content-Length" if remaining < 0 else
                                   "response body shorter than Content-Length")
            self.remaining = remaining
            if self._pending is not None:
                if len(body) >= _WRITEV_MIN:
                    self._write_parts([body])
                else:
                    self._write(body)
            elif body:
                self.transport.write(body)  # uvloop sends it at once, no copy, no framing to add
        elif mode == fr.FRAME_CLOSE:
            if body or self._pending is not None:
                self._write(body)
        elif self._pending is not None:  # FRAME_NONE: no body on the wire
            self._write(b"")
        if not more:
            self.complete = True
            self._on_disconnect = None
            self._wake()
            proto.response_done(self)

    # -- writing -----------------------------------------------------------------------------------
    def _flush_head(self) -> None:
        self._flush_handle = None
        pending = self._pending
        if pending is not None:
            self._pending = None
            if not self.transport.is_closing():
                self.transport.write(pending[0])

    def _write(self, data: bytes) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            data = pending[0] + data
        self.transport.write(data)

    def _write_parts(self, parts: list[bytes]) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            parts.insert(0, pending[0])
        self.transport.writelines(parts)
