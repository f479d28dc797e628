"""The fast origin of the relay-ttfb and memory benchmarks: a tiny HTTP/1.1 keep-alive server (asyncio + uvloop).

Routes (GET only):
  /trickle.html          gzip'd HTML, chunked: the head + first 1 KiB of HTML (one gzip sync-flushed segment) at
                         once, then 1 MiB more in 100 segments on a fixed 20 ms schedule (2 s), then the gzip end.
  /trickle.bin           the same bytes on the same schedule as application/octet-stream (a proxy passes them
                         through untouched: relay-ttfb's PassThrough reference for the same wire timing).
  /bin?size=N            N bytes of application/octet-stream (a 1 MiB random block repeated), Content-Length.
  /html-gz?name=F        a pre-generated gzip'd HTML file F from --data (text/html, Content-Encoding: gzip,
                         Content-Length), written in 256 KiB pieces with back-pressure.
  /health                200 "ok".
Run: ``python -m sluicegate.dev.origin.fast --port P --data DIR``. All writes honour back-pressure (drain()).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sluicegate.dev.origin.content import trickle_html

BLOCK = random.Random(7).randbytes(1 << 20)
TRICKLE_SEGMENTS = 100
TRICKLE_SECONDS = 2.0


def trickle_pieces(origin: str) -> list[bytes]:
    """gzip segments: [first 1 KiB of HTML] + 100 segments of the remaining 1 MiB + [gzip trailer]."""
    html = trickle_html(origin)
    first, rest = html[:1024], html[1024:]
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    pieces = [comp.compress(first) + comp.flush(zlib.Z_SYNC_FLUSH)]
    step = -(-len(rest) // TRICKLE_SEGMENTS)
    for i in range(0, len(rest), step):
        pieces.append(comp.compress(rest[i:i + step]) + comp.flush(zlib.Z_SYNC_FLUSH))
    pieces.append(comp.flush())
    return pieces


class Origin:
    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.trickle = trickle_pieces(f"http://127.0.0.1:{port}")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                target = line.split(" ")[1]
                await self.route(target, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def route(self, target: str, w: asyncio.StreamWriter) -> None:
        url = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/trickle.html":
            await self.send_trickle(w)
        elif url.path == "/trickle.bin":
            await self.send_trickle(w, b"application/octet-stream")
        elif url.path == "/bin":
            await self.send_bin(w, int(q.get("size", "1048576")))
        elif url.path == "/html-gz":
            await self.send_file(w, self.data / Path(q["name"]).name)
        elif url.path == "/health":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n")
            await w.drain()
        else:
            w.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n")
            await w.drain()

    async def send_trickle(self, w: asyncio.StreamWriter, ctype: bytes = b"text/html; charset=utf-8") -> None:
        loop = asyncio.get_running_loop()
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Encoding: gzip\r\n"
                b"Cache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n")
        first, *middle, last = self.trickle
        w.write(head + _chunk(first))  # head and the first 1 KiB of HTML in one write
        await w.drain()
        t0 = loop.time()
        interval = TRICKLE_SECONDS / len(middle)
        for i, piece in enumerate(middle, 1):
            await asyncio.sleep(max(0.0, t0 + i * interval - loop.time()))
            payload = _chunk(piece) + (_chunk(last) + b"0\r\n\r\n" if i == len(middle) else b"")
            w.write(payload)
            await w.drain()

    async def send_bin(self, w: asyncio.StreamWriter, size: int) -> None:
        w.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
                .encode())
        left = size
        while left > 0:
            n = min(left, len(BLOCK))
            w.write(BLOCK[:n])
            left -= n
            await w.drain()

    async def send_file(self, w: asyncio.StreamWriter, path: Path) -> None:
        size = path.stat().st_size
        w.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\n"
                f"Content-Length: {size}\r\n\r\n".encode())
        with open(path, "rb") as f:
            while piece := f.read(256 * 1024):
                w.write(piece)
                await w.drain()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def main(port: int, data: Path) -> None:
    origin = Origin(data, port)
    server = await asyncio.start_server(origin.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", type=Path, default=Path("."))
    args = ap.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.port, args.data))
    else:
        uvloop.run(main(args.port, args.data))
