"""The admin listener over real sockets: off the public port, metrics summed over workers, health, status."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from sluicegate.dev.mock_provider import MockProvider
from sluicegate.dev.origin.hostile import OriginLog, build_origin
from tests.integration.conftest import Origin
from tests.integration.ops.helpers import get, metric, start, wait_for
from tests.support.servers import ThreadedApp, free_port, raw_http


def test_admin_paths_are_not_on_the_public_port(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url)
    try:
        for path in ("/_sluicegate/metrics", "/_sluicegate/health", "/metrics", "/readyz", "/status"):
            before = len(origin.log.requests)
            status, _h, body = get(p.url + "/echo?via=" + path.replace("/", "_"))
            assert status == 200 and len(origin.log.requests) == before + 1  # /echo reached the origin
            status, _h, body = get(p.url + path)
            assert b"sluicegate_" not in body and b'"workers"' not in body  # proxied, never answered by us
        status, _h, body = get(p.admin_url + "/metrics")
        assert status == 200 and b"sluicegate_requests_total" in body
        data, _ = raw_http(p.admin_port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 405")
        status, _h, _b = get(p.admin_url + "/nope")
        assert status == 404
    finally:
        p.stop()


def test_two_workers_one_scrape_counts_every_request(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, workers=2)
    try:
        n = 40
        pids = set()
        for _ in range(n):
            status, _h, _b = get(p.url + "/page", headers={"Connection": "close"})
            assert status == 200
        status, _h, body = get(p.admin_url + "/status")
        st = json.loads(body)
        pids = {w["pid"] for w in st["workers"]}
        assert len(pids) == 2 and all(w["ready"] for w in st["workers"])
        scrapes = []
        for _ in range(4):
            _s, _h, body = get(p.admin_url + "/metrics")
            scrapes.append(metric(body, "sluicegate_requests_total", face="publisher", route="stream",
                                  status_class="2xx"))
        assert scrapes == [n] * 4
        _s, _h, body = get(p.admin_url + "/metrics")
        assert metric(body, "sluicegate_request_duration_seconds_count", face="publisher") == n
        assert metric(body, "sluicegate_body_bytes_total", face="publisher", direction="out") > 1000 * n
        assert metric(body, "sluicegate_publisher_rewrites_total", kind="html") == n
        assert metric(body, "sluicegate_inflight_requests") == 0
        # Both workers served: each wrote its own values (one file set per pid).
        files = os.listdir(_metrics_dir(p))
        assert {int(f.rsplit("_", 1)[1].split(".")[0]) for f in files if f.startswith("counter_")} >= pids
    finally:
        p.stop()


def _metrics_dir(p: object) -> str:
    proc = p.proc  # type: ignore[attr-defined]
    env = Path(f"/proc/{proc.pid}/task").exists()
    assert env
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    environ = Path(f"/proc/{children[0]}/environ").read_bytes().split(b"\0")
    return next(e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))


def test_readiness_follows_the_origin(tmp_path: Path) -> None:
    port = free_port()
    p = start(tmp_path, f"http://127.0.0.1:{port}", extra='[admin]\nlisten = "127.0.0.1:{admin}"\n'
              'probe_interval = "100ms"\nprobe_timeout = "500ms"\n'.replace("{admin}", str(free_port())))
    try:
        assert get(p.admin_url + "/livez")[0] == 200
        status, _h, body = wait_for(lambda: (r := get(p.admin_url + "/readyz")) and
                                    json.loads(r[2])["backends"][0]["up"] is not None and r, what="first probe")
        detail = json.loads(body)
        assert status == 503 and detail["ready"] is False
        assert detail["backends"][0]["name"] == "origin" and "connect failed" in detail["backends"][0]["error"]
        assert detail["backends"][0]["last_probe_age_s"] < 5
        log = OriginLog()
        app = build_origin(log)
        from sluicegate.dev.origin.hostile import ORIGIN_AUTHORITY, ORIGIN_HOST

        app[ORIGIN_AUTHORITY] = f"127.0.0.1:{port}"
        app[ORIGIN_HOST] = "127.0.0.1"
        server = ThreadedApp(app, port).start()
        try:
            wait_for(lambda: get(p.admin_url + "/readyz")[0] == 200, what="ready once the origin is up")
            _s, _h, body = get(p.admin_url + "/metrics")
            assert metric(body, "sluicegate_backend_up", backend="origin") == 1
        finally:
            server.stop()
        wait_for(lambda: get(p.admin_url + "/readyz")[0] == 503, what="not ready once the origin is down")
    finally:
        p.stop()


def test_status_and_crashed_worker_is_replaced(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, workers=2)
    try:
        for _ in range(10):
            assert get(p.url + "/page", headers={"Connection": "close"})[0] == 200
        st = json.loads(get(p.admin_url + "/status")[2])
        for key in ("version", "config_hash", "uptime_s", "workers", "backends", "fast_paths"):
            assert key in st
        assert len(st["config_hash"]) == 16 and st["uptime_s"] > 0
        assert st["backends"][0]["name"] == "origin"
        victim = st["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)

        def replaced() -> dict[str, object] | None:
            s = json.loads(get(p.admin_url + "/status")[2])
            pids = [w["pid"] for w in s["workers"] if w["ready"]]
            return s if victim not in pids and len(pids) == 2 else None

        st = wait_for(replaced, what="a replacement worker")
        assert st["worker_restarts"] == 1
        assert f"worker {victim} exited unexpectedly (signal SIGKILL)" in p.log()
        for _ in range(10):
            assert get(p.url + "/page", headers={"Connection": "close"})[0] == 200
        _s, _h, body = get(p.admin_url + "/metrics")
        # the killed worker's counts stay in the sum
        assert metric(body, "sluicegate_requests_total", face="publisher", status_class="2xx") == 20
        assert metric(body, "sluicegate_supervisor_worker_restarts_total") == 1
    finally:
        p.stop()


def test_readiness_per_model_with_fallback(tmp_path: Path, origin: Origin) -> None:
    dead = free_port()
    local = MockProvider().start_in_thread()  # the mock runs beside the server, as `sluicegate demo` runs it
    providers = f"""
