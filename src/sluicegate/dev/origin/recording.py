"""An origin that answers with whatever the test asks for and records every request byte for byte.

It is a raw asyncio server, not a framework: the round-trip tests compare the exact request line,
headers and body bytes the origin received, which a framework would normalise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sluicegate.dev.origin.serve import LoopThread


@dataclass
class Received:
    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunked: bool

    def header(self, name: str) -> bytes | None:
        n = name.lower().encode()
        return next((v for k, v in self.headers if k.lower() == n), None)


Handler = Callable[["RecordingOrigin", Received], tuple[int, list[tuple[str, str]], bytes]]


class RecordingOrigin(LoopThread):
    """Answers with ``handler(origin, received)`` (default: 200 ``ok``) and keeps every request received."""

    def __init__(self, port: int | None = None, handler: Handler | None = None) -> None:
        super().__init__(port)
        self.received: list[Received] = []
        self.handler = handler
        self._server: asyncio.Server | None = None

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"

    async def _setup(self) -> None:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", self.port)

    async def _teardown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head[:-4].split(b"\r\n")
                method, target, _ = lines[0].split(b" ", 2)
                headers = [(k.strip(), v.strip()) for k, v in (ln.split(b":", 1) for ln in lines[1:])]
                hmap = {k.lower(): v for k, v in headers}
                chunked = hmap.get(b"transfer-encoding", b"").lower() == b"chunked"
                if chunked:
                    parts = []
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        if size == 0:
                            await reader.readuntil(b"\r\n")
                            break
                        parts.append(await reader.readexactly(size))
                        await reader.readexactly(2)
                    body = b"".join(parts)
                else:
                    body = await reader.readexactly(int(hmap.get(b"content-length", b"0")))
                rec = Received(method.decode(), target, headers, body, chunked)
                self.received.append(rec)
                status, rheaders, rbody = (self.handler or _default)(self, rec)
                out = [f"HTTP/1.1 {status} X\r\n".encode()]
                names = {k.lower() for k, _ in rheaders}
                for k, v in rheaders:
                    out.append(f"{k}: {v}\r\n".encode("latin-1"))
                if "content-length" not in names and method != b"HEAD":
                    out.append(f"content-length: {len(rbody)}\r\n".encode())
                out.append(b"\r\n")
                if method != b"HEAD":
                    out.append(rbody)
                writer.write(b"".join(out))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def _default(origin: RecordingOrigin, rec: Received) -> tuple[int, list[tuple[str, str]], bytes]:
    return 200, [("content-type", "application/octet-stream")], b"ok"
