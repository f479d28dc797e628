"""Pure parts of ``sluicegate.bench``: statistics, cold start, verdicts, URL/request building, the load
generator's response parser under every split, collapsed-stack parsing, the flame graph, the CLI wiring."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sluicegate.bench import cli, compare, endpoints, load, profile, results
from sluicegate.bench.probe import ProbeError, Target, _parse_head, build_request
from sluicegate.bench.report import Progress, table
from sluicegate.bench.ttfb import detect_cold_start


def test_percentile_and_describe() -> None:
    assert results.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert results.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert results.percentile([5.0], 90) == 5.0
    assert math.isnan(results.percentile([], 50))
    d = results.describe([float(i) for i in range(1, 101)])
    assert d["n"] == 100 and d["min"] == 1 and d["max"] == 100
    assert d["median"] == pytest.approx(50.5) and d["p90"] == pytest.approx(90.1)
    assert results.describe([]) == {"n": 0}


def test_result_round_trip_is_strict_json(tmp_path: Path) -> None:
    r = results.Result("ttfb", {"n": 2})
    r.add("a", "total_ms", 1.5)
    r.add("a", "total_ms", None)  # not measured: skipped
    r.extra["odd"] = float("nan")
    path = results.save(r, str(tmp_path / "sub" / "run"))
    assert path.name == "run.json"
    doc = json.loads(path.read_text())
    assert doc["extra"]["odd"] is None
    assert doc["summary"]["a"]["total_ms"]["median"] == 1.5
    back = results.load(path)
    assert back.samples == {"a": {"total_ms": [1.5]}} and back.command == "ttfb"
    with pytest.raises(ValueError):
        results.Result.from_json({"nothing": 1})


@pytest.mark.parametrize(
    ("values", "detected"),
    [([100.0, 5.0, 5.0, 6.0], True), ([6.0, 5.0, 5.0, 6.0], False), ([15.0, 5.0, 5.0], True),
     ([9.0, 1.0, 1.0], False)],  # 9x slower but only 8 ms: localhost jitter, not a cold start
)
def test_cold_start(values: list[float], detected: bool) -> None:
    result = detect_cold_start(values)
    assert result is not None and result.detected is detected
    assert detect_cold_start([100.0, 1.0]) is None


def test_verdicts() -> None:
    assert compare.verdict([1, 2, 3], [10, 11, 12]) == "clear"
    assert compare.verdict([1, 2, 3, 4, 20], [5, 15, 16, 17, 18]) == "likely"
    assert compare.verdict([1, 5, 9], [2, 6, 10]) == "noise"
    assert compare.verdict([1], [2, 3]) == "n<2"
    row = compare.compare_series("x", "m", [10.0, 10.0], [5.0, 5.0])
    assert row is not None and row.delta == -5.0 and row.delta_pct == -50.0


def test_pairing_by_name_then_position() -> None:
    a, b = results.Result("ttfb", {}), results.Result("ttfb", {})
    a.add("http://origin/", "total_ms", 1.0)
    b.add("http://proxy/", "total_ms", 2.0)
    assert compare.pair_labels(a, b) == [("http://origin/", "http://proxy/")]
    rows = compare.compare_results(a, b)
    assert rows[0].label == "http://origin/ -> http://proxy/"
    b.add("http://origin/", "total_ms", 3.0)
    assert compare.pair_labels(a, b) == [("http://origin/", "http://origin/")]


def test_target_and_request() -> None:
    t = Target.parse("https://Example.com/a/b?x=1")
    assert (t.scheme, t.host, t.port, t.path, t.host_header) == ("https", "example.com", 443, "/a/b?x=1",
                                                                  "example.com")
    t6 = Target.parse("http://[::1]:8080")
    assert t6.host == "::1" and t6.host_header == "[::1]:8080" and t6.path == "/"
    with pytest.raises(ValueError):
        Target.parse("ftp://x/")
    raw = build_request(Target.parse("http://h:81/p"), "post", {"user-agent": "me"}, b"abc")
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /p HTTP/1.1" and "Host: h:81" in lines
    assert "user-agent: me" in lines and not any(x.startswith("User-Agent:") for x in lines)
    assert "Content-Length: 3" in lines and body == b"abc"


def test_parse_head() -> None:
    status, headers = _parse_head(b"HTTP/1.1 404 Not Found\r\nA: 1\r\na: 2\r\nB:x\r\n\r\n")
    assert status == 404 and headers == {"a": "1, 2", "b": "x"}
    with pytest.raises(ProbeError):
        _parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")


class _FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, _name: str) -> Any:
        return None


RESPONSES = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, 5),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n", 200, 5),
    (b"HTTP/1.1 204 No Content\r\n\r\n", 204, 0),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\ncontent-length: 2\r\n\r\nno", 503, 2),
]


@pytest.mark.parametrize(("response", "status", "size"), RESPONSES)
async def test_load_parser_any_split(response: bytes, status: int, size: int) -> None:
    for cut in range(1, len(response)):
        stats = load._Stats(0.0, None)
        settings = load.LoadSettings(url="http://127.0.0.1:1/", requests=2)
        client = load._Client(settings, load._Budget(2, None), stats)
        conn = load._Conn(client)
        transport = _FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        for _ in range(2):  # two requests on one keep-alive connection
            conn.data_received(response[:cut])
            conn.data_received(response[cut:])
        assert stats.done == 2, cut
        assert stats.statuses == {status: 2} and stats.bytes == 2 * size
        assert stats.errors == ({} if status < 400 else {"http_5xx": 2})
        assert len(transport.writes) == 2 and transport.closed  # budget spent: connection closed


async def test_load_parser_protocol_error_and_close() -> None:
    stats = load._Stats(0.0, None)
    client = load._Client(load.LoadSettings(url="http://127.0.0.1:1/"), load._Budget(5, None), stats)
    conn = load._Conn(client)
    transport = _FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(b"HTTP/1.1 2xx OK\r\n\r\n")
    assert stats.errors == {"protocol": 1} and transport.closed
    conn2 = load._Conn(client)
    conn2.connection_made(_FakeTransport())  # type: ignore[arg-type]
    conn2.connection_lost(None)  # server hung up mid-request
    assert stats.errors == {"protocol": 1, "read": 1}
    await asyncio.sleep(0)


def test_endpoint_suite(tmp_path: Path) -> None:
    f = tmp_path / "e.toml"
    f.write_text('base_url = "http://h:1/api/"\n[[endpoint]]\nname = "a"\npath = "/x"\n'
                 '[[endpoint]]\nurl = "http://other/"\nmethod = "head"\n')
    suite = endpoints.load_suite(str(f))
    assert [(s.label, s.method, s.url) for s in suite.specs] == [
        ("a", "GET", "http://h:1/api/x"), ("endpoint-2", "HEAD", "http://other/")]
    f.write_text('[[endpoint]]\nname = "a"\npath = "/x"\n')
    with pytest.raises(ValueError, match="base_url"):
        endpoints.load_suite(str(f))
    f.write_text('base_url = "http://h/"\n[[endpoint]]\nname = "a"\n[[endpoint]]\nname = "a"\n')
    with pytest.raises(ValueError, match="duplicate"):
        endpoints.load_suite(str(f))


def test_collapsed_stacks_top_and_svg() -> None:
    text = (
        'process 1:"python -c \nprint(1)\n";main (a.py:1);work (b.py:10) 7\n'
        'process 1:"python -c \nprint(1)\n";main (a.py:1);work (b.py:12) 3\n'
        'process 1:"python -c \nprint(1)\n";main (a.py:2) 2\n'
        'process 1:"python -c \nprint(1)\n" 1\n'
    )
    stacks = profile.parse_collapsed(text)
    assert sum(stacks.values()) == 13 and len(stacks) == 4
    assert profile.top_self(stacks) == [("work (b.py)", 10), ("main (a.py)", 2)]
    svg = profile.flamegraph_svg(stacks, "t <&>")
    root = ET.fromstring(svg)  # well-formed
    titles = [el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith("work (b.py) (10 samples") for t in titles)
    assert profile.top_self(Counter()) == []


def test_register_adds_bench_and_profile() -> None:
    parser = argparse.ArgumentParser(prog="sluicegate")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    for argv in (["bench", "ttfb", "http://x/", "-n", "3"], ["bench", "load", "--calibrate"],
                 ["bench", "browser", "http://x/", "--vs", "http://y/"], ["bench", "stream-ab", "--origin", "http://o"],
                 ["bench", "endpoints", "--config", "f"], ["bench", "compare", "a.json", "b.json"],
                 ["profile", "--config", "c", "--", "echo", "{url}"]):
        args = parser.parse_args(argv)
        assert callable(args.func)
    args = parser.parse_args(["profile", "--config", "c", "--", "load", "-c", "4"])
    assert args.command[-3:] == ["load", "-c", "4"]
    assert cli.main(["bench", "ttfb", "http://x/", "-H", "no-colon", "--no-progress"]) == 2


def test_progress_line_and_table() -> None:
    stream = io.StringIO()
    bar = Progress(enabled=True, stream=stream)
    bar.update(0.5, "half")
    bar.update(2.0, "over")  # clamped
    bar.done()
    text = stream.getvalue()
    assert "50.0%  half" in text and "100.0%  over" in text and text.endswith("\r")
    quiet = io.StringIO()
    Progress(enabled=False, stream=quiet).update(0.5, "x")
    assert quiet.getvalue() == ""
    assert table(["a", "b"], [["x", "1"], ["yy", "22"]]).splitlines() == ["a    b", "--  --", "x    1", "yy  22"]


def test_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "sluicegate.bench", "bench", "--help"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    for command in ("ttfb", "endpoints", "load", "browser", "stream-ab", "compare"):
        assert command in out
