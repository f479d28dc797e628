"""The shared helpers of the repository benchmarks (``sluicegate.bench.lab``) and the suite registry."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest

from sluicegate.bench import cli
from sluicegate.bench.lab import output, rawhttp
from sluicegate.bench.results import percentile


def test_pct_skips_nan_and_matches_results_percentile() -> None:
    values = [5.0, float("nan"), 1.0, 3.0, 2.0, 4.0]
    assert output.pct(values, 50) == percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert output.pct(values, 90) == pytest.approx(4.6)
    assert math.isnan(output.pct([float("nan")], 50))
    assert output.med([float("nan"), 2.0, 4.0]) == 3.0
    assert output.summary([]) == {"n": 0, "median": pytest.approx(math.nan, nan_ok=True),
                                  "min": pytest.approx(math.nan, nan_ok=True),
                                  "max": pytest.approx(math.nan, nan_ok=True)}


def test_markdown_table_rounds_by_magnitude() -> None:
    text = output.table(["case", "MB/s"], [["a", 12345.6], ["b", 1.234], ["c", float("nan")], ["d", 42.0]])
    lines = text.splitlines()
    assert lines[0].startswith("| case") and set(lines[1]) <= {"|", "-"}
    assert "12,346" in lines[2] and "1.23" in lines[3] and "n/a" in lines[4] and "42.0" in lines[5]


def test_results_dir_env_override_and_write_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICEGATE_BENCH_RESULTS", str(tmp_path / "out"))
    path = output.write_json("demo-x", {"a": 1, "p": Path("/x")})
    assert path == tmp_path / "out" / "demo-x.json"
    assert json.loads(path.read_text()) == {"a": 1, "p": "/x"}


def test_results_dir_defaults_to_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICEGATE_BENCH_RESULTS", raising=False)
    root = output.repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert output.results_dir() == root / "bench" / "results"


def test_chunked_parser_across_arbitrary_splits() -> None:
    wire = b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: 1\r\n\r\n"
    for step in (1, 2, 3, 7, len(wire)):
        parser = rawhttp._Chunked()
        out = b"".join(b"".join(parser.feed(wire[i:i + step])) for i in range(0, len(wire), step))
        assert out == b"hello world!" and parser.done, step


@pytest.mark.parametrize("name", sorted(cli.SUITES))
def test_every_suite_has_a_main_and_its_own_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"sluicegate.bench.suites.{cli.SUITES[name][0]}")
    assert callable(module.main)
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", name, "--help"])
    assert exc.value.code == 0
    assert f"sluicegate bench {name}" in capsys.readouterr().out


def test_suite_arguments_are_passed_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    module = importlib.import_module("sluicegate.bench.suites.codec_levels")
    monkeypatch.setattr(module, "main", lambda argv: seen.append(argv) or 3)
    assert cli.main(["bench", "codec-levels", "--runs", "2", "-x", "pos"]) == 3
    assert seen == [["--runs", "2", "-x", "pos"]]


def test_bench_help_lists_every_suite(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    out = capsys.readouterr().out
    for name in cli.SUITES:
        assert name in out
