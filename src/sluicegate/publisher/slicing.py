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

**Nothing to be fair to** (``ReadyProbe``, ``Slice.spent``): a spent slice is not paused at all when nothing
else could run: the loop has no I/O ready (a zero-timeout poll of its own epoll descriptor: a new connection,
a request's bytes, a client's close, an origin's data all show there; ~1 us), the last ``QUIET_PAUSES``
loop turns between heavy slices in this lane were each quiet (callbacks in the loop's ready queue show in
no poll: a turn that ran any took longer), and, with other heavy responses waiting, the response
is within its turn. It goes on for another slice, up to ``STRETCH_S`` since it last let the loop run (timers,
which no poll shows, are late by at most that). I/O found ready ends the stretch at once and resets the quiet
count: that pause is a lane pause (two loop iterations), and stretches resume only after ``QUIET_PAUSES``
quiet pauses. So a request that arrives is seen within one slice, as before; a heavy response alone, or
heavy responses among themselves, pay a loop iteration per ``STRETCH_S`` instead of per ``slice_ms``.

The lane also reports the longest slice (or unsliced transform) since the last loop-lag sample to the
monitor (``observability.looplag.note_work``), so a stall can be pinned on a request.
Owns: when to pause and in what order to resume. Must not know what the bytes are.
"""

from __future__ import annotations

import asyncio
import collections
import select
import time

from sluicegate.observability import looplag, metrics

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
AFTER_IO_PAUSES = 2
"""Quiet turns needed before a slice stretches again after a stretch check found I/O ready (``WorkLane.stretch``):
the I/O's own callbacks (an origin's bytes, a client's write space) run in the lane pause it causes; a request
that arrived makes those turns busy, and the full ``QUIET_PAUSES`` count is needed again."""
"""Quiet pauses in a row (16 slices: ~16 ms of the response's work) before a response counts as alone. At
100 small requests per second alongside, every request's work makes a pause busy well within this."""


STRETCH_S = 0.008
"""The longest a response runs without letting the loop turn when nothing else is ready (``Slice.spent``;
the default of ``[event_loop] stretch_ms``, set per loop on its lane: ``WorkLane.stretch_s``, 0 = never):
what a timer (the loop-lag sample, a deadline) may be late by while heavy work runs alone. I/O that arrives
ends a stretch within one slice. Measured (docs/fairness.md): each bare yield a heavy response takes costs a
loop iteration with its caches cooled; not yielding at all within a turn raised four concurrent pages from
0.94 to 0.98 of the unsliced throughput; 8 ms keeps most of that (an eighth of the yields) and the loop-lag
histogram still within its 10 ms bucket."""


class ReadyProbe:
    """Has the loop I/O ready? A zero-timeout ``poll`` of the loop's own epoll descriptor (uvloop's
    ``_get_backend_id()``, asyncio's selector), which is readable when any descriptor the loop watches has an
    event (~1 us). Callbacks already in the loop's ready queue do not show (uvloop keeps the queue out of
    reach): ``WorkLane`` relies on its quiet turns for those. ``for_loop`` gives ``None`` when the loop offers
    no such descriptor: then slices never stretch."""

    __slots__ = ("_poll",)

    def __init__(self, fd: int) -> None:
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> ReadyProbe | None:
        fd = -1
        backend = getattr(loop, "_get_backend_id", None)  # uvloop: libuv's epoll descriptor
        if backend is not None:
            fd = int(backend())
        else:
            selector = getattr(loop, "_selector", None)  # asyncio's selector event loop
            fileno = getattr(selector, "fileno", None)
            if fileno is not None:
                fd = int(fileno())
        return cls(fd) if fd >= 0 else None

    def io_ready(self) -> bool:
        return bool(self._poll.poll(0))


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

    __slots__ = (
        "_armed", "_fresh", "_holder", "_loop", "_paused_at", "_waiters", "io_seen", "probe", "quiet", "stretch_s",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, probe: ReadyProbe | None = None) -> None:
        self._loop = loop
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._armed = False
        self._holder: object | None = None  # a response within its turn, pausing with bare yields (hold())
        self._fresh = False  # the holder paused since the last tick
        self.probe = probe  # None: slices never stretch
        self.stretch_s = STRETCH_S  # [event_loop] stretch_ms (server.app sets it at startup); 0: never stretch
        self.quiet = 0  # quiet loop turns in a row between heavy slices, whichever response ran them
        self._paused_at = 0.0  # when the last heavy response let the loop run
        self.io_seen = False  # stretch() found I/O ready: the next pause is a lane pause

    def let_go(self, now: float) -> None:
        """A heavy response lets the loop run (a pause, a wait for its origin) at ``now``."""
        self._paused_at = now

    def took_back(self, now: float) -> None:
        """A heavy response runs again at ``now``: the loop turn since the last ``let_go`` was quiet if it ran
        nothing but the loop's own machinery (``QUIET_PAUSE_S``), whichever response paused and resumed."""
        if now - self._paused_at <= QUIET_PAUSE_S:
            self.quiet += 1
        else:
            self.quiet = 0

    def stretch(self) -> bool:
        """May a spent slice run on without a pause? Only after ``QUIET_PAUSES`` quiet turns in a row and
        with no I/O ready on the loop now. I/O found ready makes the next pause a lane pause (two loop
        iterations: whatever the I/O woke gets its first step before the heavy response runs again) and
        takes ``AFTER_IO_PAUSES`` more quiet turns before the next stretch (a woken task's further steps,
        which no poll shows, make those turns busy: then the quiet count starts again from 0)."""
        probe = self.probe
        if probe is None or self.quiet < QUIET_PAUSES:
            return False
        if probe.io_ready():
            self.io_seen = True
            self.quiet = QUIET_PAUSES - AFTER_IO_PAUSES
            return False
        return True

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
        lane = _lanes[loop] = WorkLane(loop, ReadyProbe.for_loop(loop))
    return lane


class Slice:
    """One response's CPU budget per loop turn. ``budget_s = 0`` disables pausing (spent() is never true)."""

    __slots__ = (
        "_gate", "_lane", "_ran_from", "_started", "_turn_from", "_until", "budget_s", "label", "light_pauses",
        "pauses", "request_id", "stretched", "worked",
    )

    def __init__(self, lane: WorkLane | None, budget_s: float, request_id: str, label: str) -> None:
        self._lane = lane if budget_s > 0 else None
        self.budget_s = budget_s
        self.request_id = request_id
        self.label = label
        self.pauses = 0
        self.light_pauses = 0  # of which one-iteration pauses (alone on the loop; PauseGate)
        self.stretched = 0  # spent slices that ran on without a pause (nothing else ready: WorkLane.stretch)
        self._gate = PauseGate()
        self.worked = 0.0  # s of work in the stretches that ended (slices, reads' transforms); see work_s()
        self._turn_from = 0.0  # work_s() when this response's current turn in the lane began
        self._started = self._ran_from = _clock()  # _ran_from: when this response last took the loop back
        self._until = self._started + budget_s if self._lane is not None else float("inf")

    def idle(self) -> None:
        """About to wait (for the origin): the stretch of work so far ends here."""
        now = _clock()
        self._note(now)
        lane = self._lane
        if lane is not None:
            lane.release(self)
            lane.let_go(now)

    def restart(self) -> None:
        """The loop has just had a turn (the wait is over): a fresh budget starts now."""
        now = _clock()
        self._started = self._ran_from = now
        lane = self._lane
        if lane is not None:
            self._until = now + self.budget_s
            lane.took_back(now)

    def spent(self) -> bool:
        """Time to pause: the slice is used up and something else may want the loop (``WorkLane.stretch``;
        with other heavy responses waiting, only within this response's turn), or ``STRETCH_S`` has passed
        since this response last let the loop run."""
        now = _clock()
        if now < self._until:
            return False
        lane = self._lane
        assert lane is not None  # (no lane: _until is inf)
        if (
            now - self._ran_from < lane.stretch_s
            and (not lane or self.work_s(now) - self._turn_from < TURN_S)
            and lane.stretch()
        ):
            self.stretched += 1
            self._until = now + self.budget_s
            return False
        return True

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
        lane.let_go(now)
        keep = self.worked - self._turn_from < TURN_S
        io_seen = lane.io_seen  # I/O is ready (WorkLane.stretch): a lane pause, what it wakes runs first
        lane.io_seen = False
        if not io_seen and gate.light(others):
            self.light_pauses += 1
            await asyncio.sleep(0)  # one loop iteration: I/O polled, ready callbacks run, then this task
        elif not io_seen and others and keep and lane.hold(self):
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
        lane.took_back(resumed)
        self._started = self._ran_from = resumed
        self._until = resumed + self.budget_s

    def done(self) -> None:
        self.idle()  # the last stretch of work ends, the lane let go
        if self.stretched:
            metrics.SLICES_STRETCHED.inc(self.stretched)

    def _note(self, now: float) -> None:
        stretch = now - self._started
        self._started = now  # (a stretch is counted once)
        self.worked += stretch
        looplag.note_work(stretch, self.request_id, self.label)

