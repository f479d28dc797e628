"""A rewritten origin read leaves the worker in ONE write (issue 19, rows 2 and 4), counted over real sockets.

The Stream route decodes an origin read into ``[event_loop] piece_bytes`` pieces and rewrites (and re-encodes)
each; the client must get the read's output as one socket write (the held head, the chunk framing and all the
pieces in one ``writev``), not a write per piece. Counted in the kernel, not timed: the worker's
``/proc/<pid>/io`` ``syscr``/``syscw`` (read and write/writev system calls) before and after one request, with
the access log off, are the client request's read plus the origin reads, and the origin request's write plus
the client writes: client writes must equal origin reads.

The origin is a raw socket server that answers each request with head and body in one ``sendall`` (a 48 KB
page: one loopback segment, so the relay reads it whole), keeping the connection alive (the pool reuses it).
The slice is wide (``slice_ms = 100``: no pause within this page) and the pieces small (``piece_bytes = 4096``:
12 pieces per read), so the read is many pieces and one turn of the loop. Identity and gzip (decoded,
rewritten, re-encoded with a sync flush at the end) both leave in one write.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.bench.lab.sysstat import worker_pids
from tests.support.configs import publisher_config
from tests.support.servers import ProxyProcess, RawOrigin, RawRequest

PIECE = 4096


def page(origin: str) -> bytes:
    """~48 KB of HTML whose every line names the origin (rewritten in every piece)."""
    lines = [b"<!doctype html><html><head><title>w</title></head><body>\n"]
    i = 0
    while sum(map(len, lines)) < 48 * 1024:
        lines.append(b'<p><a href="%s/p/%d">item %d</a> <img src="%s/i/%d.png"></p>\n'
                     % (origin.encode(), i, i, origin.encode(), i))
        i += 1
    lines.append(b"</body></html>\n")
    return b"".join(lines)


class OneSendOrigin(RawOrigin):
    """Answers every request on a kept-alive connection with head + whole body in one ``sendall``."""

    def __init__(self) -> None:
        super().__init__(self._send)
        self.body = page(self.url)
        self.gz = gzip.compress(self.body, 6, mtime=0)

    def _send(self, conn: socket.socket, request: RawRequest) -> bool:
        zipped = request.path.startswith(b"/gz/")
        body = self.gz if zipped else self.body
        extra = b"Content-Encoding: gzip\r\n" if zipped else b""
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n%b"
                     b"Content-Length: %d\r\n\r\n%b" % (extra, len(body), body))
        return True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OneSendOrigin, ProxyProcess, int]]:
    origin = OneSendOrigin()
    config = publisher_config(origin.url, server="access_log = false\n",
                              extra=f"\n[event_loop]\nslice_ms = 100\npiece_bytes = {PIECE}\n"
                                    "stall_warn_ms = 60000\n")  # no log line on a slow machine
    proxy = ProxyProcess(Path(tmp_path_factory.mktemp("relay-writes")), config, workers=1).start()
    try:
        assert proxy.proc is not None
        (worker,) = worker_pids(proxy.proc.pid)
        yield origin, proxy, worker
    finally:
        proxy.stop()
        origin.close()


def syscalls(pid: int) -> tuple[int, int]:
    """(read, write) system calls the process has made so far (``syscr``, ``syscw``)."""
    io = dict(line.split(":") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["syscr"]), int(io["syscw"])


def get(conn: http.client.HTTPConnection, path: str, coding: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("GET", path, headers={"Accept-Encoding": coding})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


@pytest.mark.parametrize(("path", "coding"), [("/page.html", "identity"), ("/gz/page.html", "gzip")])
def test_a_rewritten_multi_piece_read_leaves_in_one_write(
    served: tuple[OneSendOrigin, ProxyProcess, int], path: str, coding: str
) -> None:
    origin, proxy, worker = served
    assert len(origin.body) > 10 * PIECE  # many pieces in the one read
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        get(conn, path, coding)  # warm: the origin connection is made and pooled, the first-use paths run
        time.sleep(0.2)
        counts = []  # per request: (origin reads, client writes)
        for _ in range(4):
            r0, w0 = syscalls(worker)
            status, headers, body = get(conn, path, coding)
            time.sleep(0.2)  # the worker is idle again (nothing it does later belongs to another request)
            r1, w1 = syscalls(worker)
            counts.append((r1 - r0 - 1, w1 - w0 - 1))  # less the client's request (read) and the origin's (write)
            assert status == 200
            assert headers.get("transfer-encoding") == "chunked"  # streamed (Stream route), not the one-pass path
            if coding == "gzip":
                assert headers.get("content-encoding") == "gzip"
                body = zlib.decompress(body, 31)
            # complete and rewritten: every origin URL now names the proxy
            assert body == origin.body.replace(origin.url.encode(), proxy.url.encode())
    finally:
        conn.close()
    # One client write per origin read; the body arrives whole in one read (one loopback segment) but a loaded
    # machine may wake the worker between its segments: then two reads, two writes (bytes as they arrive).
    assert all(writes == reads for reads, writes in counts), f"(origin reads, client writes) per request: {counts}"
    assert (1, 1) in counts, f"the page never came in one read: {counts}"
