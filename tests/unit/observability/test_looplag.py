"""The loop-lag monitor: both histograms share one set of bucket bounds (``looplag.LAG_BUCKETS``); every
sample reaches the histograms (in batches), a stall at once."""

from __future__ import annotations

import asyncio
import time

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
