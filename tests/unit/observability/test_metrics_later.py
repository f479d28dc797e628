"""``metrics.inc_later`` / ``observe_later``: per-request metric updates written once at the end of the loop turn,
summed, and at once when no loop runs."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from sluicegate.observability import metrics


def _metrics() -> tuple[Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("t_bytes", "test", ["kind"], registry=registry).labels("a")
    hist = Histogram("t_seconds", "test", buckets=(0.01, 0.1, 1.0), registry=registry)
    return counter, hist


def _hist(hist: Histogram) -> tuple[float, list[float]]:
    return hist._sum.get(), [b.get() for b in hist._buckets]  # type: ignore[attr-defined]


async def test_updates_of_a_loop_turn_are_written_once_at_its_end_summed() -> None:
    counter, hist = _metrics()
    writes: list[float] = []
    value = counter._value  # type: ignore[attr-defined]
    inc = value.inc
    value.inc = lambda amount: (writes.append(amount), inc(amount))  # type: ignore[method-assign]
    for n in (100, 200, 0, 300):
        metrics.inc_later(counter, n)
    for v in (0.005, 0.05, 0.5, 5.0):
        metrics.observe_later(hist, v)
    assert counter._value.get() == 0 and _hist(hist) == (0.0, [0, 0, 0, 0])  # type: ignore[attr-defined]
    await asyncio.sleep(0)  # the end of this turn
    assert writes == [600] and counter._value.get() == 600  # type: ignore[attr-defined]
    assert _hist(hist) == (pytest.approx(5.555), [1, 1, 1, 1])
    metrics.inc_later(counter, 5)
    await asyncio.sleep(0)
    assert writes == [600, 5]


def test_without_a_running_loop_the_update_is_made_at_once() -> None:
    counter, hist = _metrics()
    metrics.inc_later(counter, 7)
    metrics.observe_later(hist, 0.05)
    assert counter._value.get() == 7  # type: ignore[attr-defined]
    assert _hist(hist) == (pytest.approx(0.05), [0, 1, 0, 0])
    with pytest.raises(ValueError):
        metrics.inc_later(counter, -1)
