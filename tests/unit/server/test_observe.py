"""The observer's per-loop-turn metrics: requests, bytes, histograms and the in-flight gauge are written once per
turn (summed), and what a scrape reads after the turn equals what per-request updates would have written."""

from __future__ import annotations

import asyncio
from typing import Any

from sluicegate.config import load_settings
from sluicegate.observability import metrics
from sluicegate.server.observe import Observer


def _value(name: str, **labels: str) -> float:
    got = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_turn_batched_metrics_and_inflight() -> None:
    settings = load_settings(None)
    settings = settings.model_copy(update={
        "server": settings.server.model_copy(update={"access_log": "off"}),
        "admin": settings.admin.model_copy(update={"metrics": True}),
    })
    obs = Observer(settings)
    face = "first_party"  # a face no other test in this process serves through an observer
    before = {
        "ok": _value("sluicegate_requests_total", face=face, route="stream", status_class="2xx"),
        "err": _value("sluicegate_requests_total", face=face, route="rejected", status_class="4xx"),
        "out": _value("sluicegate_body_bytes_total", face=face, direction="out"),
        "n": _value("sluicegate_request_duration_seconds_count", face=face),
        "le": _value("sluicegate_request_duration_seconds_bucket", face=face, le="5.0"),
        "ttfb": _value("sluicegate_response_first_byte_seconds_count", face=face),
    }
    inflight = []

    def begin() -> Any:
        scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": ("1.2.3.4", 1)}
        info = obs.begin(scope)
        obs.started(info, face, scope)
        return info

    async def scenario() -> None:
        infos = [begin() for _ in range(3)]  # three start in one turn
        infos[0].status, infos[0].route, infos[0].bytes_out, infos[0].ttfb = 200, "stream", 100, 0.001
        obs.finish(infos[0])  # one of them ends in the same turn
        await asyncio.sleep(0)
        inflight.append(_value("sluicegate_inflight_requests", face=face))
        infos[1].status, infos[1].route, infos[1].bytes_out = 200, "stream", 50
        obs.finish(infos[1])
        infos[2].status = 400
        obs.finish(infos[2])
        await asyncio.sleep(0)
        inflight.append(_value("sluicegate_inflight_requests", face=face))

    base = _value("sluicegate_inflight_requests", face=face)
    asyncio.run(scenario())
    assert [v - base for v in inflight] == [2, 0]
    assert _value("sluicegate_requests_total", face=face, route="stream", status_class="2xx") - before["ok"] == 2
    assert _value("sluicegate_requests_total", face=face, route="rejected", status_class="4xx") - before["err"] == 1
    assert _value("sluicegate_body_bytes_total", face=face, direction="out") - before["out"] == 150
    assert _value("sluicegate_request_duration_seconds_count", face=face) - before["n"] == 3
    assert _value("sluicegate_request_duration_seconds_bucket", face=face, le="5.0") - before["le"] == 3
    assert _value("sluicegate_response_first_byte_seconds_count", face=face) - before["ttfb"] == 1  # one head sent


def test_without_a_loop_metrics_are_written_at_once() -> None:
    settings = load_settings(None)
    settings = settings.model_copy(update={
        "server": settings.server.model_copy(update={"access_log": "off"}),
        "admin": settings.admin.model_copy(update={"metrics": True}),
    })
    obs = Observer(settings)
    face = "none"
    base = _value("sluicegate_inflight_requests", face=face)
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}
    info = obs.begin(scope)
    obs.started(info, face, scope)
    assert _value("sluicegate_inflight_requests", face=face) - base == 1
    info.status = 404
    obs.finish(info)
    assert _value("sluicegate_inflight_requests", face=face) - base == 0
