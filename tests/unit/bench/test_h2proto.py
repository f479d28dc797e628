"""`sluicegate bench h2-protocol`: both protocols run the stub app in-process and the report has a row per body
size with positive figures."""

from __future__ import annotations

from sluicegate.bench.suites.h2proto import markdown, run


def test_both_protocols_measure_and_report() -> None:
    result = run(64, [2048, 65536], batch=8, rounds=1)
    assert [r["body_bytes"] for r in result["rows"]] == [2048, 65536]
    for r in result["rows"]:
        assert r["h1_us"] > 0 and r["h2_us"] > 0 and r["ratio"] > 0
    assert "| 65,536 B |" in markdown(result)
