"""``[server] supervisor = false`` over real sockets: ``sluicegate serve`` serves pages and images in ONE process
(no child in its process tree), the admin listener answers on its own port with the worker's metrics, SIGHUP
re-executes in place (same pid) without losing a connection opened meanwhile, a bad reload keeps serving, and
``workers > 1`` is a ``file:line: key`` error. SIGTERM's drain and cut: ``test_lifecycle``, run in both modes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Origin
from tests.integration.images.origin import StoreLog, build_store
from tests.integration.images.test_images import CONFIG as IMAGES_CONFIG
from tests.integration.ops.helpers import get, metric, reload_refused, start, wait_for
from tests.integration.ops.test_cli import one_clear_line
from tests.integration.ops.test_lifecycle import _inject, in_flight  # SIGTERM in this mode: test_lifecycle
from tests.support.images import size_of
from tests.support.servers import ProxyProcess, ThreadedApp

ONE = "supervisor = false"


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        todo += kids
    return found


def _keep_asking(p: ProxyProcess, done: threading.Event, answers: list[tuple[int, bytes]]) -> None:
    """GET /page on a new connection after another until ``done``: (status or 0 for an error, generation)."""
    while not done.is_set():
        try:
            status, _, body = get(p.url + "/page", headers={"Connection": "close"}, timeout=20)
            answers.append((status, b"two" if b'content="two"' in body else b"one"))
        except OSError as exc:
            answers.append((0, repr(exc).encode()))
        time.sleep(0.02)


def _status(p: ProxyProcess) -> dict[str, object]:
    return dict(json.loads(get(p.admin_url + "/status")[2]))


def test_one_process_serves_pages_with_admin_on_its_own_port(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server=ONE)
    try:
        assert p.proc is not None
        status, _, body = get(p.url + "/page")
        assert status == 200 and b"<html" in body
        assert _children(p.proc.pid) == []  # no worker, no supervisor: this process serves
        cmdline = Path(f"/proc/{p.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"serve" in cmdline
        st = _status(p)
        assert st["mode"] == "one-process" and st["pid"] == p.proc.pid
        assert [w["pid"] for w in st["workers"]] == [p.proc.pid]  # type: ignore[attr-defined]
        body = get(p.admin_url + "/metrics")[2]
        assert metric(body, "sluicegate_requests_total", face="publisher") >= 1  # the app's (mpvalue) values
        assert metric(body, "sluicegate_publisher_upstream_headers_seconds_count") >= 1  # a metric without labels
        assert metric(body, "sluicegate_supervisor_workers") == 1
        assert b"sluicegate_supervisor_config_generation 1.0" in body
        assert get(p.admin_url + "/livez")[0] == 200
        wait_for(lambda: get(p.admin_url + "/readyz")[0] == 200, what="ready")
        public = get(p.url + "/metrics")  # the public port proxies to the origin: no admin paths there
        assert b"sluicegate_requests_total" not in public[2]
        assert get(p.url + "/livez")[2] != b"ok\n"
    finally:
        p.stop()


def test_one_process_serves_images(tmp_path: Path) -> None:
    store = ThreadedApp(build_store(StoreLog())).start()
    config = IMAGES_CONFIG.format(store=store.url).replace("[server]\n", f"[server]\n{ONE}\n", 1)
    p = ProxyProcess(tmp_path, config).start()
    try:
        assert p.proc is not None
        status, headers, body = get(p.url + "/img/photo.jpg?profile=medium", {"Accept": "image/webp"})
        assert status == 200 and headers["content-type"] == "image/webp"
        assert size_of(body) == ("webpload_buffer", 800, 533)
        assert _children(p.proc.pid) == []
        assert metric(get(p.admin_url + "/metrics")[2], "sluicegate_requests_total") >= 1
    finally:
        p.stop()
        store.stop()


@pytest.mark.parametrize("core", ["native", "uvicorn"])
def test_sighup_reexecs_in_place_and_loses_no_connection(tmp_path: Path, origin: Origin, core: str) -> None:
    p = start(tmp_path, origin.url, server=f'{ONE}\nhttp_core = "{core}"', extra=_inject("one"))
    try:
        assert p.proc is not None
        pid = p.proc.pid
        assert b'content="one"' in get(p.url + "/page")[2]
        before = metric(get(p.admin_url + "/metrics")[2], "sluicegate_requests_total")
        t, slow = in_flight(p.port, "/trickle", 0.2)  # 1 s: keeps the drain busy
        p.config_path.write_text(p.config_path.read_text().replace('content="one"', 'content="two"'))
        done, answers = threading.Event(), []  # a new connection after another through the whole reload
        loop = threading.Thread(target=_keep_asking, args=(p, done, answers))
        loop.start()
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "reload checked" in p.log(), what="the reload's check")
        # opened while the old image drains or the new one starts (nothing accepts): waits in the kernel's queue
        assert "generation 2)" not in p.log()  # the new image is not serving yet
        during = socket.create_connection(("127.0.0.1", p.port), timeout=20)
        during.sendall(b"GET /page HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % p.port)
        data = b""
        while chunk := during.recv(65536):
            data += chunk
        during.close()
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"</html>\n")  # served whole
        t.join(10)
        assert slow.get("status") == 200, slow.get("error")
        assert b'content="one"' in slow["body"]  # type: ignore[operator]  # finished on its own config
        st = _status(p)
        assert st["pid"] == pid and st["config"]["generation"] == 2  # type: ignore[index]
        assert f"in one process (pid {pid}, generation 2), {core} core" in p.log()
        assert b'content="two"' in get(p.url + "/page")[2]  # the new config serves
        done.set()
        loop.join(15)
        assert answers and all(status == 200 for status, _ in answers), answers  # none refused, reset or lost
        assert {b"one", b"two"} <= {gen for _, gen in answers}  # they spanned the reload
        assert p.proc.poll() is None and _children(pid) == []
        body = get(p.admin_url + "/metrics")[2]
        assert metric(body, "sluicegate_requests_total") >= before + 2  # counters continue across the exec
        assert metric(body, "sluicegate_supervisor_reloads_total", result="ok") == 1
    finally:
        p.stop()
    assert p.proc.returncode == 0


def test_sigterm_during_a_reloads_drain_stops_without_re_executing(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server=f'{ONE}\nshutdown_timeout = "2s"', extra=_inject("one"))
    assert p.proc is not None
    t, slow = in_flight(p.port, "/forever?tag=one-reload-cut", 0.3)
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reload checked" in p.log(), what="the reload's check")
    os.kill(p.proc.pid, signal.SIGTERM)  # the drain goes on (not cut short), then the process exits
    t0 = time.monotonic()
    assert p.proc.wait(15) == 1 and time.monotonic() - t0 > 1.0  # cut at shutdown_timeout, as for SIGTERM
    t.join(5)
    assert "error" in slow and "aborting 1 in-flight request(s)" in p.log()
    assert "starting generation 2" not in p.log()  # stopped, not re-executed


def test_sigterm_while_the_new_image_starts_is_held_then_drains(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server=ONE, extra=_inject("one"))
    assert p.proc is not None
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: "starting generation 2" in p.log(), what="the re-exec")
    os.kill(p.proc.pid, signal.SIGTERM)  # blocked across the exec, handled once the new image can drain
    assert p.proc.wait(20) == 0  # not killed by the signal (-15)
    assert f"in one process (pid {p.proc.pid}, generation 2)" in p.log()  # it started, then drained


def test_sighup_with_a_bad_config_keeps_serving(tmp_path: Path, origin: Origin) -> None:
    p = start(tmp_path, origin.url, server=ONE, extra=_inject("one"))
    try:
        assert p.proc is not None
        reload_refused(p)
        assert b'content="one"' in get(p.url + "/page")[2]
        assert _status(p)["config"]["generation"] == 1  # type: ignore[index]
        assert "drained" not in p.log()
        body = get(p.admin_url + "/metrics")[2]
        assert metric(body, "sluicegate_supervisor_reloads_total", result="refused") == 1
    finally:
        p.stop()


def test_more_than_one_worker_without_a_supervisor_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text('[server]\nport = 0\nsupervisor = false\nworkers = 2\n')
    done = subprocess.run([sys.executable, "-m", "sluicegate", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    line = one_clear_line(done)
    assert line.startswith(f"{path}:4: server.workers: supervisor = false serves in one process: workers must be 1")
