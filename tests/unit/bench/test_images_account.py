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


def test_servers_overheads_and_the_engine_the_goal_needs() -> None:
    from sluicegate.bench.suites.images_account import servers

    images = {"servers": {"sluicegate": {"images_per_cpu_second": 12.5},  # 80 ms per image
                          "sluicegate-effort4": {"images_per_cpu_second": 10.0},
                          "thumbor": {"images_per_cpu_second": 6.25}}}  # 160 ms per image
    out = servers(images, {"vips_total": 70.0, "pillow_total": 140.0})
    assert out["sluicegate"] == {"server_ms_per_image": 80.0, "overhead_ms_per_image": 10.0}
    assert out["thumbor"]["overhead_ms_per_image"] == 20.0
    assert out["sluicegate-effort4"]["overhead_ms_per_image"] is None  # another engine setting: not comparable
    assert out["engine_ms_needed"] == 70.0 and out["ratio_without_overhead"] == round(160 / 70, 3)


def test_best_keeps_the_lowest_cpu_and_refuses_changed_output() -> None:
    from sluicegate.bench.suites.images_account import _best

    first = {"images": {"a.jpg": {"total": 5.0, "decode": 2.0, "bytes": 10, "sha": "x"}}}
    second = {"images": {"a.jpg": {"total": 4.0, "decode": 3.0, "bytes": 10, "sha": "x"}}}
    assert _best(_best({}, first), second)["images"]["a.jpg"] == {"total": 4.0, "decode": 2.0, "bytes": 10, "sha": "x"}
    with pytest.raises(SystemExit, match="output changed"):
        _best(first, {"images": {"a.jpg": {"total": 1.0, "bytes": 11, "sha": "y"}}})
