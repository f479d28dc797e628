"""Small ASGI plumbing shared by the publisher proxy and the own endpoints.

``ResponseAborted`` is how a handler tells the server "drop this connection now": raising it
after ``http.response.start`` makes any ASGI server close the socket without the terminating
chunk, so the client sees an incomplete response instead of a clean-looking truncated one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ResponseAborted(Exception):
    """Abort the client connection (after the response head was committed)."""

    kind = "aborted"  # a short failure word for the access log and metrics


class ClientGone(Exception):
    """The client disconnected; stop working for it."""


def header_list(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]


def encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def send_simple(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> None:
    hdrs = [
        ("content-type", content_type),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": encode_headers(hdrs)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class ClientWatch:
    """Streams the request body and then watches for ``http.disconnect`` concurrently.

    ``body()`` yields request body chunks as they arrive (never buffering the whole body); once
    it is consumed, or when there is no body, ``start()`` keeps calling ``receive`` in a side
    task so a disconnect cancels the handler's task at once, even while it waits for upstream.

    The handler sends through ``watch.send``: once the final body message is handed to the server,
    a later ``http.disconnect`` (uvicorn reports one as soon as the response is complete) is the
    normal end of the exchange, not a client that vanished, and must not cancel the handler.
    ``stop()`` needs no await: under uvicorn the final send has already woken the watcher and it ends
    by itself; a server whose ``receive`` blocks until the connection closes gets it cancelled on the
    next loop turn. (Cancelling and awaiting it every time cost ~10 % of a small relayed response.)
    """

    __slots__ = ("_owner", "_receive", "_send", "_task", "body_done", "disconnected", "finished")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._task: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None
        self.disconnected = False
        self.body_done = False
        self.finished = False

    async def send(self, message: Message) -> None:
        if not message.get("more_body", False) and message["type"] == "http.response.body":
            self.finished = True
        await self._send(message)

    async def body(self) -> AsyncIterator[bytes]:
        while not self.body_done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientGone("client disconnected while sending its body")
            chunk = message.get("body", b"")
            self.body_done = not message.get("more_body", False)
            if chunk:
                yield chunk
        self._start_watch()

    def start(self, *, has_body: bool) -> None:
        self._owner = asyncio.current_task()
        if not has_body:
            self.body_done = True
            self._start_watch()

    def _start_watch(self) -> None:
        if self._task is None and self._owner is not None and not self.finished:
            self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self.finished:
                    self.disconnected = True
                    if self._owner is not None and not self._owner.done():
                        self._owner.cancel()
                return

    def stop(self) -> None:
        self.finished = True
        task = self._task
        if task is not None and not task.done():
            task.get_loop().call_soon(_reap, task)


def _reap(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()


class _DropAbortTracebacks(logging.Filter):
    """Servers log an app exception with a traceback; an abort we chose is logged by us instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ResponseAborted | ClientGone)


def quiet_expected_aborts() -> None:
    for name in ("uvicorn.error", "uvicorn", "granian", "granian.asgi", "_granian"):
        logging.getLogger(name).addFilter(_DropAbortTracebacks())
