"""Issue 24 over real sockets: one response must never stall a worker.

The heavy origin (``sluicegate.dev.origin.heavy``) runs in a thread; ``sluicegate serve`` with one worker
runs as a process; clients are raw sockets / ``http.client`` in the test. Every bound asserted here is
loose on purpose (a loaded 2-core CI box): each is an order of magnitude below what the code before
issue 24 did (multi-second stalls, 10+ s of CPU after the client left).
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import brotli
import pytest

from sluicegate.dev.origin.heavy import HEAVY_AUTHORITY, HeavyLog, build_heavy_origin, link_page
from sluicegate.publisher.slicing import QUIET_PAUSES
from tests.support.configs import publisher_config
from tests.support.servers import ProxyProcess, ThreadedApp, free_port

EXTRA = """
[timeouts]
first_byte = 10.0
idle = 10.0
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Heavy:
    def __init__(self, server: ThreadedApp, log: HeavyLog) -> None:
        self.server = server
        self.log = log
        self.url = server.url
        self.authority = f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def heavy() -> Iterator[Heavy]:
    log = HeavyLog()
    port = free_port()
    app = build_heavy_origin(log)
    app[HEAVY_AUTHORITY] = f"127.0.0.1:{port}"
    server = ThreadedApp(app, port).start()
    yield Heavy(server, log)
    server.stop()


def proxy(tmp: Path, heavy: Heavy, extra: str = "") -> ProxyProcess:
    return ProxyProcess(tmp, publisher_config(heavy.url, extra=EXTRA + extra)).start()


@pytest.fixture
def default_proxy(tmp_path: Path, heavy: Heavy) -> Iterator[ProxyProcess]:
    p = proxy(tmp_path, heavy)
    yield p
    p.stop()


# --------------------------------------------------------------------------------------------- clients


def get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    """GET with exactly the given headers (no Accept-Encoding unless given); body as sent (not decoded)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def raw_stream(port: int, path: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: gzip\r\n\r\n".encode())
    return s


def read_all(s: socket.socket) -> tuple[bytes, bool]:
    """Read to EOF; (bytes, ended with the terminating chunk)."""
    chunks = []
    while True:
        try:
            data = s.recv(1 << 20)
        except (ConnectionResetError, TimeoutError):
            break
        if not data:
            break
        chunks.append(data)
        if data.endswith(b"\r\n0\r\n\r\n"):
            return b"".join(chunks), True
    return b"".join(chunks), False


def cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    f = stat[stat.rindex(")") + 2 :].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def worker_pid(supervisor: int) -> int:
    """The one worker process of a ``sluicegate serve`` supervisor (workers = 1)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = [int(c) for t in Path(f"/proc/{supervisor}/task").iterdir()
                for c in (t / "children").read_text().split()]
        if len(kids) == 1:
            return kids[0]
        time.sleep(0.05)
    raise AssertionError(f"supervisor {supervisor} has no single worker")


def metric(proxy: ProxyProcess, name: str) -> float:
    """The sum of a metric's samples, as the admin listener's ``/metrics`` renders it (all workers)."""
    with urllib.request.urlopen(f"{proxy.admin_url}/metrics", timeout=5) as r:
        body = r.read()
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ------------------------------------------------------------------------------------------ 1. stall bound


def small_latencies_during(port: int, heavy_paths: list[str]) -> tuple[list[float], list[float]]:
    """Small GETs back to back while the heavy responses are read as fast as possible by other clients.
    Returns (small-request latencies in s, heavy-response durations in s)."""
    done = threading.Event()
    durations: list[float] = []
    errors: list[BaseException] = []

    def pull(path: str) -> None:
        try:
            t0 = time.perf_counter()
            s = raw_stream(port, path)
            with s:
                _, complete = read_all(s)
            assert complete, f"{path} incomplete"
            durations.append(time.perf_counter() - t0)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(p,)) for p in heavy_paths]
    for t in threads:
        t.start()
    waiter = threading.Thread(target=lambda: ([t.join() for t in threads], done.set()))
    waiter.start()
    time.sleep(0.3)  # the heavy work is under way
    lat: list[float] = []
    while not done.is_set():
        t0 = time.perf_counter()
        status, _, body = get(port, "/small.html", {"Accept-Encoding": "gzip"})
        lat.append(time.perf_counter() - t0)
        assert status == 200 and b"</html>" in body
        time.sleep(0.01)
    waiter.join()
    assert not errors, errors
    return lat, durations


