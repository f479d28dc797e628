"""The inference suite's side-by-side mode end to end, at its smallest: ``--vs-exe`` runs another build's
``sluicegate serve`` (here this venv's own executable stands in for it) beside this tree's, alternating,
and writes both ladders, the CPU ratio at equal rates and the plot (figures not checked, only their shape)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sluicegate.bench.suites import inference


def test_vs_exe_smallest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exe = Path(sys.executable).parent / "sluicegate"
    if not exe.exists():
        pytest.fail(f"{exe} missing: run ./run.sh setup")
    out = tmp_path / "inference.json"
    inference.main(["--vs-exe", str(exe), "--vs-label", "self", "--rounds", "1", "--ttfb-n", "5", "--seconds", "0.5",
                    "--rates", "20", "--memory-streams", "5", "--out", str(out), "--plot"])
    doc = json.loads(out.read_text())
    assert doc["before"]["rev"] == "self" and doc["before"]["exe"] == str(exe)
    assert doc["after_core"] == "native" and doc["protocol"]["big_event"] == 8192
    for side in (doc, doc["before"]):
        rung = side["streams"]["ladder"][0]["via_gateway"]
        assert rung["offered_per_s"] == 20 and rung["completed"] == 10 and rung["errors"] == 0
        assert rung["gateway_cpu_ms_per_stream"] > 0 and set(rung["cpu_busy"]) == {"gateway", "mock", "loadgen"}
    assert doc["cpu_per_stream_after_over_before_at_equal_rates"] > 0
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "CPU/stream after/before" in capsys.readouterr().out


def test_served_config_is_valid_for_this_build(tmp_path: Path) -> None:
    from sluicegate.config.loader import load_settings

    path = tmp_path / "g.toml"
    path.write_text(inference.served_config("http://127.0.0.1:9/v1", True, "uvicorn"))
    settings = load_settings(path)
    assert settings.server.http_core == "uvicorn" and settings.admin.listen == ""
    assert settings.server.access_log is False and settings.inference.path_prefix == "/llm"


def test_floor_smallest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bench inference-floor``: baseline, this tree's inference gateway and its publisher PassThrough of the same
    stream, side by side; every target completes every stream and has a CPU figure and a ratio."""
    from sluicegate.bench.suites import inference_floor

    exe = Path(sys.executable).parent / "sluicegate"
    out = tmp_path / "floor.json"
    src = Path(inference_floor.__file__).resolve().parents[3]  # this tree's src/ as "another tree" (--tree)
    inference_floor.main(["--vs-exe", str(exe), "--vs-label", "self", "--rounds", "1", "--seconds", "0.5",
                          "--rates", "20", "--tree", f"other={src}", "--out", str(out)])
    doc = json.loads(out.read_text())
    row = doc["rates"]["20"]
    assert set(row["cpu_ms_per_stream"]) == {"baseline", "other", "inference", "publisher"}
    assert doc["other_over_baseline_median_over_rates"] > 0
    for label, rounds in row["rounds"].items():
        assert rounds[0]["completed"] == 10 and rounds[0]["errors"] == 0, label
        assert row["cpu_ms_per_stream"][label] > 0
    assert row["ratio_to_baseline"]["baseline"] == 1.0
    assert doc["publisher_over_baseline_median_over_rates"] > 0
    assert "publisher PassThrough of the same stream" in capsys.readouterr().out