[inference]
path_prefix = "/llm"

[[inference.providers]]
name = "remote"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{dead}/v1"
auth = "none"

[[inference.providers]]
name = "local-mock"
kind = "mock"
base_url = "{local.url}"
"""
    fallback = '[[inference.models]]\nname = "b"\ntargets = [{ provider = "remote", model = "x" }, ' \
               '{ provider = "local-mock", model = "m" }]\n'
    only_remote = '[[inference.models]]\nname = "a"\ntargets = [{ provider = "remote", model = "x" }]\n'
    (tmp_path / "one").mkdir()
    p = start(tmp_path / "one", origin.url, extra=providers + fallback)
    try:
        def probed() -> tuple[int, dict[str, object]] | None:
            status, _h, body = get(p.admin_url + "/readyz")
            detail = json.loads(body)
            remote = next(b for b in detail["backends"] if b["name"] == "provider:remote")
            return (status, detail) if remote["up"] is not None else None

        status, detail = wait_for(probed, what="provider probed")
        assert status == 200 and detail["ready"] is True  # model b can still fall back to the mock
        remote = next(b for b in detail["backends"] if b["name"] == "provider:remote")  # type: ignore[attr-defined]
        assert remote["up"] is False
        mock = next(b for b in detail["backends"] if b["name"] == "provider:local-mock")  # type: ignore[attr-defined]
        assert mock["address"] == local.url.split("//", 1)[1].split("/", 1)[0] and mock["up"] is True
    finally:
        p.stop()
    (tmp_path / "two").mkdir()
    p = start(tmp_path / "two", origin.url, extra=providers + fallback + only_remote)
    try:
        status, detail = wait_for(probed, what="provider probed")
        assert status == 503 and detail["reasons"] == [  # type: ignore[index]
            "model a: no reachable target (provider:remote: connect failed: Connection refused)"]
    finally:
        p.stop()
        local.stop_thread()


def test_breaker_state_metric(tmp_path: Path, origin: Origin) -> None:
    dead = free_port()
    extra = f"""
[inference]
path_prefix = "/llm"
breaker = {{ failure_threshold = 1, cooldown = "60s" }}
retry = {{ max_attempts = 1 }}

[[inference.providers]]
name = "remote"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{dead}/v1"
auth = "none"

[[inference.models]]
name = "a"
targets = [{{ provider = "remote", model = "x" }}]
"""
    p = start(tmp_path, origin.url, extra=extra, workers=2)
    try:
        import urllib.request

        req = urllib.request.Request(p.url + "/llm/v1/chat/completions", method="POST",
                                     data=b'{"model":"a","messages":[]}', headers={"content-type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("a dead provider answered")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        body = get(p.admin_url + "/metrics")[2]
        assert metric(body, "sluicegate_inference_breaker_state", provider="remote", model="x") == 1
        assert metric(body, "sluicegate_inference_breaker_open_total", provider="remote") == 1
        assert metric(body, "sluicegate_requests_total", face="inference", status_class="5xx") == 1
    finally:
        p.stop()
