"""Reload and shutdown over real sockets: SIGHUP / `sluicegate reload` swap configs without dropping
in-flight requests and refuse invalid ones; SIGTERM drains up to shutdown_timeout, then cuts and says so."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Origin
from tests.integration.ops.helpers import get, reload_refused, start, wait_for
from tests.support.servers import ProxyProcess

MODES = pytest.mark.parametrize("mode", ["", "supervisor = false"], ids=["supervisor", "one-process"])


def _inject(gen: str) -> str:
    return f"[html]\nhead_inject = ['<meta name=\"gen\" content=\"{gen}\">']\n"


def _slow_get(port: int, path: str, result: dict[str, object]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        result["status"] = resp.status
        result["body"] = resp.read()
    except (http.client.IncompleteRead, ConnectionError, OSError) as exc:
        result["error"] = type(exc).__name__
    finally:
        conn.close()


def in_flight(port: int, path: str, settle: float) -> tuple[threading.Thread, dict[str, object]]:
    """GET ``path`` in a thread, given ``settle`` seconds to be in flight: the thread and its result."""
    slow: dict[str, object] = {}
    t = threading.Thread(target=_slow_get, args=(port, path, slow))
    t.start()
    time.sleep(settle)
    return t, slow


def _generation(p: ProxyProcess) -> int:
    return int(json.loads(get(p.admin_url + "/status")[2])["config"]["generation"])


def test_sighup_reload_keeps_in_flight_and_refuses_invalid(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, extra=_inject("one"), workers=2)
    try:
        assert b'content="one"' in get(p.url + "/page")[2]
        t, slow = in_flight(p.port, "/trickle", 0.2)  # the trickle (1 s) is in flight on a generation-1 worker
        text = p.config_path.read_text()
        p.config_path.write_text(text.replace('content="one"', 'content="two"'))
        assert p.proc is not None
        os.kill(p.proc.pid, signal.SIGHUP)
        wait_for(lambda: _generation(p) == 2, what="generation 2")
        assert b'content="two"' in get(p.url + "/page", headers={"Connection": "close"})[2]
        t.join(10)
        assert slow.get("status") == 200, slow.get("error")
        body = slow["body"]
        assert isinstance(body, bytes) and body.count(b"<b>") == 20 and body.endswith(b"</b>\n")
        assert b'content="one"' in body  # finished on the config it started with

        # An invalid file is refused with its error (file:line: key), and generation 2 keeps serving.
        reload_refused(p)
        assert _generation(p) == 2 and b'content="two"' in get(p.url + "/page")[2]
        st = json.loads(get(p.admin_url + "/status")[2])
        assert len([w for w in st["workers"] if not w["draining"]]) == 2
    finally:
        p.stop()


@MODES
def test_reload_command(tmp_path: Path, origin: Origin, mode: str) -> None:
    pid_file = tmp_path / "sg.pid"
    p = start(tmp_path, origin.url, server=f'{mode}\npid_file = "{pid_file}"', extra=_inject("a"))
    try:
        assert pid_file.read_text().strip() == str(p.proc.pid)  # type: ignore[union-attr]
        p.config_path.write_text(p.config_path.read_text().replace('content="a"', 'content="b"'))
        cmd = [sys.executable, "-m", "sluicegate", "reload", "--config", str(p.config_path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: _generation(p) == 2, what="generation 2")
        assert b'content="b"' in get(p.url + "/page")[2]
        assert pid_file.read_text().strip() == str(p.proc.pid)  # type: ignore[union-attr]  # (one process: re-exec'd)
        p.config_path.write_text(p.config_path.read_text() + "\n[limits]\nmax_origin_connections = true\n")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and "limits.max_origin_connections" in done.stderr
        assert "Traceback" not in done.stderr
        time.sleep(0.5)
        assert _generation(p) == 2  # nothing was sent
    finally:
        p.stop()
    assert not pid_file.exists()


@MODES
def test_sigterm_drains_in_flight_then_exits_zero(tmp_path: Path, origin: Origin, mode: str) -> None:
    p = start(tmp_path, origin.url, server=f'{mode}\nshutdown_timeout = "5s"')
    assert p.proc is not None
    t, slow = in_flight(p.port, "/trickle", 0.2)
    os.kill(p.proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    ready = get(p.admin_url + "/readyz")  # the admin listener answers while draining: not ready
    assert ready[0] == 503 and b"shutting down" in ready[2]
    refused = False
    try:
        get(p.url + "/page", timeout=2)
    except OSError:
        refused = True
    assert refused  # no longer accepting
    assert p.proc.wait(15) == 0
    t.join(5)
    body = slow["body"]
    assert slow.get("status") == 200 and isinstance(body, bytes) and body.count(b"<b>") == 20


@MODES
def test_sigterm_cuts_what_outlives_shutdown_timeout(tmp_path: Path, origin: Origin, mode: str) -> None:
    p = start(tmp_path, origin.url, server=f'{mode}\nshutdown_timeout = "1s"')
    assert p.proc is not None
    t, slow = in_flight(p.port, f"/forever?tag=ops-cut-{mode[:3]}", 0.3)
    t0 = time.monotonic()
    os.kill(p.proc.pid, signal.SIGTERM)
    code = p.proc.wait(15)
    elapsed = time.monotonic() - t0
    t.join(5)
    assert code == 1 and 0.9 < elapsed < 8
    assert "error" in slow  # the client saw an incomplete response, not a clean end
    assert "aborting 1 in-flight request(s)" in p.log()
    wait_for(lambda: f"ops-cut-{mode[:3]}" in origin.log.closed_at, what="origin request cancelled")
