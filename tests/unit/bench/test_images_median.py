"""``sluicegate bench images``: the rounds' median (the issue asks for medians of same-run figures)."""

from __future__ import annotations

from sluicegate.bench.suites.images import _median


def test_median_of_rounds() -> None:
    assert _median([]) is None
    assert _median([13.6]) == 13.6
    assert _median([14.0, 12.0, 13.0]) == 13.0  # odd: the middle one, whatever the order
    assert _median([12.0, 14.0, 13.0, 20.0]) == 13.5  # even: the mean of the middle two
