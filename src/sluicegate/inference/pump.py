"""The byte relay's streaming leg: the upstream's bytes out to the client from the origin connection's data
callback, while the relay task waits once for the whole stream instead of waking per event.

Owns ``Pump``: the relay task's side of it. ``inference.flow.Flow`` (compiled, synchronous) runs per read
from the provider (``upstream.ondata.DataWatch``): it takes the buffered bytes, counts them against the
response cap, runs the relay's tap (``SseTap.split``: event-aligned, an incomplete event held until its end;
or ``JsonTap.feed``), moves the idle deadline, and puts the chunk on the client's wire — through the server's
``edge.asgi.BODY_WRITE`` when it can write at once, else the client's ``send``, driven in place; the same bytes
in the same order either way. ``wait`` is where the task sleeps meanwhile; it is woken only when the relay
must act: the response ended or failed (the rest is the task's: the last bytes leave with the end in one
write, a failure is framed as before), the cap was passed, ``send`` raised, or the client pushed back (the
suspended ``send`` is finished here by the task, with no deadline armed — backpressure is unbounded, as in
``edge.deadline`` — and meanwhile the provider's bytes stay buffered up to the upstream client's
``high_water``, then its reading pauses).

Invariants: nothing is sent after the pump has woken the task (the task owns the exchange again); the watch
is removed (``stop``) before the task goes on, on every path (cancellation included: a client disconnect
cancels the task, whose caller then releases the response, closing the upstream connection).

Must not know protocols, candidates, credentials or metrics: the relay gives it the tap's step, ``send`` and
the server's ``BODY_WRITE``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from sluicegate.edge.asgi import Send
from sluicegate.edge.deadline import Deadline
from sluicegate.inference.flow import Flow
from sluicegate.upstream.http1 import OriginResponse


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
    """One streamed byte relay's callback leg (``wait`` per stretch between the task's own steps); the per-read
    step is ``inference.flow.Flow`` (compiled)."""

    __slots__ = ("_flow", "_loop", "_watch")

    def __init__(self, resp: OriginResponse, send: Send, step: Callable[[bytes], bytes], cap: int,
                 deadline: Deadline, idle: float, end: float, write: Callable[[bytes], bool] | None = None,
                 info: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._flow = Flow(resp, send, write, step, cap, deadline, idle, end, info)
        watch = self._flow.watch
        assert watch is not None
        self._watch = watch

    @property
    def cap_exceeded(self) -> bool:
        return self._flow.cap_exceeded

    @property
    def pushbacks(self) -> int:
        """Times the client pushed back (a suspended send finished by the task)."""
        return self._flow.pushbacks

    @property
    def written(self) -> int:
        """Chunks written through the server's BODY_WRITE (the rest went through ``send``)."""
        return self._flow.written

    def close(self) -> None:
        """The relay is over (every path): the flow lets go of the watch, so the exchange dies by reference count."""
        self._watch.stop()
        self._flow.close()

    def arm(self) -> None:
        """Bound the wait for the provider's next read (the idle timeout, or what is left of the total cap)."""
        self._flow.arm()

    async def wait(self, total: int) -> int:
        """Relay from the data callback until the task must act (see the module); returns the bytes counted
        so far (``total`` before). Raises what ``send`` raised; ``cap_exceeded`` is set when the cap was passed.
        The caller arms its deadline before and clears it after; the response's end or failure is then ``read``'s."""
        flow = self._flow
        flow.total = total
        watch = self._watch
        if not watch.start():
            return total
        fut = flow.waiter = self._loop.create_future()
        try:
            await fut
        finally:
            flow.waiter = None
            watch.stop()
        error = flow.error
        if error is not None:
            flow.error = None
            raise error
        coro = flow.blocked_coro
        if coro is not None:
            blocked = _Resume(coro, flow.blocked_on)
            flow.blocked_coro = flow.blocked_on = None
            flow.deadline.clear()
            await blocked
        return flow.total
