"""``bench html-fresh`` end to end at its smallest (figures not checked, only present and consistent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluicegate.bench.cli import main
from sluicegate.bench.suites.html_fresh import ONE_URL


def test_html_fresh_smallest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Every case timed in a child of the installed tree (interpreted: the same whatever the build's state)."""
    monkeypatch.setenv("SLUICEGATE_BENCH_RESULTS", str(tmp_path))
    assert main(["bench", "html-fresh", "--pure", "--samples", "2", "--reps", "8"]) == 0
    doc = json.loads((tmp_path / "html-fresh.json").read_text())
    res = doc["results"]["this"]
    assert doc["mode"] == "pure"
    assert set(res) == {"build", "tag doc", "page 2 KB", "first 1 KiB", *ONE_URL}
    assert all(0 < v["best"] <= v["median"] for v in res.values())
    assert "over tag doc" in capsys.readouterr().out
