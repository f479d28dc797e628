"""A core set of the publisher's wire behaviour through `sluicegate serve` under BOTH serving cores
(``[server] http_core`` = "native" and "uvicorn"): the same app must behave the same on the wire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.integration.conftest import PROXY_CONFIG, Origin
from tests.support.servers import ProxyProcess, raw_http


@pytest.fixture(scope="module", params=["native", "uvicorn"])
def served(request: pytest.FixtureRequest, origin: Origin, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, ProxyProcess]]:
    core = str(request.param)
    p = ProxyProcess(tmp_path_factory.mktemp(core), PROXY_CONFIG.format(origin=origin.url),
                     env={"SLUICEGATE__SERVER__HTTP_CORE": core}).start()
    yield core, p
    p.stop()


def test_the_configured_core_serves(served: tuple[str, ProxyProcess]) -> None:
    core, proxy = served
    data, _ = raw_http(proxy.port, b"GET /page HTTP/1.1\r\nHost: www.pub.test\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    assert ("serving core native" in proxy.log()) == (core == "native")


def test_rewritten_page_and_pipelined_requests_in_order(served: tuple[str, ProxyProcess]) -> None:
    _core, proxy = served
    req = b"GET %s HTTP/1.1\r\nHost: www.pub.test\r\n\r\n"
    data, _ = raw_http(proxy.port, req % b"/css" + req % b"/binary" + b"GET /page HTTP/1.1\r\nHost: www.pub.test\r\n"
                       b"Connection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200") == 3
    assert data.rfind(b"HTTP/1.1 200") < data.find(b'href="http://www.pub.test/item/1"')


@pytest.mark.parametrize("request_bytes", [
    b"POST /echo HTTP/1.1\r\nHost: www.pub.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: www.pub.test\r\nX-Fold: a\r\n b\r\n\r\n",
])
def test_smuggling_shapes_refused(served: tuple[str, ProxyProcess], origin: Origin, request_bytes: bytes) -> None:
    _core, proxy = served
    before = len(origin.log.requests)
    data, _ = raw_http(proxy.port, request_bytes)
    assert data == b"" or data.startswith(b"HTTP/1.1 400")
    assert len(origin.log.requests) == before


def test_failure_after_commit_aborts(served: tuple[str, ProxyProcess]) -> None:
    _core, proxy = served
    data, _ = raw_http(proxy.port, b"GET /corrupt-gzip HTTP/1.1\r\nHost: www.pub.test\r\nAccept-Encoding: gzip\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and not body.endswith(b"0\r\n\r\n")


async def test_trickle_first_chunk_at_once(served: tuple[str, ProxyProcess], origin: Origin) -> None:
    _core, proxy = served
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/trickle") as r:
        first = await r.content.readany()
        t_first = time.monotonic()
        await r.read()
    assert first.startswith(b"<p>") and t_first - origin.log.sent_at["trickle"][0] < 0.05


async def test_client_reset_cancels_the_origin(served: tuple[str, ProxyProcess], origin: Origin) -> None:
    core, proxy = served
    tag = f"cores-{core}"
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"GET /forever?tag={tag} HTTP/1.1\r\nHost: www.pub.test\r\n\r\n".encode())
    await writer.drain()
    await reader.read(4096)
    await asyncio.sleep(0.1)
    writer.transport.abort()
    gone = time.monotonic()
    for _ in range(50):
        if tag in origin.log.closed_at:
            break
        await asyncio.sleep(0.02)
    assert origin.log.closed_at[tag] - gone < 0.5


