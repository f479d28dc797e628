"""``sluicegate bench images-account``: the engine side of the accounting, on two small sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.bench.suites.images_account import _stages, vips_side

pyvips = pytest.importorskip("pyvips")


def _sources(folder: Path) -> None:
    img = pyvips.Image.xyz(1700, 1200).cast("uchar").bandjoin(pyvips.Image.black(1700, 1200).cast("uchar"))
    img.write_to_file(str(folder / "a-1700x1200.jpg"), Q=85)
    img.write_to_file(str(folder / "b-1700x1200.png"))


def test_vips_side_reports_stages_bytes_and_the_piped_source(tmp_path: Path) -> None:
    _sources(tmp_path)
    out = vips_side(tmp_path, passes=1, stream_above=0)  # every source also streamed through a pipe
    rows = out["images"]
    assert sorted(rows) == ["a-1700x1200.jpg", "b-1700x1200.png"]
    for row in rows.values():
        # the piped source gave the same bytes as the memory source (vips_side exits otherwise)
        assert row["total"] > 0 and row["total_pipe"] > 0 and row["bytes"] > 100
        assert row["decode"] > 0 and row["resize"] > 0 and row["encode"] > 0
        assert len(row["sha"]) == 16


def test_stages_split_the_work_for_a_jpeg_at_its_dct_scale(tmp_path: Path) -> None:
    _sources(tmp_path)
    decode, resize, encode = _stages((tmp_path / "a-1700x1200.jpg").read_bytes())
    assert min(decode, resize, encode) > 0
