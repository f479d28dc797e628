"""Event-loop lag: how late a periodic timer fires, per worker (Node's ``monitorEventLoopDelay`` as the model).

A timer is armed every ``resolution`` seconds; when it runs, ``now - when it was due`` is how long the loop
was busy with something else, observed into ``sluicegate_event_loop_lag_seconds`` (per worker process, like
every metric here). ``sluicegate_event_loop_busy_lag_seconds`` observes ``min(lag, loop thread CPU time in
the period)``: on a shared machine, the part of the lag the worker's own work caused rather than the OS not
running it. Cost: one timer callback (and one ``thread_time`` call, ~3 us) per period (100/s at 10 ms) while
the worker works, nothing while it is idle, and on the request path one ``enter``/``leave`` pair per request
on the monitor the app holds (an in-flight count; ``enter`` re-arms a parked timer; the module functions look
the monitor up by the running loop, and on CPython 3.11 every ``asyncio.get_running_loop()`` is a ``getpid``
system call). The samples reach the histograms in batches
(``FLUSH_SAMPLES``, ~0.5 s at 10 ms; at once when a sample is a stall): a tick runs right after a slice of
body work, with cold caches, and two ``Histogram.observe`` calls were half of its ~60 us there
(docs/fairness.md).

Idle workers are not woken (issue 19, row 6: the ttfb2 lane): a tick that finds no request in flight and the
loop thread's CPU in the period under ``PARK_CPU_SHARE`` of it does not re-arm the timer (the monitor
*parks*); the next request's ``enter`` re-arms it, so the request's own work, and a stall in it, is sampled
as before. A parked worker does not wake at all for the monitor (it woke 100 times a second, ~60-90 us of CPU
each on this shared VM: ~1 % of a core per idle worker, docs/benchmarks-issue19.md row 6). Samples are thus
taken while the worker serves requests or works anyway (an idle loop's samples were ~0 and only diluted the
histogram). The price: the ticks kept the loop's code warm, and the first request after idle costs ~40 us more
CPU without them; ``[event_loop] idle_park = false`` keeps the timer ticking while idle. Not sampled: work that
starts while nothing is in flight and the loop is parked and that is not a request (a WebSocket tunnel's bytes,
a background task's first stretch) until the next request or tick.

Who held the loop: code that spends CPU on a request (the publisher's body transforms) reports each stretch
of work with ``note_work(seconds, request_id, label)``; the monitor keeps only the longest since its last
sample, and when a sample shows a stall over ``stall_warn`` it logs one warning naming that request, with the
loop thread's CPU time over the period: a stall with little CPU is a worker the OS did not run (an
overloaded machine), not a loop held by work.
Owns: the lag histogram, the stall warning and the in-flight count that parks the timer. Must not know about
requests beyond the noted labels and ``enter``/``leave``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from typing import Any

from prometheus_client import Counter, Histogram

from sluicegate.observability.metrics import REGISTRY

log = logging.getLogger("sluicegate.loop")

# seconds, the bounds of both histograms
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LOOP_LAG = Histogram(
    "sluicegate_event_loop_lag_seconds",
    "How late the worker's periodic loop-lag timer fired (time the loop was busy), per sample",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
LOOP_BUSY_LAG = Histogram(
    "sluicegate_event_loop_busy_lag_seconds",
    "Lag samples counting only time the loop thread was on a CPU: min(lag, thread CPU time in the period). "
    "On a shared machine: the part of the lag the worker's own work caused, not the OS scheduler",
    buckets=LAG_BUCKETS,
    registry=REGISTRY,
)
LOOP_STALLS = Counter(
    "sluicegate_event_loop_stalls_total",
    "Loop-lag samples over [event_loop] stall_warn_ms",
    registry=REGISTRY,
)

FLUSH_SAMPLES = 50
"""Samples held before they are written to the histograms (each sample is still counted, <= ~0.5 s later at
10 ms; a stall sample at once). Was 10: the batch write was still ~0.5 % of a sliced worker's samples with
four heavy pages at load 9 (py-spy, docs/fairness.md), where the loop turns every slice and the timer fires
its full 100 per wall second."""


def _observe_many(hist: Any, values: list[float]) -> None:
    """``observe`` for several values: the sum and each bucket written once (prometheus-client keeps
    non-cumulative bucket values, its upper bounds sorted with ``+Inf`` last)."""
    bounds = hist._upper_bounds
    counts: dict[int, int] = {}
    for v in values:
        i = bisect.bisect_left(bounds, v)
        counts[i] = counts.get(i, 0) + 1
    hist._sum.inc(sum(values))
    for i, n in counts.items():
        hist._buckets[i].inc(n)


# The longest stretch of noted work since the monitor's last sample: [seconds, request id, label].
_longest: list[object] = [0.0, "", ""]


def note_work(seconds: float, request_id: str, label: str) -> None:
    """A stretch of work (wall ``seconds``) that held the loop for ``request_id``."""
    if seconds > _longest[0]:  # type: ignore[operator]
        _longest[0] = seconds
        _longest[1] = request_id
        _longest[2] = label


def _take_longest() -> tuple[float, str, str]:
    seconds, request_id, label = _longest
    _longest[0] = 0.0
    _longest[1] = _longest[2] = ""
    return float(seconds), str(request_id), str(label)  # type: ignore[arg-type]


PARK_CPU_SHARE = 0.1
"""A tick with no request in flight parks the timer when the loop thread used less than this share of the period
(10 % of 10 ms: 1 ms; one idle tick costs ~0.1 ms cold on the shared VM, a request's work ~0.2-1 ms)."""


class LoopLagMonitor:
    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.01, stall_warn: float = 0.1,
                 park: bool = True) -> None:
        self._loop = loop
        self.resolution = resolution
        self.stall_warn = stall_warn
        self.park = park  # False: tick every period even when idle ([event_loop] idle_park = false)
        self.in_flight = 0  # requests between enter() and leave()
        self.ticks = 0  # timer callbacks so far (tests and the relay-ttfb idle bench count them)
        self.parks = 0  # times the timer was parked (not re-armed: nothing in flight, the loop idle)
        self._running = False
        self._due = 0.0
        self._cpu = 0.0  # thread CPU time at the last sample
        self._handle: asyncio.TimerHandle | None = None
        self._lags: list[float] = []  # samples not yet in LOOP_LAG / LOOP_BUSY_LAG
        self._busy: list[float] = []

    @property
    def parked(self) -> bool:
        return self._running and self._handle is None

    def start(self) -> None:
        if not self._running:
            self._running = True
            self._cpu = time.thread_time()
            self._arm(self._loop.time())

    def stop(self) -> None:
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.flush()

    def enter(self) -> None:
        """A request began: count it; a parked timer is armed again (the CPU baseline stays the parking tick's,
        so the first sample's busy lag counts what the thread did since)."""
        self.in_flight += 1
        if self._handle is None and self._running:
            self._arm(self._loop.time())

    def leave(self) -> None:
        if self.in_flight > 0:
            self.in_flight -= 1

    def flush(self) -> None:
        """Write the held samples to the histograms."""
        if self._lags:
            _observe_many(LOOP_LAG, self._lags)
            _observe_many(LOOP_BUSY_LAG, self._busy)
            self._lags.clear()
            self._busy.clear()

    def _arm(self, now: float) -> None:
        self._due = now + self.resolution
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        now = self._loop.time()
        lag = now - self._due
        if lag < 0:
            lag = 0.0
        cpu_now = time.thread_time()
        cpu = cpu_now - self._cpu
        self._cpu = cpu_now
        lags = self._lags
        lags.append(lag)
        self._busy.append(min(lag, cpu))
        seconds, request_id, label = _take_longest()
        if lag >= self.stall_warn or len(lags) >= FLUSH_SAMPLES:
            self.flush()
        if lag >= self.stall_warn:
            LOOP_STALLS.inc()
            # The loop thread's own CPU in the period tells a busy loop from a worker the OS did not run.
            if request_id:
                log.warning(
                    "event loop stalled %.0f ms (loop thread CPU %.0f ms in the last %.0f ms); longest stretch of "
                    "request work: request %s (%s), %.0f ms",
                    lag * 1000, cpu * 1000, (self.resolution + lag) * 1000, request_id, label, seconds * 1000,
                )
            else:
                log.warning(
                    "event loop stalled %.0f ms (loop thread CPU %.0f ms in the last %.0f ms; no request reported "
                    "a long stretch of work)",
                    lag * 1000, cpu * 1000, (self.resolution + lag) * 1000,
                )
        if self.park and self.in_flight == 0 and cpu < PARK_CPU_SHARE * (self.resolution + lag):
            # idle: park until the next request (enter) instead of waking the worker every period; what is held
            # is written now, so a scrape of an idle worker sees every sample
            self._handle = None
            self.parks += 1
            self.flush()
            return
        self._arm(now)


_monitors: dict[asyncio.AbstractEventLoop, LoopLagMonitor] = {}


def start_monitor(resolution: float, stall_warn: float, park: bool = True) -> LoopLagMonitor:
    """Start (once per loop) the monitor for the running loop."""
    loop = asyncio.get_running_loop()
    mon = _monitors.get(loop)
    if mon is None:
        mon = _monitors[loop] = LoopLagMonitor(loop, resolution, stall_warn, park)
        mon.start()
    return mon


def stop_monitor() -> None:
    loop = asyncio.get_running_loop()
    mon = _monitors.pop(loop, None)
    if mon is not None:
        mon.stop()


def enter() -> None:
    """A request began on the running loop: wakes that loop's parked monitor (the app calls its monitor's
    ``enter`` directly: no loop look-up)."""
    mon = _monitors.get(asyncio.get_running_loop())
    if mon is not None:
        mon.enter()


def leave() -> None:
    """The request that ``enter`` counted has ended."""
    mon = _monitors.get(asyncio.get_running_loop())
    if mon is not None:
        mon.leave()
