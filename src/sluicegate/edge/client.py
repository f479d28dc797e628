"""The client side of one request: its body as it arrives, and a watch for it leaving.

Owns: ``start_request`` (a handler's two edge primitives, started for its task: the watch and the one
``Deadline``), ``ClientWatch`` (streams the request body, then watches for ``http.disconnect`` in a side
task that cancels the handler's task) and the bounded whole-body read (``ClientWatch.read``: a face that
needs the body in memory, e.g. to parse JSON, names its cap and gets ``BodyTooLarge`` past it, never
more than the cap held).

Invariants: a disconnect before the response is complete cancels the handler exactly once (the
watcher returns after it); a disconnect after the final body message is the normal end of the
exchange and cancels nothing; the body is never buffered here beyond what ``read`` was allowed.

Must not know: any face, the config, the origin. Imports the standard library and ``edge`` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from sluicegate.edge.asgi import DISCONNECT_HOOK, ClientGone, Message, Receive, Scope, Send
from sluicegate.edge.deadline import Deadline


class BodyTooLarge(Exception):
    """The request body is (or says it is) longer than the cap its reader named."""

    kind = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


class ClientWatch:
    """Streams the request body and then watches for ``http.disconnect`` concurrently.

    ``body()`` yields request body chunks as they arrive (never buffering the whole body); once
    it is consumed, or when there is no body, ``start()`` keeps calling ``receive`` in a side
    task so a disconnect cancels the handler's task at once, even while it waits for upstream.

    A server that offers ``edge.asgi.DISCONNECT_HOOK`` (the native core) calls a callback instead: no side
    task, the handler is cancelled in the loop turn that saw the reset, and ``sender`` is the plain ``send``.

    The handler sends through ``watch.send``: once the final body message is handed to the server,
    a later ``http.disconnect`` (uvicorn reports one as soon as the response is complete) is the
    normal end of the exchange, not a client that vanished, and must not cancel the handler.
    ``stop()`` needs no await: under uvicorn the final send has already woken the watcher and it ends
    by itself; a server whose ``receive`` blocks until the connection closes gets it cancelled on the
    next loop turn. (Cancelling and awaiting it every time cost ~10 % of a small relayed response.)
    """

    __slots__ = ("_hook", "_hooked", "_owner", "_receive", "_send", "_task", "body_done", "disconnected", "finished")

    def __init__(self, receive: Receive, send: Send, hook: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._receive = receive
        self._send = send
        self._hook = hook  # the server's DISCONNECT_HOOK (edge.asgi): a callback instead of the watch task
        self._hooked = False  # the callback is registered
        self._task: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None
        self.disconnected = False
        self.body_done = False
        self.finished = False

    @property
    def sender(self) -> Send:
        """What the handler sends through: ``send`` itself when the server calls the hook (it never reports a
        disconnect after the response is complete), else ``self.send`` (which notes the final body message)."""
        return self._send if self._hook is not None else self.send

    async def send(self, message: Message) -> None:
        if not message.get("more_body", False) and message["type"] == "http.response.body":
            self.finished = True
        await self._send(message)

    async def read(self, limit: int, declared: int | None = None) -> bytes:
        """The whole body, at most ``limit`` bytes held: ``BodyTooLarge`` as soon as the declared length
        (``Content-Length``, when the caller parsed one) or the bytes received pass it; ``ClientGone`` when
        the client leaves first."""
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit)
        parts: list[bytes] = []
        size = 0
        async for chunk in self.body():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def body(self) -> AsyncIterator[bytes]:
        """The request body's chunks as they arrive; once it ends, the disconnect watch starts. (An iterator
        class, not an async generator: mypyc compiles this module, and cannot compile those.)"""
        return _Body(self)

    async def next_chunk(self) -> bytes | None:
        """The body's next non-empty chunk; ``None`` at its end (the disconnect watch then starts)."""
        while not self.body_done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientGone("client disconnected while sending its body")
            chunk: bytes = message.get("body", b"")
            self.body_done = not message.get("more_body", False)
            if chunk:
                return chunk
        self._start_watch()
        return None

    def start(self, *, has_body: bool, owner: asyncio.Task[Any] | None = None) -> None:
        """Begin watching for the handler's task (``owner``, default the current task: each lookup is a
        ``get_running_loop``, a ``getpid`` system call on 3.11)."""
        self._owner = owner if owner is not None else asyncio.current_task()
        if not has_body:
            self.body_done = True
            self._start_watch()

    def _start_watch(self) -> None:
        if self._owner is None or self.finished:
            return
        hook = self._hook
        if hook is not None:
            if not self._hooked:
                self._hooked = True
                hook(self._client_left)
        elif self._task is None:
            self._task = asyncio.create_task(self._watch())

    def _client_left(self) -> None:
        """The server's disconnect callback (before the response was complete)."""
        if not self.finished:
            self.disconnected = True
            owner = self._owner
            if owner is not None and not owner.done():
                owner.cancel()

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


class _Body:
    """``ClientWatch.body()``: ``async for`` over ``next_chunk``."""

    __slots__ = ("_watch",)

    def __init__(self, watch: ClientWatch) -> None:
        self._watch = watch

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._watch.next_chunk()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


def _reap(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()


def start_request(
    receive: Receive, send: Send, *, has_body: bool, scope: Scope | None = None
) -> tuple[ClientWatch, Deadline]:
    """The current task's ``ClientWatch`` (started: with no body, the disconnect watch runs at once) and its one
    ``Deadline``. The handler sends through ``watch.sender`` and ends with ``deadline.close()``, ``watch.stop()``.
    With the ``scope``, a server's ``DISCONNECT_HOOK`` replaces the watch task by a callback."""
    task = asyncio.current_task()
    assert task is not None, "start_request runs inside the handler's task"
    watch = ClientWatch(receive, send, scope.get(DISCONNECT_HOOK) if scope is not None else None)
    watch.start(has_body=has_body, owner=task)
    return watch, Deadline(task.get_loop(), task)
