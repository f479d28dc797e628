"""``sluicegate bench assets`` end to end at its smallest settings: every target answers with the right bytes,
the JSON holds every figure the suite reports, and the streamed asset is checked byte for byte (figures not
judged: the machine is shared)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluicegate.bench.suites import assets


def test_assets_suite_smallest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICEGATE_BENCH_RESULTS", str(tmp_path))
    assets.main(["--runs", "1", "--duration", "1", "--warmup", "1", "--big-mib", "16", "--throttle-s", "0.5",
                 "--throttle-mb", "8"])
    doc = json.loads((tmp_path / "assets.json").read_text())
    assert all(doc["checks"].values()) and len(doc["checks"]) == 6
    for size in ("2 KB", "2 MB"):
        per = doc["summary"][size]
        for target in ("asset-w2", "page-w2", "nginx-w2"):
            assert per[target]["rps"] > 0 and per[target]["non2xx"] == 0
            assert per[target]["proxy_cpu_ms_per_request"] > 0
        assert per["ratios"]["asset_vs_nginx_rps"] > 0
    streams = doc["memory"]["streams"]
    assert set(streams) == {"asset-w2 fast", "asset-w2 throttled", "page-w2 fast", "page-w2 throttled"}
    fast = streams["asset-w2 fast"]
    assert fast["body_ok"] and fast["bytes"] == 16 * 1024 * 1024 and fast["content_length"] == 16 * 1024 * 1024
    assert streams["asset-w2 throttled"]["body_ok"] and 0 < streams["asset-w2 throttled"]["bytes"] < 16 * 1024 * 1024
    assert all(w["peak_mib"] >= w["idle_mib"] > 10 for w in fast["workers"])
    assert "peak RSS per worker" in capsys.readouterr().out
