"""Bounded CPU per turn of the event loop for body transforms: the work lane.

Why it is needed: when the origin's bytes are always ready and the client reads fast, neither
``await read()`` nor ``await send()`` suspends, so decode -> rewrite -> encode would run to the end of a
body without the loop getting a turn (issue 24: a 50 MiB page held a worker for 8.6 s).

What it does: a response's relay checks ``Slice.spent()`` after every decoded piece; once it has used
``slice_ms`` of CPU since it last let the loop run, it sends what it has and calls ``Slice.pause()``.
Paused responses queue in the worker's one ``WorkLane`` and are resumed one per loop iteration, in
arrival order: however many heavy responses run, heavy work takes about one slice per turn of the loop,
and everything else (small requests, health checks, a disconnect notice) runs in between. A body that
never uses up a slice (every small one) never pauses: one pass, as fast as before.

The lane also reports the longest slice (or unsliced transform) since the last loop-lag sample to the
monitor (``observability.looplag.note_work``), so a stall can be pinned on a request.
Owns: when to pause and in what order to resume. Must not know what the bytes are.
"""

from __future__ import annotations

import asyncio
import collections
import time

from sluicegate.observability import looplag

_clock = time.perf_counter


class WorkLane:
    """One per event loop: paused body transforms resumed one per loop iteration, first in first out."""

    __slots__ = ("_armed", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._armed = False

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait_turn(self) -> None:
        fut = self._loop.create_future()
        self._waiters.append(fut)
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._tick)
        await fut  # a cancelled waiter is skipped by _tick (its future is done)

    def _tick(self) -> None:
        # Runs once per loop iteration while someone waits: wakes exactly one waiter, whose task then runs
        # in the next iteration, after that iteration's I/O callbacks have been queued.
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                break
        if waiters:
            self._loop.call_soon(self._tick)
        else:
            self._armed = False


_lanes: dict[asyncio.AbstractEventLoop, WorkLane] = {}


def lane_for(loop: asyncio.AbstractEventLoop) -> WorkLane:
    lane = _lanes.get(loop)
    if lane is None:
        if len(_lanes) > 8:  # loops of finished test runs; a worker has one
            _lanes.clear()
        lane = _lanes[loop] = WorkLane(loop)
    return lane


class Slice:
    """One response's CPU budget per loop turn. ``budget_s = 0`` disables pausing (spent() is never true)."""

    __slots__ = ("_lane", "_started", "_until", "budget_s", "label", "pauses", "request_id")

    def __init__(self, lane: WorkLane | None, budget_s: float, request_id: str, label: str) -> None:
        self._lane = lane if budget_s > 0 else None
        self.budget_s = budget_s
        self.request_id = request_id
        self.label = label
        self.pauses = 0
        self._started = _clock()
        self._until = self._started + budget_s if self._lane is not None else float("inf")

    def idle(self) -> None:
        """About to wait (for the origin): the stretch of work so far ends here."""
        self._note(_clock())

    def restart(self) -> None:
        """The loop has just had a turn (the wait is over): a fresh budget starts now."""
        now = _clock()
        self._started = now
        if self._lane is not None:
            self._until = now + self.budget_s

    def spent(self) -> bool:
        return _clock() >= self._until

    async def pause(self) -> None:
        lane = self._lane
        assert lane is not None
        self._note(_clock())
        self.pauses += 1
        await lane.wait_turn()
        now = _clock()
        self._started = now
        self._until = now + self.budget_s

    def done(self) -> None:
        self._note(_clock())

    def _note(self, now: float) -> None:
        looplag.note_work(now - self._started, self.request_id, self.label)

