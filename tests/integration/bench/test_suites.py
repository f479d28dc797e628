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


def test_sigterm_stops_the_suites_servers(tmp_path: Path) -> None:
    """``kill`` of a running suite leaves no server behind (its ``Procs`` unwind on SIGTERM)."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "SLUICEGATE_BENCH_RESULTS": str(tmp_path)}
    bench = subprocess.Popen([sys.executable, "-m", "sluicegate", "bench", "relay-ttfb", "--runs", "1", "--per-run",
                              "50"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(children) < 3:  # origin + two proxies started
        time.sleep(0.2)
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(bench.pid)], capture_output=True,
                                                   text=True).stdout.split()]
    assert len(children) >= 3, children
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(30) == 128 + signal.SIGTERM
    time.sleep(0.5)
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_forwarder_floor_and_trickle_bin(tmp_path: Path) -> None:
    """relay-ttfb --decompose's references: the fast origin's /trickle.bin is /trickle.html's bytes as
    application/octet-stream, and the minimal forwarder relays a whole response, first KiB at once."""
    op, fp = free_port(), free_port()
    with Procs() as procs:
        origin = procs.add(Proc("origin", [PY, "-m", "sluicegate.dev.origin.fast", "--port", str(op),
                                           "--data", str(tmp_path)], tmp_path / "origin.log"))
        wait_http(op, "/health", origin)
        fwd = procs.add(Proc("forwarder", [PY, "-m", "sluicegate.bench.lab.forwarder", "--port", str(fp),
                                           "--to", str(op)], tmp_path / "forwarder.log"))
        wait_http(fp, "/health", fwd)
        firsts: list[float] = []
        b = http_get(op, "/trickle.bin", keep_body=True, on_first_body=lambda: firsts.append(1.0))
        assert b.headers["content-type"] == "application/octet-stream" and b.headers["content-encoding"] == "gzip"
        h = http_get(fp, "/trickle.html", keep_body=True)  # through the forwarder
        assert b.complete and h.complete and firsts == [1.0]
        assert h.headers["content-type"].startswith("text/html")
        assert gzip.decompress(h.body) == gzip.decompress(b.body) and h.decoded_bytes > 1 << 20
        assert h.first_decoded_1k_ms < h.ttlb_ms - 1000  # the first KiB at once through the forwarder too


def test_relay_ttfb_decompose_and_stages_smallest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``relay-ttfb --decompose``: stream / pass / floor beside direct, the worker's CPU to the first byte for
    stream and pass; ``--stages``: every stage timed, warm and cold (figures not checked, only present)."""
    monkeypatch.setenv("SLUICEGATE_BENCH_RESULTS", str(tmp_path))
    assert main(["bench", "relay-ttfb", "--decompose", "--no-buffered", "--runs", "1", "--per-run", "1"]) == 0
    doc = json.loads((tmp_path / "publisher-ttfb.json").read_text())
    s = doc["summary"]
    assert s["order"] == ["direct", "stream", "pass", "floor"]
    assert all(s[t]["added_vs_direct"]["first_body_ms"]["n"] == 1 for t in ("stream", "pass", "floor"))
    assert s["stream"]["proxy_cpu_to_first_body_us"]["median"] > 0 and s["pass"]["proxy_cpu_to_first_body_us"]["n"] == 1
    assert "proxy_cpu_to_first_body_us" not in s["floor"]
    assert "decomposed" in capsys.readouterr().out
    assert main(["bench", "relay-ttfb", "--stages", "--stage-reps", "10"]) == 0
    st = json.loads((tmp_path / "publisher-ttfb-stages.json").read_text())
    assert set(st["stages_warm_us"]) == set(st["stages_cold_us"]) == {
        "headers", "decoder", "processor", "encoder", "decode", "rewrite", "compress", "flush"}
    assert all(v > 0 for v in st["stages_warm_us"].values())
    assert set(st["first_send_cold_us"]) == {"pass", "stream, identity origin", "stream, gzip origin"}


def test_relay_ttfb_idle_smallest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``relay-ttfb --idle``: every server x connection kind x gap has its figure; the idle worker is counted
    (no wake-ups from the loop-lag monitor: none of the proxy's 100 per second are left)."""
    monkeypatch.setenv("SLUICEGATE_BENCH_RESULTS", str(tmp_path))
    assert main(["bench", "relay-ttfb", "--idle", "--rounds", "2", "--gaps", "0.001,0.02", "--idle-s", "1"]) == 0
    doc = json.loads((tmp_path / "publisher-ttfb-idle.json").read_text())
    assert set(doc["cpu_us"]) == {"proxy fresh", "proxy keep-alive", "floor fresh", "floor keep-alive"}
    assert all(set(v) == {"0.001", "0.02"} and all(x["n"] == 2 and x["median"] > 0 for x in v.values())
               for v in doc["cpu_us"].values())
    assert set(doc["idle"]) == {"proxy", "floor"}
    assert doc["idle"]["proxy"]["wakeups_per_s"] < 20
    assert "wake-ups/s" in capsys.readouterr().out
