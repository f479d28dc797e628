"""The loop-lag histograms: both share one set of bucket bounds (``looplag.LAG_BUCKETS``)."""

from __future__ import annotations

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
