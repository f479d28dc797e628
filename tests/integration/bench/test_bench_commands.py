"""Each bench command against a local origin: exit codes, JSON fields, plausible figures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import sluicegate
from sluicegate.bench.cli import main
from sluicegate.bench.proc import free_port

if TYPE_CHECKING:
    from tests.integration.bench.conftest import Origin


def _run(args: list[str], tmp_path: Path, name: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / f"{name}.json"
    code = main([*args, "--save", str(out), "--no-progress"])
    return code, json.loads(out.read_text())


def _envelope_ok(doc: dict[str, Any], command: str) -> None:
    assert doc["tool"] == "sluicegate bench"
    assert doc["version"] == sluicegate.__version__
    assert doc["command"] == command
    assert doc["machine"]["cpu_count"] == os.cpu_count()
    assert doc["machine"]["python"].count(".") == 2
    assert doc["machine"]["platform"]
    assert isinstance(doc["settings"], dict) and doc["settings"]


def test_ttfb_trickling_origin_first_byte_before_last(bench_origin: Origin, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    trickle, page = f"{bench_origin.url}/trickle", f"{bench_origin.url}/page"
    code, doc = _run(["bench", "ttfb", trickle, page, "-n", "3"], tmp_path, "ttfb")
    assert code == 0
    _envelope_ok(doc, "ttfb")
    assert doc["settings"]["n"] == 3 and doc["settings"]["urls"] == [trickle, page]
    t = doc["samples"][trickle]
    assert len(t["headers_ms"]) == len(t["first_byte_ms"]) == len(t["total_ms"]) == 3
    for headers, first, total in zip(t["headers_ms"], t["first_byte_ms"], t["total_ms"], strict=True):
        assert headers <= first < total
        # the origin pauses bench_origin.trickle_delay between its two body parts: first byte comes before that
        assert total - first >= bench_origin.trickle_delay * 1000 * 0.8
        assert first < bench_origin.trickle_delay * 1000
    assert t["tls_ms"] == []  # plain http: no handshake
    assert doc["samples"][page]["bytes"] == [float(len(bench_origin.page))] * 3
    s = doc["summary"][trickle]["total_ms"]
    assert s["n"] == 3 and s["min"] <= s["median"] <= s["p90"] <= s["max"]
    assert doc["extra"]["statuses"][page] == {"200": 3}
    assert set(doc["extra"]["cold_start"]) == {trickle, page}
    assert len(doc["extra"]["runs"][trickle]) == 3
    text = capsys.readouterr().out
    assert "first body byte" in text and trickle in text


def test_ttfb_counts_errors_and_statuses(bench_origin: Origin, tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/"  # discard port: nothing listens
    missing = f"{bench_origin.url}/status/404"
    code, doc = _run(["bench", "ttfb", dead, missing, "-n", "2", "--timeout", "5"], tmp_path, "err")
    assert code == 1  # one URL never answered
    assert doc["extra"]["errors"][dead] == {"connect": 2}
    assert doc["samples"][dead]["total_ms"] == []
    assert doc["extra"]["errors"][missing] == {"http_4xx": 2}
    assert doc["extra"]["statuses"][missing] == {"404": 2}
    assert len(doc["samples"][missing]["headers_ms"]) == 2
    assert main(["bench", "ttfb", "ftp://example.org/", "-n", "1", "--no-progress"]) == 1


def test_ttfb_tls_phases_and_untrusted_certificate(bench_tls_origin: Origin, tmp_path: Path) -> None:
    url = f"{bench_tls_origin.url}/page"
    code, doc = _run(["bench", "ttfb", url, "-n", "2"], tmp_path, "tls-bad")
    assert code == 1
    assert doc["extra"]["errors"][url] == {"tls": 2}
    assert "certificate" in doc["extra"]["runs"][url][0]["error_detail"]
    code, doc = _run(["bench", "ttfb", url, "-n", "2", "--insecure"], tmp_path, "tls-ok")
    assert code == 0
    s = doc["samples"][url]
    for connect, tls, headers in zip(s["connect_ms"], s["tls_ms"], s["headers_ms"], strict=True):
        assert connect < tls < headers
    assert s["bytes"] == [float(len(bench_tls_origin.page))] * 2


def test_endpoints_breakdown(bench_origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "endpoints.toml"
    cfg.write_text(
        f'base_url = "{bench_origin.url}"\nn = 2\n[headers]\nX-Test = "yes"\n'
        '[[endpoint]]\nname = "home"\npath = "/page"\n'
        '[[endpoint]]\nname = "post"\nmethod = "POST"\npath = "/echo"\nbody = "0123456789"\n'
        '[[endpoint]]\nname = "chunks"\npath = "/chunked"\n'
    )
    code, doc = _run(["bench", "endpoints", "--config", str(cfg)], tmp_path, "ep")
    assert code == 0
    _envelope_ok(doc, "endpoints")
    assert [e["name"] for e in doc["settings"]["endpoints"]] == ["home", "post", "chunks"]
    assert doc["samples"]["post"]["bytes"] == [10.0, 10.0]
    assert doc["samples"]["home"]["bytes"] == [float(len(bench_origin.page))] * 2
    assert doc["samples"]["chunks"]["bytes"] == [35.0, 35.0]  # 5 x "part N\n", chunk framing removed
    text = capsys.readouterr().out
    assert "POST" in text and "chunks" in text
    bad = tmp_path / "bad.toml"
    bad.write_text('[[endpoint]]\nname = "x"\npath = "/"\nbogus = 1\n')
    assert main(["bench", "endpoints", "--config", str(bad), "--no-progress"]) == 2


def test_load_fixed_requests(bench_origin: Origin, tmp_path: Path) -> None:
    code, doc = _run(["bench", "load", f"{bench_origin.url}/page", "-c", "8", "-r", "600"], tmp_path, "load")
    assert code == 0
    _envelope_ok(doc, "load")
    s = doc["extra"]["load"]
    assert s["requests"] == 600
    assert s["statuses"] == {"200": 600}
    assert s["errors"] == {} and s["errors_total"] == 0
    assert s["body_bytes"] == 600 * len(bench_origin.page)
    assert s["rps"] > 50
    lat = s["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert s["connections_opened"] == 8
    gen = s["generator"]
    assert gen["cpu_us_per_request"] > 0 and len(gen["cpu_per_worker"]) == 1
    assert len(doc["samples"]["load"]["latency_ms"]) == 600


def test_load_duration_chunked_and_errors(bench_origin: Origin, tmp_path: Path) -> None:
    code, doc = _run(["bench", "load", f"{bench_origin.url}/chunked", "-c", "4", "-d", "1", "-w", "2"],
                     tmp_path, "chunked")
    assert code == 0
    s = doc["extra"]["load"]
    assert s["requests"] > 20 and s["errors_total"] == 0
    assert s["body_bytes"] == s["requests"] * 35
    assert s["generator"]["workers"] == 2
    code, doc = _run(["bench", "load", f"{bench_origin.url}/status/503", "-c", "2", "-r", "50"], tmp_path, "5xx")
    assert doc["extra"]["load"]["errors"] == {"http_5xx": 50}
    code, doc = _run(["bench", "load", "http://127.0.0.1:9/", "-c", "2", "-r", "6"], tmp_path, "dead")
    assert code == 1
    assert doc["extra"]["load"]["errors"] == {"connect": 6}


def test_load_calibrate_reports_generator_ceiling(tmp_path: Path) -> None:
    code, doc = _run(["bench", "load", "--calibrate", "-c", "16", "-d", "1"], tmp_path, "cal")
    assert code == 0
    assert doc["command"] == "load-calibrate"
    s = doc["extra"]["load"]
    assert s["errors_total"] == 0 and s["rps"] > 1000
    assert s["generator"]["ceiling_rps_per_core"] > 1000
    assert isinstance(s["generator"]["saturated"], bool)


def test_compare_and_plot(bench_origin: Origin, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(["bench", "ttfb", f"{bench_origin.url}/page", "-n", "4"], tmp_path, "fast")
    _run(["bench", "ttfb", f"{bench_origin.url}/trickle", "-n", "4"], tmp_path, "slow")
    capsys.readouterr()
    out = tmp_path / "cmp.json"
    plots = tmp_path / "plots"
    code = main(["bench", "compare", str(tmp_path / "fast.json"), str(tmp_path / "slow.json"), "--json",
                 "--plot", str(plots)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    out.write_text(json.dumps(doc))
    rows = {r["metric"]: r for r in doc["rows"]}
    assert rows["total_ms"]["verdict"] == "clear"  # 0.25 s pause vs none: ranges far apart
    assert rows["total_ms"]["delta"] > bench_origin.trickle_delay * 1000 * 0.8
    assert rows["total_ms"]["n_a"] == 4
    pngs = sorted(p.name for p in plots.iterdir())
    assert len(pngs) == 2 and all(p.endswith(".png") for p in pngs)
    assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert main(["bench", "compare", str(tmp_path / "fast.json"), str(tmp_path / "nope.json")]) == 2


@pytest.mark.browser
def test_browser_page_vs_trickle(bench_origin: Origin, chromium: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    page, trickle = f"{bench_origin.url}/page", f"{bench_origin.url}/trickle"
    code, doc = _run(["bench", "browser", page, "--vs", trickle, "-n", "1", "--chromium", chromium],
                     tmp_path, "browser")
    assert code == 0
    _envelope_ok(doc, "browser")
    for url in (page, trickle):
        s = doc["samples"][url]
        assert len(s["ttfb_ms"]) == 1 and len(s["load_ms"]) == 1
        assert 0 < s["ttfb_ms"][0] <= s["dcl_ms"][0] <= s["load_ms"][0]
        assert s["fcp_ms"] and s["fcp_ms"][0] > 0
        assert doc["extra"]["browser_runs"][url][0]["status"] == 200
    # the trickling page finishes at least bench_origin.trickle_delay later than it starts answering
    t = doc["samples"][trickle]
    assert t["load_ms"][0] - t["ttfb_ms"][0] >= bench_origin.trickle_delay * 1000 * 0.8
    assert "delta" in capsys.readouterr().out


@pytest.mark.browser
def test_browser_unreachable_and_missing_binary(chromium: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"  # nothing listens (port 9 would be ERR_UNSAFE_PORT)
    code, doc = _run(["bench", "browser", dead, "-n", "1", "--chromium", chromium], tmp_path, "dead")
    assert code == 1
    run = doc["extra"]["browser_runs"][dead][0]
    assert "ERR_CONNECTION_REFUSED" in run["error"]
    assert doc["samples"][dead]["load_ms"] == []
    capsys.readouterr()
    assert main(["bench", "browser", dead, "--chromium", str(tmp_path / "no-such-chromium")]) == 2
    assert "apt-get install -y chromium" in capsys.readouterr().err


@pytest.mark.browser
def test_ab_stream_vs_buffered(bench_origin: Origin, chromium: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = _run(["bench", "stream-ab", "--origin", bench_origin.url, "--path", "/trickle", "-n", "3",
                      "--browser-n", "1", "--chromium", chromium], tmp_path, "stream-ab")
    assert code == 0
    _envelope_ok(doc, "stream-ab")
    assert set(doc["samples"]) == {"stream", "buffered", "origin"}
    argv = {name: mode["argv"] for name, mode in doc["settings"]["modes"].items()}
    assert "sluicegate.dev.buffered" in argv["sluicegate (buffered)"] and "serve" in argv["sluicegate (stream)"]
    delay_ms = bench_origin.trickle_delay * 1000
    stream, buffered = doc["samples"]["stream"], doc["samples"]["buffered"]
    assert len(stream["total_ms"]) == len(buffered["total_ms"]) == 3
    assert buffered["bytes"] == stream["bytes"] == doc["samples"]["origin"]["bytes"]
    for headers, total in zip(stream["headers_ms"], stream["total_ms"], strict=True):
        assert total - headers >= delay_ms * 0.8  # streamed: headers long before the end
    for headers, first, total in zip(buffered["headers_ms"], buffered["first_byte_ms"], buffered["total_ms"],
                                     strict=True):
        assert headers >= delay_ms * 0.8  # buffered: nothing before the origin finished
        assert total - first < delay_ms * 0.3  # TTFB ~ TTLB
    assert stream["ttfb_ms"][0] < buffered["ttfb_ms"][0]
    text = capsys.readouterr().out
    assert "stream vs buffered" in text and "fcp_ms" in text


def test_profile_writes_flamegraph_and_top(bench_origin: Origin, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "proxy.toml"
    cfg.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 8080\nworkers = 1\n'
        f'[publisher]\norigin_url = "{bench_origin.url}"\npublic_hosts = ["*"]\nmode = "stream"\n'
    )
    out = tmp_path / "prof"
    code = main(["profile", "--config", str(cfg), "--out", str(out), "--rate", "250", "--",
                 sys.executable, "-m", "sluicegate.bench", "bench", "load", "{url}/page", "-c", "8",
                 "-d", "1.5", "--save", str(tmp_path / "under-profile")])
    assert code == 0
    load_doc = json.loads((tmp_path / "under-profile.json").read_text())
    assert load_doc["extra"]["load"]["statuses"] == {"200": load_doc["extra"]["load"]["requests"]}
    svg = (out / "flamegraph.svg").read_text()
    assert svg.startswith("<svg") and "<rect" in svg and "sluicegate/" in svg
    top = (out / "top.txt").read_text()
    assert "samples" in top and len(top.splitlines()) > 3
    stacks = (out / "stacks.txt").read_text()
    assert "serve" in stacks
    assert "top functions by self time" in capsys.readouterr().out
