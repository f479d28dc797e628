"""The mock servers' request reader: a StreamReader with a push-back buffer, read by head, line or length.

Owns only framing-level reads (a head up to a bound, a CRLF line, exactly N bytes); knows nothing of HTTP
semantics or of the APIs the mock provider speaks.
"""

from __future__ import annotations

import asyncio


class BufferedReader:
    """StreamReader with a push-back buffer (the close watcher may read ahead)."""

    def __init__(self, reader: asyncio.StreamReader, max_head: int) -> None:
        self.reader = reader
        self.max_head = max_head
        self.buf = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def head(self) -> bytes | None:
        while True:
            idx = self.buf.find(b"\r\n\r\n")
            if idx >= 0:
                out = bytes(self.buf[: idx + 4])
                del self.buf[: idx + 4]
                return out
            if len(self.buf) > self.max_head or self.eof or not await self.fill():
                return None

    async def exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if self.eof or not await self.fill():
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def line(self) -> bytes | None:
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                out = bytes(self.buf[:idx])
                del self.buf[: idx + 2]
                return out
            if self.eof or not await self.fill():
                return None
