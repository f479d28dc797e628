"""``sluicegate bench goals`` end to end at its smallest settings, over real servers (nginx origin and proxy,
``sluicegate serve`` with 2 workers and with 1, the fast trickling origin, the inference mock and gateway):
every row of issue 19's table is in the JSON with a numeric figure, its goal and a verdict, the plot is
written, and the serving bodies were checked (figures not judged: the machine is shared)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sluicegate.bench.cli import main
from sluicegate.bench.suites import goals

ROWS = {"passthrough_2k": 0.5, "passthrough_200k": 0.9, "stream_html_2k_gzip": 0.35,
        "stream_html_200k_vs_rewriter": 0.8, "rewriter_alone_compiled": 160.0, "rewriter_alone_pure": 40.0,
        "added_ttfb_rewritten": 0.3, "inference_streams_vs_baseline": 2.0}


def test_goals_suite_smallest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICEGATE_BENCH_RESULTS", str(tmp_path / "results"))
    out = tmp_path / "goals.json"
    assert main(["bench", "goals", "--rounds", "1", "--duration", "1", "--warmup", "0", "--html-runs", "1",
                 "--rewriter-reps", "1", "--ttfb-pairs", "1", "--ttfb-warmup", "1", "--inference-rates", "20",
                 "--inference-seconds", "0.5", "--inference-ttfb-n", "3", "--inference-memory-streams", "5",
                 "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = {r["id"]: r for r in doc["rows"]}
    assert list(rows) == list(ROWS)
    for rid, goal in ROWS.items():
        row = rows[rid]
        assert isinstance(row["figure"], float) and math.isfinite(row["figure"]), row
        assert row["goal"] == goal and row["goal_op"] in (">=", "<=")
    for rid in ("passthrough_2k", "passthrough_200k", "stream_html_2k_gzip", "stream_html_200k_vs_rewriter",
                "rewriter_alone_compiled", "rewriter_alone_pure"):
        assert rows[rid]["figure"] > 0 and isinstance(rows[rid]["met"], bool)
        assert rows[rid]["met"] == (rows[rid]["figure"] >= ROWS[rid])
    for rid in ("passthrough_2k", "passthrough_200k", "stream_html_2k_gzip"):
        d = rows[rid]["detail"]
        assert d["sluicegate_w2"]["rps"] > 0 and d["nginx_w2"]["rps"] > 0
        assert d["sluicegate_w2"]["non2xx"] == 0 and d["nginx_w2"]["non2xx"] == 0
        assert d["sluicegate_w2"]["proxy_cpu_us_per_req"] > 0
    assert rows["stream_html_200k_vs_rewriter"]["detail"]["rewriter_alone_mb_per_s_cpu"] > 0
    assert rows["added_ttfb_rewritten"]["detail"]["pairs"] == 1
    ttfb = rows["added_ttfb_rewritten"]["detail"]  # what binds it, same rounds: PassThrough, the worker's CPU
    assert ttfb["pass_added_first_body_ms"]["n"] == 1
    assert ttfb["proxy_cpu_to_first_body_us"]["stream"] > 0 and ttfb["proxy_cpu_to_first_body_us"]["pass"] > 0
    assert rows["added_ttfb_rewritten"]["met"] == (rows["added_ttfb_rewritten"]["figure"] <= 0.3)
    inf = rows["inference_streams_vs_baseline"]  # no baseline: this build's figure, the ratio not measured
    assert inf["figure"] > 0 and inf["met"] is None and "not measured" in inf["note"]
    serve = doc["parts"]["serve"]
    assert all(all(c.values()) for c in serve["checks"].values()) and len(serve["checks"]) == 2
    assert len(doc["load_average_before"]) == 3 and len(doc["load_average_after"]) == 3
    assert out.with_suffix(".png").stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "Issue 19 goals, one run" in text and "Serving figures" in text
    out.with_suffix(".png").unlink()
    assert main(["bench", "goals", "--render", str(out)]) == 0  # a saved run's tables and plot, nothing measured
    assert goals_table_line(capsys.readouterr().out) == goals_table_line(text)
    assert out.with_suffix(".png").stat().st_size > 10_000


def goals_table_line(text: str) -> str:
    return next(line for line in text.splitlines() if "PassThrough 2 KB" in line)


def test_inference_baseline_dir_forms(tmp_path: Path) -> None:
    """``--inference-baseline`` takes a checkout, a venv or the executable; anything else is a clear error."""
    exe = tmp_path / "co" / ".venv" / "bin" / "sluicegate"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert goals.baseline_exe(str(tmp_path / "co")) == exe
    assert goals.baseline_exe(str(tmp_path / "co" / ".venv")) == exe
    assert goals.baseline_exe(str(exe)) == exe
    with pytest.raises(SystemExit, match="no sluicegate executable"):
        goals.baseline_exe(str(tmp_path))
