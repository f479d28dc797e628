"""The loop-lag monitor: both histograms share one set of bucket bounds (``looplag.LAG_BUCKETS``); every
sample reaches the histograms (in batches), a stall at once; an idle loop is not woken (the timer parks when
nothing is in flight and the loop is idle; a request's ``enter`` re-arms it, and a stall in it still warns)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from sluicegate.observability import looplag
from sluicegate.observability.metrics import REGISTRY


def _bounds(name: str) -> list[float]:
    fam = next(f for f in REGISTRY.collect() if f.name == name)
    return [float(s.labels["le"]) for s in fam.samples if s.name == name + "_bucket"]


def test_lag_and_busy_lag_share_the_bucket_bounds() -> None:
    want = [float(b) for b in looplag.LAG_BUCKETS] + [float("inf")]
    assert _bounds("sluicegate_event_loop_lag_seconds") == want
    assert _bounds("sluicegate_event_loop_busy_lag_seconds") == want
    assert want[0] == 0.0005 and want[-2] == 10  # sub-millisecond lag to a 10 s stall


def _count(hist: Histogram) -> float:
    return sum(b.get() for b in hist._buckets)  # type: ignore[attr-defined]


def test_batched_observe_matches_observe() -> None:
    bounds = (0.0005, 0.001, 0.0025, 0.01, 0.1)
    a = Histogram("a", "a", buckets=bounds, registry=CollectorRegistry())
    b = Histogram("b", "b", buckets=bounds, registry=CollectorRegistry())
    values = [0.0, 0.0005, 0.0007, 0.001, 0.003, 0.05, 0.1, 0.2, 7.0, 0.0004]
    for v in values:
        a.observe(v)
    looplag._observe_many(b, values)
    assert [x.get() for x in a._buckets] == [x.get() for x in b._buckets]  # type: ignore[attr-defined]
    assert a._sum.get() == b._sum.get()  # type: ignore[attr-defined]


async def test_samples_reach_the_histograms_in_batches_and_a_stall_at_once() -> None:
    loop = asyncio.get_running_loop()
    mon = looplag.LoopLagMonitor(loop, resolution=0.001, stall_warn=0.05)
    lag0, busy0, stalls0 = _count(looplag.LOOP_LAG), _count(looplag.LOOP_BUSY_LAG), looplag.LOOP_STALLS._value.get()
    mon.start()
    mon.enter()  # a request in flight: the timer does not park
    try:
        await asyncio.sleep(0.0035)  # a few samples: held, not yet written
        held = len(mon._lags)
        if looplag.LOOP_STALLS._value.get() == stalls0:  # (a crowded machine may stall this loop on its own)
            assert 1 <= held < looplag.FLUSH_SAMPLES
            assert _count(looplag.LOOP_LAG) - lag0 == 0
        time.sleep(0.08)  # the loop held past stall_warn: that sample (and those held) are written at once
        await asyncio.sleep(0.002)
        assert looplag.LOOP_STALLS._value.get() - stalls0 >= 1
        written = _count(looplag.LOOP_LAG) - lag0
        assert written >= held + 1
        assert _count(looplag.LOOP_BUSY_LAG) - busy0 == written
        assert looplag.LOOP_LAG._buckets[-1].get() >= 0  # +Inf bucket exists (non-cumulative values)
    finally:
        mon.stop()
    # stop() writes what was held: every sample counted
    assert not mon._lags
    assert _count(looplag.LOOP_LAG) - lag0 == _count(looplag.LOOP_BUSY_LAG) - busy0 > 0


async def test_an_idle_loop_is_not_woken_by_the_monitor() -> None:
    loop = asyncio.get_running_loop()
    mon = looplag.LoopLagMonitor(loop, resolution=0.001, stall_warn=10.0)
    lag0 = _count(looplag.LOOP_LAG)
    mon.start()
    try:
        for _ in range(20):  # 20 periods and more, nothing in flight
            await asyncio.sleep(0.005)
            if mon.parked:
                break
        assert mon.parked and mon.parks == 1
        ticks = mon.ticks
        assert ticks <= 3  # the first quiet tick parks (a crowded machine may make the first two look busy)
        assert _count(looplag.LOOP_LAG) - lag0 == ticks  # parking writes what was held: a scrape sees it
        await asyncio.sleep(0.1)  # 100 periods idle
        assert mon.ticks == ticks  # counted, not timed: no tick at all while parked
    finally:
        mon.stop()


async def test_a_request_wakes_the_monitor_and_its_stall_warns(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    looplag.stop_monitor()  # (none for this loop; start_monitor makes the one enter/leave find)
    mon = looplag.start_monitor(0.001, 0.05)
    stalls0 = looplag.LOOP_STALLS._value.get()
    try:
        while not mon.parked:
            await asyncio.sleep(0.002)
        ticks = mon.ticks
        looplag.enter()  # a request began: sampled again from now on
        assert not mon.parked and mon.in_flight == 1
        looplag.note_work(0.08, "req-7", "GET /big.html")
        with caplog.at_level(logging.WARNING, logger="sluicegate.loop"):
            time.sleep(0.08)  # the request's work holds the loop past stall_warn
            await asyncio.sleep(0.005)
        assert mon.ticks > ticks
        assert looplag.LOOP_STALLS._value.get() - stalls0 >= 1
        assert any("event loop stalled" in r.getMessage() and "req-7" in r.getMessage() for r in caplog.records)
        await asyncio.sleep(0.01)
        assert not mon.parked  # still in flight: keeps sampling while the request waits
        looplag.leave()
        assert mon.in_flight == 0
        for _ in range(50):
            await asyncio.sleep(0.002)
            if mon.parked:
                break
        assert mon.parked and mon.parks == 2
        ticks = mon.ticks
        await asyncio.sleep(0.05)
        assert mon.ticks == ticks
        assert loop is asyncio.get_running_loop()
    finally:
        looplag.stop_monitor()
    looplag.leave()  # after stop: no monitor, nothing counted
    assert mon.in_flight == 0


async def test_work_outside_requests_keeps_the_monitor_armed() -> None:
    loop = asyncio.get_running_loop()
    mon = looplag.LoopLagMonitor(loop, resolution=0.001, stall_warn=10.0)
    mon.start()
    try:
        spin_until = time.thread_time() + 0.02
        while time.thread_time() < spin_until:  # 20 ms of the loop thread's CPU before the first tick, no request
            pass
        while mon.ticks == 0:
            await asyncio.sleep(0)
        # the first tick saw >= 20 ms of CPU in its period: it re-armed (had it parked, no tick would follow it)
        assert mon.ticks > mon.parks
        while not mon.parked:  # then idle: it parks
            await asyncio.sleep(0.002)
        assert mon.parks == 1 and mon.ticks >= 2
    finally:
        mon.stop()


async def test_idle_park_false_keeps_ticking_while_idle() -> None:
    loop = asyncio.get_running_loop()
    mon = looplag.LoopLagMonitor(loop, resolution=0.001, stall_warn=10.0, park=False)  # [event_loop] idle_park
    mon.start()
    try:
        while mon.ticks < 5:  # nothing in flight, the loop idle: it never parks
            await asyncio.sleep(0.002)
        assert mon.parks == 0 and not mon.parked
    finally:
        mon.stop()
