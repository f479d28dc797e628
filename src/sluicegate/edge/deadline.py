"""Request deadlines on one shared timer per event loop, moved by a float store instead of a timer per request.

``asyncio.timeout().reschedule()`` cancels and creates a loop timer every time; a relay that bounds the wait
for the response head and every body read that way allocates three timers for a 2 KB response (a libuv
handle each under uvloop). A ``Deadline`` holds no timer of its own: it is listed in its loop's ``_Sweep``,
which keeps ONE timer armed for the earliest deadline it has seen. Arming a request's deadline is a float
store and a set insertion; moving it later only stores the new time (the sweep, when its timer fires, looks at
every listed deadline, expires the due ones and re-arms for the earliest left); only a deadline earlier than
the armed timer re-arms it. Closing is a set removal. With the default timeouts (30 s to the first byte, 60 s
between body reads) a busy worker's sweep fires about once per timeout instead of a timer being armed and
cancelled per request (pt4, issue 19: 3.7 % of a 2 KB PassThrough worker). Expiry is as exact as before:
the timer is armed for the earliest deadline itself, not on a coarse tick.

On expiry the owning task is cancelled, and the ``with deadline:`` block it was in turns that cancellation
into ``TimeoutError``, as ``asyncio.timeout`` does (including ``Task.uncancel`` bookkeeping, so an outer
cancellation is never swallowed).

Invariant: every wait a face makes on something outside the process (the origin, a provider) runs
inside ``with deadline:`` after an ``after(seconds)``; waits on the client (``send``: backpressure) are
unbounded on purpose and run after ``clear()``. Bounded: a sweep lists the deadlines of requests in flight
(``close`` removes one; a cleared one is dropped at the next sweep). Imports the standard library only.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType


class _Sweep:
    """One loop's timer for all its deadlines (touched from that loop's thread only)."""

    __slots__ = ("armed_at", "handle", "listed", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.listed: set[Deadline] = set()
        self.handle: asyncio.TimerHandle | None = None
        self.armed_at = math.inf  # when the live timer fires

    def arm(self, when: float) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.armed_at = when
        self.handle = self.loop.call_at(when, self.fire)

    def fire(self) -> None:
        self.handle = None
        self.armed_at = math.inf
        now = self.loop.time()
        nearest = math.inf
        due: list[Deadline] = []
        idle: list[Deadline] = []
        for d in self.listed:
            when = d._when
            if when <= now:
                due.append(d)
            elif when == math.inf:
                idle.append(d)  # nothing bounded now: the next after() lists it again
            elif when < nearest:
                nearest = when
        listed = self.listed
        for d in idle:
            listed.discard(d)
            d._listed = False
        for d in due:
            listed.discard(d)
            d._listed = False
            d._expire()
        if nearest != math.inf and nearest < self.armed_at:
            self.arm(nearest)


_sweep: _Sweep | None = None  # the last loop's sweep (a worker runs one loop; a test's new loop replaces it)


def _sweep_for(loop: asyncio.AbstractEventLoop) -> _Sweep:
    global _sweep
    sweep = _sweep
    if sweep is None or sweep.loop is not loop:
        sweep = _sweep = _Sweep(loop)
    return sweep


class Deadline:
    __slots__ = ("_cancelling", "_listed", "_loop", "_sweep", "_task", "_when", "expired")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object]) -> None:
        self._loop = loop
        self._task = task
        self._sweep = _sweep_for(loop)
        self._when = math.inf  # loop time the current wait must end by; inf = no wait is bounded now
        self._listed = False  # in the sweep's set
        self._cancelling = 0
        self.expired = False

    def after(self, seconds: float) -> None:
        """The wait that starts now must end within ``seconds``."""
        when = self._loop.time() + seconds
        self._when = when
        sweep = self._sweep
        if not self._listed:
            self._listed = True
            sweep.listed.add(self)
        if when < sweep.armed_at:  # earlier than the live timer (or none): re-arm; later: the sweep re-arms
            sweep.arm(when)

    def clear(self) -> None:
        """No wait is bounded now (e.g. while the client is being written to: that is backpressure)."""
        self._when = math.inf

    def close(self) -> None:
        self._when = math.inf
        if self._listed:
            self._listed = False
            self._sweep.listed.discard(self)

    def _expire(self) -> None:
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
