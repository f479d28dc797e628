"""The image optimizer through the real server (``sluicegate serve``), an asset route and a real image store.

Every bad input of issue #16 gets its defined status over real sockets; the worker survives each one; 200
concurrent requests against a pool of 2 all end (200 or 503 + Retry-After) with memory bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.integration.images.origin import StoreLog, build_store
from tests.support.images import size_of
from tests.support.servers import ProxyProcess, ThreadedApp

CONFIG = """
[server]
access_log = "off"

[publisher]
origin_url = "{store}"
public_hosts = ["127.0.0.1:{{port}}"]

[[publisher.routes]]
name = "img"
prefix = "/img/"
kind = "asset"
origin_url = "{store}"
path_pattern = "^/img/(.+)$"
target_path = "/store/$1"
image_optimizer = {{ enabled = true, profile_set = "web" }}

[image_optimizer]
workers = 2
queue = 4
max_source_bytes = 8388608
source_timeout = "3s"
timeout = "10s"
original_param = "_io_original"

[image_optimizer.profile_sets.web]
default_profile = "medium"
widths = [320, 800]
aspect_ratios = ["1:1"]
unknown_profile = "reject"

[image_optimizer.profile_sets.web.profiles.medium]
width = 800

[image_optimizer.profile_sets.web.profiles.square]
width = 320
height = 320
fit = "cover"
format = "jpeg"
quality = 70
"""
WEBP = "image/webp,*/*;q=0.8"
AVIF = "image/avif,image/webp,*/*;q=0.8"


class Env:
    def __init__(self, proxy: ProxyProcess, log: StoreLog, store_url: str) -> None:
        self.proxy = proxy
        self.log = log
        self.url = proxy.url
        self.store_url = store_url


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    log = StoreLog()
    store = ThreadedApp(build_store(log)).start()
    proxy = ProxyProcess(tmp_path_factory.mktemp("images"), CONFIG.format(store=store.url)).start()
    yield Env(proxy, log, store.url)
    proxy.stop()
    store.stop()


async def get(url: str, headers: dict[str, str] | None = None, method: str = "GET",
              timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    limit = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(auto_decompress=False, timeout=limit) as s,
        s.request(method, url, headers=headers or {}, allow_redirects=False) as r,
    ):
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


def store_requests(env: Env, name: str) -> list[dict[str, str]]:
    return [r for r in env.log.requests if r["path"].startswith(f"/store/{name}")]


async def test_profile_made_negotiated_and_policy_applied(env: Env) -> None:
    status, h, body = await get(env.url + "/img/photo.jpg?profile=medium&v=3", {"Accept": WEBP,
                                                                               "Cookie": "s=1"})
    assert status == 200, body
    assert h["content-type"] == "image/webp" and size_of(body) == ("webpload_buffer", 800, 533)
    assert h["content-length"] == str(len(body))
    assert h["vary"] == "Origin, Accept" and h["etag"].startswith('W/"sgi.medium.webp.')
    assert h["cache-control"] == "public, max-age=60" and "set-cookie" not in h
    assert h["x-content-type-options"] == "nosniff" and "x-request-id" in h
    sent = store_requests(env, "photo.jpg")[-1]
    assert sent["path"] == "/store/photo.jpg?v=3"  # the profile parameter is ours, not the store's
    assert sent["accept-encoding"] == "identity" and "cookie" not in sent
    status, h, body = await get(env.url + "/img/photo.jpg", {"Accept": AVIF})
    assert status == 200 and h["content-type"] == "image/avif" and size_of(body)[1:] == (800, 533)
    status, h, body = await get(env.url + "/img/photo.jpg", {"Accept": "*/*"})
    assert h["content-type"] == "image/jpeg" and size_of(body) == ("jpegload_buffer", 800, 533)


async def test_fixed_format_cover_profile_and_alpha_fallback(env: Env) -> None:
    status, h, body = await get(env.url + "/img/photo.jpg?profile=square", {"Accept": AVIF})
    assert status == 200 and h["content-type"] == "image/jpeg" and "vary" in h and "Accept" not in h["vary"]
    assert size_of(body) == ("jpegload_buffer", 320, 320)
    status, h, body = await get(env.url + "/img/alpha.png", {"Accept": "*/*"})
    assert status == 200 and h["content-type"] == "image/png" and size_of(body) == ("pngload_buffer", 800, 533)


async def test_if_none_match_answered_304_by_the_origin_without_a_body(env: Env) -> None:
    _, h, _ = await get(env.url + "/img/photo.jpg", {"Accept": WEBP})
    tag = h["etag"]
    before = len(store_requests(env, "photo.jpg"))
    status, h2, body = await get(env.url + "/img/photo.jpg", {"Accept": WEBP, "If-None-Match": tag})
    assert status == 304 and body == b"" and h2["etag"] == tag and "Accept" in h2["vary"]
    sent = store_requests(env, "photo.jpg")[before:]
    assert [r.get("if-none-match") for r in sent] == ['"p1"']
    # the original's own tag, or a tag for another format, is never a 304 for this representation
    status, _, body = await get(env.url + "/img/photo.jpg", {"Accept": WEBP, "If-None-Match": '"p1"'})
    assert status == 200 and size_of(body)[0] == "webpload_buffer"
    status, _, _ = await get(env.url + "/img/photo.jpg", {"Accept": AVIF, "If-None-Match": tag})
    assert status == 200


async def test_client_cannot_choose_sizes_or_formats(env: Env) -> None:
    status, _, body = await get(env.url + "/img/photo.jpg?profile=huge", {"Accept": WEBP})
    assert status == 400 and b"unknown image profile 'huge'" in body and b"medium, square" in body
    status, h, body = await get(env.url + "/img/photo.jpg?width=5000&height=5000&format=png&q=100", {"Accept": WEBP})
    assert status == 200 and h["content-type"] == "image/webp" and size_of(body)[1:] == (800, 533)


async def test_bad_sources_get_their_defined_status(env: Env) -> None:
    cases = {
        "bomb.png": (422, b"50000 x 50000"),
        "thin.png": (422, b"aspect 160.0:1"),
        "truncated.jpg": (502, b"cannot be decoded"),
        "lying.jpg": (502, b"not a JPEG, PNG"),
        "huge.jpg": (413, b"over the limit of 8388608"),
        "cut.jpg": (502, b"ended early"),
    }
    for name, (want, says) in cases.items():
        started = time.monotonic()
        status, h, body = await get(env.url + f"/img/{name}", {"Accept": WEBP})
        assert (status, says in body) == (want, True), (name, status, body)
        assert h["cache-control"] == "no-store" and h["content-type"].startswith("text/plain")
        assert time.monotonic() - started < 10, name
    status, _, body = await get(env.url + "/img/png-named.jpg", {"Accept": WEBP})
    assert status == 200 and size_of(body) == ("webpload_buffer", 800, 800)
    status, _, body = await get(env.url + "/img/photo.jpg", {"Accept": WEBP})  # the worker survived all that
    assert status == 200 and env.proxy.proc is not None and env.proxy.proc.poll() is None
    _, _, metrics = await get(env.proxy.admin_url + "/metrics")
    for result in ("too_many_pixels", "aspect_ratio", "corrupt_source", "not_an_image", "too_large", "source_cut",
                   "made"):
        assert f'sluicegate_images_total{{result="{result}"}}'.encode() in metrics, result


async def test_slow_origin_stalling_mid_image_gets_504(env: Env) -> None:
    started = time.monotonic()
    status, _, body = await get(env.url + "/img/stall.jpg", {"Accept": WEBP})
    took = time.monotonic() - started
    assert status == 504 and b"stalled: 100000 bytes" in body and 2.5 < took < 8


async def test_not_images_stream_through_unchanged(env: Env) -> None:
    status, h, body = await get(env.url + "/img/soft404.jpg", {"Accept": WEBP})
    assert (status, h["content-type"], body) == (200, "text/html", b"<html><p>no such image</p></html>")
    status, _, body = await get(env.url + "/img/nothing.jpg", {"Accept": WEBP})
    assert (status, body) == (404, b"no such image")
    status, h, body = await get(env.url + "/img/logo.svg?profile=square", {"Accept": WEBP})
    assert status == 200 and h["content-type"] == "image/svg+xml" and body.startswith(b"<svg")
    assert store_requests(env, "logo.svg")[-1]["path"] == "/store/logo.svg?profile=square"  # route's own relay
    status, h, body = await get(env.url + "/img/photo.jpg?_io_original=1", {"Accept": WEBP})
    assert status == 200 and h["content-type"] == "image/jpeg" and size_of(body)[1:] == (2400, 1600)
    _, _, original = await get(env.store_url + "/store/photo.jpg")
    assert body == original


async def test_head_has_the_length_and_no_body(env: Env) -> None:
    _, h_get, body = await get(env.url + "/img/photo.jpg", {"Accept": WEBP})
    status, h, head_body = await get(env.url + "/img/photo.jpg", {"Accept": WEBP}, method="HEAD")
    assert status == 200 and head_body == b"" and h["content-length"] == str(len(body)) == h_get["content-length"]


async def test_200_concurrent_requests_against_a_pool_of_2(env: Env) -> None:
    rss_before = env.proxy.rss_bytes()
    started = time.monotonic()
    results = await asyncio.gather(*(get(env.url + f"/img/photo.jpg?n={i}", {"Accept": WEBP}, timeout=60)
                                     for i in range(200)))
    took = time.monotonic() - started
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {200, 503}, statuses
    ok = [b for s, _, b in results if s == 200]
    busy = [h for s, h, _ in results if s == 503]
    assert len(ok) >= 6 and busy, (len(ok), len(busy))  # at least workers + queue made, the rest refused
    assert all(size_of(b)[1:] == (800, 533) for b in ok)
    assert all(h["retry-after"] == "2" for h in busy)
    assert took < 60
    rss_after = env.proxy.rss_bytes()
    print(f"200 concurrent, pool of 2 + queue 4: {len(ok)} made, {len(busy)} x 503 in {took:.1f} s; "
          f"server RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB")
    assert rss_after < rss_before + 300 * 2**20, (rss_before, rss_after)
    status, _, _ = await get(env.url + "/img/photo.jpg", {"Accept": WEBP})
    assert status == 200  # every slot came back
