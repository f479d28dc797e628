"""Bounded CPU per turn of the event loop for body transforms: the work lane.

Why it is needed: when the origin's bytes are always ready and the client reads fast, neither
``await read()`` nor ``await send()`` suspends, so decode -> rewrite -> encode would run to the end of a
body without the loop getting a turn (issue 24: a 50 MiB page held a worker for 8.6 s).

What it does: a response's relay checks ``Slice.spent()`` after every decoded piece; once it has used
``slice_ms`` of CPU since it last let the loop run, it sends what is due (``relay``) and calls ``Slice.pause()``.
Paused responses queue in the worker's one ``WorkLane`` and are resumed one per loop iteration: however
many heavy responses run, heavy work takes about one slice per turn of the loop, and everything else
(small requests, health checks, a disconnect notice) runs in between. Among heavy responses the lane goes
round robin in turns of ``TURN_S`` of a response's own work (a response within its turn is resumed first),
so that it does not switch working sets at every slice. A body that never uses up a slice (every small
one) never pauses: one pass, as fast as before.

Which pause (``PauseGate``): for a response alone in the lane a lane pause costs two loop iterations (the
lane's wake-up, then the task). With other responses waiting, the one within its turn **holds** the lane
(``WorkLane.hold``) and pauses with a bare yield: one iteration, as a lane turn kept at the front would take,
without a future, a queue entry and a wake-up per slice (the lane's tick wakes no one while the holder
pauses every iteration; a holder that stops pausing, in a send to a slow client, loses the lane after one
iteration, and one that waits for its origin or ends releases it at once). A response that is **alone on
the loop** takes a one-iteration pause instead (a bare yield: the loop still polls for I/O and runs
whatever is ready, every slice). Alone = no other response waits in the lane and the last
``QUIET_PAUSES`` pauses each came back within ``QUIET_PAUSE_S`` (the loop had nothing else to run); one
slower pause (a request arrived, another transform ran, or the OS took the CPU) returns the response to
lane pauses at once. So the latency bound is the same (the loop turns every slice); only when nothing else
is running does a pause cost one iteration instead of two.

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
TURN_S = 0.032
"""How much of its own work a response does, in slices, before the next heavy response gets the lane.

