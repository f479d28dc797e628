"""OpenTelemetry over real sockets: a server span per request, a client span per upstream call, and the W3C
trace context carried to the origin; off (no OTEL_TRACES_EXPORTER): the client's traceparent passes untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.integration.conftest import Origin
from tests.integration.ops.helpers import get, start

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _spans(log: str) -> list[dict[str, object]]:
    """ConsoleSpanExporter prints one indented JSON object per span."""
    out = []
    for block in re.findall(r"^\{\n.*?^\}$", log, re.S | re.M):
        data = json.loads(block)
        if "context" in data and "kind" in data:
            out.append(data)
    return out


def test_server_and_client_spans_and_propagation(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server='access_log = "off"',
              env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "sg-test"})
    try:
        status, h, body = get(p.url + "/echo", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        assert status == 200
        seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
        version, trace_id, span_id, flags = seen["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", TRACE, "01") and span_id != PARENT  # our client span
    finally:
        p.stop()
    spans = _spans(p.log())
    server = next(s for s in spans if s["kind"] == "SpanKind.SERVER")
    client = next(s for s in spans if s["kind"] == "SpanKind.CLIENT")
    assert server["context"]["trace_id"] == client["context"]["trace_id"] == "0x" + TRACE  # type: ignore[index]
    assert server["parent_id"] == "0x" + PARENT and client["parent_id"] == server["context"]["span_id"]  # type: ignore[index]
    assert client["context"]["span_id"] == "0x" + span_id  # type: ignore[index]
    attrs = server["attributes"]
    assert attrs["http.response.status_code"] == 200 and attrs["sluicegate.request_id"] == h["x-request-id"]  # type: ignore[index]
    assert server["resource"]["attributes"]["service.name"] == "sg-test"  # type: ignore[index]


def test_off_by_default_passes_traceparent_and_makes_no_spans(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server='access_log = "off"')
    try:
        _s, _h, body = get(p.url + "/echo", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert seen["traceparent"] == f"00-{TRACE}-{PARENT}-01"
    finally:
        p.stop()
    assert not _spans(p.log())


def test_unknown_exporter_is_one_line_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "a.toml"
    cfg.write_text("[admin]\nlisten = \"\"\n")
    done = subprocess.run([sys.executable, "-m", "sluicegate", "check-config", str(cfg)], capture_output=True,
                          text=True, env={"OTEL_TRACES_EXPORTER": "zipkinish", "PATH": "/usr/bin"}, timeout=30)
    assert done.returncode == 2 and "OTEL_TRACES_EXPORTER='zipkinish'" in done.stderr
    assert "Traceback" not in done.stderr