def test_small_request_not_stalled_by_big_rewritten_page(default_proxy: ProxyProcess) -> None:
    lat, durations = small_latencies_during(default_proxy.port, ["/big.html?mib=24"])
    assert len(lat) >= 20, f"only {len(lat)} small requests during {durations} s of heavy work"
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    # Before issue 24: the small GET waited for most of the page (seconds). Sliced: a few ms idle-box.
    assert p99 < 0.5, f"small-request p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms"
    assert statistics.median(lat) < 0.05
    # the loop-lag histogram saw it all, per worker
    assert metric(default_proxy, "sluicegate_event_loop_lag_seconds_count") > 10


def test_four_concurrent_pages_share_the_loop(default_proxy: ProxyProcess) -> None:
    lat, durations = small_latencies_during(default_proxy.port, ["/big.html?mib=5"] * 4)
    assert len(durations) == 4
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    assert p99 < 0.5, f"small-request p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms"
    # round robin: the four pages finish close together, none starves
    assert max(durations) < 3 * min(durations) + 1.0, durations


def test_big_page_still_rewritten_completely(default_proxy: ProxyProcess, heavy: Heavy) -> None:
    status, headers, body = get(default_proxy.port, "/big.html?mib=4", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    page = gzip.decompress(body)
    public = f"127.0.0.1:{default_proxy.port}".encode()
    assert page == link_page(heavy.url, 4 << 20).replace(heavy.authority.encode(), public)


def test_a_page_alone_on_the_worker_is_not_paused_by_the_clock(default_proxy: ProxyProcess) -> None:
    # Nothing else on the loop: after QUIET_PAUSES quiet lane pauses the page's spent slices run on while no
    # I/O is ready (stretches, up to [event_loop] stretch_ms since the loop last ran), and its pauses are
    # bare yields (one loop iteration instead of two); the page is rewritten whole.
    name = "sluicegate_publisher_slice_pauses_total"
    stretched_name = "sluicegate_publisher_slices_stretched_total"
    lane0, light0 = metric(default_proxy, name + '{pause="lane"}'), metric(default_proxy, name + '{pause="light"}')
    stretched0 = metric(default_proxy, stretched_name)
    s = raw_stream(default_proxy.port, "/big.html?mib=16")
    with s:
        _, complete = read_all(s)
    assert complete
    lane = metric(default_proxy, name + '{pause="lane"}') - lane0
    light = metric(default_proxy, name + '{pause="light"}') - light0
    stretched = metric(default_proxy, stretched_name) - stretched0
    assert lane >= QUIET_PAUSES, (lane, light)  # every response starts with lane pauses
    assert stretched > 0, (lane, light, stretched)
    assert light > 0, (lane, light, stretched)


def test_a_small_request_during_a_stretch_is_served(default_proxy: ProxyProcess) -> None:
    # A page alone stretches its slices; a small request arriving meanwhile is I/O the loop sees, which ends
    # the stretch within one slice: served at once, not after the page (before issue 24: seconds). Requests
    # are sparse, so the page is alone (and stretching) again between them.
    stretched_name = "sluicegate_publisher_slices_stretched_total"
    stretched0 = metric(default_proxy, stretched_name)
    done = threading.Event()

    def pull() -> None:
        s = raw_stream(default_proxy.port, "/big.html?mib=24")
        with s:
            _, complete = read_all(s)
        assert complete
        done.set()

    t = threading.Thread(target=pull)
    t.start()
    lat: list[float] = []
    try:
        time.sleep(0.5)  # well into the page
        while not done.is_set():
            t0 = time.perf_counter()
            status, _, body = get(default_proxy.port, "/small.html", {"Accept-Encoding": "gzip"})
            lat.append(time.perf_counter() - t0)
            assert status == 200 and b"</html>" in body
            time.sleep(0.1)
    finally:
        t.join(60)
    assert done.is_set()
    assert metric(default_proxy, stretched_name) > stretched0, "the page never stretched"
    assert len(lat) >= 3, lat
    lat.sort()
    assert statistics.median(lat) < 0.05, lat
    assert lat[-1] < 0.5, lat


def test_stall_warning_names_the_request_when_slicing_is_off(tmp_path: Path, heavy: Heavy) -> None:
    p = proxy(tmp_path, heavy, "\n[event_loop]\nslice_ms = 0\n")
    try:
        status, headers, _ = get(p.port, "/big.html?mib=8", {"Accept-Encoding": "gzip"})
        assert status == 200
        rid = headers["x-request-id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "event loop stalled" not in p.log():
            time.sleep(0.1)
        stalls = [line for line in p.log().splitlines() if "event loop stalled" in line]
        assert stalls, p.log()[-2000:]
        assert any(rid in line and "GET /big.html" in line for line in stalls), stalls
        assert metric(p, "sluicegate_event_loop_stalls_total") >= 1
    finally:
        p.stop()


# ------------------------------------------------------------------------------ 2. work stops with client


def test_client_close_inside_a_bomb_stops_work_and_origin(tmp_path: Path, heavy: Heavy) -> None:
    # No decoded cap in reach: only the client's going away may stop this work.
    p = proxy(tmp_path, heavy, "\n[limits]\nmax_decoded_body_bytes = 68719476736\n")
    try:
        assert p.proc is not None
        pid = worker_pid(p.proc.pid)
        s = raw_stream(p.port, "/bomb.html?tag=close1")
        head = s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200")
        c0 = cpu_s(pid)
        # busy decoding the bomb: 0.3 s of CPU, which on a loaded machine can take longer than 0.3 s of wall time
        busy_by = time.monotonic() + 15.0
        while cpu_s(pid) - c0 <= 0.3 and time.monotonic() < busy_by:
            time.sleep(0.05)
        assert cpu_s(pid) - c0 > 0.3, "the proxy should be busy decoding the bomb"
        closed = time.monotonic()
        s.close()
        # CPU samples every 10 ms: when did the worker stop burning CPU?
        samples = []
        end = closed + 2.0
        while time.monotonic() < end:
            samples.append((time.monotonic() - closed, cpu_s(pid)))
            time.sleep(0.01)
        # idle from t on = less than 20 ms of CPU in the 300 ms after t (the loop-lag timer costs ~1 ms/s)
        idle_at = next(
            (t for t, c in samples if t <= 1.7 and next(c2 for t2, c2 in samples if t2 >= t + 0.3) - c <= 0.02), None
        )
        assert idle_at is not None, f"worker never went idle after the client left: {samples[::20]}"
        used_late = samples[-1][1] - next(c for t, c in samples if t >= 0.5)
        assert used_late < 0.1, f"worker still used {used_late:.2f} s CPU 0.5-2 s after the client left"
        assert idle_at < 0.5, f"worker busy until {idle_at * 1000:.0f} ms after the client closed"
        # and the origin connection was closed
        deadline = time.monotonic() + 3
        while "close1" not in heavy.log.closed_at and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "close1" in heavy.log.closed_at
        assert heavy.log.closed_at["close1"] - closed < 1.0
        # the worker is fine afterwards
        with urllib.request.urlopen(f"{p.admin_url}/livez", timeout=5) as r:
            assert r.status == 200
    finally:
        p.stop()


# ------------------------------------------------------------------------------------------ 3. work bound


def _one_bound_line(log: str, bound: str) -> str:
    lines = [line for line in log.splitlines() if f"work bound {bound} hit" in line]
    assert len(lines) == 1, log[-3000:]
    return lines[0]


def test_decoded_cap_aborts_after_commit_with_one_line_and_metric(tmp_path: Path, heavy: Heavy) -> None:
    # issue 24's name for the key is accepted as well as the original one
    p = proxy(tmp_path, heavy, "\n[limits]\nmax_decoded_bytes = 8388608\n")
    try:
        s = raw_stream(p.port, "/bomb.html?tag=cap1")
        with s:
            data, complete = read_all(s)
        assert data.startswith(b"HTTP/1.1 200") and not complete  # aborted, never a clean end
        rid = re.search(rb"x-request-id: (\w+)", data)
        assert rid is not None
        line = _one_bound_line(p.log(), "max_decoded_body_bytes")
        assert rid.group(1).decode() in line and heavy.authority in line
        assert metric(p, 'sluicegate_publisher_work_bound_total{bound="max_decoded_body_bytes"}') == 1
    finally:
        p.stop()


def test_work_without_output_is_bounded(tmp_path: Path, heavy: Heavy) -> None:
    p = proxy(tmp_path, heavy, "\n[limits]\nmax_decoded_bytes_without_output = 2097152\n")
    try:
        s = raw_stream(p.port, "/endless-script.html?tag=quiet1")
        with s:
            data, complete = read_all(s)
        assert data.startswith(b"HTTP/1.1 200") and not complete
        line = _one_bound_line(p.log(), "max_decoded_bytes_without_output")
        assert heavy.authority in line
        assert metric(p, 'sluicegate_publisher_work_bound_total{bound="max_decoded_bytes_without_output"}') == 1
    finally:
        p.stop()


def test_pass_through_is_not_bounded(tmp_path: Path, heavy: Heavy) -> None:
    limits = "\n[limits]\nmax_decoded_body_bytes = 1048576\nmax_decoded_bytes_without_output = 65536\n"
    p = proxy(tmp_path, heavy, limits)
    try:
        status, headers, body = get(p.port, "/blob.bin?mib=12")
        assert status == 200 and len(body) == 12 << 20 and headers["content-length"] == str(12 << 20)
        assert "work bound" not in p.log()
    finally:
        p.stop()


# ------------------------------------------------------------------------------- 4. coding negotiation


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "*;q=0", "identity;q=1, *;q=0", "br;q=0.5, gzip;q=0"])
def test_refused_coding_is_decoded(default_proxy: ProxyProcess, heavy: Heavy, accept: str) -> None:
    port = default_proxy.port
    public = f"127.0.0.1:{port}"
    want_page = link_page(heavy.url, 4096).replace(heavy.authority.encode(), public.encode())
    status, headers, body = get(port, "/static/page.html", {"Accept-Encoding": accept})
    assert status == 200
    vary = headers.get("vary", "").lower()
    assert "accept-encoding" in vary
    if accept.startswith("br"):
        assert headers["content-encoding"] == "br"
        assert brotli.decompress(body) == want_page
    else:
        assert "content-encoding" not in headers
        assert body == want_page
    # PassThrough content in a refused coding: decoded, bytes otherwise untouched
    status, headers, body = get(port, "/static/data.bin", {"Accept-Encoding": accept})
    assert status == 200 and "content-encoding" not in headers
    assert body == bytes(range(256)) * 64
    assert "accept-encoding" in headers.get("vary", "").lower()


