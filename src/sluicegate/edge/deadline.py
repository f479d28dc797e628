"""One timeout timer per request, moved by a float store instead of a new loop timer per phase or chunk.

``asyncio.timeout().reschedule()`` cancels and creates a loop timer every time; a relay that bounds the wait
for the response head and every body read that way allocates three timers for a 2 KB response (a libuv
handle each under uvloop). ``Deadline`` keeps one timer: moving the deadline later only stores the new time,
and the timer, when it fires early, re-arms itself for it. On expiry the owning task is cancelled, and the
``with deadline:`` block it was in turns that cancellation into ``TimeoutError``, as ``asyncio.timeout`` does
(including ``Task.uncancel`` bookkeeping, so an outer cancellation is never swallowed).

Invariant: every wait a face makes on something outside the process (the origin, a provider) runs
inside ``with deadline:`` after an ``after(seconds)``; waits on the client (``send``: backpressure) are
unbounded on purpose and run after ``clear()``. Imports the standard library only.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType


class Deadline:
    __slots__ = ("_armed_at", "_cancelling", "_handle", "_loop", "_task", "_when", "expired")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object]) -> None:
        self._loop = loop
        self._task = task
        self._when = math.inf  # loop time the current wait must end by; inf = no wait is bounded now
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf  # when the live timer fires
        self._cancelling = 0
        self.expired = False

    def after(self, seconds: float) -> None:
        """The wait that starts now must end within ``seconds``."""
        when = self._loop.time() + seconds
        self._when = when
        if when < self._armed_at:  # earlier than the live timer (or none): re-arm; later: it re-arms itself
            if self._handle is not None:
                self._handle.cancel()
            self._arm(when)

    def clear(self) -> None:
        """No wait is bounded now (e.g. while the client is being written to: that is backpressure)."""
        self._when = math.inf

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._armed_at = math.inf

    def _arm(self, when: float) -> None:
        self._armed_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        when = self._when
        if when == math.inf:
            return  # nothing bounded now; the next after() arms again
        if self._loop.time() < when:
            self._arm(when)
            return
        self.expired = True
        self._task.cancel()

    def __enter__(self) -> Deadline:
        self._cancelling = self._task.cancelling()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._when = math.inf
        if self.expired and exc_type is asyncio.CancelledError and self._task.uncancel() <= self._cancelling:
            raise TimeoutError from exc
