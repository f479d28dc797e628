"""`sluicegate bench stacks --probe` on the default stack: over TLS, the head leaves at the origin's head and
an origin failure after the commit is an abort the client sees (curl exit 18), not a clean short body."""

from __future__ import annotations

from sluicegate.bench.suites.stacks import _probe_async, probe_markdown


async def test_uvicorn_keeps_the_streaming_guarantees_over_tls() -> None:
    rows = await _probe_async(["uvicorn"])
    assert len(rows) == 1
    row = rows[0]
    assert row["proto"] == "1.1"
    assert row["head_s"] < 0.6  # the origin's first body byte comes at 1 s: the head did not wait for it
    assert row["abort_rc"] == 18 and row["abort_s"] < 2.0  # partial body reported, promptly
    assert "| uvicorn | 1.1 |" in probe_markdown(rows)


async def test_sluicegate_serve_keeps_them_on_h1_and_h2() -> None:
    rows = await _probe_async(["sluicegate"])
    assert [r["proto"] for r in rows] == ["1.1", "2"]
    h1, h2 = rows
    assert h1["head_s"] < 0.6 and h1["abort_rc"] == 18 and h1["abort_s"] < 2.0
    assert h2["head_s"] < 0.6  # server/h2 sends HEADERS at the origin's head, not with the first body byte
    assert h2["abort_rc"] == 92 and h2["abort_s"] < 2.0  # RST_STREAM, promptly