def test_br_only_client_gets_br(default_proxy: ProxyProcess, heavy: Heavy) -> None:
    port = default_proxy.port
    status, headers, body = get(port, "/static/page.html", {"Accept-Encoding": "br"})
    assert status == 200 and headers["content-encoding"] == "br"
    assert brotli.decompress(body).startswith(b"<!doctype html>")
    assert f"127.0.0.1:{port}".encode() in brotli.decompress(body)
    assert headers["etag"].startswith("W/")


@pytest.mark.parametrize("accept", [None, "gzip", "gzip, br", "*", "br;q=0.1, gzip;q=0.9"])
def test_accepted_coding_is_kept(default_proxy: ProxyProcess, accept: str | None) -> None:
    port = default_proxy.port
    hdrs = {} if accept is None else {"Accept-Encoding": accept}  # no header at all: any coding is acceptable
    status, headers, body = get(port, "/static/page.html", hdrs)
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert b"</html>" in gzip.decompress(body)
    assert "accept-encoding" in headers["vary"].lower()
    status, headers, body = get(port, "/static/data.bin", hdrs)
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == bytes(range(256)) * 64
    assert headers["etag"] == '"pc1"'  # untouched PassThrough


def test_undecodable_stack_passes_through(default_proxy: ProxyProcess) -> None:
    status, headers, body = get(default_proxy.port, "/static/double.bin", {"Accept-Encoding": "identity"})
    assert status == 200 and headers["content-encoding"] == "gzip, gzip"
    assert gzip.decompress(gzip.decompress(body)) == bytes(range(256)) * 64
