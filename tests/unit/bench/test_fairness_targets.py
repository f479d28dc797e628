"""``bench fairness`` targets: the ``[event_loop]`` keys each sluicegate target is started with."""

from __future__ import annotations

import pytest

from sluicegate.bench.suites.fairness import _event_loop_keys


def test_targets_map_to_event_loop_keys() -> None:
    assert _event_loop_keys("unsliced") == ["slice_ms = 0"]
    assert _event_loop_keys("sliced-1ms") == ["slice_ms = 1"]  # stretch_ms: the configured default
    assert _event_loop_keys("sliced-1ms-st8") == ["slice_ms = 1", "stretch_ms = 8"]
    assert _event_loop_keys("sliced-0.5ms-st0") == ["slice_ms = 0.5", "stretch_ms = 0"]
    with pytest.raises(ValueError, match="not a sluicegate target"):
        _event_loop_keys("nginx")
