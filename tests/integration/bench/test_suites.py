"""The repository benchmarks' shared parts against real servers: the fast origin, the raw first-body-byte
client, process control, and the cheapest suites end to end (smallest settings; figures not checked)."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path

import pytest

from sluicegate.bench.cli import main
from sluicegate.bench.lab import PY, Proc, Procs, free_port, http_get, wait_http
from sluicegate.dev.origin.fast import BLOCK


def test_fast_origin_and_raw_client(tmp_path: Path) -> None:
    (tmp_path / "p.html.gz").write_bytes(gzip.compress(b"<p>" + b"x" * 5000))
    port = free_port()
    with Procs() as procs:
        origin = procs.add(Proc("origin", [PY, "-m", "sluicegate.dev.origin.fast", "--port", str(port),
                                           "--data", str(tmp_path)], tmp_path / "origin.log"))
        wait_http(port, "/health", origin)
        r = http_get(port, "/bin?size=300000", crc=True)
        assert (r.status, r.body_bytes, r.complete) == (200, 300000, True)
        assert r.crc32 == zlib.crc32(BLOCK[:300000])
        assert r.connect_ms <= r.headers_ms <= r.first_body_ms <= r.ttlb_ms
        g = http_get(port, "/html-gz?name=p.html.gz", keep_body=True)
        assert g.complete and g.decoded_bytes == 5003 and gzip.decompress(g.body).startswith(b"<p>xxx")
        t = http_get(port, "/trickle.html")
        assert t.complete and t.decoded_bytes > 1 << 20
        assert t.first_decoded_1k_ms < t.ttlb_ms - 1000  # first KiB at once, the rest over ~2 s
        assert http_get(port, "/nope").status == 404
        pid = origin.pid
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone after the block


def test_observe_path_suite_smallest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICEGATE_BENCH_RESULTS", str(tmp_path))
    assert main(["bench", "observe-path", "--requests", "200", "--rounds", "1"]) == 0
    doc = json.loads((tmp_path / "publisher-observe-path.json").read_text())
    assert {r["mode"] for r in doc["rows"]} == {"on", "off"}
    assert all(r["cpu_us_per_req"] > 0 for r in doc["rows"])
    assert "observation path" in capsys.readouterr().out
