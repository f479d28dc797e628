"""The fault suite's pieces and a slice of the suite itself through the real server (2 workers).

The checker must tell a truncated response from a whole one and a wrong body from a right one (else the
suite's "corrupted = 0" proves nothing); the fault proxy must really reset and stall; and sluicegate must keep
corrupted = lost = 0 through resets, framing errors, pool reuse after a short Content-Length, a worker kill.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.bench.suites import faultnet as fn
from sluicegate.bench.suites.faults import Row, Server, Suite
from sluicegate.bench.suites.soak import soak


@pytest.fixture
async def origin() -> AsyncIterator[fn.FaultyOrigin]:
    o = fn.FaultyOrigin()
    await o.start()
    yield o
    await o.close()


async def test_the_checker_judges_what_a_client_sees(origin: fn.FaultyOrigin) -> None:
    host = f"127.0.0.1:{origin.port}"
    assert (await fn.fetch(origin.port, "/body/300000", host)).verdict == "exact"
    assert (await fn.fetch(origin.port, "/chunked/100000", host)).verdict == "exact"
    assert (await fn.fetch(origin.port, "/page/20000", host)).verdict == "exact"
    assert (await fn.fetch(origin.port, "/sse", host)).verdict == "exact"
    assert (await fn.fetch(origin.port, "/sse-chat", host, model="sse")).verdict == "exact"  # the provider stream
    long = await fn.fetch(origin.port, "/cl-long/5000", host)  # declared 10000, got 5000 then EOF
    assert long.verdict == "failed" and long.got == 5000
    assert (await fn.fetch(origin.port, "/nolast/5000", host)).verdict == "failed"
    lost = await fn.fetch(origin.port, "/stall-head", host, timeout=0.5)
    assert lost.verdict == "lost"
    # a complete-looking body with one wrong byte is corrupted, a right one exact
    checker = fn._Body(fn.body(1000))
    checker.feed(fn.body(500))
    checker.feed(b"\x00" + fn.body(499, 501))
    assert checker.got == 1000 and not checker.exact()
    big = fn._Body(None, big=200_000)
    for i in range(0, 200_000, 7000):
        big.feed(fn.body(min(7000, 200_000 - i), i))
    assert big.exact()


async def test_the_fault_proxy_resets_and_stalls(origin: fn.FaultyOrigin) -> None:
    proxy = fn.FaultProxy(origin.port)
    await proxy.start()
    try:
        host = f"127.0.0.1:{proxy.port}"
        assert (await fn.fetch(proxy.port, "/body/300000", host)).verdict == "exact"
        proxy.mode = fn.Mode("reset", 100_000)
        reset = await fn.fetch(proxy.port, "/body/300000", host)
        assert reset.verdict == "failed" and reset.got < 100_000
        proxy.mode = fn.Mode("stall", 1000)
        stalled = await fn.fetch(proxy.port, "/body/300000", host, timeout=1.0)
        assert stalled.verdict == "lost"  # nothing more and no close: what the proxy must never do to a client
        assert proxy.faults == 2
    finally:
        await proxy.close()


@pytest.fixture
async def suite(origin: fn.FaultyOrigin, tmp_path: Path) -> AsyncIterator[Suite]:
    proxy = fn.FaultProxy(origin.port)
    await proxy.start()
    server = Server(proxy.port, tmp_path)
    await asyncio.to_thread(server.start)
    try:
        yield Suite(server, origin, proxy, big_mb=16)
    finally:
        await asyncio.to_thread(server.stop)
        await proxy.close()


def assert_clean(row: Row, exact: int | None = None) -> None:
    c = row.counts()
    assert c["corrupted"] == 0 and c["lost"] == 0, row.as_dict()
    if exact is not None:
        assert c["exact"] == exact, row.as_dict()
    assert row.recovery_s < 10


async def test_sluicegate_never_corrupts_or_loses_under_origin_faults(suite: Suite) -> None:
    async def reset(row: Row) -> None:
        row.outcomes = await suite.many(["/body/262144"] * 6)

    row = await suite.run("reset", "failed", reset, fn.Mode("reset", 100_000))
    assert_clean(row, exact=0)  # every one visibly failed: none looks complete

    async def framing(row: Row) -> None:
        row.outcomes = await suite.many(["/garbage/1000", "/cl-long/50000", "/nolast/50000"] * 2)

    assert_clean(await suite.run("framing", "failed", framing), exact=0)

    async def short_then_reuse(row: Row) -> None:
        row.outcomes = await suite.many(["/cl-short/50000"] * 4, concurrency=1)
        row.outcomes += await suite.many(["/body/50000", "/page/30000"] * 4, concurrency=1)

    assert_clean(await suite.run("short", "exact", short_then_reuse), exact=12)

    async def big(row: Row) -> None:
        row.outcomes = await suite.many([f"/big/{16 << 20}"], timeout=120)

    assert_clean(await suite.run("big", "exact", big), exact=1)


async def test_a_killed_worker_is_replaced_and_nothing_is_corrupted(suite: Suite) -> None:
    row = await suite.worker_kill()
    assert_clean(row)
    assert row.counts()["exact"] > 20
    st = suite.server.status()
    assert st is not None and st["worker_restarts"] >= 1


async def test_a_short_soak_reports_rss_slope_and_no_errors(suite: Suite) -> None:
    result = await soak(suite.server, 6.0, 0.5)
    assert result["errors"] == 0, result["error_kinds"]
    assert result["requests"] > 10 and len(result["rss_mb"]) >= 3
    assert isinstance(result["rss_slope_mb_per_min"], float)


async def test_a_soak_with_client_processes_merges_their_figures(suite: Suite) -> None:
    result = await soak(suite.server, 4.0, 0.5, procs=2)
    assert result["client_processes"] == 2
    assert result["errors"] == 0, result["error_kinds"]
    # both processes sent their share of the merged schedule (request k due at k / rate)
    assert result["requests"] >= int(4.0 * result["rate_rps"]) - 2
    assert result["p99_ms_per_window"] and result["p99_ms_windows_max"] >= result["p99_ms_windows_median"] > 0


async def test_inference_faults_are_visible_never_corrupt(suite: Suite) -> None:
    rows = {r.scenario.split(":")[1].strip().split(" (")[0]: r for r in await suite.inference()}
    for row in rows.values():
        assert_clean(row)
    assert rows["SSE chat streams"].counts()["exact"] == 20  # relayed byte for byte
    assert rows["provider resets mid-SSE"].counts()["exact"] == 0
    assert all(o.status in (429, 502, 503) for o in rows["429 storm"].outcomes)
    stalled = rows["provider stalls before headers"].outcomes
    assert all(o.verdict == "failed" and o.status in (502, 503, 504) for o in stalled)


async def test_websocket_faults_are_visible_and_messages_are_not_buffered(suite: Suite) -> None:
    whole, slow, reset = await suite.websocket()
    for row in (whole, slow, reset):
        assert_clean(row)
    assert whole.counts()["exact"] == 4  # 16 MiB each, every byte checked, close 1000 after it
    assert reset.counts()["exact"] == 0
    assert all("1014" in o.detail or "connection ended" in o.detail for o in reset.outcomes), reset.as_dict()
    # 4 slow readers of a 256 MiB message: the server never holds the message (bounded by buffer_bytes)
    assert slow.max_rss_mb < whole.max_rss_mb + 64, (slow.max_rss_mb, whole.max_rss_mb)


async def test_http2_faults_are_visible_never_corrupt(suite: Suite) -> None:
    mixed, many, reset, cl_long, flood = await suite.http2()
    for row in (mixed, many, reset, cl_long, flood):
        assert_clean(row)
    assert mixed.counts()["exact"] == 100  # 100 streams multiplexed on one connection, every byte checked
    assert many.counts()["exact"] + many.counts()["failed"] == 1000
    assert reset.counts()["exact"] == 0  # the origin's reset reaches each stream as RST_STREAM
    assert all(o.detail.startswith("RST_STREAM") for o in reset.outcomes), reset.as_dict()
    assert cl_long.counts()["exact"] == 0
    assert flood.extra_ok and flood.counts()["exact"] == 50, flood.as_dict()  # GOAWAY 11, then serving
