"""Test-session report: which build of sluicegate's hot modules the tests run (compiled or pure, and why)."""

from __future__ import annotations


def pytest_report_header() -> str:
    from sluicegate.buildinfo import fast_paths

    return f"sluicegate fast paths: {fast_paths()['summary']}"
