"""An idle worker is not woken by the loop-lag monitor; a worker with a request in flight is sampled (issue 19,
row 6: the ttfb2 lane), over real sockets against ``sluicegate serve`` with one worker.

Counted, not timed: the worker's voluntary context switches (each a wake-up from ``epoll_wait``) and the lag
histogram's sample count over one idle second (the monitor woke it 100 times a second before: ~1 % of a core
per idle worker on the shared VM), then the samples taken while a request waits 1 s on its origin.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from sluicegate.bench.lab.sysstat import worker_pids
from tests.support.configs import publisher_config
from tests.support.servers import ProxyProcess, ThreadedApp, free_port

HELD_S = 1.0


async def _page(request: web.Request) -> web.Response:
    return web.Response(text="<html><body>ok</body></html>", content_type="text/html")


async def _held(request: web.Request) -> web.Response:
    await asyncio.sleep(HELD_S)  # the proxy's request waits on its origin: in flight, no CPU
    return web.Response(body=b"late", content_type="application/octet-stream")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    app = web.Application()
    app.router.add_get("/page.html", _page)
    app.router.add_get("/held.bin", _held)
    port = free_port()
    origin = ThreadedApp(app, port)
    origin.start()
    p = ProxyProcess(tmp_path_factory.mktemp("idle"), publisher_config(f"http://127.0.0.1:{port}")).start()
    try:
        yield p
    finally:
        p.stop()
        origin.stop()


def _get(p: ProxyProcess, path: str) -> bytes:
    with urllib.request.urlopen(f"{p.url}{path}", timeout=10) as r:
        assert r.status == 200
        return bytes(r.read())


def _lag_samples(p: ProxyProcess) -> float:
    with urllib.request.urlopen(f"{p.admin_url}/metrics", timeout=5) as r:
        body = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("sluicegate_event_loop_lag_seconds_count"))


def _wakeups(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def test_an_idle_worker_is_not_woken_by_the_lag_monitor(proxy: ProxyProcess) -> None:
    assert proxy.popen is not None
    [worker] = worker_pids(proxy.popen.pid)
    assert b"ok" in _get(proxy, "/page.html")  # served: the monitor was woken, then parks
    time.sleep(0.3)
    wake0, samples0 = _wakeups(worker), _lag_samples(proxy)
    time.sleep(1.0)
    wakes, samples = _wakeups(worker) - wake0, _lag_samples(proxy) - samples0
    # at 10 ms the monitor alone woke the worker ~100 times in this second and took ~100 samples
    assert samples == 0, f"{samples} lag samples in an idle second"
    assert wakes < 20, f"the idle worker woke {wakes} times in one second"


def test_a_request_in_flight_is_sampled(proxy: ProxyProcess) -> None:
    _get(proxy, "/page.html")
    time.sleep(0.2)
    samples0 = _lag_samples(proxy)
    assert _get(proxy, "/held.bin") == b"late"  # 1 s in flight, the loop idle meanwhile
    deadline = time.monotonic() + 2.0
    samples = 0.0
    while time.monotonic() < deadline:  # the samples reach the histogram when the monitor parks after the request
        samples = _lag_samples(proxy) - samples0
        if samples >= 20:
            break
        time.sleep(0.05)
    assert samples >= 20, f"only {samples} lag samples while a request waited {HELD_S} s"
