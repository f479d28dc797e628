"""Large sources streamed into the decoder as they arrive (``stream_source_above``), through the real server.

The same image store as test_images.py; here every source over 64 KiB is streamed through the pipe, so the
pump's own bounds (stall -> 504, cut -> 502, over the limit -> 413) and the decoder's (bomb -> 422 from the
header, truncated -> 502) are all met on the streamed path, the images made are the buffered path's, and
every slot comes back after a burst.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.integration.images.origin import StoreLog, build_store
from tests.integration.images.test_images import CONFIG, WEBP, get
from tests.support.images import size_of
from tests.support.servers import ProxyProcess, ThreadedApp

STREAMED = CONFIG.replace('original_param = "_io_original"', 'original_param = "_io_original"\n'
                          "stream_source_above = 65536")


class Env:
    def __init__(self, proxy: ProxyProcess, buffered: ProxyProcess) -> None:
        self.url = proxy.url
        self.proxy = proxy
        self.buffered_url = buffered.url


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    assert STREAMED != CONFIG
    store = ThreadedApp(build_store(StoreLog())).start()
    proxy = ProxyProcess(tmp_path_factory.mktemp("streamed"), STREAMED.format(store=store.url)).start()
    buffered = ProxyProcess(tmp_path_factory.mktemp("buffered"), CONFIG.replace(
        'original_param = "_io_original"', 'original_param = "_io_original"\nstream_source_above = 0'
    ).format(store=store.url)).start()
    yield Env(proxy, buffered)
    buffered.stop()
    proxy.stop()
    store.stop()


async def test_streamed_images_are_the_buffered_ones(env: Env) -> None:
    for path, accept, want in [("/img/photo.jpg", WEBP, ("webpload_buffer", 800, 533)),
                               ("/img/png-named.jpg", WEBP, ("webpload_buffer", 800, 800)),
                               ("/img/photo.jpg?profile=square", WEBP, ("jpegload_buffer", 320, 320))]:
        status, _, body = await get(env.url + path, {"Accept": accept})
        assert status == 200 and size_of(body) == want, (path, status, body[:200])
        status, _, plain = await get(env.buffered_url + path, {"Accept": accept})
        assert status == 200 and plain == body, path  # same decoder, same bytes, same image
    _, _, metrics = await get(env.proxy.admin_url + "/metrics")
    streamed = [line for line in metrics.decode().splitlines()
                if line.startswith("sluicegate_image_sources_streamed_total")]
    assert streamed and float(streamed[0].split()[-1]) >= 3, streamed  # the streamed path was taken
    spliced = [line for line in metrics.decode().splitlines()
               if line.startswith("sluicegate_image_sources_spliced_total")]
    assert spliced and float(spliced[0].split()[-1]) >= 3, spliced  # moved by splice(2): a plain TCP origin


async def test_bad_sources_streamed_get_their_defined_status(env: Env) -> None:
    cases = {
        "bomb.png": (422, b"50000 x 50000"),
        "truncated.jpg": (502, b"cannot be decoded"),
        "huge.jpg": (413, b"over the limit of 8388608"),  # by its Content-Length, nothing streamed
        "huge-chunked.png": (413, b"over 8388608 bytes"),  # counted as it streams into the decoder
        "cut.jpg": (502, b"ended early after 100000 bytes"),
    }
    for name, (want, says) in cases.items():
        started = time.monotonic()
        status, h, body = await get(env.url + f"/img/{name}", {"Accept": WEBP})
        assert (status, says in body) == (want, True), (name, status, body)
        assert h["cache-control"] == "no-store" and time.monotonic() - started < 10, name
    started = time.monotonic()
    status, _, body = await get(env.url + "/img/stall.jpg", {"Accept": WEBP})
    assert status == 504 and b"stalled: 100000 bytes" in body and 2.5 < time.monotonic() - started < 8
    status, _, body = await get(env.url + "/img/photo.jpg", {"Accept": WEBP})  # the worker survived all that
    assert status == 200 and size_of(body)[1:] == (800, 533)


async def test_burst_of_streamed_images_every_slot_back(env: Env) -> None:
    names = ["photo.jpg", "stall.jpg", "cut.jpg", "png-named.jpg", "truncated.jpg"]
    results = await asyncio.gather(*(get(env.url + f"/img/{names[i % len(names)]}?n={i}", {"Accept": WEBP},
                                         timeout=60) for i in range(40)))
    assert {s for s, _, _ in results} <= {200, 502, 503, 504}
    assert any(s == 200 for s, _, _ in results) and any(s == 503 for s, _, _ in results)
    for _ in range(6):  # workers + queue: all six slots are free again (no pipe or thread left stuck)
        status, _, _ = await get(env.url + "/img/photo.jpg", {"Accept": WEBP})
        assert status == 200
    results = await asyncio.gather(*(get(env.url + f"/img/photo.jpg?m={i}", {"Accept": WEBP}) for i in range(6)))
    assert [s for s, _, _ in results] == [200] * 6
    assert env.proxy.proc is not None and env.proxy.proc.poll() is None
