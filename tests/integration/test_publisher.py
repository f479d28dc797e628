"""The publisher proxy over real sockets: origin <-> `sluicegate serve` (uvicorn) <-> client."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
import time
import zlib
from pathlib import Path

import aiohttp
import brotli
import pytest
import zstandard
from yarl import URL

from sluicegate.dev.origin.hostile import page
from tests.integration.conftest import Origin, start_proxy
from tests.support.servers import ProxyProcess, free_port, raw_http

DECODE = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}


async def fetch(url: str, **kwargs: object) -> tuple[aiohttp.ClientResponse, bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.request(kwargs.pop("method", "GET"), URL(url, encoded=True), allow_redirects=False, **kwargs) as r,
    ):  # type: ignore[arg-type]
        return r, await r.read()


def hdrs(r: aiohttp.ClientResponse) -> dict[str, str]:
    return {k.decode().lower(): v.decode() for k, v in r.raw_headers}


async def test_html_rewritten_to_request_host(proxy: ProxyProcess, origin: Origin) -> None:
    r, body = await fetch(proxy.url + "/page")
    assert r.status == 200
    public = f"http://127.0.0.1:{proxy.port}"
    assert f"{public}/item/3".encode() in body
    assert origin.authority.encode() not in body
    h = hdrs(r)
    # the origin's length is dropped; a small page rewritten in one pass has its own (publisher.oneshot)
    assert h.get("content-length", str(len(body))) == str(len(body)) and h["etag"] == 'W/"v1"'
    assert ("x-hop" not in h and "connection" not in h) or h.get("connection") == "keep-alive"
    assert len(h["x-request-id"]) == 16


async def test_public_host_alias_and_scheme(proxy: ProxyProcess, origin: Origin) -> None:
    _r, body = await fetch(proxy.url + "/page", headers={"Host": "www.pub.test"})
    assert b'href="http://www.pub.test/item/1"' in body


async def test_forwarded_proto_only_from_trusted_proxy(proxy: ProxyProcess) -> None:
    _, body = await fetch(proxy.url + "/page", headers={"X-Forwarded-Proto": "https", "Host": "www.pub.test"})
    assert b"https://www.pub.test" not in body  # 127.0.0.1 is not in trusted_proxies


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
async def test_stream_reencodes_with_same_codec(proxy: ProxyProcess, origin: Origin, coding: str) -> None:
    r, blob = await fetch(proxy.url + f"/enc/{coding}", headers={"Accept-Encoding": coding})
    h = hdrs(r)
    assert h["content-encoding"] == coding
    assert h.get("content-length", str(len(blob))) == str(len(blob)) and h["etag"] == 'W/"e1"'  # never the origin's
    expected = page(f"http://127.0.0.1:{proxy.port}", 400)
    assert DECODE[coding](blob) == expected


async def test_accept_encoding_narrowed(proxy: ProxyProcess) -> None:
    _, body = await fetch(proxy.url + "/echo", headers={"Accept-Encoding": "gzip, compress, br;q=0, zstd"})
    sent = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
    assert sent["accept-encoding"] == "gzip, zstd"


async def test_non_utf8_css_kept_byte_exact(proxy: ProxyProcess) -> None:
    _, body = await fetch(proxy.url + "/css")
    assert body == f"a {{ background: url(http://127.0.0.1:{proxy.port}/x.png) }} /* caf\xe9 */".encode("latin-1")


async def test_json_escaped_forms(proxy: ProxyProcess) -> None:
    _, body = await fetch(proxy.url + "/json")
    data = json.loads(body)
    assert data == {"u": f"http://127.0.0.1:{proxy.port}/x", "e": f"http:\\/\\/127.0.0.1:{proxy.port}"}


async def test_pass_through_binary_untouched(proxy: ProxyProcess, origin: Origin) -> None:
    r, body = await fetch(proxy.url + "/binary")
    _direct, dbody = await fetch(origin.url + "/binary")
    assert body == dbody  # origin URL inside a binary is never rewritten
    assert hdrs(r)["content-length"] == str(len(dbody))


async def test_pass_through_keeps_content_encoding(proxy: ProxyProcess) -> None:
    r, body = await fetch(proxy.url + "/gz-binary")
    h = hdrs(r)
    assert h["content-encoding"] == "gzip" and h["content-length"] == str(len(body))
    assert gzip.decompress(body) == b"\x89PNG" * 1000


async def test_bodiless_framing(proxy: ProxyProcess, origin: Origin) -> None:
    r, body = await fetch(proxy.url + "/head", method="HEAD")
    # text/html: GET would rewrite it and send no Content-Length, so HEAD does not send the origin's either
    assert r.status == 200 and "content-length" not in hdrs(r) and body == b""
    r, body = await fetch(proxy.url + "/binary", method="HEAD")
    assert r.status == 200 and hdrs(r)["content-length"] == str(32 * 40000 + len(origin.url)) and body == b""
    r, _ = await fetch(proxy.url + "/status/204")
    assert r.status == 204 and "content-length" not in hdrs(r) and "transfer-encoding" not in hdrs(r)
    r, _ = await fetch(proxy.url + "/status/304")
    assert r.status == 304 and hdrs(r)["etag"] == '"s"'
    data, _ = raw_http(proxy.port, b"GET /status/205 HTTP/1.1\r\nHost: www.pub.test\r\nConnection: close\r\n\r\n")
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 205") and b"content-length: 0" in head


async def test_error_statuses_are_streamed(proxy: ProxyProcess) -> None:
    r, body = await fetch(proxy.url + "/status/404")
    assert r.status == 404 and body == b"x" * 10


async def test_response_headers_rewritten(proxy: ProxyProcess) -> None:
    r, _ = await fetch(proxy.url + "/redirect", headers={"Host": "www.pub.test"})
    h = r.headers
    assert r.status == 302
    assert h["Location"] == "http://www.pub.test/next"
    assert h["Link"] == "<http://www.pub.test/a.css>; rel=preload"
    assert h["Set-Cookie"] == "sid=1; Domain=www.pub.test; Path=/"
    r, _ = await fetch(proxy.url + "/redirect")
    assert r.headers["Set-Cookie"] == "sid=1; Path=/"  # public host is an IP: host-only cookie


async def test_request_headers_to_origin(proxy: ProxyProcess, origin: Origin) -> None:
    _, body = await fetch(
        proxy.url + "/echo?a=1&b=%2F",
        headers={
            "Host": "www.pub.test",
            "X-Forwarded-For": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
            "Connection": "X-Drop",
            "X-Drop": "1",
            "Keep-Alive": "1",
            "Proxy-Authorization": "Basic eA==",
            "TE": "trailers",
            "Cookie": "c=1",
        },
    )
    info = json.loads(body)
    sent = dict((k.lower(), v) for k, v in info["headers"])
    assert info["path_qs"] == "/echo?a=1&b=%2F"
    assert sent["host"] == origin.authority
    assert sent["x-forwarded-for"] == "127.0.0.1" and sent["x-forwarded-host"] == "www.pub.test"
    assert sent["x-forwarded-proto"] == "http" and sent["via"] == "1.1 sluicegate"
    for gone in ("forwarded", "x-drop", "keep-alive", "proxy-authorization", "te"):
        assert gone not in sent
    assert sent["cookie"] == "c=1"


async def test_request_body_streamed_not_buffered(proxy: ProxyProcess, origin: Origin) -> None:
    sent_done = 0.0

    async def body():  # type: ignore[no-untyped-def]
        nonlocal sent_done
        for _ in range(8):
            yield b"k" * 65536
            await asyncio.sleep(0.1)
        sent_done = time.monotonic()

    _r, data = await fetch(proxy.url + "/echo", method="POST", data=body())
    info = json.loads(data)
    assert info["body_size"] == 8 * 65536
    assert info["body_sha256"] == hashlib.sha256(b"k" * 8 * 65536).hexdigest()
    assert origin.log.first_body_byte_at["/echo"] < sent_done - 0.5  # the origin saw bytes while we were sending


async def test_foreign_host_421_and_no_open_proxy(proxy: ProxyProcess) -> None:
    r, _ = await fetch(proxy.url + "/page", headers={"Host": "evil.example"})
    assert r.status == 421
    data, _ = raw_http(
        proxy.port, b"GET http://evil.example/page HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 421")
    data, _ = raw_http(
        proxy.port, b"CONNECT evil.example:443 HTTP/1.1\r\nHost: www.pub.test\r\nConnection: close\r\n\r\n"
    )
    assert not data.startswith(b"HTTP/1.1 200")


async def test_origin_down_live_but_not_ready(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    p = start_proxy(tmp_path, dead)
    try:
        r, body = await fetch(p.admin_url + "/livez")
        assert r.status == 200
        for _ in range(50):  # the first probe runs at start
            r, body = await fetch(p.admin_url + "/readyz")
            if json.loads(body)["backends"][0]["up"] is not None:
                break
            await asyncio.sleep(0.05)
        assert r.status == 503 and json.loads(body)["backends"][0]["up"] is False
        r, body = await fetch(p.url + "/page")
        assert r.status == 502 and len(hdrs(r)["x-request-id"]) == 16
        assert b"cannot connect to origin" in body and b"Error" not in body  # no exception class names
    finally:
        p.stop()


async def test_first_byte_timeout_504(proxy: ProxyProcess) -> None:
    t0 = time.monotonic()
    r, _body = await fetch(proxy.url + "/slow-head")
    assert r.status == 504 and "x-request-id" in hdrs(r)
    assert 0.9 < time.monotonic() - t0 < 3


def _incomplete(port: int, path: str) -> tuple[bytes, bytes]:
    data, _ = raw_http(
        port, f"GET {path} HTTP/1.1\r\nHost: www.pub.test\r\nAccept-Encoding: gzip\r\n\r\n".encode(), timeout=10
    )
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize("path", ["/reset", "/stall", "/corrupt-gzip", "/truncated-gzip", "/bomb"])
async def test_failure_after_commit_aborts_chunked(proxy: ProxyProcess, path: str) -> None:
    head, body = await asyncio.to_thread(_incomplete, proxy.port, path)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert not body.endswith(b"0\r\n\r\n")  # never the clean terminating chunk
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.get(proxy.url + path, headers={"Host": "www.pub.test"}) as r:
                await r.read()


async def test_failure_after_commit_pass_through_short_of_content_length(proxy: ProxyProcess) -> None:
    head, body = await asyncio.to_thread(_incomplete, proxy.port, "/reset-binary")
    assert b"content-length: 100000" in head.lower()
    assert len(body) < 100_000


async def test_abort_is_logged_with_request_id(proxy: ProxyProcess) -> None:
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.get(proxy.url + "/corrupt-gzip", headers={"Accept-Encoding": "gzip"}) as r:
                rid = r.headers["x-request-id"]
                await r.read()
    await asyncio.sleep(0.2)
    line = next(entry for entry in proxy.log().splitlines() if rid in entry)
    assert "aborting client connection after commit" in line and "decode" in line
    assert "Traceback" not in proxy.log()


async def test_headers_and_first_bytes_stream_immediately(proxy: ProxyProcess, origin: Origin) -> None:
    """Trickling origin: our first body byte arrives right after the origin's; TTLB ~ the origin's."""
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/trickle") as r:
        first = await r.content.readany()
        t_first = time.monotonic()
        await r.read()
        t_last = time.monotonic()
    sent = origin.log.sent_at["trickle"]
    assert first.startswith(b"<p>")
    assert t_first - sent[0] < 0.05, "first chunk was held"
    assert t_last - sent[-1] < 0.05
    assert sent[-1] - sent[0] > 0.9


async def test_sse_flushed_per_event(proxy: ProxyProcess, origin: Origin) -> None:
    arrivals = []
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/sse") as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        async for line in r.content:
            if line.startswith(b"data:"):
                arrivals.append(time.monotonic())
    sent = origin.log.sent_at["sse"]
    assert len(arrivals) == 5
    assert max(a - s for a, s in zip(arrivals, sent, strict=True)) < 0.05


async def test_client_disconnect_cancels_origin_mid_body(proxy: ProxyProcess, origin: Origin) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /forever?tag=mid HTTP/1.1\r\nHost: www.pub.test\r\n\r\n")
    await writer.drain()
    await reader.read(4096)
    await asyncio.sleep(0.1)
    writer.transport.abort()
    gone = time.monotonic()
    for _ in range(50):
        if "mid" in origin.log.closed_at:
            break
        await asyncio.sleep(0.02)
    assert origin.log.closed_at["mid"] - gone < 0.5


async def test_client_disconnect_cancels_origin_while_waiting_for_head(tmp_path: Path, origin: Origin) -> None:
    p = start_proxy(tmp_path, origin.url, extra="")
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        writer.write(b"GET /slow-head?tag=head HTTP/1.1\r\nHost: www.pub.test\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.transport.abort()
        gone = time.monotonic()
        for _ in range(50):
            if "head" in origin.log.closed_at:
                break
            await asyncio.sleep(0.02)
        assert origin.log.closed_at["head"] - gone < 0.5
    finally:
        p.stop()


async def test_slow_reader_backpressure_bounds_memory(proxy: ProxyProcess) -> None:
    """A client that stops reading must stop the origin read too: RSS may not grow with the body."""
    base = proxy.rss_bytes()
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /big?mb=256&type=text/html HTTP/1.1\r\nHost: www.pub.test\r\n\r\n")
    sock.recv(65536)
    peak = base
    for _ in range(15):  # stalled for 1.5 s, longer than the proxy's idle timeout (1 s)
        await asyncio.sleep(0.1)
        peak = max(peak, proxy.rss_bytes())
    # A slow client is backpressure, not origin silence: the response must go on, not be aborted.
    sock.settimeout(5)
    resumed = 0
    while resumed < 8 * 1024 * 1024:
        data = await asyncio.to_thread(sock.recv, 1 << 20)
        assert data, "the proxy aborted a slow client"
        resumed += len(data)
    sock.close()
    assert peak - base < 48 * 1024 * 1024, f"RSS grew by {(peak - base) >> 20} MiB while the client was stalled"


async def test_two_workers(tmp_path: Path, origin: Origin) -> None:
    p = start_proxy(tmp_path, origin.url, workers=2)
    try:
        results = await asyncio.gather(*[fetch(p.url + "/page") for _ in range(20)])
        assert all(r.status == 200 and f"127.0.0.1:{p.port}".encode() in b for r, b in results)
    finally:
        p.stop()


async def test_metrics_endpoint(proxy: ProxyProcess) -> None:
    await fetch(proxy.url + "/page")
    r, body = await fetch(proxy.admin_url + "/metrics")
    assert r.status == 200
    assert b'sluicegate_requests_total{face="publisher",route="stream",status_class="2xx"}' in body


async def test_head_committed_before_body_arrives(proxy: ProxyProcess, origin: Origin) -> None:
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(proxy.url + "/late-body") as r:
            t_head = time.monotonic() - t0
            assert await r.read() == b"<p>late</p>"
            t_body = time.monotonic() - t0
    assert t_head < 0.2 < 0.45 < t_body


async def test_reencoded_segments_decodable_on_arrival(proxy: ProxyProcess, origin: Origin) -> None:
    """The first gzip segment, alone, must decode to the (rewritten) first part of the page."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.get(proxy.url + "/trickle-gzip", headers={"Accept-Encoding": "gzip", "Host": "www.pub.test"}) as r,
    ):
        assert r.headers["Content-Encoding"] == "gzip"
        d = zlib.decompressobj(31)
        first = d.decompress(await r.content.readany())
        t_first = time.monotonic()
        rest = d.decompress(await r.read())
    assert first.startswith(b'<html><body><a href="http://www.pub.test/first">first</a>')
    assert t_first - origin.log.sent_at["trickle-gzip"][0] < 0.2
    assert (first + rest).endswith(b'<a href="http://www.pub.test/second">second</a></body></html>')


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /echo HTTP/1.1\r\nHost: www.pub.test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /echo\x00 HTTP/1.1\r\nHost: www.pub.test\r\n\r\n",
        b"BROKEN\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: www.pub.test\r\nBad Header: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: www.pub.test\r\nContent-Length: -1\r\n\r\n",
    ],
)
async def test_malformed_http_rejected(proxy: ProxyProcess, origin: Origin, request_bytes: bytes) -> None:
    before = len(origin.log.requests)
    data, _ = await asyncio.to_thread(raw_http, proxy.port, request_bytes)
    assert data == b"" or data.startswith(b"HTTP/1.1 400")
    assert len(origin.log.requests) == before  # nothing reached the origin


async def test_missing_host_400(proxy: ProxyProcess) -> None:
    data, _ = await asyncio.to_thread(raw_http, proxy.port, b"GET /page HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")