Between slices the loop always runs (small requests, I/O, the disconnect watcher): the slice bounds how
long the loop is held. The turn bounds how often the lane switches *between heavy responses*: each one has
its own working set (the deflate state alone is ~260 KiB, plus the inflate window and the rewriter's),
and switching every 1 ms slice evicted it from the CPU caches each time: in-process, four concurrent 5 MiB
transforms ran at 0.83 of the unsliced throughput per CPU-second (~0.28 ms per switch), 0.99 with 32 ms
turns (``sluicegate bench slice-sweep --concurrent 4 --mib 5 --turn-ms 0,32``; docs/fairness.md). Heavy
responses still share the worker round robin, in turns of 32 ms instead of 1 ms."""


QUIET_PAUSE_S = 250e-6
"""A pause that came back within this much wall time ran nothing but the loop's own machinery. Measured
(heavy page alone through the server, uvloop, load 9-12): pauses take 10-20 us at the median and cluster
again at 80-120 us (cold caches after a slice, a cyclic-GC pass, the loop-lag timer); a request's
callbacks, another transform's slice or the OS pre-empting the worker take longer than this."""
QUIET_PAUSES = 16
"""Quiet pauses in a row (16 slices: ~16 ms of the response's work) before a response counts as alone. At
100 small requests per second alongside, every request's work makes a pause busy well within this."""


class PauseGate:
    """Which pause a spent slice takes (pure: no loop, no clock). ``light()``: one loop iteration (a bare
    yield) instead of a lane turn (two). Light only when no other response waits in the lane and the last
    ``QUIET_PAUSES`` pauses were each quiet (``observe(pause_s)`` with ``pause_s <= QUIET_PAUSE_S``); a
    single busy pause makes the next ones lane pauses again."""

    __slots__ = ("quiet",)

    def __init__(self) -> None:
        self.quiet = 0  # quiet pauses in a row

    def light(self, others_waiting: bool) -> bool:
        return not others_waiting and self.quiet >= QUIET_PAUSES

    def observe(self, pause_s: float) -> None:
        if pause_s <= QUIET_PAUSE_S:
            self.quiet += 1
        else:
            self.quiet = 0


class WorkLane:
    """One per event loop: paused body transforms resumed one per loop iteration, first in first out (but a
    transform within its turn waits at the front)."""

    __slots__ = ("_armed", "_fresh", "_holder", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._armed = False
        self._holder: object | None = None  # a response within its turn, pausing with bare yields (hold())
        self._fresh = False  # the holder paused since the last tick

    def hold(self, who: object) -> bool:
        """``who`` (within its turn, others waiting) keeps the lane across its next pause, a bare yield: the
        tick wakes no one while the holder pauses every iteration. False if another response holds it."""
        holder = self._holder
        if holder is not None and holder is not who:
            return False
        self._holder = who
        self._fresh = True
        return True

    def release(self, who: object) -> None:
        """``who`` stops holding the lane (its turn ended, it waits for the origin, it is done)."""
        if self._holder is who:
            self._holder = None
            if self._waiters and not self._armed:
                self._armed = True
                self._loop.call_soon(self._tick)

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait_turn(self, *, keep: bool = False) -> None:
        """Wait for the next turn of the loop that is ours: at the back of the queue, or at its front if
        ``keep`` (the caller is within its turn: ``Slice`` keeps a response's turn for ``TURN_S`` of work)."""
        fut = self._loop.create_future()
        if keep:
            self._waiters.appendleft(fut)
        else:
            self._waiters.append(fut)
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._tick)
        await fut  # a cancelled waiter is skipped by _tick (its future is done)

    def _tick(self) -> None:
        # Runs once per loop iteration while someone waits: wakes exactly one waiter, whose task then runs
        # in the next iteration, after that iteration's I/O callbacks have been queued.
        waiters = self._waiters
        if self._holder is not None:
            if self._fresh:  # the holder paused in the last iteration: it keeps the lane
                self._fresh = False
                self._loop.call_soon(self._tick)
                return
            self._holder = None  # it did not (a send that waits, a cancelled task): the next one goes
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

    __slots__ = (
        "_gate", "_lane", "_started", "_turn_from", "_until", "budget_s", "label", "light_pauses", "pauses",
        "request_id", "worked",
    )

    def __init__(self, lane: WorkLane | None, budget_s: float, request_id: str, label: str) -> None:
        self._lane = lane if budget_s > 0 else None
        self.budget_s = budget_s
        self.request_id = request_id
        self.label = label
        self.pauses = 0
        self.light_pauses = 0  # of which one-iteration pauses (alone on the loop; PauseGate)
        self._gate = PauseGate()
        self.worked = 0.0  # s of work in the stretches that ended (slices, reads' transforms); see work_s()
        self._turn_from = 0.0  # work_s() when this response's current turn in the lane began
        self._started = _clock()
        self._until = self._started + budget_s if self._lane is not None else float("inf")

    def idle(self) -> None:
        """About to wait (for the origin): the stretch of work so far ends here."""
        self._note(_clock())
        if self._lane is not None:
            self._lane.release(self)

    def restart(self) -> None:
        """The loop has just had a turn (the wait is over): a fresh budget starts now."""
        now = _clock()
        self._started = now
        if self._lane is not None:
            self._until = now + self.budget_s

    def spent(self) -> bool:
        return _clock() >= self._until

    def work_s(self, now: float) -> float:
        """This response's own work so far (its slices' wall time, the current one up to ``now``): the
        clock its sends are paced by, whatever the number of responses sharing the loop."""
        return self.worked + (now - self._started)

    async def pause(self) -> None:
        lane = self._lane
        assert lane is not None
        now = _clock()
        self._note(now)
        self.pauses += 1
        gate = self._gate
        others = len(lane) > 0
        keep = self.worked - self._turn_from < TURN_S
        if gate.light(others):
            self.light_pauses += 1
            await asyncio.sleep(0)  # one loop iteration: I/O polled, ready callbacks run, then this task
        elif others and keep and lane.hold(self):
            # within its turn, other heavy responses waiting: the lane's tick would resume this response
            # first anyway, in the next iteration; a bare yield holding the lane does the same for less
            await asyncio.sleep(0)
        else:
            lane.release(self)
            if not keep:
                self._turn_from = self.worked  # to the back of the queue; a new turn when the lane comes back
            await lane.wait_turn(keep=keep)
        resumed = _clock()
        gate.observe(resumed - now)
        self._started = resumed
        self._until = resumed + self.budget_s

    def done(self) -> None:
        self._note(_clock())
        if self._lane is not None:
            self._lane.release(self)

    def _note(self, now: float) -> None:
        stretch = now - self._started
        self._started = now  # (a stretch is counted once)
        self.worked += stretch
        looplag.note_work(stretch, self.request_id, self.label)

