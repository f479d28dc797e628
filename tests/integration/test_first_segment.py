"""The first rewritten bytes of a page leave at the origin's first chunk (issue 19, row 6), over real sockets.

The origin (its own aiohttp app) sends the response head and the first 1 KiB of relay-ttfb's page (the document
head: stylesheet, font preload, og:url, a ``<style>`` ``url()``, navigation links, then a padding comment) as one
sync-flushed gzip segment, and then holds the rest of the page until the test opens a gate. While the gate is
closed, the client must receive, decode and see the *rewritten* first KiB: nothing may wait for the origin's
second chunk (no rewriter tail held back across the chunk, no encoder segment left unflushed, no decoder waiting
for more input, no head held for a body). Then the gate opens and the whole page must arrive, rewritten, and
decode to the end. For each coding the client may ask for: gzip (the origin's, re-encoded), br (recoded),
identity (decoded).
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Iterator

import brotli
import pytest
from aiohttp import web

from sluicegate.bench.lab.rawhttp import _Chunked
from sluicegate.dev.origin.content import trickle_html
from tests.support.servers import ProxyProcess, ThreadedApp, free_port

FIRST = 1024  # the page's first chunk: relay-ttfb's first segment
TAIL = b"<p>the rest</p></main></body></html>\n"


class GatedOrigin:
    """``/page.html``: the first KiB at once; the rest once ``gate`` is set (or after 60 s, to never hang)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.page = trickle_html(self.url)[:FIRST] + TAIL
        self.gate = threading.Event()
        app = web.Application()
        app.router.add_get("/page.html", self.handle)
        self.server = ThreadedApp(app, self.port)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import asyncio

        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip",
                                           "Cache-Control": "no-store"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        await resp.write(z.compress(self.page[:FIRST]) + z.flush(zlib.Z_SYNC_FLUSH))
        await asyncio.to_thread(self.gate.wait, 60)
        await resp.write(z.compress(self.page[FIRST:]) + z.flush())
        await resp.write_eof()
        return resp


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedOrigin]:
    origin = GatedOrigin()
    origin.server.start()
    yield origin
    origin.server.stop()


@pytest.fixture(scope="module")
def proxy(gated: GatedOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = f"""
[server]
host = "127.0.0.1"
port = {{port}}

[publisher]
origin_url = "{gated.url}"
public_hosts = ["127.0.0.1:{{port}}"]

[timeouts]
idle = 60.0
"""
    p = ProxyProcess(tmp_path_factory.mktemp("first-segment"), config).start()
    yield p
    p.stop()


class _Decoded:
    """The body as the client decodes it on arrival (chunked framing, then the content coding)."""

    def __init__(self, coding: str) -> None:
        self.chunks = _Chunked()
        self.text = b""
        self._z = zlib.decompressobj(31) if coding == "gzip" else None
        self._br = brotli.Decompressor() if coding == "br" else None

    def feed(self, raw: bytes) -> None:
        for piece in self.chunks.feed(raw):
            if self._z is not None:
                self.text += self._z.decompress(piece)
            elif self._br is not None:
                self.text += self._br.process(piece)
            else:
                self.text += piece


@pytest.mark.parametrize("accept", ["gzip", "br", "identity"])
def test_first_rewritten_kib_reaches_the_client_before_the_origin_sends_more(
    gated: GatedOrigin, proxy: ProxyProcess, accept: str
) -> None:
    gated.gate.clear()
    public = f"http://127.0.0.1:{proxy.port}".encode()
    expected = gated.page.replace(gated.url.encode(), public)
    assert expected.count(public) >= 8  # the page's head names the origin: its first KiB is really rewritten
    first_kib = expected[: len(expected) - len(TAIL)]
    try:
        body = _first_kib_then_rest(proxy.port, accept, gated, first_kib)
    finally:
        gated.gate.set()  # never leave the origin's handler waiting (a failed run's connection ends too)
    assert body.text == expected


def _first_kib_then_rest(port: int, accept: str, gated: GatedOrigin, first_kib: bytes) -> _Decoded:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET /page.html HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: {accept}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        head, rest = raw.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(b":") for line in head.split(b"\r\n")[1:])}
        coding = headers.get(b"content-encoding", b"identity").decode()
        assert coding == accept
        body = _Decoded(coding)
        body.feed(rest)
        # The origin holds its second chunk until the gate opens: all of the rewritten first KiB must arrive
        # and decode before that (20 s: far longer than any scheduling delay; a held-back segment never comes).
        deadline = time.monotonic() + 20
        sock.settimeout(0.2)
        while len(body.text) < len(first_kib) and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            assert data, "the proxy closed the connection before the origin's second chunk"
            body.feed(data)
        assert not gated.gate.is_set()  # (only this test opens it: the origin has not sent a byte more)
        assert body.text == first_kib, (len(body.text), body.text[-80:])
        gated.gate.set()
        sock.settimeout(30)
        while not body.chunks.done:
            data = sock.recv(65536)
            assert data, "the response ended before its last chunk"
            body.feed(data)
    return body
