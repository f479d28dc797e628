"""The byte relay's streaming leg: the upstream's bytes out to the client from the origin connection's data
callback, while the relay task waits once for the whole stream instead of waking per event.

Owns ``Pump``: per read from the provider (``upstream.ondata.DataWatch``) it takes the buffered bytes, counts
them against the response cap, runs the relay's tap (``SseTap.split``: event-aligned, an incomplete event held
until its end; or ``JsonTap.feed``), moves the idle deadline, and hands the chunk to the client's ``send`` —
the same message the relay task would send, in the same order — driving that coroutine in place: the serving
core's ``send`` completes without suspending unless the client pushes back. The task is woken only when the
relay must act: the response ended or failed (the rest is the task's: the last bytes leave with the end in
one write, a failure is framed as before), the cap was passed, ``send`` raised, or the client pushed back
(the suspended ``send`` is finished by the task, with no deadline armed — backpressure is unbounded, as in
``edge.deadline`` — and meanwhile the provider's bytes stay buffered up to the upstream client's
``high_water``, then its reading pauses).

Invariants: nothing is sent after the pump has woken the task (the task owns the exchange again); the watch
is removed (``stop``) before the task goes on, on every path (cancellation included: a client disconnect
cancels the task, whose caller then releases the response, closing the upstream connection).

Must not know protocols, candidates, credentials or metrics: the relay gives it the tap's step and ``send``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, cast

from sluicegate.edge.asgi import Send
from sluicegate.upstream.http1 import OriginResponse
from sluicegate.upstream.ondata import DataWatch


class _Resume:
    """Awaitable that finishes a ``send`` coroutine the pump started and that suspended (client backpressure)."""

    __slots__ = ("coro", "fut")

    def __init__(self, coro: Coroutine[Any, Any, None], fut: Any) -> None:
        self.coro = coro
        self.fut = fut

    def __await__(self) -> Generator[Any, None, None]:
        try:
            yield self.fut  # what the coroutine waits for (its drain future), handed to the task as it is
        except BaseException:
            self.coro.close()
            raise
        yield from self.coro.__await__()  # resumes it where it waited; anything further is delegated


class Pump:
    """One streamed byte relay's callback leg (``wait`` per stretch between the task's own steps)."""

    __slots__ = ("_arm", "_blocked", "_cap", "_clear", "_error", "_loop", "_send", "_split", "_waiter", "_watch",
                 "cap_exceeded", "pushbacks", "total")

    def __init__(self, resp: OriginResponse, send: Send, step: Callable[[bytes], bytes], cap: int,
                 arm: Callable[[], None], clear: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._watch = DataWatch(resp, self._on_data)
        self._send = send
        self._split = step  # the tap's step: bytes in -> bytes to send now
        self._cap = cap
        self._arm = arm  # the idle deadline for the next read from the provider
        self._clear = clear  # no wait on the provider is bounded now
        self._waiter: asyncio.Future[None] | None = None
        self._blocked: _Resume | None = None
        self._error: BaseException | None = None
        self.cap_exceeded = False
        self.pushbacks = 0  # times the client pushed back (a suspended send finished by the task)
        self.total = 0

    async def wait(self, total: int) -> int:
        """Relay from the data callback until the task must act (see the module); returns the bytes counted
        so far (``total`` before). Raises what ``send`` raised; ``cap_exceeded`` is set when the cap was passed.
        The caller arms its deadline before and clears it after; the response's end or failure is then ``read``'s."""
        self.total = total
        watch = self._watch
        if not watch.start():
            return total
        fut = self._waiter = self._loop.create_future()
        try:
            await fut
        finally:
            self._waiter = None
            watch.stop()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        blocked = self._blocked
        if blocked is not None:
            self._blocked = None
            self._clear()
            await blocked
        return self.total

    def _wake(self) -> None:
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _on_data(self) -> None:
        fut = self._waiter
        if fut is None or fut.done():
            return  # the task has been woken (or cancelled): it owns the exchange; the bytes stay buffered
        watch = self._watch
        if watch.finished():
            fut.set_result(None)  # the end (with its last bytes) or a failure: the task's
            return
        chunk = watch.take()
        if not chunk:
            return
        total = self.total + len(chunk)
        self.total = total
        if total > self._cap:
            self.cap_exceeded = True
            fut.set_result(None)
            return
        chunk = self._split(chunk)
        self._arm()
        if not chunk:
            return
        coro = cast(Coroutine[Any, Any, None], self._send({"type": "http.response.body", "body": chunk,
                                                           "more_body": True}))
        try:
            blocked_on = coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:  # (the task re-raises it)
            self._error = exc
            fut.set_result(None)
            return
        self._blocked = _Resume(coro, blocked_on)
        self.pushbacks += 1
        fut.set_result(None)

