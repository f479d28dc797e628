"""A raw-socket HTTP/1.1 GET that timestamps the first *body* byte (entity data after chunk framing).

Blocking socket, fresh connection per request, all times from just before ``connect()``: end of the response
head, first body byte, first KiB of the *decoded* (gunzipped) body, last byte; framing and gzip completeness.
For the publisher benchmarks, where "first byte" must mean page bytes, not the response head.
"""

from __future__ import annotations

import socket
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Fetch:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    connect_ms: float = 0.0
    headers_ms: float = 0.0  # end of the response head
    first_body_ms: float = float("nan")  # first byte of entity data (after chunk framing)
    first_decoded_1k_ms: float = float("nan")  # when >= 1 KiB of the *decoded* body was available
    ttlb_ms: float = 0.0  # last byte of the response (terminating chunk / Content-Length reached)
    body_bytes: int = 0
    decoded_bytes: int = 0
    complete: bool = False  # framing complete (and gzip stream ended, if gzip'd)
    crc32: int = 0
    body: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("body")
        return d


class _Chunked:
    """Incremental HTTP/1.1 chunked-body parser: feed(raw) -> entity data pieces; ``done`` at the last chunk."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0  # bytes of data left in the current chunk (+2 for CRLF handled by state)
        self.state = "size"
        self.done = False

    def feed(self, raw: bytes) -> Iterator[bytes]:
        self.buf += raw
        while not self.done:
            if self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    return
                size = int(self.buf[:i].split(b";")[0], 16)
                self.buf = self.buf[i + 2:]
                if size == 0:
                    self.state = "trailer"
                else:
                    self.left, self.state = size, "data"
            elif self.state == "data":
                if not self.buf:
                    return
                piece, self.buf = self.buf[:self.left], self.buf[self.left:]
                self.left -= len(piece)
                yield piece
                if self.left == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buf) < 2:
                    return
                self.buf, self.state = self.buf[2:], "size"
            else:  # trailer: ends with an empty line
                if self.buf.startswith(b"\r\n"):
                    self.done = True
                    return
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                self.done = True


def http_get(port: int, path: str, *, timeout: float = 30.0, keep_body: bool = False, decode_gzip: bool = True,
             crc: bool = False, bufsize: int = 256 * 1024, on_first_body: Callable[[], None] | None = None) -> Fetch:
    """One GET on a fresh connection, blocking socket; all times from just before connect(). ``on_first_body`` is
    called once, as soon as the first body byte is in hand (e.g. to sample a server's CPU time there)."""
    r = Fetch()
    t0 = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r.connect_ms = (time.perf_counter() - t0) * 1000
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: gzip\r\n"
                     f"User-Agent: sluicegate-bench\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"connection closed before the response head ({head[:200]!r})")
            head += data
        r.headers_ms = (time.perf_counter() - t0) * 1000
        raw_head, rest = head.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        r.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            r.headers[k.strip().lower()] = v.strip()
        chunked = "chunked" in r.headers.get("transfer-encoding", "").lower()
        length = int(r.headers["content-length"]) if "content-length" in r.headers else None
        gz = decode_gzip and r.headers.get("content-encoding", "").lower() == "gzip"
        dec = zlib.decompressobj(31) if gz else None
        parser = _Chunked() if chunked else None
        parts: list[bytes] = []
        buf = bytearray(bufsize)
        view = memoryview(buf)

        def take(piece: bytes | memoryview) -> None:
            if not piece:
                return
            if r.body_bytes == 0:
                r.first_body_ms = (time.perf_counter() - t0) * 1000
                if on_first_body is not None:
                    on_first_body()
            r.body_bytes += len(piece)
            if crc:
                r.crc32 = zlib.crc32(piece, r.crc32)
            if keep_body:
                parts.append(bytes(piece))
            if dec is not None:
                out = dec.decompress(piece)
                r.decoded_bytes += len(out)
            else:
                r.decoded_bytes += len(piece)
            if r.decoded_bytes >= 1024 and r.first_decoded_1k_ms != r.first_decoded_1k_ms:
                r.first_decoded_1k_ms = (time.perf_counter() - t0) * 1000

        def feed(data: bytes | memoryview) -> bool:
            """True when the body is complete."""
            if parser is not None:
                for piece in parser.feed(bytes(data)):
                    take(piece)
                return parser.done
            take(data)
            return length is not None and r.body_bytes >= length

        done = ((length == 0) or feed(rest)) if rest else (length == 0)
        while not done:
            n = sock.recv_into(buf)
            if n == 0:
                break
            done = feed(view[:n].tobytes() if (parser is not None or dec is not None or keep_body) else view[:n])
        r.ttlb_ms = (time.perf_counter() - t0) * 1000
        framed = done if (parser is not None or length is not None) else True
        r.complete = bool(framed and (dec is None or dec.eof))
        if keep_body:
            r.body = b"".join(parts)
        return r
    finally:
        sock.close()
