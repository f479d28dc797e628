"""Tracing on an asset route: a client span for the backend call, and no trace context sent to the backend
(its outbound headers are an allowlist; neither the client's traceparent nor ours goes out)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from tests.integration.routes.backends import build_assets
from tests.support.servers import ProxyProcess, ThreadedApp

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _spans(log: str) -> list[dict[str, object]]:
    out = []
    for block in re.findall(r"^\{\n.*?^\}$", log, re.S | re.M):
        data = json.loads(block)
        if "context" in data and "kind" in data:
            out.append(data)
    return out


async def test_asset_client_span_and_no_trace_context_upstream(tmp_path: Path) -> None:
    store = ThreadedApp(build_assets(tmp_path)).start()
    text = f"""
[server]
host = "127.0.0.1"
port = {{port}}
access_log = "off"
[publisher]
origin_url = "{store.url}"
public_hosts = ["127.0.0.1:{{port}}"]
[[publisher.routes]]
name = "store"
prefix = "/s"
kind = "asset"
origin_url = "{store.url}"
path_pattern = "^/s(/.*)$"
target_path = "$1"
"""
    p = ProxyProcess(tmp_path, text, env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "sg-test"}).start()
    try:
        async with aiohttp.ClientSession() as s, s.get(
            p.url + "/s/echo", headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
        ) as r:
            assert r.status == 200
            sent = {k.lower() for k, _ in json.loads(await r.read())["headers"]}
    finally:
        p.stop()
        store.stop()
    assert "traceparent" not in sent and "tracestate" not in sent
    spans = _spans(p.log())
    client = next(s for s in spans if s["kind"] == "SpanKind.CLIENT")
    server = next(s for s in spans if s["kind"] == "SpanKind.SERVER")
    assert client["name"] == "GET asset store"
    assert client["parent_id"] == server["context"]["span_id"]  # type: ignore[index]
    assert client["attributes"]["http.response.status_code"] == 200  # type: ignore[index]
