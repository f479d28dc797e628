"""``sluicegate bench images``: the one-process row (``[server] supervisor = false``) and its memory line."""

from __future__ import annotations

from typing import Any

from sluicegate.bench.suites import images_memory
from sluicegate.bench.suites.images import ONE_PROCESS, VARIANTS, sluicegate_config


def _server(peak: float, idle: float) -> dict[str, Any]:
    state = {"rss_mib": idle, "pss_mib": idle / 2, "processes": [{"role": "one-process", "rss_mib": idle,
                                                                   "pss_mib": idle / 2}]}
    return {"peak_rss_mib": peak, "peak_pss_mib": peak / 2, "peak_rss_largest_process_mib": peak, "idle": state,
            "after_one_image": state, "after_run": state}


def test_the_one_process_row_runs_without_a_supervisor() -> None:
    assert ONE_PROCESS in [name for name, _, _ in VARIANTS]
    assert "supervisor = false" in sluicegate_config(9000, supervisor=False)
    assert "supervisor = true" in sluicegate_config(9000)


def test_its_memory_ratios_to_thumbor_are_printed_on_their_own_line() -> None:
    one, thumbor = _server(65.0, 40.0), _server(130.0, 40.0)
    result = {"servers": {ONE_PROCESS: one, "thumbor": thumbor},
              "memory_ratios_one_process": images_memory.ratios(one, thumbor)}
    text = images_memory.text(result)
    assert "sluicegate one process/thumbor memory (goal <= 0.5x): peak RSS 0.50x, peak PSS 0.50x" in text
